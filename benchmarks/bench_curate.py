"""Curation speed on the test photos: one worker process vs one per core, side by side.

Prints images/s, ms per image split into decode / detect / embed / the rest (everything but
the models: quality, hashing, crops, decisions, database, files, process overhead), and peak
memory. Goals: the rest ≤ 10% of the time; two workers ≥ 1.7× faster than one.

    python benchmarks/bench_curate.py [--sample N] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from faceatlas.faces.analyse import AnalyseParams, FacePool
from faceatlas.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.testdata import faces_dir


def build_input(root: Path, sample: int | None) -> int:
    """One folder per identity of the test photos (at most ``sample`` photos in all)."""
    people = sorted(p for p in (faces_dir() / "people").iterdir() if p.is_dir())
    files = [(who.name, f) for who in people for f in sorted(who.iterdir())]
    if sample:
        # round-robin over people so a small sample still has several people
        by_person: dict[str, list[Path]] = {}
        for who, f in files:
            by_person.setdefault(who, []).append(f)
        files = []
        while len(files) < sample and any(by_person.values()):
            for who in list(by_person):
                if by_person[who] and len(files) < sample:
                    files.append((who, by_person[who].pop(0)))
    for who, f in files:
        (root / who).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, root / who / f.name)
    return len(files)


def run(src: Path, workers: int) -> tuple[float, float, Counter[str], int, int]:
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    settings = Settings(home=home, workers=workers)
    db.get_engine(settings)  # schema migration is set-up, not curation
    t0 = time.perf_counter()
    pool = FacePool(AnalyseParams.from_settings(settings), workers).start(wait=True)
    start = time.perf_counter()
    timings: Counter[str] = Counter()
    accepted = peak = 0
    for report in import_folder(src, "bench", settings, pool=pool):
        timings.update(report.timings)
        accepted += report.accepted
        peak = max(peak, report.peak_rss_kb)
    wall = time.perf_counter() - start
    pool.close()
    db.reset_caches()
    shutil.rmtree(home)
    return start - t0, wall, timings, accepted, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=None, help="use only N photos")
    parser.add_argument("--workers", type=int, default=2, help="parallel run's processes")
    args = parser.parse_args()
    src = Path(tempfile.mkdtemp(prefix="bench-in-"))
    n = build_input(src, args.sample)
    print(f"{n} photos of {len(list(src.iterdir()))} people\n")
    print(f"{'run':<12}{'start s':>8}{'wall s':>8}{'img/s':>8}{'decode':>9}{'detect':>9}"
          f"{'embed':>9}{'rest':>9}{'rest %':>8}{'accepted':>10}")
    results = {}
    peak_worker = 0
    for workers in (1, args.workers):
        startup, wall, t, accepted, peak = run(src, workers)
        peak_worker = max(peak_worker, peak)
        results[workers] = wall
        model = t["decode"] + t["detect"] + t["embed"]
        # with one worker, wall time = model time + everything else; per image in ms
        rest = max(0.0, wall - model / workers)
        per = {k: 1000 * t[k] / n for k in ("decode", "detect", "embed")}
        print(f"{f'{workers} worker(s)':<12}{startup:>8.2f}{wall:>8.2f}{n / wall:>8.2f}"
              f"{per['decode']:>9.1f}"
              f"{per['detect']:>9.1f}{per['embed']:>9.1f}{1000 * rest / n:>9.1f}"
              f"{100 * rest / wall:>7.1f}%{accepted:>10}")
    shutil.rmtree(src)
    speedup = results[1] / results[args.workers]
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nspeed-up with {args.workers} workers: {speedup:.2f}× (goal ≥ 1.7×)")
    print(f"peak memory: parent {peak_self:.0f} MB, largest face worker "
          f"{peak_worker / 1024:.0f} MB")
    print("(start = workers up with models loaded, once per run, not in wall; decode/detect/embed"
          " in ms per image summed over workers; rest = wall − model time / workers)")


if __name__ == "__main__":
    main()
