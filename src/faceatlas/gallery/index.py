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
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from faceatlas.domain.errors import EngineMismatchError, StorageError
from faceatlas.domain.faces import LEGACY_ENGINE, LEGACY_MODEL_HASH
from faceatlas.gallery.ann import Graph
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
    """What recognition needs from an index: ``ExactIndex`` (in memory) and
    ``SegmentedIndex`` (published, memory-mapped, exact or usearch by size) implement it."""

    def add(
        self,
        face_ids: Sequence[int] | IntArray,
        person_ids: Sequence[int] | IntArray,
        vectors: npt.ArrayLike,
    ) -> None: ...

    def remove_faces(self, face_ids: Sequence[int] | IntArray) -> int: ...

    def remove_person(self, person_id: int) -> int: ...

    def search(self, queries: npt.ArrayLike, k: int, *, near: float | None = None
               ) -> list[list[Neighbour]]: ...

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
        """Refuse to mix engines (``_require_engine``)."""
        _require_engine(self, engine, model_hash, collection)

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
    def search(self, queries: npt.ArrayLike, k: int, *, near: float | None = None
               ) -> list[list[Neighbour]]:
        """The k nearest faces of each query, closest first (``near``: unused, exact anyway).

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
        _write_file(path, lambda f: np.savez(
            f,
            format_version=np.array(FORMAT_VERSION, dtype=np.int64),
            vectors=self.vectors,
            face_ids=self.face_ids,
            person_ids=self.person_id_array,
            engine=np.array(self.engine or ""),
            model_hash=np.array(self.model_hash or ""),
        ))
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


# -- the published index: immutable memory-mapped segments + tombstones (issue 21)
#
# A collection's index is a manifest ``<collection>.index.json`` naming immutable segment
# files in ``<collection>.d/`` and a small tombstone file (rows removed since a segment was
# written). Every change writes only new small files and then replaces the manifest with one
# ``os.replace``: a writer killed at any point leaves the previous manifest, whose files are
# all still there (files are deleted only once no manifest names them). Readers map the
# segment files (numpy memmap, usearch ``view=True``), so N processes share one copy in the
# page cache, and reload by stat-ing the manifest, reusing segments they already mapped.

# 3: graph segments may have a ``.pca.npz`` projection ("pca": true); format 2 is read too
MANIFEST_FORMAT = 3
_READABLE_FORMATS = (2, 3)
ANN_LIBRARY = "usearch"
# Small exact segments (one per change) kept before they are merged into one.
_MAX_EXACT_SEGMENTS = 8
# Graph segments searched per query before the smaller ones are merged (never the largest).
_MAX_GRAPH_SEGMENTS = 4
# A segment with this share of removed rows is rewritten from its live rows.
_DEAD_SHARE_REWRITE = 0.25
# The ANN short list: at least this many candidates are re-ranked exactly per segment.
_SHORT_LIST_MIN = 64
# Search breadth (ef) for a query whose best answer lies beyond the recognition threshold
# (a graph walk that missed its group looks like an unknown face); measured in
# benchmarks/bench_world.py (docs/architecture.md "Index at scale").
_WIDE_SHORT_LIST = 512
_READ_RETRIES = 8
_VECTOR_DTYPES = ("f16", "i8", "f32")


@dataclass(frozen=True, slots=True)
class IndexParams:
    """How large segments are searched: exact below ``ann_min_faces`` live faces, else a
    usearch graph over the vectors' first ``reduce`` principal components stored as
    ``dtype`` (0: the whole vectors), its short list re-ranked exactly in float32."""

    ann_min_faces: int = 20_000
    dtype: str = "i8"
    expansion_search: int = 256
    threads: int = 0  # graph build threads; 0 = every core
    # measured at 1M (docs/architecture.md): 12 links a node keep every LFW probe and 99.7 %
    # of top-1 faces at ef 128 in 181 bytes a face (16: 100 %, 213 bytes: 10M would not fit)
    connectivity: int = 12
    reduce: int = 64

    def __post_init__(self) -> None:
        if self.dtype not in _VECTOR_DTYPES:
            raise ValueError(f"index vector dtype must be one of {_VECTOR_DTYPES}")
        if self.ann_min_faces < 1 or self.expansion_search < 1 or self.connectivity < 2:
            raise ValueError("ann_min_faces, expansion_search and connectivity must be "
                             "positive (connectivity at least 2)")
        if self.reduce < 0:
            raise ValueError("reduce must be 0 (no projection) or a number of components")

    @classmethod
    def from_settings(cls, s: Settings) -> IndexParams:
        return cls(s.index_ann_min_faces, s.index_vector_dtype, s.index_expansion_search)

    def build(self, vectors: FloatArray) -> Graph:
        return Graph.build(vectors, dtype=self.dtype, connectivity=self.connectivity,
                           reduce=self.reduce, expansion_search=self.expansion_search,
                           threads=self.threads or (os.cpu_count() or 1))


class _RowFile:
    """Rows of a published ``.npy`` file read with ``pread``: the bytes come from the page
    cache (shared by every process) without being mapped into this one, so re-ranking
    random rows of a 5 GB float32 file at 10M faces never grows the process's RSS (through
    the map, a long-running server ends up holding all of it). The open file also keeps an
    unlinked segment readable, as the map does."""

    def __init__(self, path: Path, mapped: np.memmap) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115  (lives with the segment)
        self.offset, self.dtype = int(mapped.offset), mapped.dtype
        self.row_shape = mapped.shape[1:]
        self.row_bytes = int(mapped.dtype.itemsize * int(np.prod(self.row_shape)))

    def take(self, rows: IntArray) -> npt.NDArray[np.generic]:
        fd, size, start = self._file.fileno(), self.row_bytes, self.offset
        data = b"".join(os.pread(fd, size, start + int(r) * size) for r in rows)
        if len(data) != size * len(rows):
            raise StorageError(f"index file {self._file.name} is shorter than its header says")
        return np.frombuffer(data, self.dtype).reshape(len(rows), *self.row_shape)


class Segment:
    """Immutable rows sorted by face id: float32 vectors (exact scans and exact re-ranking),
    face and person ids, and for a large segment a usearch graph over compact vectors
    (its rows are read with ``pread`` when re-ranked, not through the map: ``_RowFile``).

    ``name`` is None while the segment lives only in memory (rows added by an update that is
    not yet published)."""

    def __init__(self, name: str | None, face_ids: IntArray, person_ids: IntArray,
                 vectors: FloatArray, ann: Graph | None = None) -> None:
        self.name, self.face_ids, self.person_ids = name, face_ids, person_ids
        self.vectors, self.ann = vectors, ann
        self._norms: FloatArray | None = None
        self._readers: dict[str, _RowFile] = {}  # published graph segments: pread, no map

    def take(self, attr: str, rows: IntArray) -> npt.NDArray[np.generic]:
        """``getattr(self, attr)[rows]``, read without touching the map where possible."""
        reader = self._readers.get(attr)
        return reader.take(rows) if reader is not None else np.asarray(getattr(self, attr)[rows])

    def __len__(self) -> int:
        return len(self.face_ids)

    @classmethod
    def of_rows(cls, face_ids: IntArray, person_ids: IntArray, vectors: FloatArray) -> Segment:
        if len(face_ids) < 2 or bool((face_ids[1:] > face_ids[:-1]).all()):
            # already sorted (a rebuild from the database): no 5 GB copy at 10M faces
            return cls(None, face_ids, person_ids, np.ascontiguousarray(vectors, np.float32))
        order = np.argsort(face_ids, kind="stable")
        return cls(None, face_ids[order], person_ids[order],
                   np.ascontiguousarray(vectors[order], dtype=np.float32))

    @property
    def norms(self) -> FloatArray:
        if self._norms is None:  # exact segments only; a benign race computes it twice
            self._norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        return self._norms

    def files(self) -> list[str]:
        assert self.name is not None
        names = [f"{self.name}.ids.npy", f"{self.name}.pids.npy", f"{self.name}.f32.npy"]
        if self.ann is not None:
            names.append(f"{self.name}.usearch")
            if self.ann.projection is not None:
                names.append(f"{self.name}.pca.npz")
        return names

    def write(self, folder: Path, name: str) -> None:
        """Write every file (temp + fsync + rename each); the manifest publishes them later."""
        for suffix, arr in (("ids", self.face_ids), ("pids", self.person_ids),
                            ("f32", self.vectors)):
            _write_file(folder / f"{name}.{suffix}.npy",
                        lambda f, a=arr: np.save(f, np.asarray(a), allow_pickle=False))
        if self.ann is not None:
            projection = self.ann.projection
            if projection is not None:
                _write_file(folder / f"{name}.pca.npz", projection.save)
            tmp = folder / f".{name}.usearch.tmp"
            self.ann.index.save(str(tmp))  # type: ignore[attr-defined]
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, folder / f"{name}.usearch")
        self.name = name

    @classmethod
    def open(cls, folder: Path, name: str, ann: bool, pca: bool, params: IndexParams
             ) -> Segment:
        """Map a published segment (no copy: pages are shared with every other process)."""
        label = folder / name
        try:
            face_ids = np.load(folder / f"{name}.ids.npy", mmap_mode="r", allow_pickle=False)
            person_ids = np.load(folder / f"{name}.pids.npy", mmap_mode="r", allow_pickle=False)
            vectors = np.load(folder / f"{name}.f32.npy", mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise StorageError(f"index segment {label} is corrupt or unreadable: {exc}") from exc
        if (vectors.ndim != 2 or vectors.dtype != np.float32 or face_ids.dtype != np.int64
                or person_ids.dtype != np.int64 or face_ids.shape != (len(vectors),)
                or person_ids.shape != (len(vectors),)):
            raise StorageError(f"index segment {label} has inconsistent arrays")
        if not ann:
            return cls(name, face_ids, person_ids, vectors)
        path = folder / f"{name}.usearch"
        graph = Graph.open(path, folder / f"{name}.pca.npz" if pca else None,
                           params.expansion_search)
        if len(graph) != len(vectors):
            raise StorageError(f"index graph {path} does not match its segment")
        segment = cls(name, face_ids, person_ids, vectors, graph)
        segment._readers = {
            attr: _RowFile(folder / f"{name}.{suffix}.npy", arr)
            for attr, suffix, arr in (("vectors", "f32", vectors),
                                      ("face_ids", "ids", face_ids),
                                      ("person_ids", "pids", person_ids))}
        return segment


def _write_file(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write atomically: a temp file in the same folder (a unique name, so unlocked
    concurrent writers never interleave bytes), fsync, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_EMPTY_IDS: IntArray = np.empty(0, dtype=np.int64)


class SegmentedIndex:
    """The ``VectorIndex`` of a published collection: segments minus their removed rows
    (``dead``), plus rows added in memory by an update not yet published (``pending``).

    Reads are exact where a segment is small and approximate-then-exactly-re-ranked where it
    has a graph; the answer format is ``ExactIndex``'s. Mutations never touch segment files:
    they record tombstones and pending rows, which ``IndexStore.update`` publishes.
    """

    def __init__(self, dim: int = DIM, params: IndexParams | None = None) -> None:
        self.dim = dim
        self.params = params or IndexParams()
        self.segments: list[Segment] = []
        self.dead: dict[str, IntArray] = {}  # segment name -> sorted removed rows
        self.pending: Segment | None = None
        self.engine: str | None = None
        self.model_hash: str | None = None
        self.version = 0  # bumped on every mutation
        self.generation = 0  # the manifest version this view was read from
        self._masks: dict[str, tuple[IntArray, npt.NDArray[np.bool_]]] = {}

    def copy(self) -> SegmentedIndex:
        """A view sharing the (immutable) segments: mutate it without disturbing readers."""
        other = SegmentedIndex(self.dim, self.params)
        other.segments, other.dead = list(self.segments), dict(self.dead)
        other.pending, other.engine, other.model_hash = self.pending, self.engine, self.model_hash
        other.version, other.generation = self.version, self.generation
        return other

    def require_engine(self, engine: str, model_hash: str, collection: str = "?") -> None:
        _require_engine(self, engine, model_hash, collection)

    # -- reading
    def _parts(self) -> list[Segment]:
        return [*self.segments, *([self.pending] if self.pending is not None else [])]

    def _dead_rows(self, seg: Segment) -> IntArray:
        return self.dead.get(seg.name, _EMPTY_IDS) if seg.name is not None else _EMPTY_IDS

    def _live(self, seg: Segment) -> npt.NDArray[np.bool_] | None:
        dead = self._dead_rows(seg)
        if not len(dead):
            return None
        assert seg.name is not None
        cached = self._masks.get(seg.name)
        if cached is not None and cached[0] is dead:  # tombstone arrays are never mutated
            return cached[1]
        mask = np.ones(len(seg), dtype=bool)
        mask[dead] = False
        self._masks[seg.name] = (dead, mask)
        return mask

    def __len__(self) -> int:
        return sum(len(s) - len(self._dead_rows(s)) for s in self._parts())

    def _live_arrays(self, attr: str) -> npt.NDArray[np.generic]:
        parts = []
        for seg in self._parts():
            arr = np.asarray(getattr(seg, attr))
            live = self._live(seg)
            parts.append(arr if live is None else arr[live])
        if not parts:
            return np.empty((0, self.dim) if attr == "vectors" else 0,
                            dtype=np.float32 if attr == "vectors" else np.int64)
        return np.concatenate(parts)

    # whole-index views: materialised copies, for small indexes and tests
    @property
    def face_ids(self) -> IntArray:
        return self._live_arrays("face_ids")

    @property
    def person_id_array(self) -> IntArray:
        return self._live_arrays("person_ids")

    @property
    def vectors(self) -> FloatArray:
        return self._live_arrays("vectors")

    def person_ids(self) -> set[int]:
        return {int(p) for p in np.unique(self.person_id_array)}

    def rows_of_person(self, person_id: int) -> tuple[IntArray, FloatArray]:
        """The person's live (face ids, vectors), sorted by face id."""
        fids, vecs = [], []
        for seg in self._parts():
            rows = np.flatnonzero(np.asarray(seg.person_ids) == int(person_id))
            rows = rows[~np.isin(rows, self._dead_rows(seg))]
            fids.append(np.asarray(seg.face_ids[rows]))
            vecs.append(np.asarray(seg.vectors[rows], dtype=np.float32).reshape(-1, self.dim))
        face_ids = np.concatenate(fids) if fids else _EMPTY_IDS
        vectors = np.concatenate(vecs) if vecs else np.empty((0, self.dim), np.float32)
        order = np.argsort(face_ids, kind="stable")
        return face_ids[order], vectors[order]

    def rows_of_faces(self, face_ids: Sequence[int] | IntArray
                      ) -> tuple[IntArray, IntArray, FloatArray]:
        """Live (face ids, person ids, vectors) of these faces (absent ones left out)."""
        want = np.unique(_as_ids(face_ids, "face_ids"))
        out: list[tuple[IntArray, IntArray, FloatArray]] = []
        for seg in self._parts():
            rows = self._find(seg, want)
            out.append((np.asarray(seg.face_ids[rows]), np.asarray(seg.person_ids[rows]),
                        np.asarray(seg.vectors[rows], dtype=np.float32).reshape(-1, self.dim)))
        if not out:
            return _EMPTY_IDS, _EMPTY_IDS, np.empty((0, self.dim), np.float32)
        return (np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]),
                np.concatenate([o[2] for o in out]))

    def _find(self, seg: Segment, sorted_ids: IntArray) -> IntArray:
        """Live rows of ``seg`` holding any of ``sorted_ids``."""
        if not len(seg) or not len(sorted_ids):
            return _EMPTY_IDS
        pos = np.searchsorted(seg.face_ids, sorted_ids)
        ok = pos < len(seg)
        pos, ids = pos[ok], sorted_ids[ok]
        rows = pos[np.asarray(seg.face_ids[pos]) == ids].astype(np.int64)
        return rows[~np.isin(rows, self._dead_rows(seg))]

    # -- mutation
    def add(self, face_ids: Sequence[int] | IntArray, person_ids: Sequence[int] | IntArray,
            vectors: npt.ArrayLike) -> None:
        """Insert faces; a face id already present keeps one row, the last one given."""
        fids, pids, vecs = _check_rows(face_ids, person_ids, vectors, self.dim)
        if not len(fids):
            return
        self.remove_faces(fids)
        if self.pending is not None:
            fids = np.concatenate([self.pending.face_ids, fids])
            pids = np.concatenate([self.pending.person_ids, pids])
            vecs = np.concatenate([self.pending.vectors, vecs])
        self.pending = Segment.of_rows(fids, pids, vecs)
        self.version += 1

    def remove_faces(self, face_ids: Sequence[int] | IntArray) -> int:
        want = np.unique(_as_ids(face_ids, "face_ids"))
        return self._remove(lambda seg: self._find(seg, want))

    def remove_person(self, person_id: int) -> int:
        def rows(seg: Segment) -> IntArray:
            found = np.flatnonzero(np.asarray(seg.person_ids) == int(person_id))
            return found[~np.isin(found, self._dead_rows(seg))]
        return self._remove(rows)

    def _remove(self, rows_of: Callable[[Segment], IntArray]) -> int:
        removed = 0
        for seg in self._parts():
            rows = rows_of(seg)
            if not len(rows):
                continue
            removed += len(rows)
            if seg.name is None:  # pending rows simply go
                keep = np.ones(len(seg), dtype=bool)
                keep[rows] = False
                self.pending = Segment(None, seg.face_ids[keep], seg.person_ids[keep],
                                       seg.vectors[keep]) if keep.any() else None
            else:
                self.dead[seg.name] = np.union1d(self._dead_rows(seg), rows)
        if removed:
            self.version += 1
        return removed

    def reset(self, engine: str, model_hash: str) -> int:
        """Drop every row and tag the index for another engine (``faceatlas reembed``)."""
        removed = len(self)
        self.segments, self.dead, self.pending = [], {}, None
        self.engine, self.model_hash = engine, model_hash
        self.version += 1
        return removed

    # -- search
    def search(self, queries: npt.ArrayLike, k: int, *, near: float | None = None
               ) -> list[list[Neighbour]]:
        """The k nearest live faces of each query, closest first, distances exact (float64
        from the float32 vectors): per segment an exact scan or the graph's short list
        re-ranked exactly, tombstoned rows dropped before anything is answered.

        ``near`` (the recognition threshold): a query whose closest answer is farther than
        that is searched again with a much wider short list (``_WIDE_SHORT_LIST``): a graph
        walk can miss a small isolated cluster (measured: real LFW faces among a million
        synthetic ones), and a miss looks exactly like an unknown face."""
        q = _check_queries(queries, k, self.dim)
        n = len(self)
        if not n:
            return [[] for _ in range(len(q))]
        k = min(k, n)
        exact = self._exact_short_lists(q, k)
        out = [self._search_one(v, k, exact[i], wide=False) for i, v in enumerate(q)]
        if near is not None and any(s.ann is not None for s in self.segments):
            for i, found in enumerate(out):
                if not found or found[0].distance > near:
                    out[i] = self._search_one(q[i], k, exact[i], wide=True)
        return out

    def _exact_short_lists(self, q: FloatArray, k: int) -> list[dict[int, IntArray]]:
        """Per query, its best rows in each segment searched exactly (no graph): one blocked
        matrix product per segment for the whole batch (a photo's faces, a clip's frames)."""
        found: list[dict[int, IntArray]] = [{} for _ in range(len(q))]
        for s, seg in enumerate(self._parts()):
            live = len(seg) - len(self._dead_rows(seg))
            if seg.ann is not None or live <= 0:
                continue
            for i, rows in enumerate(_exact_rows(seg, q, min(k, live), self._live(seg))):
                found[i][s] = rows
        return found

    def _search_one(self, v: FloatArray, k: int, exact: dict[int, IntArray], *, wide: bool
                    ) -> list[Neighbour]:
        parts: list[tuple[npt.NDArray[np.float64], IntArray, IntArray]] = []
        for s, seg in enumerate(self._parts()):
            live = len(seg) - len(self._dead_rows(seg))
            if live <= 0:
                continue
            if seg.ann is not None:
                rows = self._ann_rows(seg, v, min(k, live), _WIDE_SHORT_LIST if wide else 0)
            else:
                rows = exact[s]
            diff = seg.take("vectors", rows).astype(np.float64) - v.astype(np.float64)
            dist = np.sqrt(np.maximum(np.einsum("kd,kd->k", diff, diff), 0.0))
            if len(rows) > k:  # rows follow face ids: (distance, row) orders as (distance, id)
                best = np.lexsort((rows, dist))[:k]
                rows, dist = rows[best], dist[best]
            parts.append((dist, seg.take("face_ids", rows), seg.take("person_ids", rows)))
        if not parts:
            return []
        dist = np.concatenate([p[0] for p in parts])
        fids = np.concatenate([p[1] for p in parts])
        pids = np.concatenate([p[2] for p in parts])
        order = np.lexsort((fids, dist))[:k]
        return [Neighbour(int(fids[j]), int(pids[j]), float(dist[j])) for j in order]

    def _ann_rows(self, seg: Segment, query: FloatArray, k: int, at_least: int = 0
                  ) -> IntArray:
        """Live rows among the graph's nearest: a short list of at least 3k (re-ranked
        exactly by the caller, then cut to k); widened while tombstones leave fewer than k."""
        dead = self._dead_rows(seg)
        # asking the graph for ``at_least`` rows is the wide search (``Graph.search``)
        ask = min(len(seg), max(3 * k, _SHORT_LIST_MIN, at_least))
        graph = seg.ann
        assert graph is not None
        while True:
            keys = graph.search(query, ask)
            rows = keys[~np.isin(keys, dead)] if len(dead) else keys
            if len(rows) >= k or ask >= len(seg):
                # the graph orders them by compact-vector distance: its head is the short list
                return rows[: max(3 * k, _SHORT_LIST_MIN)]
            ask = min(len(seg), ask * 4)


def _exact_rows(seg: Segment, q: FloatArray, k: int,
                live: npt.NDArray[np.bool_] | None) -> Iterator[IntArray]:
    """Each query's k best live rows by float32 score (the caller recomputes exactly)."""
    n = len(seg)
    x, norms = seg.vectors, seg.norms
    step = max(1, _SEARCH_BLOCK // n)
    for start in range(0, len(q), step):
        qb = q[start : start + step]
        scores = qb @ np.asarray(x).T
        scores *= -2.0
        scores += norms
        scores += np.einsum("ij,ij->i", qb, qb)[:, None]
        if live is not None:
            scores[:, ~live] = np.inf
        if k < n:
            cand = np.argpartition(scores, k - 1, axis=1)[:, :k]
        else:
            cand = np.broadcast_to(np.arange(n), (len(qb), n))
        for i, rows in enumerate(cand):
            yield rows[np.isfinite(scores[i, rows])] if live is not None else rows


def _check_rows(face_ids: Sequence[int] | IntArray, person_ids: Sequence[int] | IntArray,
                vectors: npt.ArrayLike, dim: int) -> tuple[IntArray, IntArray, FloatArray]:
    fids = _as_ids(face_ids, "face_ids")
    pids = _as_ids(person_ids, "person_ids")
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim == 1 and vecs.size == dim:
        vecs = vecs.reshape(1, dim)
    if vecs.ndim != 2 or vecs.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {vecs.shape}")
    if not (len(fids) == len(pids) == len(vecs)):
        raise ValueError("face_ids, person_ids and vectors differ in length")
    if len(fids) and not np.isfinite(vecs).all():
        raise ValueError("vectors contain NaN or infinity")
    _, last_rev = np.unique(fids[::-1], return_index=True)  # the last of a repeated id wins
    if len(last_rev) != len(fids):
        keep = np.sort(len(fids) - 1 - last_rev)
        fids, pids, vecs = fids[keep], pids[keep], vecs[keep]
    return fids, pids, vecs


def _check_queries(queries: npt.ArrayLike, k: int, dim: int) -> FloatArray:
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must have shape (n, {dim}) or ({dim},)")
    if not np.isfinite(q).all():
        raise ValueError("queries contain NaN or infinity")
    if k < 1:
        raise ValueError("k must be at least 1")
    return q


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse fsync on a directory.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class UnionIndex:
    """Several collections' published indexes searched as one: each stays mapped on its own
    (nothing is merged or copied); answers are merged by distance. Person and face ids are
    global, so a neighbour needs no collection to be named."""

    def __init__(self, parts: Sequence[SegmentedIndex]) -> None:
        self.parts = [p for p in parts if len(p)]
        tags = {(p.engine, p.model_hash) for p in self.parts if p.engine is not None}
        if len(tags) > 1:
            found = ", ".join(sorted(f"{e}/{h}" for e, h in tags))
            raise EngineMismatchError(
                f"these collections were indexed with different engines ({found}): "
                "search them one at a time, or analyse them again with one engine (reembed)")
        self.engine, self.model_hash = next(iter(tags)) if tags else (None, None)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def person_ids(self) -> set[int]:
        return set().union(*(p.person_ids() for p in self.parts))

    def require_engine(self, engine: str, model_hash: str, collection: str = "?") -> None:
        for part in self.parts:
            part.require_engine(engine, model_hash, collection)

    def search(self, queries: npt.ArrayLike, k: int, *, near: float | None = None
               ) -> list[list[Neighbour]]:
        per_part = [p.search(queries, k, near=near) for p in self.parts]
        if not per_part:
            return [[] for _ in range(len(_check_queries(queries, k, DIM)))]
        return [sorted((nb for found in lists for nb in found),
                       key=lambda nb: (nb.distance, nb.face_id))[:k]
                for lists in zip(*per_part, strict=True)]


_Signature = tuple[str, int, int, int] | None  # (kind, inode, mtime_ns, size); None = no file


class IndexStore:
    """The published index of each collection under ``root`` (see the segment notes above).

    ``get`` returns a cached read-only view and reloads it when the manifest was replaced (one
    ``stat`` per call), reusing segments already mapped, so a server sees other processes'
    changes at once. Change an index through ``update``; ``rebuild`` and ``compact`` write a
    fresh one.
    """

    def __init__(self, root: Path | str, params: IndexParams | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.params = params or IndexParams()
        self._cache: dict[str, tuple[_Signature, SegmentedIndex]] = {}
        self._segments: dict[tuple[str, str], Segment] = {}
        self._segments_lock = threading.Lock()  # readers and a writer may open at once
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, collection: str) -> Path:
        """The manifest: its replacement is the publication of a new version."""
        return self.root / f"{_check_collection(collection)}.index.json"

    def folder(self, collection: str) -> Path:
        return self.root / f"{_check_collection(collection)}.d"

    def legacy_path(self, collection: str) -> Path:
        """A one-file ``ExactIndex`` of before issue 21: read, and converted on first change."""
        return self.root / f"{_check_collection(collection)}.npz"

    def exists(self, collection: str) -> bool:
        return self.path(collection).exists() or self.legacy_path(collection).exists()

    def size(self, collection: str) -> int:
        """Faces in the collection's index; 0 while it has none (nothing promoted yet)."""
        return len(self.get(collection)) if self.exists(collection) else 0

    def get(self, collection: str) -> SegmentedIndex:
        cached = self._cache.get(collection)
        if cached is not None and cached[0] == self._signature(collection):
            return cached[1]
        lock = self._collection_lock(collection)
        if cached is None:
            lock.acquire()
        elif not lock.acquire(blocking=False):
            return cached[1]  # another thread is reloading: answer from the previous version
        try:
            cached = self._cache.get(collection)
            if cached is not None and cached[0] == self._signature(collection):
                return cached[1]
            signature, index = self._load(collection)
            self._cache[collection] = (signature, index)
            return index
        finally:
            lock.release()

    def update(self, collection: str, fn: Callable[[SegmentedIndex], T], *,
               engine: tuple[str, str] | None = None) -> T:
        """Apply ``fn`` to the latest index under an exclusive inter-process lock and publish
        what it changed (new small files, then the manifest). Nothing is published when ``fn``
        changes nothing or raises."""
        with self._file_lock(collection):
            _, index = self._load(collection)
            work = index.copy()
            before = work.version
            if engine is not None:  # (name, model hash) of the vectors fn will add
                work.require_engine(*engine, collection=collection)
            result = fn(work)
            if work.version != before:
                self._publish(collection, work)
                signature, fresh = self._load(collection)
                with self._collection_lock(collection):
                    self._cache[collection] = (signature, fresh)
        return result

    def remove_person(self, collection: str, person_id: int) -> int:
        """Drop a person's rows; never creates an empty index just to remove from it."""
        if not self.exists(collection):
            return 0
        return self.update(collection, lambda index: index.remove_person(person_id))

    def rebuild(self, collection: str, face_ids: IntArray, person_ids: IntArray,
                vectors: FloatArray, engine: tuple[str, str] | None) -> int:
        """Replace the whole index by these rows (``faceatlas index rebuild``): one fresh
        segment, published like any change."""
        with self._file_lock(collection):
            _, old = self._load(collection)
            fresh = SegmentedIndex(vectors.shape[1] if vectors.ndim == 2 else DIM, self.params)
            fresh.generation = old.generation
            fresh.engine, fresh.model_hash = engine if engine else (None, None)
            fresh.add(face_ids, person_ids, vectors)
            fresh.version += 1
            self._publish(collection, fresh, merge_all=True)
            signature, index = self._load(collection)
            with self._collection_lock(collection):
                self._cache[collection] = (signature, index)
            return len(index)

    def compact(self, collection: str) -> int:
        """Merge every segment's live rows into one (``faceatlas index compact``)."""
        with self._file_lock(collection):
            _, index = self._load(collection)
            work = index.copy()
            work.version += 1
            self._publish(collection, work, merge_all=True)
            signature, fresh = self._load(collection)
            with self._collection_lock(collection):
                self._cache[collection] = (signature, fresh)
            return len(fresh)

    def describe(self, collection: str) -> dict[str, object]:
        """What is published: version, faces, and each segment's rows, removed rows, kind."""
        index = self.get(collection)
        return {
            "collection": collection, "version": index.generation, "faces": len(index),
            "engine": index.engine, "model_hash": index.model_hash,
            "segments": [{"name": s.name, "rows": len(s), "removed": len(index._dead_rows(s)),
                          "search": "ann" if s.ann is not None else "exact"}
                         for s in index._parts()],
        }

    # -- files
    def _signature(self, collection: str) -> _Signature:
        for kind, path in (("m", self.path(collection)), ("l", self.legacy_path(collection))):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            return (kind, st.st_ino, st.st_mtime_ns, st.st_size)
        return None

    def _load(self, collection: str) -> tuple[_Signature, SegmentedIndex]:
        """The published index; retried when a writer removed the files of the manifest we
        just read (it has published a newer one)."""
        manifest = self.path(collection)
        for _ in range(_READ_RETRIES):
            try:
                with open(manifest, "rb") as f:
                    st = os.fstat(f.fileno())
                    raw = f.read()
            except FileNotFoundError:
                return self._load_legacy(collection)
            try:
                return ("m", st.st_ino, st.st_mtime_ns, st.st_size), self._open(collection, raw)
            except FileNotFoundError:
                continue
        raise StorageError(f"index of {collection} keeps changing under the reader; try again")

    def _open(self, collection: str, raw: bytes) -> SegmentedIndex:
        label = self.path(collection)
        try:
            data = json.loads(raw)
            if data["format"] not in _READABLE_FORMATS:
                raise StorageError(f"index manifest {label} has unsupported format "
                                   f"{data['format']}")
            entries = [(str(e["name"]), bool(e["ann"]), bool(e.get("pca", False)))
                       for e in data["segments"]]
            dim, dead_file = int(data["dim"]), data.get("dead")
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"index manifest {label} is corrupt or unreadable: {exc}") from exc
        folder = self.folder(collection)
        index = SegmentedIndex(dim, self.params)
        index.generation = int(data.get("version", 0))
        index.engine = data.get("engine") or None
        index.model_hash = data.get("model_hash") or None
        with self._segments_lock:
            for name, ann, pca in entries:
                key = (collection, name)
                seg = self._segments.get(key)
                if seg is None:
                    seg = Segment.open(folder, name, ann, pca, self.params)
                    if seg.vectors.shape[1] != dim:
                        raise StorageError(f"index segment {folder / name} is not {dim}-d")
                    self._segments[key] = seg
                index.segments.append(seg)
        if dead_file:
            try:
                with np.load(folder / dead_file, allow_pickle=False) as dead:
                    index.dead = {n: dead[n].astype(np.int64) for n in dead.files}
            except FileNotFoundError:
                raise
            except Exception as exc:
                raise StorageError(f"index tombstones {folder / dead_file} are unreadable: "
                                   f"{exc}") from exc
        names = {n for n, _, _ in entries}
        with self._segments_lock:
            for key in [k for k in self._segments if k[0] == collection and k[1] not in names]:
                del self._segments[key]  # unmapped once no view holds it
        return index

    def _load_legacy(self, collection: str) -> tuple[_Signature, SegmentedIndex]:
        path = self.legacy_path(collection)
        index = SegmentedIndex(params=self.params)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                old = ExactIndex._read(f, str(path))
        except FileNotFoundError:
            return None, index
        index.dim, index.engine, index.model_hash = old.dim, old.engine, old.model_hash
        if len(old):
            index.pending = Segment.of_rows(old.face_ids.copy(), old.person_id_array.copy(),
                                            old.vectors.copy())
        return ("l", st.st_ino, st.st_mtime_ns, st.st_size), index

    def _publish(self, collection: str, index: SegmentedIndex, *, merge_all: bool = False
                 ) -> None:
        """Write the new segment(s) and tombstones, then replace the manifest; finally delete
        files no manifest names any more. Compaction happens here, on small segments only
        unless ``merge_all``: removed rows of a segment past a quarter of it, small
        segments past ``_MAX_EXACT_SEGMENTS`` or past the size that deserves a graph, graph
        segments but the largest past ``_MAX_GRAPH_SEGMENTS``."""
        folder = self.folder(collection)
        folder.mkdir(parents=True, exist_ok=True)
        params = self.params
        live_total = len(index)
        keep: list[Segment] = []
        merge: list[Segment] = [index.pending] if index.pending is not None else []
        small = [s for s in index.segments if s.ann is None]
        exact_rows = sum(len(s) for s in small) + (len(merge[0]) if merge else 0)
        merge_small = (merge_all or len(small) + len(merge) > _MAX_EXACT_SEGMENTS
                       or exact_rows >= params.ann_min_faces)
        # graph segments: tiered, the largest (the base) is merged only on command
        graphs = sorted((s for s in index.segments if s.ann is not None), key=len)
        merge_graphs = set(map(id, graphs[:-1])) if len(graphs) > _MAX_GRAPH_SEGMENTS else set()
        for seg in index.segments:
            dead = len(index._dead_rows(seg))
            if (merge_all or dead > _DEAD_SHARE_REWRITE * len(seg) or id(seg) in merge_graphs
                    or (seg.ann is not None and live_total < params.ann_min_faces)
                    or (seg.ann is None and merge_small)):
                if dead < len(seg):
                    merge.append(seg)
            else:
                keep.append(seg)
        dead = {s.name: index._dead_rows(s) for s in keep if len(index._dead_rows(s))}
        written: list[Segment] = []
        if merge:
            live = [index._live(s) for s in merge]
            rows = [(np.asarray(s.face_ids), np.asarray(s.person_ids), np.asarray(s.vectors))
                    if m is None else (np.asarray(s.face_ids)[m], np.asarray(s.person_ids)[m],
                                       np.asarray(s.vectors)[m])
                    for s, m in zip(merge, live, strict=True)]
            merged = (Segment.of_rows(*rows[0]) if len(rows) == 1  # no copy of one part
                      else Segment.of_rows(np.concatenate([r[0] for r in rows]),
                                           np.concatenate([r[1] for r in rows]),
                                           np.concatenate([r[2] for r in rows])))
            if len(merged):
                if len(merged) >= params.ann_min_faces:
                    merged.ann = params.build(merged.vectors)
                generation = index.generation + 1
                merged.write(folder, f"s{generation:08d}-{uuid.uuid4().hex[:8]}")
                written.append(merged)
        segments = keep + written
        generation = index.generation + 1
        dead_file = None
        if dead:
            dead_file = f"dead{generation:08d}-{uuid.uuid4().hex[:8]}.npz"
            _write_file(folder / dead_file,
                        lambda f: np.savez(f, **{str(k): v for k, v in dead.items()}))
        manifest = {
            "format": MANIFEST_FORMAT, "version": generation, "dim": index.dim,
            "engine": index.engine or "", "model_hash": index.model_hash or "",
            "faces": sum(len(s) - len(dead.get(s.name or "", _EMPTY_IDS)) for s in segments),
            "segments": [{"name": s.name, "rows": len(s), "ann": s.ann is not None,
                          "pca": s.ann is not None and s.ann.projection is not None}
                         for s in segments],
            "dead": dead_file, "ann_library": ANN_LIBRARY,
        }
        _fsync_dir(folder)
        _write_file(self.path(collection),
                    lambda f: f.write(json.dumps(manifest, indent=1).encode()))
        _fsync_dir(self.root)
        # published: from here on only the files it names matter
        named = {n for s in segments for n in s.files()} | ({dead_file} if dead_file else set())
        for p in folder.iterdir():
            if p.name not in named:
                with contextlib.suppress(OSError):
                    p.unlink()
        with contextlib.suppress(OSError):
            self.legacy_path(collection).unlink()

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
    """The process-wide index store of this home (it caches mapped segments)."""
    root = Layout(settings.home).index_dir
    if root not in _stores:
        _stores[root] = IndexStore(root, IndexParams.from_settings(settings))
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


def _require_engine(index: ExactIndex | SegmentedIndex, engine: str, model_hash: str,
                    collection: str) -> None:
    """Refuse to mix engines: an index with rows of another engine/model raises
    EngineMismatchError; an empty one takes the new tag."""
    tagged = index.engine is not None  # untagged rows: built in memory by a caller
    if len(index) and tagged and (index.engine, index.model_hash) != (engine, model_hash):
        raise EngineMismatchError(
            f"index of collection {collection} was built with "
            f"{index.engine}/{index.model_hash}; this server runs {engine}/{model_hash}; "
            f"its faces must be analysed again with {engine} (reembed)",
            collection=collection, engine=engine,
        )
    if index.engine != engine or index.model_hash != model_hash:
        index.engine, index.model_hash = engine, model_hash
        index.version += 1

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
