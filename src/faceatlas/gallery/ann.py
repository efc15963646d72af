"""The approximate part of a large index segment: a usearch HNSW graph that proposes a short
list of rows for a query, which ``index.SegmentedIndex`` then re-ranks exactly in float32.

Since the 10M-face measurements (docs/architecture.md "Index at scale") a new graph holds
each face as its first ``reduce`` principal components (64 of 128), int8: 64 bytes a face
instead of 256 (f16), so a 10M-face graph is ~1.8 GB instead of ~4.2 GB, and every process
of a machine maps the same file. The short list is re-ranked exactly, so what the
projection loses shows only as a wider short list's worth of work, never in an answer
(measured at 1M: top-1 face as exact for every query and every LFW probe at ef 128).
The projection (mean, basis, scale) is saved beside the graph as ``<segment>.pca.npz``;
graphs written before it (no such file) are searched with the full vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceatlas.domain.errors import StorageError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

# usearch HNSW construction breadth, measured in benchmarks/bench_world.py
EXPANSION_ADD = 64
# Rows fitted by the principal components (a sample: the components of 100k faces are
# those of 10M for this purpose, and the SVD stays well under a second).
_PCA_SAMPLE = 100_000
# Rows projected and inserted per batch (128 MB of float32 at most): no full-size copy.
_BUILD_BLOCK = 1 << 18


class Projection:
    """x -> ((x - mean) @ basis) * scale, clipped to [-1, 1]: usearch's int8 stores
    round(127 · value), so the scale spreads the components over the whole int8 range."""

    def __init__(self, mean: FloatArray, basis: FloatArray, scale: float) -> None:
        self.mean, self.basis, self.scale = mean, basis, np.float32(scale)

    @classmethod
    def fit(cls, vectors: FloatArray, dims: int, rng: np.random.Generator) -> Projection:
        rows = len(vectors)
        pick = np.sort(rng.choice(rows, min(rows, _PCA_SAMPLE), replace=False))
        sample = np.asarray(vectors[pick], dtype=np.float64)
        mean = sample.mean(axis=0)
        centred = sample - mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        basis = vt[:dims].T
        peak = float(np.abs(centred @ basis).max()) or 1.0
        return cls(mean.astype(np.float32), basis.astype(np.float32), 1.0 / peak)

    def __call__(self, x: FloatArray) -> FloatArray:
        out = (np.asarray(x, dtype=np.float32) - self.mean) @ self.basis
        out *= self.scale
        return np.clip(out, -1.0, 1.0, out=out)

    def save(self, f: object) -> None:
        np.savez(f, mean=self.mean, basis=self.basis, scale=np.float32(self.scale))

    @classmethod
    def load(cls, path: Path) -> Projection:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["basis"], float(data["scale"]))


class Graph:
    """A segment's usearch graph (keys: row numbers) and the projection of its vectors."""

    def __init__(self, index: object, projection: Projection | None) -> None:
        self.index, self.projection = index, projection

    def __len__(self) -> int:
        return len(self.index)  # type: ignore[arg-type]

    @classmethod
    def build(cls, vectors: FloatArray, *, dtype: str, connectivity: int, reduce: int,
              expansion_search: int, threads: int) -> Graph:
        """Rows are inserted in a random order. Why: rows are sorted by face id, i.e. by
        arrival, and a group that arrives last (measured: the real LFW faces after a million
        synthetic ones) joins a finished graph through a few edges, which a graph walk then
        misses (ef 128 at 1M: 53 of 62 LFW probes found in arrival order, 62 shuffled)."""
        from usearch.index import Index  # imported here: exact-only processes never load it

        rng = np.random.default_rng(len(vectors))
        dim = vectors.shape[1]
        projection = Projection.fit(vectors, reduce, rng) if 0 < reduce < dim else None
        index = Index(ndim=reduce if projection else dim, metric="l2sq", dtype=dtype,
                      connectivity=connectivity, expansion_add=EXPANSION_ADD,
                      expansion_search=expansion_search)
        order = rng.permutation(len(vectors))
        for start in range(0, len(order), _BUILD_BLOCK):
            rows = order[start : start + _BUILD_BLOCK]
            block = np.asarray(vectors[rows], dtype=np.float32)
            index.add(rows.astype(np.uint64),
                      np.ascontiguousarray(projection(block) if projection else block),
                      threads=threads)
        return cls(index, projection)

    @classmethod
    def open(cls, graph_path: Path, projection_path: Path | None, expansion_search: int
             ) -> Graph:
        from usearch.index import Index

        if not graph_path.exists():
            raise FileNotFoundError(graph_path)
        projection = None
        if projection_path is not None:
            try:
                projection = Projection.load(projection_path)
            except FileNotFoundError:
                raise
            except Exception as exc:
                raise StorageError(f"index projection {projection_path} is unreadable: "
                                   f"{exc}") from exc
        try:
            # no key -> node hash table: searches only return keys, and the table is
            # private memory (measured ~30 bytes a face: 300 MB per process at 10M)
            index = Index.restore(str(graph_path), view=True, enable_key_lookups=False)
        except Exception as exc:
            raise StorageError(f"index graph {graph_path} is unreadable: {exc}") from exc
        if index is None:
            raise StorageError(f"index graph {graph_path} is unreadable")
        index.expansion_search = expansion_search
        return cls(index, projection)

    def search(self, query: FloatArray, count: int) -> IntArray:
        """The ``count`` rows nearest ``query`` in the graph's space, nearest first. usearch
        searches max(ef, count) wide, so a larger count is a wider search on the same
        object (threads share it: its ef is never changed)."""
        q = self.projection(query[None, :])[0] if self.projection is not None else query
        keys = self.index.search(q, count, threads=1).keys  # type: ignore[attr-defined]
        return np.asarray(keys, dtype=np.int64)
