"""Stage 5: who is in this photo.

Check the header (refusing decompression bombs), wait for a face engine (a bounded queue: 503
when it is full), decode only then and only to ``recognize_max_side``, detect every face, embed
them all in one pass, search the collection's index and let ``best_person`` group the
neighbours by person: the best person within the engine's recognise threshold
(``Settings.thresholds``) is the answer for that face, otherwise it is ``unknown``. An index
built by another engine is refused (EngineMismatchError).

The seed system loaded a pickle of up to 1.1 GB per request and detected twice; here the index
is loaded once per process (and reloaded only when a promotion replaced its file), and the
models load once per engine.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select

from faceatlas.domain.errors import BusyError, NotFoundError
from faceatlas.domain.faces import DetectedFace
from faceatlas.domain.names import collection_key
from faceatlas.faces.engines import (
    EngineConfig,
    FaceEngine,
    create_engine,
    engine_spec,
    search_config,
)
from faceatlas.faces.image import Decoded, decode, open_image, release_memory
from faceatlas.gallery.index import (
    IndexStore,
    UnionIndex,
    best_person,
    confidence,
    index_store,
)
from faceatlas.gallery.promote import SEARCH_K, gallery_identity
from faceatlas.gallery.sightings import Where
from faceatlas.gallery.sightings import record as record_sightings
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Face, Person


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def percent(self, width: int, height: int) -> dict[str, float]:
        """The seed's ``face_coordinates``: the box in percent of the image size."""
        return {
            "x_percent": round(100.0 * self.x / width, 2),
            "y_percent": round(100.0 * self.y / height, 2),
            "width_percent": round(100.0 * self.w / width, 2),
            "height_percent": round(100.0 * self.h / height, 2),
        }


@dataclass
class FaceMatch:
    """One detected face and who it is (``person_id`` None: unknown)."""

    box: Box
    person_id: int | None = None
    name: str | None = None
    identity: str | None = None  # gallery file stem of the closest face of that person
    distance: float | None = None  # to that person's closest face (None: empty index)
    confidence: float | None = None
    nearest_distance: float | None = None  # to the closest gallery face of anyone
    folder: str | None = None  # the person's file-name stem (the seed's ``person_name``)
    nearest_person_id: int | None = None  # whose is that closest gallery face
    nearest_folder: str | None = None
    #: with ``top_k``: the k closest people, each ``{person_id, person, distance, confidence}``
    candidates: list[dict[str, Any]] | None = None

    @property
    def known(self) -> bool:
        return self.person_id is not None


@dataclass
class Recognition:
    collection: str
    width: int
    height: int
    faces: list[FaceMatch] = field(default_factory=list)
    threshold: float = 0.55
    #: the decoded picture (at most ``recognize_max_side``) when asked for, e.g. to show it
    image: np.ndarray | None = field(default=None, repr=False)
    #: the engine's embeddings are unit length (sface): the old answers then speak cosine
    unit_vectors: bool = False

    @property
    def status(self) -> str:
        """``no_face``, ``unknown`` (faces, nobody within the threshold) or ``success``."""
        if not self.faces:
            return "no_face"
        return "success" if any(f.known for f in self.faces) else "unknown"

    @property
    def best(self) -> FaceMatch | None:
        """The surest known face: the answer's ``person``."""
        known = [f for f in self.faces if f.known]
        return min(known, key=lambda f: f.distance or 0.0) if known else None


def recognition_config(settings: Settings) -> EngineConfig:
    """The engine recognition runs: the one whose vectors the index holds (the ensemble's
    index holds SFace vectors, so an ensemble server recognises with SFace alone; dlib only
    double-checks curation)."""
    return search_config(EngineConfig.from_settings(settings, recognize_upsample(settings)))


class EnginePool:
    """A few engines, one per concurrent recognition: dlib's networks and OpenCV's DNN nets
    keep per-call state and are not safe to share between threads, and separate copies let
    threads overlap where the libraries release the GIL.

    The pool is also the server's admission control: a request decodes its image only once it
    holds an engine, at most ``queue_limit`` requests wait for one (each waits at most
    ``wait_seconds``), and any more get BusyError (503 + Retry-After) at once. Memory is then
    bounded by engines × one decode, whatever the number of clients. ``run`` does the work on
    the engine's own thread: the allocator keeps a freed decode's memory in the arena of the
    thread that made it, so decoding on any of the server's many request threads let RSS
    grow towards threads × one decode (1.7 GB at 16 clients); on engine threads it stays at
    engines × one decode."""

    def __init__(self, settings: Settings, size: int, *, queue_limit: int | None = None,
                 wait_seconds: float | None = None) -> None:
        self.config = recognition_config(settings)
        self.spec = engine_spec(self.config.name)
        if self.spec.opencv_threads and size > 1:
            # concurrency comes from the pool (one engine per request); OpenCV's own thread
            # pool on top would oversubscribe the cores and slow every request down
            import cv2

            cv2.setNumThreads(1)
        self._free: queue.LifoQueue[FaceEngine] = queue.LifoQueue()
        self._threads: dict[int, ThreadPoolExecutor] = {}
        for i in range(max(1, size)):
            engine = create_engine(self.config)
            self._threads[id(engine)] = ThreadPoolExecutor(1, f"faceatlas-engine-{i}")
            self._free.put(engine)
        self.queue_limit = settings.engine_queue if queue_limit is None else queue_limit
        self.wait_seconds = (settings.engine_wait_seconds if wait_seconds is None
                             else wait_seconds)
        self.retry_after = max(1, settings.busy_retry_after)
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return self._waiting

    def admit(self) -> None:
        """BusyError now if a request for an engine would be refused now (none free and the
        queue full): for work that prepares before it takes an engine."""
        with self._lock:
            if self._free.empty() and self._waiting >= self.queue_limit:
                raise self._full()

    @contextmanager
    def engine(self) -> Iterator[FaceEngine]:
        try:
            engine = self._free.get_nowait()
        except queue.Empty:
            engine = self._wait()
        try:
            yield engine
        finally:
            self._free.put(engine)

    def run(self, work: Callable[[FaceEngine], T]) -> T:
        """``work(engine)`` on that engine's own thread, once an engine is free."""
        try:
            with self.engine() as engine:
                return self._threads[id(engine)].submit(work, engine).result()
        finally:
            release_memory()  # after a large decode: its pages go back to the system

    def _wait(self) -> FaceEngine:
        with self._lock:
            if self._waiting >= self.queue_limit:
                raise self._full()
            self._waiting += 1
        started = time.monotonic()
        try:
            return self._free.get(timeout=self.wait_seconds)
        except queue.Empty:
            raise BusyError(f"no face engine became free in {time.monotonic() - started:.0f} s:"
                            " try again shortly", retry_after=self.retry_after) from None
        finally:
            with self._lock:
                self._waiting -= 1

    def _full(self) -> BusyError:
        return BusyError(f"every face engine is busy and {self._waiting} requests are waiting:"
                         " try again shortly", retry_after=self.retry_after)

    def warm(self) -> None:
        """Load every engine's models now (a server does it before taking requests)."""
        engines = [self._free.get() for _ in range(self._free.qsize())]
        try:
            for e in engines:
                e.warm()
        finally:
            for e in engines:
                self._free.put(e)


T = TypeVar("T")
_pools: dict[tuple[object, ...], EnginePool] = {}
_pools_lock = threading.Lock()


def recognize_upsample(settings: Settings) -> int:
    """Recognition may trade small faces for speed (upsample 0: faces ≥ ~80 px, ~2× faster)."""
    return settings.upsample if settings.recognize_upsample is None else settings.recognize_upsample


def engine_pool(settings: Settings, size: int | None = None) -> EnginePool:
    """One pool per process and engine configuration (default size: one per core)."""
    size = size or settings.worker_count
    key = (recognition_config(settings), size, settings.engine_queue,
           settings.engine_wait_seconds, settings.busy_retry_after)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = EnginePool(settings, size)
        return _pools[key]


def analyse_bytes(
    data: bytes,
    settings: Settings,
    engines: EnginePool,
    *,
    embed: bool = True,
    before: Callable[[FaceEngine], None] | None = None,
) -> tuple[Decoded, list[DetectedFace], np.ndarray | None]:
    """Header check (no slot), then on a free engine's own thread: ``before(engine)``, decode
    to ``recognize_max_side``, detect and (with ``embed``) embed. The one request-path use of
    the engines: decoding only once an engine is held bounds the images in memory."""
    open_image(data, max_pixels=settings.max_pixels)  # refuse early, without a slot

    def work(engine: FaceEngine) -> tuple[Decoded, list[DetectedFace], np.ndarray | None]:
        if before is not None:
            before(engine)
        img = decode(data, max_pixels=settings.max_pixels,
                     max_side=settings.recognize_max_side or None,
                     max_bytes=settings.decode_max_bytes)
        found = engine.detect(img.rgb)
        return img, found, engine.embed(img.rgb, found) if embed else None

    return engines.run(work)


def recognize_bytes(
    data: bytes,
    settings: Settings,
    *,
    collection: str | None = None,
    store: IndexStore | None = None,
    engines: EnginePool | None = None,
    threshold: float | None = None,
    keep_image: bool = False,
    top_k: int = 0,
    collections: Sequence[str] | None = None,
    where: Where | None = None,
) -> Recognition:
    """Recognise every face in an encoded image. Raises ImageError for unusable bytes,
    NotFoundError for a collection that does not exist and BusyError when the engines' queue
    is full. Boxes are in the full image's pixels whatever size it was decoded at.

    ``collections`` (instead of ``collection``): search several collections as one; each
    index is mapped on its own, none is merged or copied, and ``collection`` of the answer
    lists them comma-separated. With ``where``, the faces are recorded as sightings if the
    collection records them (one collection searched: a search across several records
    nothing)."""
    engines = engines or engine_pool(settings)
    if threshold is None:
        threshold = settings.thresholds(engines.config.name).recognize
    store = store or index_store(settings)
    index: Any
    keys: list[str] = []
    if collections:
        keys = list(dict.fromkeys(existing_collection(settings, c) for c in collections))
        coll = ",".join(keys)
        index = UnionIndex([store.get(k) for k in keys]) if len(keys) > 1 else store.get(coll)
    else:
        coll = existing_collection(settings, collection or settings.default_collection)
        index = store.get(coll)

    def check(engine: FaceEngine) -> None:
        # before the work: a server whose engine differs from the index's says so clearly
        if len(index) and index.engine is not None:
            index.require_engine(engine.name, engine.model_hash, coll)

    img, detected, vectors = analyse_bytes(data, settings, engines, before=check)
    assert vectors is not None
    width, height = img.full_size
    out = Recognition(coll, width, height, threshold=threshold,
                      image=img.rgb if keep_image else None,
                      unit_vectors=engines.spec.unit_vectors)
    out.faces = [FaceMatch(Box(*img.full_box(f.box))) for f in detected]
    if not detected:
        return out
    k = max(SEARCH_K, top_k * SEARCH_K)  # enough faces to find k different people
    results = (index.search(vectors, k, near=threshold) if len(index)
               else [[] for _ in detected])
    winners: dict[int, tuple[int, float]] = {}
    for i, found in enumerate(results):
        match = out.faces[i]
        if top_k:
            match.candidates = _candidates(found, top_k, threshold)
        # the answer itself from the usual SEARCH_K faces: top_k must not change it
        neighbours = found[:SEARCH_K]
        match.nearest_distance = round(neighbours[0].distance, 4) if neighbours else None
        match.nearest_person_id = neighbours[0].person_id if neighbours else None
        best = best_person(neighbours, threshold)
        if best is None:
            continue
        person_id, distance = best
        # the closest face of the winning person names the seed's ``identity``
        face_id = min((nb for nb in neighbours if nb.person_id == person_id),
                      key=lambda nb: nb.distance).face_id
        winners[i] = (person_id, face_id)
        match.person_id = person_id
        match.distance = round(distance, 4)
        match.confidence = confidence(distance, threshold)
    if winners or any(f.nearest_person_id is not None for f in out.faces):
        _name_matches(settings, out, winners)
    if top_k:
        _name_candidates(settings, out)
    if where is not None and len(keys) <= 1:  # a search across collections records nothing
        record_sightings(settings, out, img.rgb, detected, vectors, where, engines.config.name)
    return out


def _candidates(neighbours: list[Any], k: int, threshold: float) -> list[dict[str, Any]]:
    """The ``k`` closest people among the neighbours, each at their closest face."""
    closest: dict[int, float] = {}
    for nb in neighbours:
        closest[nb.person_id] = min(nb.distance, closest.get(nb.person_id, nb.distance))
    ranked = sorted(closest.items(), key=lambda item: item[1])[:k]
    return [{"person_id": pid, "person": None, "distance": round(d, 4),
             "confidence": confidence(d, threshold),
             "within_threshold": d <= threshold}
            for pid, d in ranked]


def _name_candidates(settings: Settings, out: Recognition) -> None:
    ids = {c["person_id"] for f in out.faces for c in f.candidates or []}
    if not ids:
        return
    with session_scope(settings) as session:
        names = dict(session.execute(select(Person.id, Person.name)
                                     .where(Person.id.in_(ids))).all())
    for f in out.faces:
        if f.candidates is not None:  # people deleted since the index was read drop out
            f.candidates = [{**c, "person": names[c["person_id"]]} for c in f.candidates
                            if c["person_id"] in names]


def recognize_file(path: Path, settings: Settings, **kwargs: object) -> Recognition:
    return recognize_bytes(Path(path).read_bytes(), settings, **kwargs)  # type: ignore[arg-type]


def existing_collection(settings: Settings, name: str) -> str:
    """The key of the collection ``name``; :class:`NotFoundError` when there is none."""
    key = collection_key(name)
    with session_scope(settings) as session:
        if session.scalar(select(Collection.id).where(Collection.key == key)) is None:
            raise NotFoundError(f"no collection {name!r}")
    return key


def _name_matches(settings: Settings, out: Recognition, winners: dict[int, tuple[int, int]]
                  ) -> None:
    person_ids = {p for p, _ in winners.values()}
    person_ids |= {f.nearest_person_id for f in out.faces if f.nearest_person_id is not None}
    face_ids = {f for _, f in winners.values()}
    with session_scope(settings) as session:
        rows = session.execute(
            select(Person.id, Person.name, Person.folder).where(Person.id.in_(person_ids))
        ).all()
        names = {pid: name for pid, name, _ in rows}
        folders = {pid: folder for pid, _, folder in rows}
        paths = dict(session.execute(
            select(Face.id, Face.gallery_path).where(Face.id.in_(face_ids))
        ).all())
    for match in out.faces:
        if match.nearest_person_id is not None:
            match.nearest_folder = folders.get(match.nearest_person_id)
    for i, (person_id, face_id) in winners.items():
        match = out.faces[i]
        if person_id not in names:  # deleted after the index was read: nobody to name
            match.person_id = match.distance = match.confidence = None
            continue
        match.name = names[person_id]
        match.folder = folders[person_id]
        match.identity = gallery_identity(paths.get(face_id))


# --------------------------------------------------------------------------- answer shapes


def seed_answer(result: Recognition) -> dict[str, object]:
    """The old system's ``/recognize`` answer, key for key (HTTP 200 in every case).

    - ``{"status": "no_faces", "message"}`` when no face was found;
    - ``{"status": "error", "message": "No matches within threshold", "all_detected_matches"}``
      when faces were found but nobody is within the threshold;
    - ``success``: ``person`` (display name), ``recognized_persons`` with percent boxes,
      ``best_match {person_name, display_name, confidence_metrics, identity, distance}``,
      ``all_detected_matches``, and the guide's top-level ``confidence``.

    Its numbers, computed from the distances our engine returns (for unit-length embeddings
    as the old system's cosine distance, 1 − cos = d²/2, so its 0..1 scale holds): confidence
    = (1 − distance) × 100; per person ``occurrences`` = faces of the photo matched to them,
    the best person the lowest ``weighted_score`` = 0.4 × mean distance + 0.3 × min distance − 0.1 ×
    occurrences. ``person_name`` is the gallery file-name stem (``Novak_Djokovic``),
    ``identity`` the gallery file name of the closest face (``…_2025-05-24_04400366.jpg``).
    """
    if not result.faces:
        return {"status": "no_faces", "message": "No faces detected in the image"}
    detected = _detected_matches(result)
    known: dict[str, list[FaceMatch]] = {}
    for f in result.faces:
        if f.known and f.folder is not None:
            known.setdefault(f.folder, []).append(f)
    if not known:
        return {"status": "error", "message": "No matches within threshold",
                "all_detected_matches": detected}
    old = _old_distance(result)
    stats = {folder: _old_metrics([old(f.distance or 0.0) for f in faces])
             for folder, faces in known.items()}
    best_folder = min(stats, key=lambda k: (stats[k]["weighted_score"], stats[k]["min_distance"]))
    best = min(known[best_folder], key=lambda f: f.distance or 0.0)
    display = best.name or best_folder.replace("_", " ")
    return {
        "status": "success",
        "message": f"Face recognized as: {display}",
        "person": display,
        "confidence": stats[best_folder]["confidence_percentage"],
        "recognized_persons": [
            {"name": faces[0].name,
             "face_coordinates": faces[0].box.percent(result.width, result.height)}
            for faces in known.values()
        ],
        "best_match": {
            "person_name": best_folder,
            "display_name": display,
            "identity": f"{best.identity}.jpg" if best.identity else None,
            "distance": None if best.distance is None else round(old(best.distance), 4),
            "confidence_metrics": stats[best_folder],
        },
        "all_detected_matches": detected,
    }


def _old_distance(result: Recognition) -> Callable[[float], float]:
    """Our distance as the old system reported it: cosine distance for unit-length vectors."""
    if result.unit_vectors:
        return lambda d: d * d / 2.0
    return lambda d: d


def old_confidence(distance: float) -> float:
    """The old system's confidence in percent: (1 − distance) × 100, two decimals."""
    return round((1.0 - distance) * 100.0, 2)


def _old_metrics(distances: list[float]) -> dict[str, Any]:
    low, mean = min(distances), sum(distances) / len(distances)
    return {
        "occurrences": len(distances),
        "average_distance": round(mean, 4),
        "min_distance": round(low, 4),
        "weighted_score": round(mean * 0.4 + low * 0.3 - len(distances) * 0.1, 4),
        "confidence_percentage": old_confidence(low),
        "distances": [round(d, 4) for d in distances],
    }


def _detected_matches(result: Recognition) -> list[dict[str, Any]]:
    """Per person, the closest face at each detected face (within the threshold or not)."""
    seen: dict[str, list[float]] = {}
    old = _old_distance(result)
    for f in result.faces:
        if f.known and f.folder is not None and f.distance is not None:
            seen.setdefault(f.folder, []).append(old(f.distance))
        elif f.nearest_folder is not None and f.nearest_distance is not None:
            seen.setdefault(f.nearest_folder, []).append(old(f.nearest_distance))
    out = []
    for folder, distances in seen.items():
        metrics = _old_metrics(distances)
        del metrics["weighted_score"]
        out.append({"person_name": folder, "metrics": metrics})
    return out


def face_dict(f: FaceMatch, result: Recognition) -> dict[str, object]:
    return {
        "box": {"x": f.box.x, "y": f.box.y, "w": f.box.w, "h": f.box.h},
        "face_coordinates": f.box.percent(result.width, result.height),
        "status": "known" if f.known else "unknown",
        "person_id": f.person_id,
        "person": f.name,
        "identity": f.identity,
        "distance": f.distance,
        "confidence": f.confidence,
        "nearest_distance": f.nearest_distance,
        **({} if f.candidates is None else {"candidates": f.candidates}),
    }


def collection_keys(settings: Settings) -> list[str]:
    """Every collection's key (``collection=*``: all that the caller may see)."""
    with session_scope(settings) as session:
        return list(session.scalars(select(Collection.key).order_by(Collection.key)))
