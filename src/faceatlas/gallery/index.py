"""Exact nearest-neighbour index of face embeddings, persisted per collection.

Vectors are 128-d face embeddings compared by Euclidean distance (dlib descriptors, or SFace
unit vectors). Every index is tagged with the engine name and model hash of its vectors, and
refuses vectors or queries of another engine (``require_engine``). ``ExactIndex`` is a
brute-force numpy scan: at 100k faces one query costs a ~50 MB matrix-vector product (~2.5 ms),
which is fast enough that an approximate index is not worth its recall loss yet. Code that
only needs the ``VectorIndex`` protocol can switch to an ANN library later.

Deployment note: a single query is memory-bound, and OpenBLAS's multi-threaded GEMV slows
down ~3x when another process holds a core; run API servers with ``OPENBLAS_NUM_THREADS=1``
(concurrent requests use the cores anyway).

``IndexStore`` keeps one ``<collection>.npz`` per collection, serialises writers with an
inter-process ``flock`` and lets readers notice files replaced by other processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from faceatlas.domain.errors import EngineMismatchError, StorageError
from faceatlas.domain.faces import LEGACY_ENGINE, LEGACY_MODEL_HASH
from faceatlas.settings import Settings
from faceatlas.store.files import Layout

DIM = 128
FORMAT_VERSION = 1
# Largest (queries x faces) score block materialised at once (float32: 64 MB).
_SEARCH_BLOCK = 1 << 24
# Rows moved per step when compacting, so removals never need a second full-size copy.
_COMPACT_BLOCK = 1 << 16
_COLLECTION_RE = re.compile(r"[a-z0-9_\-]+")
_MAX_COLLECTION_LEN = 100

T = TypeVar("T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Neighbour:
    face_id: int
    person_id: int
    distance: float


class VectorIndex(Protocol):
    """What recognition needs from an index; an ANN library can implement this later."""

    def add(
        self,
        face_ids: Sequence[int] | IntArray,
        person_ids: Sequence[int] | IntArray,
        vectors: npt.ArrayLike,
    ) -> None: ...

    def remove_faces(self, face_ids: Sequence[int] | IntArray) -> int: ...

    def remove_person(self, person_id: int) -> int: ...

    def search(self, queries: npt.ArrayLike, k: int) -> list[list[Neighbour]]: ...

    def __len__(self) -> int: ...

    def person_ids(self) -> set[int]: ...


def _as_ids(values: Sequence[int] | IntArray, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-d sequence of integers")
    return arr.astype(np.int64, copy=False)


class ExactIndex:
    """Brute-force Euclidean index over a growable float32 matrix.

    Rows live in buffers with spare capacity so repeated small adds are amortised O(rows
    added). Not safe for concurrent mutation; ``IndexStore`` never mutates an index it has
    handed out, it swaps in a new one.
    """

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self._n = 0
        self._vectors: FloatArray = np.empty((0, dim), dtype=np.float32)
        self._norms: FloatArray = np.empty(0, dtype=np.float32)  # squared row norms
        self._face_ids: IntArray = np.empty(0, dtype=np.int64)
        self._person_ids: IntArray = np.empty(0, dtype=np.int64)
        self.version = 0  # bumped on every mutation; lets IndexStore skip no-op writes
        # whose embeddings these are; None until tagged (an index file from before engine
        # tags holds dlib vectors: _read tags it so)
        self.engine: str | None = None
        self.model_hash: str | None = None

    def require_engine(self, engine: str, model_hash: str, collection: str = "?") -> None:
        """Refuse to mix engines: an index with rows of another engine/model raises
        EngineMismatchError; an empty one takes the new tag."""
        tagged = self.engine is not None  # untagged rows: built in memory by a caller
        if self._n and tagged and (self.engine, self.model_hash) != (engine, model_hash):
            raise EngineMismatchError(
                f"index of collection {collection} was built with "
                f"{self.engine}/{self.model_hash}; this server runs {engine}/{model_hash}; "
                f"its faces must be analysed again with {engine} (reembed)",
                collection=collection, engine=engine,
            )
        if self.engine != engine or self.model_hash != model_hash:
            self.engine, self.model_hash = engine, model_hash
            self.version += 1

    # -- views of the live rows (no copies)
    @property
    def vectors(self) -> FloatArray:
        return self._vectors[: self._n]

    @property
    def face_ids(self) -> IntArray:
        return self._face_ids[: self._n]

    @property
    def person_id_array(self) -> IntArray:
        return self._person_ids[: self._n]

    def __len__(self) -> int:
        return self._n

    def person_ids(self) -> set[int]:
        return {int(p) for p in np.unique(self.person_id_array)}

    # -- mutation
    def add(
        self,
        face_ids: Sequence[int] | IntArray,
        person_ids: Sequence[int] | IntArray,
        vectors: npt.ArrayLike,
    ) -> None:
        """Insert faces; a face id already present (or repeated in the batch) keeps one row,
        the last one given, so re-adding is idempotent."""
        fids = _as_ids(face_ids, "face_ids")
        pids = _as_ids(person_ids, "person_ids")
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim == 1 and vecs.size == self.dim:
            vecs = vecs.reshape(1, self.dim)
        if vecs.ndim != 2 or vecs.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}), got {vecs.shape}")
        if not (len(fids) == len(pids) == len(vecs)):
            raise ValueError("face_ids, person_ids and vectors differ in length")
        if not len(fids):
            return
        if not np.isfinite(vecs).all():
            raise ValueError("vectors contain NaN or infinity")
        # Keep the last occurrence of a face id repeated within the batch.
        _, last_rev = np.unique(fids[::-1], return_index=True)
        if len(last_rev) != len(fids):
            keep = np.sort(len(fids) - 1 - last_rev)
            fids, pids, vecs = fids[keep], pids[keep], vecs[keep]
        if self._n:
            self._compact(~np.isin(self.face_ids, fids))
        self._reserve(self._n + len(fids))
        end = self._n + len(fids)
        self._vectors[self._n : end] = vecs
        self._norms[self._n : end] = np.einsum("ij,ij->i", vecs, vecs)
        self._face_ids[self._n : end] = fids
        self._person_ids[self._n : end] = pids
        self._n = end
        self.version += 1

    def reset(self, engine: str, model_hash: str) -> int:
        """Drop every row and tag the index for another engine (``faceatlas reembed``)."""
        removed = self._compact(np.zeros(self._n, dtype=bool)) if self._n else 0
        self.engine, self.model_hash = engine, model_hash
        self.version += 1
        return removed

    def remove_faces(self, face_ids: Sequence[int] | IntArray) -> int:
        fids = _as_ids(face_ids, "face_ids")
        if not self._n or not len(fids):
            return 0
        return self._compact(~np.isin(self.face_ids, fids))

    def remove_person(self, person_id: int) -> int:
        if not self._n:
            return 0
        return self._compact(self.person_id_array != int(person_id))

    def _reserve(self, need: int) -> None:
        cap = len(self._face_ids)
        if need <= cap:
            return
        # 1.5x growth: amortised appends without doubling the 512 MB of a 1M-face gallery.
        new_cap = max(need, cap + cap // 2, 1024)
        n = self._n
        vectors = np.empty((new_cap, self.dim), dtype=np.float32)
        vectors[:n] = self._vectors[:n]
        norms = np.empty(new_cap, dtype=np.float32)
        norms[:n] = self._norms[:n]
        fids = np.empty(new_cap, dtype=np.int64)
        fids[:n] = self._face_ids[:n]
        pids = np.empty(new_cap, dtype=np.int64)
        pids[:n] = self._person_ids[:n]
        self._vectors, self._norms, self._face_ids, self._person_ids = vectors, norms, fids, pids

    def _compact(self, keep: npt.NDArray[np.bool_]) -> int:
        """Drop rows where ``keep`` is False, in place; returns how many were dropped."""
        kept = np.flatnonzero(keep)
        removed = self._n - len(kept)
        if not removed:
            return 0
        # Blockwise: each source row index >= its destination, and the fancy-indexed
        # right-hand side is gathered before writing, so moving rows left is safe.
        for start in range(0, len(kept), _COMPACT_BLOCK):
            rows = kept[start : start + _COMPACT_BLOCK]
            if rows[0] == start and rows[-1] == start + len(rows) - 1:
                continue  # this block has not moved yet
            stop = start + len(rows)
            self._vectors[start:stop] = self._vectors[rows]
            self._norms[start:stop] = self._norms[rows]
            self._face_ids[start:stop] = self._face_ids[rows]
            self._person_ids[start:stop] = self._person_ids[rows]
        self._n = len(kept)
        self.version += 1
        return removed

    # -- search
    def search(self, queries: npt.ArrayLike, k: int) -> list[list[Neighbour]]:
        """The k nearest faces of each query, closest first.

        Candidates are ranked with ||q||² + ||x||² - 2 q·x (one BLAS product, no copy of
        the matrix); the k winners' distances are then recomputed directly in float64 so
        reported distances do not carry float32 cancellation error.
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q.reshape(1, -1)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}) or ({self.dim},)")
        if not np.isfinite(q).all():
            raise ValueError("queries contain NaN or infinity")
        if k < 1:
            raise ValueError("k must be at least 1")
        n = self._n
        if not n:
            return [[] for _ in range(len(q))]
        k = min(k, n)
        x, norms = self.vectors, self._norms[:n]
        out: list[list[Neighbour]] = []
        step = max(1, _SEARCH_BLOCK // n)
        for start in range(0, len(q), step):
            qb = q[start : start + step]
            scores = qb @ x.T  # (b, n)
            scores *= -2.0
            scores += norms
            scores += np.einsum("ij,ij->i", qb, qb)[:, None]
            if k < n:
                cand = np.argpartition(scores, k - 1, axis=1)[:, :k]
            else:
                cand = np.broadcast_to(np.arange(n), (len(qb), n))
            diff = x[cand].astype(np.float64) - qb[:, None, :].astype(np.float64)
            dist = np.sqrt(np.maximum(np.einsum("bkd,bkd->bk", diff, diff), 0.0))
            order = np.argsort(dist, axis=1, kind="stable")
            for rows, dists in zip(
                np.take_along_axis(cand, order, axis=1),
                np.take_along_axis(dist, order, axis=1),
                strict=True,
            ):
                out.append(
                    [
                        Neighbour(int(self._face_ids[r]), int(self._person_ids[r]), float(d))
                        for r, d in zip(rows, dists, strict=True)
                    ]
                )
        return out

    # -- persistence
    def save(self, path: Path | str) -> None:
        """Write atomically: a temp file in the same folder, fsync, then ``os.replace``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique temp name (not a fixed "<path>.tmp") so unlocked concurrent saves of the
        # same path cannot interleave bytes in one temp file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    format_version=np.array(FORMAT_VERSION, dtype=np.int64),
                    vectors=self.vectors,
                    face_ids=self.face_ids,
                    person_ids=self.person_id_array,
                    engine=np.array(self.engine or ""),
                    model_hash=np.array(self.model_hash or ""),
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path | str) -> ExactIndex:
        """Read a saved index; a missing file is an empty index, a bad one a StorageError."""
        try:
            with open(path, "rb") as f:
                return cls._read(f, str(path))
        except FileNotFoundError:
            return cls()

    @classmethod
    def _read(cls, f: BinaryIO, label: str) -> ExactIndex:
        try:
            with np.load(f, allow_pickle=False) as data:
                version = int(data["format_version"])
                vectors = data["vectors"]
                face_ids = data["face_ids"]
                person_ids = data["person_ids"]
                engine = str(data["engine"]) if "engine" in data.files else None
                model_hash = str(data["model_hash"]) if "model_hash" in data.files else None
        # Broad on purpose: a damaged zip/npy surfaces as many exception types (BadZipFile,
        # EOFError, ValueError, KeyError, IndexError, zlib.error...), all meaning "corrupt".
        except Exception as exc:
            raise StorageError(f"index file {label} is corrupt or unreadable: {exc}") from exc
        if version != FORMAT_VERSION:
            raise StorageError(f"index file {label} has unsupported format version {version}")
        if (
            vectors.ndim != 2
            or vectors.dtype != np.float32
            or face_ids.shape != (len(vectors),)
            or person_ids.shape != (len(vectors),)
            or face_ids.dtype != np.int64
            or person_ids.dtype != np.int64
        ):
            raise StorageError(f"index file {label} has inconsistent arrays")
        ordered = np.sort(face_ids)  # sort beats np.unique's hashing ~40x at 1M ids
        if len(ordered) and (ordered[1:] == ordered[:-1]).any():
            raise StorageError(f"index file {label} has duplicate face ids")
        index = cls(dim=vectors.shape[1])
        index._vectors = np.ascontiguousarray(vectors)
        index._norms = np.einsum("ij,ij->i", index._vectors, index._vectors)
        index._face_ids, index._person_ids = face_ids, person_ids
        index._n = len(vectors)
        if engine is None and len(vectors):  # written before engine tags: dlib's vectors
            engine, model_hash = LEGACY_ENGINE, LEGACY_MODEL_HASH
        index.engine, index.model_hash = engine or None, model_hash or None
        return index


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse fsync on a directory.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_Signature = tuple[int, int, int] | None  # (inode, mtime_ns, size); None = no file


class IndexStore:
    """One ``ExactIndex`` file per collection under ``root``.

    ``get`` returns a cached index and reloads it when the file was replaced (inode, mtime_ns
    or size changed), so a server sees promotions written by other processes. Treat the
    returned index as read-only; change it through ``update``.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, tuple[_Signature, ExactIndex]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, collection: str) -> Path:
        return self.root / f"{_check_collection(collection)}.npz"

    def size(self, collection: str) -> int:
        """Faces in the collection's index; 0 while it has none (nothing promoted yet)."""
        return len(self.get(collection)) if self.path(collection).exists() else 0

    def get(self, collection: str) -> ExactIndex:
        path = self.path(collection)
        cached = self._cache.get(collection)
        if cached is not None and cached[0] == _signature(path):
            return cached[1]
        lock = self._collection_lock(collection)
        # A 1M-face file takes seconds to load: while one thread reloads, the others keep
        # answering from the previous version instead of queueing behind it.
        if cached is None:
            lock.acquire()
        elif not lock.acquire(blocking=False):
            return cached[1]
        try:
            cached = self._cache.get(collection)
            if cached is not None and cached[0] == _signature(path):
                return cached[1]  # reloaded by the thread we waited for
            signature, index = _load_with_signature(path)
            self._cache[collection] = (signature, index)
            return index
        finally:
            lock.release()

    def update(
        self,
        collection: str,
        fn: Callable[[ExactIndex], T],
        *,
        engine: tuple[str, str] | None = None,
    ) -> T:
        """Apply ``fn`` to the latest index under an exclusive inter-process lock and save.

        The file is re-read inside the lock, so concurrent workers never overwrite each
        other's changes. ``fn`` mutates only the rows it touches (e.g. ``remove_person`` +
        ``add`` for one person); the file is rewritten only if something changed.
        """
        path = self.path(collection)
        with self._file_lock(collection):
            signature, index = _load_with_signature(path)
            before = index.version
            if engine is not None:  # (name, model hash) of the vectors fn will add
                index.require_engine(*engine, collection=collection)
            result = fn(index)
            if index.version != before:
                index.save(path)
                signature = _signature(path)
            with self._collection_lock(collection):
                self._cache[collection] = (signature, index)
        return result

    def remove_person(self, collection: str, person_id: int) -> int:
        """Drop a person's rows; never creates an empty index just to remove from it."""
        if not self.path(collection).exists():
            return 0
        return self.update(collection, lambda index: index.remove_person(person_id))

    def _collection_lock(self, collection: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection, threading.Lock())

    @contextlib.contextmanager
    def _file_lock(self, collection: str) -> Iterator[None]:
        # flock locks belong to the open file description, so this also serialises threads
        # of one process that each open the lock file.
        lock_path = self.root / f"{_check_collection(collection)}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


_stores: dict[Path, IndexStore] = {}


def index_store(settings: Settings) -> IndexStore:
    """The process-wide index store of this home (it caches loaded indexes)."""
    root = Layout(settings.home).index_dir
    if root not in _stores:
        _stores[root] = IndexStore(root)
    return _stores[root]


def _check_collection(collection: str) -> str:
    # fullmatch, not "^...$": "$" also matches before a trailing newline.
    if (
        not isinstance(collection, str)
        or len(collection) > _MAX_COLLECTION_LEN
        or not _COLLECTION_RE.fullmatch(collection)
    ):
        raise ValueError(f"invalid collection name {collection!r}")
    return collection


def _signature(path: Path) -> _Signature:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _load_with_signature(path: Path) -> tuple[_Signature, ExactIndex]:
    # Stat the open descriptor, so the signature belongs to exactly the bytes we read even
    # if another process replaces the file meanwhile.
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            index = ExactIndex._read(f, str(path))
    except FileNotFoundError:
        return None, ExactIndex()
    return (st.st_ino, st.st_mtime_ns, st.st_size), index


# -- scoring

# Exponent of the logistic in distance/threshold: with threshold 0.55 a typical same-person
# distance of 0.35 gives 100 / (1 + 0.636**5) ≈ 90.6%, and 0.8 gives ≈ 13%.
_CONFIDENCE_POWER = 5.0


def confidence(distance: float, threshold: float) -> float:
    """Match confidence in percent: ``100 / (1 + (distance / threshold) ** 5)``, 1 decimal.

    100 at distance 0, exactly 50 at the threshold, smooth and decreasing towards 0 far
    away (flat near 0, so very close matches all read ~100%).
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    ratio = max(float(distance), 0.0) / threshold
    if ratio > 1e60:  # avoid float overflow in the power; confidence is 0 there anyway
        return 0.0
    return round(100.0 / (1.0 + ratio**_CONFIDENCE_POWER), 1)


_BEST_OF = 3


def best_person(neighbours: Sequence[Neighbour], threshold: float) -> tuple[int, float] | None:
    """Pick the most likely person among the k neighbours: ``(person_id, closest distance)``.

    Rule: score each person by the mean of their 3 best distances, each capped at the
    threshold and with missing slots filled with the threshold; lowest score wins (ties: more
    faces under the threshold, then smaller closest distance, then lower id). Why: plain
    nearest-neighbour lets one mislabelled or look-alike gallery face decide alone, while
    this rewards several consistent close faces yet still lets a person with a single very
    close face win against scattered distant ones. Capping keeps faces beyond the threshold
    from counting either way. Returns None when the winner's closest face is above the
    threshold (or there are no neighbours).
    """
    by_person: dict[int, list[float]] = {}
    for nb in neighbours:
        by_person.setdefault(nb.person_id, []).append(nb.distance)
    if not by_person:
        return None

    def rank(item: tuple[int, list[float]]) -> tuple[float, int, float, int]:
        person, dists = item
        best = sorted(dists)[:_BEST_OF]
        capped = [min(d, threshold) for d in best] + [threshold] * (_BEST_OF - len(best))
        hits = sum(d <= threshold for d in dists)
        return (sum(capped) / _BEST_OF, -hits, best[0], person)

    person, dists = min(by_person.items(), key=rank)
    closest = min(dists)
    if closest > threshold:
        return None
    return person, closest
