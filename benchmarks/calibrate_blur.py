"""How the blur threshold was chosen: genuine web faces must pass, blurred ones must fail.

Faces come from a labelled folder (default ``../shared/testdata/lfw``, one photo per identity
unless ``--per-person``) and the test photos' single-identity images. Each face is shown four
ways, as a web page would:

- ``clear``: the photo upscaled 1–2.4× (a web page showing it larger),
- ``soft``: shrunk to 45–60% first, then upscaled — a small original blown up: soft but
  genuine (the issue's "upscaled-but-clear" faces, which the old gate dropped),
- ``focus``: out of focus (Gaussian, sigma 3% of the face),
- ``motion``: motion blur (a line 12% of the face long, random direction).

For each it prints the score distribution under the current ``sharpness`` and the previous
one (Laplacian variance at 96 px, threshold 80), the threshold that separates genuine from
blurred (geometric mean of the genuine 5th and the blurred 95th percentile), pass/fail rates,
and draws the distributions into a PNG (``--png``, default in the temp folder).

    python benchmarks/calibrate_blur.py [--per-person 1] [--png out.png] [--limit 0]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from faceatlas.devtools.testdata import faces_dir, testdata_dir
from faceatlas.faces.engines import EngineConfig, get_engine
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop, sharpness
from faceatlas.settings import get_settings

KINDS = ("clear", "soft", "focus", "motion")
GENUINE, BLURRED = ("clear", "soft"), ("focus", "motion")
COLOURS = {"clear": (30, 120, 220), "soft": (40, 170, 80), "focus": (220, 120, 30),
           "motion": (200, 40, 40)}
OLD_THRESHOLD = 80.0


def laplacian96(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The previous measure: variance of the Laplacian of the face at 96×96."""
    grey = cv2.cvtColor(box_crop(rgb, box), cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if grey.shape[0] > 96 else cv2.INTER_CUBIC
    return float(cv2.Laplacian(cv2.resize(grey, (96, 96), interpolation=interp),
                               cv2.CV_64F).var())


def motion(rgb: np.ndarray, length: int, angle: float) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, m, (length, length))
    return cv2.filter2D(rgb, -1, kernel / kernel.sum())


def sources(per_person: int, limit: int) -> list[Path]:
    lfw = testdata_dir() / "lfw"
    files: list[Path] = []
    if lfw.is_dir():
        for who in sorted(p for p in lfw.iterdir() if p.is_dir()):
            files += sorted(who.iterdir())[:per_person]
    root = faces_dir()
    with open(root / "manifest.csv", newline="") as fh:
        files += [root / r["path"] for r in csv.DictReader(fh) if r["identity"]]
    return files[:limit] if limit else files


def measure(files: list[Path], min_face: int, seed: int) -> dict[str, dict[str, list[float]]]:
    rng = random.Random(seed)
    engine = get_engine(EngineConfig("dlib"))  # dlib with the HOG detector
    out: dict[str, dict[str, list[float]]] = {"new": {k: [] for k in KINDS},
                                              "old": {k: [] for k in KINDS}}
    for f in files:
        base = decode(f.read_bytes()).rgb
        scale = rng.uniform(1.0, 2.4)
        clear = cv2.resize(base, None, fx=scale, fy=scale, interpolation=cv2.INTER_LANCZOS4)
        faces = [x for x in engine.detect(clear) if x.size >= min_face]
        if not faces:
            continue
        size = max(x.size for x in faces)
        native = rng.uniform(0.45, 0.6)
        small = cv2.resize(base, None, fx=native, fy=native, interpolation=cv2.INTER_AREA)
        variants = {
            "clear": clear,
            "soft": cv2.resize(small, (clear.shape[1], clear.shape[0]),
                               interpolation=cv2.INTER_CUBIC),
            "focus": cv2.GaussianBlur(clear, (0, 0), size * 0.03),
            "motion": motion(clear, max(5, round(size * 0.12)), rng.uniform(0, 180)),
        }
        for kind, rgb in variants.items():
            found = engine.detect(rgb)
            if not found:
                continue
            box = max(found, key=lambda x: x.size).box
            out["new"][kind].append(sharpness(rgb, box))
            out["old"][kind].append(laplacian96(rgb, box))
    return out


def separating(scores: dict[str, list[float]]) -> float:
    genuine = np.concatenate([scores[k] for k in GENUINE])
    blurred = np.concatenate([scores[k] for k in BLURRED])
    return math.sqrt(max(np.percentile(genuine, 5), 1e-6) * max(np.percentile(blurred, 95), 1e-6))


def report(label: str, scores: dict[str, list[float]], threshold: float) -> None:
    print(f"\n{label}")
    print("  kind      n     p5    p25 median    p75    p95   pass")
    for kind in KINDS:
        v = np.array(scores[kind])
        if not len(v):
            continue
        p = np.percentile(v, [5, 25, 50, 75, 95])
        print(f"  {kind:7s} {len(v):4d} " + " ".join(f"{x:6.1f}" for x in p)
              + f" {np.mean(v >= threshold):6.1%}")
    genuine = np.concatenate([scores[k] for k in GENUINE])
    blurred = np.concatenate([scores[k] for k in BLURRED])
    print(f"  threshold {threshold:.1f}: genuine kept {np.mean(genuine >= threshold):.1%}, "
          f"blurred dropped {np.mean(blurred < threshold):.1%}; separating threshold "
          f"{separating(scores):.1f}")


def draw(all_scores: dict[str, dict[str, list[float]]], thresholds: dict[str, float],
         path: Path) -> None:
    """One panel per measure: histograms on a log axis, the threshold as a line."""
    width, panel_h, margin = 900, 260, 50
    img = Image.new("RGB", (width, margin + len(all_scores) * (panel_h + margin)), "white")
    d = ImageDraw.Draw(img)
    d.text((margin, 10), "face sharpness by kind (log scale); line = threshold", fill="black")
    for row, (label, scores) in enumerate(all_scores.items()):
        top = margin + row * (panel_h + margin)
        values = np.concatenate([v for v in scores.values() if len(v)])
        lo, hi = np.log10(max(values.min(), 0.1)), np.log10(values.max() * 1.05)
        bins = np.linspace(lo, hi, 41)
        counts = {k: np.histogram(np.log10(np.maximum(scores[k], 0.1)), bins)[0] for k in KINDS}
        peak = max(c.max() for c in counts.values()) or 1
        x0, x1, y1 = margin, width - margin, top + panel_h
        d.rectangle([x0, top, x1, y1], outline="black")
        d.text((x0 + 4, top + 4), label, fill="black")
        bw = (x1 - x0) / 40
        for k_i, kind in enumerate(KINDS):
            for b, c in enumerate(counts[kind]):
                if not c:
                    continue
                bx = x0 + b * bw + k_i * bw / 4
                d.rectangle([bx, y1 - c / peak * (panel_h - 30), bx + bw / 4 - 1, y1],
                            fill=COLOURS[kind])
        for t in np.arange(np.ceil(lo), hi + 0.01, 1.0):
            tx = x0 + (t - lo) / (hi - lo) * (x1 - x0)
            d.line([tx, y1, tx, y1 + 5], fill="black")
            d.text((tx - 10, y1 + 8), f"{10 ** t:g}", fill="black")
        t = np.log10(thresholds[label])
        tx = x0 + (t - lo) / (hi - lo) * (x1 - x0)
        d.line([tx, top, tx, y1], fill="black", width=2)
        for k_i, kind in enumerate(KINDS):
            d.rectangle([x1 - 120, top + 8 + k_i * 16, x1 - 108, top + 20 + k_i * 16],
                        fill=COLOURS[kind])
            d.text((x1 - 102, top + 8 + k_i * 16), kind, fill="black")
    img.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-person", type=int, default=1, help="LFW photos per identity")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos (CI)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--png", type=Path,
                        default=Path(tempfile.gettempdir()) / "faceatlas-blur-calibration.png")
    args = parser.parse_args()
    settings = get_settings()
    files = sources(args.per_person, args.limit)
    scores = measure(files, settings.min_face_px, args.seed)
    print(f"faces: {len(scores['new']['clear'])} (from {len(files)} photos)")
    report(f"sharpness (64 px, weakest direction per contrast), current threshold "
           f"{settings.blur_threshold}", scores["new"], settings.blur_threshold)
    report(f"previous: Laplacian variance at 96 px, threshold {OLD_THRESHOLD}", scores["old"],
           OLD_THRESHOLD)
    draw({"current": scores["new"], "previous (Laplacian 96 px)": scores["old"]},
         {"current": settings.blur_threshold, "previous (Laplacian 96 px)": OLD_THRESHOLD},
         args.png)
    print(f"\npicture of the distributions: {args.png}")


if __name__ == "__main__":
    main()
