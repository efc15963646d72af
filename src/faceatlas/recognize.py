"""Stage 5: who is in this photo.

Decode (refusing decompression bombs), detect every face, embed them all in one pass, search
the collection's index and let ``best_person`` group the neighbours by person: the best person
within the engine's recognise threshold (``Settings.thresholds``) is the answer for that face,
otherwise it is ``unknown``. An index built by another engine is refused (EngineMismatchError).

The seed system loaded a pickle of up to 1.1 GB per request and detected twice; here the index
is loaded once per process (and reloaded only when a promotion replaced its file), and the
models load once per engine.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from faceatlas.errors import NotFoundError
from faceatlas.faces.engine import EngineConfig, FaceEngine, create_engine
from faceatlas.faces.image import decode
from faceatlas.gallery import SEARCH_K, gallery_identity, index_store
from faceatlas.index import IndexStore, best_person, confidence
from faceatlas.names.normalize import collection_key
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
    """The engine recognition runs. The ensemble's index holds SFace vectors, so an ensemble
    server recognises with SFace alone (dlib only double-checks curation)."""
    cfg = EngineConfig.from_settings(settings, recognize_upsample(settings))
    if cfg.name == "ensemble":
        from dataclasses import replace

        cfg = replace(cfg, name="sface")
    return cfg


class EnginePool:
    """A few engines, one per concurrent recognition: dlib's networks and OpenCV's DNN nets
    keep per-call state and are not safe to share between threads, and separate copies let
    threads overlap where the libraries release the GIL."""

    def __init__(self, settings: Settings, size: int) -> None:
        self.config = recognition_config(settings)
        if self.config.name != "dlib" and size > 1:
            # concurrency comes from the pool (one engine per request); OpenCV's own thread
            # pool on top would oversubscribe the cores and slow every request down
            import cv2

            cv2.setNumThreads(1)
        self._free: queue.LifoQueue[FaceEngine] = queue.LifoQueue()
        for _ in range(max(1, size)):
            self._free.put(create_engine(self.config))

    @contextmanager
    def engine(self) -> Iterator[FaceEngine]:
        engine = self._free.get()
        try:
            yield engine
        finally:
            self._free.put(engine)

    def warm(self) -> None:
        """Load every engine's models now (a server does it before taking requests)."""
        engines = [self._free.get() for _ in range(self._free.qsize())]
        try:
            for e in engines:
                e.warm()
        finally:
            for e in engines:
                self._free.put(e)


_pools: dict[tuple[EngineConfig, int], EnginePool] = {}
_pools_lock = threading.Lock()


def recognize_upsample(settings: Settings) -> int:
    """Recognition may trade small faces for speed (upsample 0: faces ≥ ~80 px, ~2× faster)."""
    return settings.upsample if settings.recognize_upsample is None else settings.recognize_upsample


def engine_pool(settings: Settings, size: int | None = None) -> EnginePool:
    """One pool per process and engine configuration (default size: one per core)."""
    size = size or settings.worker_count
    key = (recognition_config(settings), size)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = EnginePool(settings, size)
        return _pools[key]


def recognize_bytes(
    data: bytes,
    settings: Settings,
    *,
    collection: str | None = None,
    store: IndexStore | None = None,
    engines: EnginePool | None = None,
    threshold: float | None = None,
) -> Recognition:
    """Recognise every face in an encoded image. Raises ImageError for unusable bytes and
    NotFoundError for a collection that does not exist."""
    engines = engines or engine_pool(settings)
    if threshold is None:
        threshold = settings.thresholds(engines.config.name).recognize
    coll = _existing_collection(settings, collection or settings.default_collection)
    img = decode(data, max_pixels=settings.max_pixels)
    index = (store or index_store(settings)).get(coll)
    with engines.engine() as engine:
        # before the work: a server whose engine differs from the index's says so clearly
        if len(index) and index.engine is not None:
            index.require_engine(engine.name, engine.model_hash, coll)
        detected = engine.detect(img.rgb)
        vectors = engine.embed(img.rgb, detected)
    out = Recognition(coll, img.width, img.height, threshold=threshold)
    out.faces = [FaceMatch(Box(*f.box)) for f in detected]
    if not detected:
        return out
    results = index.search(vectors, SEARCH_K) if len(index) else [[] for _ in detected]
    winners: dict[int, tuple[int, float]] = {}
    for i, neighbours in enumerate(results):
        match = out.faces[i]
        match.nearest_distance = round(neighbours[0].distance, 4) if neighbours else None
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
    if winners:
        _name_matches(settings, out, winners)
    return out


def recognize_file(path: Path, settings: Settings, **kwargs: object) -> Recognition:
    return recognize_bytes(Path(path).read_bytes(), settings, **kwargs)  # type: ignore[arg-type]


def _existing_collection(settings: Settings, name: str) -> str:
    key = collection_key(name)
    with session_scope(settings) as session:
        if session.scalar(select(Collection.id).where(Collection.key == key)) is None:
            raise NotFoundError(f"no collection {name!r}")
    return key


def _name_matches(settings: Settings, out: Recognition, winners: dict[int, tuple[int, int]]
                  ) -> None:
    person_ids = {p for p, _ in winners.values()}
    face_ids = {f for _, f in winners.values()}
    with session_scope(settings) as session:
        names = dict(session.execute(
            select(Person.id, Person.name).where(Person.id.in_(person_ids))
        ).all())
        paths = dict(session.execute(
            select(Face.id, Face.gallery_path).where(Face.id.in_(face_ids))
        ).all())
    for i, (person_id, face_id) in winners.items():
        match = out.faces[i]
        if person_id not in names:  # deleted after the index was read: nobody to name
            match.person_id = match.distance = match.confidence = None
            continue
        match.name = names[person_id]
        match.identity = gallery_identity(paths.get(face_id))


# --------------------------------------------------------------------------- answer shapes


def seed_answer(result: Recognition) -> dict[str, object]:
    """The seed system's ``/recognize`` answer (its guide's keys plus the code's
    ``recognized_persons``), so clients of either form keep working."""
    faces = [face_dict(f, result) for f in result.faces]
    recognized = [
        {"name": f.name, "face_coordinates": f.box.percent(result.width, result.height)}
        for f in result.faces if f.known
    ]
    status = result.status
    if status == "no_face":
        return {"status": "no_face", "message": "No face found in the image",
                "person": None, "faces": [], "recognized_persons": []}
    best = result.best
    if best is None:
        return {"status": "unknown", "message": "No matches within threshold", "person": None,
                "faces": faces, "recognized_persons": []}
    return {
        "status": "success",
        "message": f"Recognised {best.name}",
        "person": best.name,
        "confidence": best.confidence,
        "best_match": {"identity": best.identity, "distance": best.distance},
        "faces": faces,
        "recognized_persons": recognized,
    }


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
    }
