"""Benchmark ExactIndex: build, save, load and single-query search latency.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_index.py --sizes 10k,100k,1M

Vectors are seeded random float32 at dlib scale (norm ~1); queries are noisy copies of gallery
faces, as in recognition. Exact search cost does not depend on the data, only on its size.
``load1`` is the 1-minute load average after each row: on a shared 2-core box anything above
~1 means other processes competed for the cores and latencies are inflated.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from faceatlas.gallery.index import DIM, ExactIndex


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def fmt_size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k" if n >= 1_000 else str(n)


def bench(n: int, queries: int, k: int, folder: Path) -> dict[str, float]:
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors *= np.float32(1 / np.sqrt(DIM))  # unit-ish rows, like dlib descriptors
    face_ids = np.arange(n, dtype=np.int64)
    person_ids = face_ids // 40

    index = ExactIndex()
    t = time.perf_counter()
    index.add(face_ids, person_ids, vectors)
    build = time.perf_counter() - t
    del vectors  # the index holds its own copy; keep peak memory near one gallery

    path = folder / f"bench-{n}.npz"
    t = time.perf_counter()
    index.save(path)
    save = time.perf_counter() - t
    size_mb = path.stat().st_size / 1e6

    t = time.perf_counter()
    loaded = ExactIndex.load(path)
    load = time.perf_counter() - t
    del index

    rows = rng.integers(0, n, queries)
    noise = rng.standard_normal((queries, DIM), dtype=np.float32) * np.float32(0.02)
    qs = loaded.vectors[rows] + noise
    loaded.search(qs[:5], k=k)  # warm-up: BLAS threads, page faults
    latencies = []
    for q in qs:
        t = time.perf_counter()
        loaded.search(q, k=k)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    loaded.search(qs, k=k)
    batch = time.perf_counter() - t
    path.unlink()
    ms = np.array(latencies) * 1e3
    return {
        "n": n,
        "build_s": build,
        "save_s": save,
        "load_s": load,
        "file_mb": size_mb,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "batch_ms_per_q": batch * 1e3 / queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="comma list, e.g. 10k,100k,1M")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the index files")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]

    print(
        f"ExactIndex, dim={DIM}, k={args.k}, {args.queries} single queries, "
        f"{os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
    )
    header = (
        f"{'faces':>6} {'build s':>8} {'save s':>7} {'load s':>7} {'file MB':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'batch ms/q':>10} {'load1':>5}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in sizes:
            r = bench(n, args.queries, args.k, Path(tmp))
            print(
                f"{fmt_size(n):>6} {r['build_s']:8.3f} {r['save_s']:7.3f} {r['load_s']:7.3f} "
                f"{r['file_mb']:8.1f} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} "
                f"{r['batch_ms_per_q']:10.3f} {os.getloadavg()[0]:5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
