"""Video speed on one core: frames decoded and analysed per second, and the real-time factor
(seconds of video per second of work), at 2 and 8 sampled frames a second.

    python benchmarks/bench_video.py                 # the shared clip, dlib, upsample 1 and 0
    python benchmarks/bench_video.py --quick         # CI: 2 fps only, one pass
    python benchmarks/bench_video.py --engine dlib   # another engine (default: the configured)

Part 1 reads only (no faces): the shared clip end to end 20 times (183 s, keyframes every
2 s) and a synthetic clip with keyframes every 1/6 s, sampled at 1/2/8 fps, with the reader's
keyframe seeks and with seeking switched off. Part 2 is the whole analysis (decode, detect,
embed, track) of the shared clip (640×360, 9.2 s). With sface it runs twice, SFace on
OpenCV's DNN (``sface@opencv``, the path before issue 23) and on ONNX Runtime, side by side
in one run, and says whether the tracks (spans, faces) are the same. The goal: ≥ 10× real
time at 2 fps.
"""

from __future__ import annotations

import os

# one core, one thread everywhere: set before numpy/dlib/OpenCV load their thread pools
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceatlas.devtools.testdata import testdata_dir  # noqa: E402
from faceatlas.settings import Settings  # noqa: E402
from faceatlas.video.analyse import analyse_video  # noqa: E402
from faceatlas.video.reader import VideoReader  # noqa: E402


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return "not pinned"


def engine_for(settings: Settings):  # type: ignore[no-untyped-def]
    """The engine video work uses under these settings (one per process and configuration)."""
    from faceatlas.video.analyse import video_engine

    return video_engine(settings)


def read_only(path: Path, fps: float, seek: bool) -> tuple[int, int, int, float]:
    reader = VideoReader(path, fps, seek_gap=0.25 if seek else float("inf"))
    t0 = time.perf_counter()
    samples = sum(1 for _ in reader)
    return samples, reader.decoded, reader.seeks, time.perf_counter() - t0


def part_reading(clip: Path, tmp: Path, quick: bool) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from video_fixtures import remux, synthetic  # the same helpers the tests use

    copies = 3 if quick else 20
    long_clip = remux(clip, tmp / "long.mp4", copies=copies)
    short_gop = synthetic(tmp / "short_gop.mp4", 20 if quick else 60, gop=5)
    print("\n## reading only (no faces)\n")
    print("| clip | fps | samples | frames decoded (seek / no seek) | seeks | s (seek / no seek) |")
    print("|---|---|---|---|---|---|")
    for label, path in ((f"shared ×{copies} (GOP 2 s)", long_clip),
                        ("synthetic 160×96 (GOP 1/6 s)", short_gop)):
        for fps in ((2,) if quick else (1, 2, 8)):
            s1, d1, k1, t1 = read_only(path, fps, True)
            s2, d2, _, t2 = read_only(path, fps, False)
            assert s1 == s2
            print(f"| {label} | {fps} | {s1} | {d1} / {d2} | {k1} | {t1:.2f} / {t2:.2f} |")


def part_analysis(clip: Path, engine: str, quick: bool) -> None:
    print(f"\n## analysis of {clip.name} (decode + detect + embed + track), engine {engine}\n")
    print("| engine | upsample | fps | samples | faces | tracks | wall s | CPU s | samples/s "
          "| decoded/s | real-time factor (wall / CPU) | decode / detect / embed s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    runtimes = ("opencv", "onnxruntime") if engine == "sface" else (None,)
    cpu_of: dict[tuple[int, float, str | None], float] = {}
    spans: dict[tuple[int, float, str | None], list[tuple[float, float, int]]] = {}
    for upsample in ((1,) if quick else (1, 0)):
        for fps in ((2,) if quick else (2, 8)):
            for runtime in runtimes:
                extra = {"sface_runtime": runtime} if runtime else {}
                settings = Settings(video_upsample=upsample, engine=engine,  # type: ignore[call-arg]
                                    **extra)
                eng = engine_for(settings)
                eng.warm()  # models load once per process: not part of the per-clip figure
                t0, c0 = time.perf_counter(), time.process_time()
                a = analyse_video(clip, settings, fps=fps, engine=eng)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                tm = a.timings
                label = f"{engine}@{runtime}" if runtime else engine
                cpu_of[upsample, fps, runtime] = cpu
                spans[upsample, fps, runtime] = [(t.start, t.end, len(t.observations))
                                                 for t in a.tracks]
                # CPU time: what one core of our own would take on a shared, loaded machine
                print(f"| {label} | {upsample} | {fps} | {a.samples} | {a.faces} "
                      f"| {len(a.tracks)} | {wall:.2f} | {cpu:.2f} | {a.samples / wall:.1f} "
                      f"| {a.decoded / wall:.0f} "
                      f"| **{a.info.duration / wall:.1f}× / {a.info.duration / cpu:.1f}×** "
                      f"| {tm['decode']:.2f} / {tm['detect']:.2f} / {tm['embed']:.2f} |")
    if len(runtimes) == 2:
        print()
        for (upsample, fps, runtime), cpu in cpu_of.items():
            if runtime == "onnxruntime":
                before = (upsample, fps, "opencv")
                print(f"upsample {upsample}, {fps} fps: onnxruntime {cpu_of[before] / cpu:.2f}× "
                      f"less CPU than opencv (same run); same tracks: "
                      f"{spans[before] == spans[upsample, fps, runtime]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=None, help="default: the shared test clip")
    ap.add_argument("--engine", choices=("sface", "dlib", "ensemble"), default=None,
                    help="face engine (default: the configured one, FACEATLAS_ENGINE)")
    ap.add_argument("--quick", action="store_true", help="small sample for CI")
    args = ap.parse_args()
    clip = args.clip or testdata_dir() / "video" / "short_hamilton_clip.mp4"
    if not clip.is_file():
        raise SystemExit(f"no clip at {clip} (set FACEATLAS_TESTDATA)")
    pinned = pin_one_core()
    print(f"# bench_video: {clip.name}, one core ({pinned}), load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        part_reading(clip, Path(tmp), args.quick)
    part_analysis(clip, args.engine or Settings().engine, args.quick)


if __name__ == "__main__":
    main()
