"""Curation speed on the test photos: one worker process vs one per core, side by side.

Prints images/s, ms per image split into decode / detect / embed / the rest (everything but
the models: quality, hashing, crops, decisions, database, files, process overhead), and peak
memory. Goals: the rest ≤ 10% of the time; two workers ≥ 1.8× faster than one (issue 23).

With several ``--engine`` (default: dlib, sface@opencv and sface) the engines run one after
the other and a side-by-side table compares CPU per image (process CPU of the one-worker run,
which analyses in-process: the primary figure on a shared machine) and accepted faces.
``sface@full`` is sface decoding every photo at full size, the path before reduced JPEG
decoding (issue 23), and ``sface@opencv`` sface with YuNet and SFace on OpenCV's DNN, the path
before ONNX Runtime: the first of them in the run is "before", and the table says whether the
accepted faces are the same (every photo's accepted faces matched one to one, box IoU ≥ 0.9;
"moved" counts boxes not equal to the pixel: a reduced decode maps boxes back to full
size). Goal: sface ≤ 40 ms CPU per image, ≥ 7× less than dlib. The table also gives
the parent's share (the curating thread: database, decisions, files) and the two-worker
speed-up it leaves room for on two idle cores, 2·A/(A+P): the parent shares the cores with the
workers (what a loaded machine's wall clock cannot show).

With ``--intruders K`` every person's folder also gets K photos of other people (named
``intruder__…``); the table then shows purity (accepted faces that are the person) and recall
(the person's own photos accepted): what ``ensemble`` costs and gains against one engine.

    python benchmarks/bench_curate.py [--sample N] [--workers 2] [--engine dlib --engine sface]
        [--engine sface@opencv]
        [--intruders 2]
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from faceatlas.devtools.testdata import faces_dir
from faceatlas.faces.analyse import AnalyseParams, FacePool
from faceatlas.faces.quality import iou
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store import db


def build_input(root: Path, sample: int | None, intruders: int = 0) -> int:
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
    # other people's photos slipped into each folder (what a web search returns)
    others = files
    for i, who in enumerate(sorted({w for w, _ in files})):
        strangers = [(w, f) for w, f in others if w != who]
        for k in range(intruders):
            w, f = strangers[(i * intruders + k) * 7 % len(strangers)]
            shutil.copyfile(f, root / who / f"intruder__{w}__{f.name}")
    return len(files) + intruders * len({w for w, _ in files})


def accepted_faces(settings: Settings) -> set[tuple[str, int, int, int, int]]:
    """(photo file name, box) of every accepted face: what "the same faces" compares."""
    from sqlalchemy import select

    from faceatlas.store.db import session_scope
    from faceatlas.store.models import Face, Image

    with session_scope(settings) as s:
        rows = s.execute(select(Image.origin, Face.x, Face.y, Face.w, Face.h)
                         .join(Face, Face.image_id == Image.id)
                         .where(Face.state == "accepted")).all()
    return {(Path(o).name, x, y, w, h) for o, x, y, w, h in rows}


def same_faces(got: set[tuple[str, int, int, int, int]],
               before: set[tuple[str, int, int, int, int]]) -> str:
    """"True (n moved)" when every photo's accepted faces pair one to one with the ones
    before at box IoU ≥ 0.9 (n: boxes not equal to the pixel), else "False"."""
    if len(got) != len(before):
        return "False"
    moved = 0
    for photo, *box in got:
        if (photo, *box) in before:
            continue
        if not any(p == photo and iou(tuple(box), tuple(b)) >= 0.9  # type: ignore[arg-type]
                   for p, *b in before):
            return "False"
        moved += 1
    return f"True ({moved} moved)"


def purity(settings: Settings) -> tuple[int, int, int]:
    """(accepted faces, of them intruders, own photos accepted) after an import."""
    from sqlalchemy import select

    from faceatlas.store.db import session_scope
    from faceatlas.store.models import Face, Image

    with session_scope(settings) as s:
        origins = list(s.scalars(select(Image.origin).join(Face, Face.image_id == Image.id)
                                 .where(Face.state == "accepted")))
    bad = sum("intruder__" in o for o in origins)
    return len(origins), bad, len(origins) - bad


def run(src: Path, workers: int, engine: str = "dlib"
        ) -> tuple[float, float, Counter[str], int, int, float, float, tuple[int, int, int],
                   set[tuple[str, int, int, int, int]]]:
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    # sface@opencv: both networks on OpenCV's DNN; sface@full: every photo decoded whole
    name, _, variant = engine.partition("@")
    runtime = variant if variant in ("opencv", "onnxruntime") else ""
    settings = Settings(home=home, workers=workers, engine=name,
                        **({"sface_runtime": runtime} if runtime else {}))
    db.get_engine(settings)  # schema migration is set-up, not curation
    t0 = time.perf_counter()
    params = replace(AnalyseParams.from_settings(settings), reduced_decode=variant != "full")
    pool = FacePool(params, workers).start(wait=True)
    # start-up's garbage is start-up's: else the full collection it is due (~70 ms over a heap
    # of libraries and models) lands in the first run's CPU, ~3 ms/photo at --sample 24
    gc.collect()
    start = time.perf_counter()
    cpu0 = time.process_time()
    parent0 = time.thread_time()  # this thread: the curation (the analysis is in others)
    timings: Counter[str] = Counter()
    accepted = peak = 0
    for report in import_folder(src, "bench", settings, pool=pool):
        timings.update(report.timings)
        accepted += report.accepted
        peak = max(peak, report.peak_rss_kb)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0  # all of it with one (in-process) worker
    parent = time.thread_time() - parent0
    pure = purity(settings)
    faces = accepted_faces(settings)
    pool.close()
    db.reset_caches()
    shutil.rmtree(home)
    return start - t0, wall, timings, accepted, peak, cpu, parent, pure, faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=None, help="use only N photos")
    parser.add_argument("--workers", type=int, default=2, help="parallel run's processes")
    parser.add_argument("--intruders", type=int, default=0,
                        help="add N other people's photos to each person's folder")
    parser.add_argument("--engine", action="append",
                        choices=["dlib", "sface", "ensemble", "sface@opencv", "sface@full"],
                        help="engine(s) to compare (repeat; default dlib, sface@full, sface)")
    args = parser.parse_args()
    engines = args.engine or ["dlib", "sface@full", "sface"]
    src = Path(tempfile.mkdtemp(prefix="bench-in-"))
    n = build_input(src, args.sample, args.intruders)
    people = len(list(src.iterdir()))
    own = n - args.intruders * people
    print(f"{n} photos of {people} people ({args.intruders * people} of them intruders)\n")
    print(f"{'engine':<13}{'run':<12}{'start s':>8}{'wall s':>8}{'img/s':>8}{'decode':>9}"
          f"{'detect':>9}{'embed':>9}{'rest':>9}{'rest %':>8}{'accepted':>10}")
    results: dict[tuple[str, int], float] = {}
    # engine -> cpu ms/img, wall ms/img, accepted, the parent's (curation) cpu ms/img
    side: dict[str, tuple[float, float, int, float]] = {}
    faces: dict[str, set[tuple[str, int, int, int, int]]] = {}  # one-worker accepted faces
    pure: dict[str, tuple[int, int, int]] = {}
    peak_worker = 0
    for engine, workers in [(e, w) for e in engines for w in (1, args.workers)]:
        startup, wall, t, accepted, peak, cpu, parent, pure[engine], got = run(
            src, workers, engine)
        peak_worker = max(peak_worker, peak)
        results[engine, workers] = wall
        if workers == 1:
            side[engine] = (1000 * cpu / n, 1000 * wall / n, accepted, 1000 * parent / n)
            faces[engine] = got
        model = t["decode"] + t["detect"] + t["embed"]
        # with one worker, wall time = model time + everything else; per image in ms
        rest = max(0.0, wall - model / workers)
        per = {k: 1000 * t[k] / n for k in ("decode", "detect", "embed")}
        label = f"{workers} worker(s)"
        print(f"{engine:<13}{label:<12}{startup:>8.2f}{wall:>8.2f}{n / wall:>8.2f}"
              f"{per['decode']:>9.1f}"
              f"{per['detect']:>9.1f}{per['embed']:>9.1f}{1000 * rest / n:>9.1f}"
              f"{100 * rest / wall:>7.1f}%{accepted:>10}")
    shutil.rmtree(src)
    print(f"\n{'one worker':<13}{'CPU ms/img':>12}{'wall ms/img':>13}{'accepted':>10}"
          f"{'CPU vs dlib':>13}{'vs before':>11}{'same faces':>18}{'parent':>8}{'2w max':>8}")
    before = next((e for e in side if e.startswith("sface@")), None)
    for engine, (cpu_ms, wall_ms, accepted, parent_ms) in side.items():
        ratio = (f"{side['dlib'][0] / cpu_ms:.1f}× less" if "dlib" in side and engine != "dlib"
                 else "-")
        vs = (f"{side[before][0] / cpu_ms:.2f}×" if before and engine == "sface" else "-")
        same = same_faces(faces[engine], faces[before]) if before and engine == "sface" else "-"
        # two workers share the cores with the parent: at best 2·A/(A+P), A = analysis
        ceiling = 2 * (cpu_ms - parent_ms) / cpu_ms
        print(f"{engine:<13}{cpu_ms:>12.1f}{wall_ms:>13.1f}{accepted:>10}{ratio:>13}{vs:>11}"
              f"{same:>18}{parent_ms:>8.1f}{ceiling:>7.2f}×")
    if args.intruders:
        print(f"\n{'purity':<10}{'accepted':>10}{'intruders':>11}{'purity':>9}{'own kept':>10}")
        for engine, (acc, bad, good) in pure.items():
            print(f"{engine:<10}{acc:>10}{bad:>11}{100 * good / max(1, acc):>8.1f}%"
                  f"{good:>10} of {own}")
    for engine in engines:
        speedup = results[engine, 1] / results[engine, args.workers]
        print(f"{engine}: speed-up with {args.workers} workers: {speedup:.2f}× (goal ≥ 1.8×)")
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: parent {peak_self:.0f} MB, largest face worker "
          f"{peak_worker / 1024:.0f} MB")
    print("(CPU = process_time of the one-worker run / photos: primary figure on a shared "
          "machine; wall clock suffers from other load)")
    print("(parent = the curating thread's CPU in it: database, decisions, files; 2w max = the "
          "two-worker speed-up two idle cores would allow, 2·A/(A+P) with A = CPU − parent)")
    print("(start = workers up with models loaded, once per run, not in wall; decode/detect/embed"
          " in ms per image summed over workers; rest = wall − model time / workers)")


if __name__ == "__main__":
    main()
