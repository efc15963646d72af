"""Benchmark ``faceatlas recognize``: N photos in one call vs N separate calls.

    .venv/bin/python benchmarks/bench_cli_recognize.py [--photos 100] [--call-sample K]

Builds a small gallery from the shared test photos (a few ``people/`` identities, promoted
with ``min_faces_to_promote=1``) in a temporary home, copies N photos (cycling through the
shared ones) into a folder, then times, as a user would run them (real processes, stdout a
pipe):

(a) one call: ``faceatlas recognize <folder> --format csv`` — the models load once;
(b) N calls: ``faceatlas recognize <photo>`` once per photo. With ``--call-sample K`` only K
    of them are run and the total is extrapolated (said so in the output).

Goal (issue 15): (a) at least 5× faster than (b) at 100 photos.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 5.0
GALLERY = ("barack_obama", "joe_biden", "kit_harington", "person_01", "person_03")


def faces_root() -> Path:
    base = os.environ.get("FACEATLAS_TESTDATA") or str(Path(__file__).resolve().parents[2]
                                                          / "shared" / "testdata")
    root = Path(base) / "faces"
    if not (root / "manifest.csv").is_file():
        sys.exit(f"test photos not found at {root} (set FACEATLAS_TESTDATA)")
    return root


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "faceatlas.cli", *args], env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"faceatlas {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100, help="photos to recognise")
    parser.add_argument("--call-sample", type=int, default=None,
                        help="time only this many separate calls and extrapolate")
    args = parser.parse_args(argv)
    root = faces_root()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-recognize-"))
    try:
        env = {**os.environ, "FACEATLAS_HOME": str(tmp / "home"), "OPENBLAS_NUM_THREADS": "1",
               "FACEATLAS_MIN_FACES_TO_PROMOTE": "1", "COLUMNS": "120"}
        env.pop("FACEATLAS_DATABASE_URL", None)
        incoming = tmp / "incoming"
        for who in GALLERY:
            shutil.copytree(root / "people" / who, incoming / who)
        started = time.perf_counter()
        cli(env, "import", str(incoming), "--collection", "bench")
        cli(env, "promote", "--collection", "bench")
        print(f"gallery: {len(GALLERY)} people in {time.perf_counter() - started:.1f} s")

        pool = sorted(p for p in (root / "people").rglob("*.jpg"))
        photos = tmp / "photos"
        photos.mkdir()
        chosen = []
        for i in range(args.photos):
            src = pool[i % len(pool)]
            dest = photos / f"{i:04d}_{src.parent.name}_{src.name}"
            shutil.copyfile(src, dest)
            chosen.append(dest)

        t0 = time.perf_counter()
        out = cli(env, "--quiet", "recognize", str(photos), "--collection", "bench",
                  "--format", "csv")
        one_call = time.perf_counter() - t0
        rows = out.stdout.count("\n") - 1

        sample = chosen[: args.call_sample] if args.call_sample else chosen
        t0 = time.perf_counter()
        for photo in sample:
            cli(env, "recognize", str(photo), "--collection", "bench")
        per_call = (time.perf_counter() - t0) / len(sample)
        many_calls = per_call * len(chosen)
        note = (f" (extrapolated from {len(sample)} calls)" if len(sample) < len(chosen)
                else "")

        ratio = many_calls / one_call
        print(f"photos: {len(chosen)} ({rows} CSV rows)")
        print(f"one call:   {one_call:7.1f} s  ({1000 * one_call / len(chosen):6.0f} ms/photo)")
        print(f"{len(chosen)} calls: {many_calls:7.1f} s  ({1000 * per_call:6.0f} ms/photo){note}")
        verdict = ("met" if ratio >= GOAL else "not met") if len(chosen) >= 100 else \
            "judged at 100 photos only"
        print(f"speed-up:   {ratio:7.1f}×  (goal ≥ {GOAL:.0f}× at 100 photos: {verdict})")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
