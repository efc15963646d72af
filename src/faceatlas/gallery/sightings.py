"""Sightings: who recognition saw, where and when — only where a collection switched it on.

Recognition (``recognize_bytes``, the CLI batch, video jobs) hands what it computed to
:func:`record` once the answer is ready. When the collection records (its
``sighting_policies`` row, off by default), each face becomes a *draft*: who (or unknown),
distance and confidence, the box, a small copy of the face (never the photo), its embedding,
and where (the source the caller named, clip and time range, time, the token's fingerprint).

The request only copies the face pixels and puts the drafts on a bounded queue (≈ 0.1 ms);
one writer thread per process encodes the crops, stores the rows and clusters the unknown
faces (``gallery.candidates``). A full queue drops sightings (counted in :func:`stats`)
rather than slow recognition down; a crash loses at most what was queued. :func:`flush` waits
for the queue (the CLI does before it exits, tests before they look).

Reads (:func:`appearances`), the retention purge (:func:`purge`) and erasure by source or
cluster (:func:`erase_source`, :func:`erase_cluster`) are here too; docs/security.md says what
is stored, for how long and how to erase it.
"""

from __future__ import annotations

import atexit
import csv
import io
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import cv2
import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.faces.quality import box_crop, encode_jpeg
from faceatlas.gallery.candidates import assign, blocked, forget_cache
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.files import Layout, unlink_stored
from faceatlas.store.models import (
    Collection,
    Person,
    Sighting,
    SightingBlock,
    SightingCluster,
    SightingPolicy,
    aware,
)

log = logging.getLogger(__name__)

#: how long a collection's switch is cached per process: a recognition must not read it
POLICY_TTL = 5.0
#: the face crop keeps this much of the box around the face (context for a reviewer)
CROP_MARGIN = 0.15
MAX_SOURCE = 2000


@dataclass(frozen=True)
class Where:
    """Where a recognition's faces were seen: the caller's words, never its photo."""

    source: str = ""  # a name or URL the caller gives (a newspaper, a channel, a file name)
    clip: str | None = None  # a video's name
    token_fingerprint: str | None = None  # HMAC of the API token (api.sessions), never it

    def cleaned(self) -> Where:
        source = " ".join((self.source or "").split())[:MAX_SOURCE]
        clip = None if self.clip is None else " ".join(self.clip.split())[:300]
        return Where(source, clip, self.token_fingerprint)


@dataclass
class Draft:
    """One face to record (built on the request path: copies only, no encoding)."""

    box: tuple[int, int, int, int]  # x, y, w, h in the full image (or frame)
    embedding: np.ndarray
    crop: np.ndarray | bytes | None  # RGB pixels around the face, or a JPEG already made
    person_id: int | None = None
    distance: float | None = None
    confidence: float | None = None
    nearest_person_id: int | None = None
    nearest_distance: float | None = None
    t_start: float | None = None
    t_end: float | None = None


@dataclass
class Batch:
    settings: Settings
    collection: str
    engine: str
    where: Where
    seen_at: datetime
    drafts: list[Draft] = field(default_factory=list)


# --------------------------------------------------------------------------- the switch


@dataclass(frozen=True)
class Policy:
    collection: str
    enabled: bool
    retention_days: int


_policy_cache: dict[tuple[str, str], tuple[float, Policy]] = {}
_policy_lock = threading.Lock()


def policy(settings: Settings, collection: str) -> Policy:
    """The collection's switch and retention (no row: off, the default retention)."""
    key = collection_key(collection)
    with session_scope(settings) as s:
        row = s.execute(select(Collection.id, SightingPolicy.enabled,
                               SightingPolicy.retention_days)
                        .outerjoin(SightingPolicy, SightingPolicy.collection_id == Collection.id)
                        .where(Collection.key == key)).first()
    if row is None:
        raise NotFoundError(f"no collection {collection!r}")
    _, enabled, days = row
    return Policy(key, bool(enabled), int(days or settings.sightings_retention_days))


def cached_policy(settings: Settings, collection: str) -> Policy:
    """:func:`policy`, read at most every ``POLICY_TTL`` seconds per process."""
    key = (settings.db_url, collection)
    now = time.monotonic()
    hit = _policy_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = policy(settings, collection)
    with _policy_lock:
        _policy_cache[key] = (now + POLICY_TTL, found)
    return found


def set_policy(settings: Settings, collection: str, *, enabled: bool | None = None,
               retention_days: int | None = None) -> Policy:
    """Switch recording on or off for a collection and/or set its retention (days ≥ 1)."""
    if retention_days is not None and not 1 <= retention_days <= 3650:
        raise FaceAtlasError(f"retention must be 1 to 3650 days, not {retention_days}",
                             code="bad_retention")
    key = collection_key(collection)
    with session_scope(settings) as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.key == key))
        if coll_id is None:
            raise NotFoundError(f"no collection {collection!r}")
        row = s.get(SightingPolicy, coll_id)
        if row is None:
            row = SightingPolicy(collection_id=coll_id, enabled=False,
                                 retention_days=settings.sightings_retention_days)
            s.add(row)
        if enabled is not None:
            row.enabled = enabled
        if retention_days is not None:
            row.retention_days = retention_days
    with _policy_lock:
        _policy_cache.pop((settings.db_url, key), None)
    return policy(settings, key)


# --------------------------------------------------------------------------- recording


def record(settings: Settings, result: Any, rgb: np.ndarray, detected: Sequence[Any],
           vectors: np.ndarray, where: Where, engine: str) -> int:
    """Queue the faces of one photo's recognition (``gallery.recognize.Recognition``; boxes
    of ``detected`` are on ``rgb``, the decoded picture). Returns the faces queued: 0 when
    the collection does not record. Never raises for a full queue: it drops and counts."""
    if not len(detected) or not cached_policy(settings, result.collection).enabled:
        return 0
    drafts = []
    for i, face in enumerate(result.faces):
        b = face.box
        drafts.append(Draft(
            box=(b.x, b.y, b.w, b.h), embedding=np.array(vectors[i], dtype=np.float32),
            crop=box_crop(rgb, tuple(detected[i].box), CROP_MARGIN).copy(),
            person_id=face.person_id, distance=face.distance, confidence=face.confidence,
            nearest_person_id=face.nearest_person_id, nearest_distance=face.nearest_distance))
    return submit(Batch(settings, result.collection, engine, where.cleaned(),
                        datetime.now(timezone.utc), drafts))


class _Writer:
    """One thread per process writes the queued sightings in order."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Batch] | None = None
        self.lock = threading.Lock()
        self.dropped = 0
        self.written = 0
        self.failed = 0

    def submit(self, batch: Batch) -> int:
        q = self._queue(batch.settings.sightings_queue)
        try:
            q.put_nowait(batch)
        except queue.Full:
            with self.lock:
                self.dropped += len(batch.drafts)
            return 0
        return len(batch.drafts)

    def _queue(self, size: int) -> queue.Queue[Batch]:
        if self.queue is None:
            with self.lock:
                if self.queue is None:
                    self.queue = queue.Queue(maxsize=size)
                    threading.Thread(target=self._run, name="faceatlas-sightings",
                                     daemon=True).start()
        return self.queue

    def _run(self) -> None:
        assert self.queue is not None
        while True:
            batch = self.queue.get()
            try:
                self.written += write(batch)
            except Exception:  # a bad batch must not stop the writer; it says so in the log
                self.failed += len(batch.drafts)
                log.exception("sightings: a batch of %d could not be written",
                              len(batch.drafts))
            finally:
                self.queue.task_done()

    def flush(self, timeout: float = 60.0) -> None:
        q = self.queue
        if q is None:
            return
        deadline = time.monotonic() + timeout
        while q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)


_writer = _Writer()


def submit(batch: Batch) -> int:
    """Queue a batch for the writer thread; the faces queued (0: dropped, queue full)."""
    return _writer.submit(batch) if batch.drafts else 0


def flush(timeout: float = 60.0) -> None:
    """Wait until every queued sighting is written (the CLI before exit, tests)."""
    _writer.flush(timeout)


def stats() -> dict[str, int]:
    """This process's writer: written, dropped (queue full), failed."""
    return {"written": _writer.written, "dropped": _writer.dropped,
            "failed": _writer.failed}


atexit.register(flush, 10.0)


def _jpeg(crop: np.ndarray | bytes | None, side: int) -> bytes | None:
    """The stored crop: at most ``side`` pixels on its longer side, JPEG."""
    if isinstance(crop, bytes):  # a video track's picture: made small like the others
        bgr = cv2.imdecode(np.frombuffer(crop, dtype=np.uint8), cv2.IMREAD_COLOR)
        crop = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if crop is None or crop.size == 0:
        return None
    h, w = crop.shape[:2]
    scale = side / max(h, w)
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    return encode_jpeg(np.ascontiguousarray(crop), 85)


def write(batch: Batch) -> int:
    """Store one batch now (the writer thread's work; benchmarks and tests may call it):
    crops to files, rows, then the unknown faces into clusters. Returns rows written."""
    settings = batch.settings
    layout = Layout(settings.home)
    with session_scope(settings) as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.key == batch.collection))
        if coll_id is None:  # deleted since: nothing to record it in
            return 0
        drafts = batch.drafts
        unknown = [d for d in drafts if d.person_id is None]
        if unknown:  # "not a public figure": faces like a dismissed one are not kept
            drop = blocked(s, settings, coll_id, batch.engine,
                           np.stack([d.embedding for d in unknown]))
            gone = {id(d) for d, b in zip(unknown, drop, strict=True) if b}
            drafts = [d for d in drafts if id(d) not in gone]
        rows = []
        for d in drafts:
            path = None
            pic = _jpeg(d.crop, settings.sightings_crop_px)
            if pic is not None:
                target = layout.sighting_file(batch.collection, batch.seen_at, uuid.uuid4().hex)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(pic)  # crops are re-creatable evidence: no fsync
                path = layout.relative(target)
            rows.append(Sighting(
                collection_id=coll_id, person_id=d.person_id, distance=d.distance,
                confidence=d.confidence, nearest_person_id=d.nearest_person_id,
                nearest_distance=d.nearest_distance, x=int(d.box[0]), y=int(d.box[1]),
                w=int(d.box[2]), h=int(d.box[3]), crop_path=path,
                embedding=np.asarray(d.embedding, dtype=np.float32).tobytes(),
                engine=batch.engine, source=batch.where.source, clip=batch.where.clip,
                t_start=d.t_start, t_end=d.t_end, seen_at=batch.seen_at,
                token_fingerprint=batch.where.token_fingerprint))
        s.add_all(rows)
        s.flush()
        assign(s, settings, coll_id, batch.engine,
               [r for r in rows if r.person_id is None])
        return len(rows)


# --------------------------------------------------------------------------- reads


@dataclass
class Appearance:
    id: int
    person_id: int | None
    person: str | None
    seen_at: datetime
    source: str
    clip: str | None
    t_start: float | None
    t_end: float | None
    confidence: float | None
    distance: float | None
    box: dict[str, int]
    crop: str | None  # home-relative path of the small face crop

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "person_id": self.person_id, "person": self.person,
                "seen_at": aware(self.seen_at).isoformat(), "source": self.source,
                "clip": self.clip, "t_start": self.t_start, "t_end": self.t_end,
                "confidence": self.confidence, "distance": self.distance, "box": self.box,
                "has_crop": self.crop is not None}


@dataclass
class Page:
    total: int
    items: list[Appearance]


def appearances(settings: Settings, person_id: int, *, limit: int = 50,
                offset: int = 0) -> Page:
    """Where a person was seen, newest first, a page at a time (``total``: all of them)."""
    with session_scope(settings) as s:
        name = s.scalar(select(Person.name).where(Person.id == person_id))
        if name is None:
            raise NotFoundError(f"no person with id {person_id}")
        total = s.scalar(select(func.count()).select_from(Sighting)
                         .where(Sighting.person_id == person_id)) or 0
        rows = s.scalars(select(Sighting).where(Sighting.person_id == person_id)
                         .order_by(Sighting.seen_at.desc(), Sighting.id.desc())
                         .limit(limit).offset(offset)).all()
        return Page(total, [_appearance(r, name) for r in rows])


def _appearance(r: Sighting, name: str | None) -> Appearance:
    return Appearance(r.id, r.person_id, name, aware(r.seen_at), r.source, r.clip, r.t_start,
                      r.t_end, r.confidence, r.distance,
                      {"x": r.x, "y": r.y, "w": r.w, "h": r.h}, r.crop_path)


CSV_FIELDS = ("id", "person_id", "person", "seen_at", "source", "clip", "t_start", "t_end",
              "confidence", "distance", "x", "y", "w", "h")


def appearances_csv(items: Iterable[Appearance]) -> str:
    """CSV of appearances (one row each; cells that a spreadsheet would run as a formula
    are prefixed with a quote)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for a in items:
        d = a.as_dict()
        w.writerow([_cell(d[k]) for k in CSV_FIELDS[:10]] + [a.box[k] for k in "xywh"])
    return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def all_appearances(settings: Settings, person_id: int) -> list[Appearance]:
    """Every appearance of a person, newest first (the CSV export)."""
    out: list[Appearance] = []
    while True:
        page = appearances(settings, person_id, limit=1000, offset=len(out))
        out += page.items
        if not page.items or len(out) >= page.total:
            return out


def crop_path(settings: Settings, sighting_id: int) -> tuple[int, int | None, str]:
    """(collection id, person id, absolute path) of a sighting's crop; NotFoundError."""
    with session_scope(settings) as s:
        row = s.execute(select(Sighting.collection_id, Sighting.person_id, Sighting.crop_path)
                        .where(Sighting.id == sighting_id)).first()
    if row is None or row[2] is None:
        raise NotFoundError(f"no sighting with id {sighting_id}")
    return row[0], row[1], str(Layout(settings.home).absolute(row[2]))


# --------------------------------------------------------------------------- forgetting


@dataclass
class Erased:
    sightings: int = 0
    files: int = 0
    clusters: int = 0

    def __iadd__(self, other: Erased) -> Erased:
        self.sightings += other.sightings
        self.files += other.files
        self.clusters += other.clusters
        return self


def _collection_id(s: Session, collection: str) -> int:
    coll_id = s.scalar(select(Collection.id).where(Collection.key == collection_key(collection)))
    if coll_id is None:
        raise NotFoundError(f"no collection {collection!r}")
    return coll_id


def _erase(settings: Settings, s: Session, where: Any) -> Erased:
    """Delete the sightings matching ``where`` (a SQL condition), their crops and any
    cluster left empty. Rows first: a crash leaves a file nobody points to, never a row
    pointing to nothing."""
    found = s.execute(select(Sighting.id, Sighting.crop_path, Sighting.cluster_id)
                      .where(where)).all()
    if not found:
        return Erased()
    ids = [r[0] for r in found]
    clusters = {r[2] for r in found if r[2] is not None}
    for chunk in chunked(ids):
        s.execute(delete(Sighting).where(Sighting.id.in_(chunk)))
    empty = [c for c in clusters if not s.scalar(
        select(func.count()).select_from(Sighting).where(Sighting.cluster_id == c))]
    if empty:
        s.execute(delete(SightingCluster).where(SightingCluster.id.in_(empty)))
    s.flush()
    forget_cache(settings)
    layout = Layout(settings.home)
    files = sum(unlink_stored(layout, r[1]) for r in found if r[1])
    return Erased(len(ids), files, len(empty))


def purge(settings: Settings, *, collection: str | None = None,
          now: datetime | None = None) -> dict[str, Erased]:
    """Delete every sighting older than its collection's retention (all collections, or
    one). Runs on its own in the server (``jobs.background``) and as ``faceatlas sightings
    purge``. Returns what went, per collection."""
    now = now or datetime.now(timezone.utc)
    out: dict[str, Erased] = {}
    with session_scope(settings) as s:
        query = (select(Collection.id, Collection.key, SightingPolicy.retention_days)
                 .outerjoin(SightingPolicy, SightingPolicy.collection_id == Collection.id))
        if collection is not None:
            query = query.where(Collection.id == _collection_id(s, collection))
        for coll_id, key, days in s.execute(query).all():
            cutoff = now - timedelta(days=days or settings.sightings_retention_days)
            gone = _erase(settings, s, (Sighting.collection_id == coll_id)
                          & (Sighting.seen_at < cutoff))
            if gone.sightings:
                out[key] = gone
    return out


def erase_source(settings: Settings, collection: str, source: str) -> Erased:
    """Everything seen from one source (the name or URL recorded with it) in a collection."""
    with session_scope(settings) as s:
        coll_id = _collection_id(s, collection)
        return _erase(settings, s, (Sighting.collection_id == coll_id)
                      & (Sighting.source == Where(source).cleaned().source))


def erase_cluster(settings: Settings, cluster_id: int, *, block: bool = False) -> Erased:
    """A cluster of unknown faces and its sightings; with ``block`` ("not a public
    figure") faces like it are not kept again (its centre is remembered, nothing else)."""
    with session_scope(settings) as s:
        cluster = s.get(SightingCluster, cluster_id)
        if cluster is None:
            raise NotFoundError(f"no cluster with id {cluster_id}")
        if block:
            vectors = [np.frombuffer(e, dtype=np.float32) for e in s.scalars(
                select(Sighting.embedding).where(Sighting.cluster_id == cluster_id))]
            if vectors:
                centre = np.mean(np.stack(vectors), axis=0).astype(np.float32)
                s.add(SightingBlock(collection_id=cluster.collection_id,
                                    embedding=centre.tobytes()))
        gone = _erase(settings, s, Sighting.cluster_id == cluster_id)
        if s.get(SightingCluster, cluster_id) is not None:
            s.delete(cluster)
            gone.clusters += 1
        return gone


def cluster_collection(settings: Settings, cluster_id: int) -> str:
    """The key of a cluster's collection (token checks); NotFoundError."""
    with session_scope(settings) as s:
        key = s.scalar(select(Collection.key).join(
            SightingCluster, SightingCluster.collection_id == Collection.id)
            .where(SightingCluster.id == cluster_id))
    if key is None:
        raise NotFoundError(f"no cluster with id {cluster_id}")
    return key
