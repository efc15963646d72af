"""How the default blur threshold was chosen: originals must pass, blurred copies must fail.

For every face (≥ min size) in the single-identity test photos, the sharpness score is taken
on the original and on a copy blurred with a Gaussian of sigma = 2% of the face size (a soft
but recognisable face). The threshold is set between the lowest original and the highest
blurred score (their geometric mean).

    python benchmarks/calibrate_blur.py [--sigma 0.02]
"""

from __future__ import annotations

import argparse
import csv
import math

import cv2
import numpy as np

from faceatlas.faces.engine import get_engine
from faceatlas.faces.image import decode
from faceatlas.faces.quality import sharpness
from faceatlas.settings import get_settings
from faceatlas.testdata import faces_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=0.02, help="blur sigma / face size")
    args = parser.parse_args()
    root = faces_dir()
    settings = get_settings()
    engine = get_engine(settings.detector, settings.detect_max_side, settings.upsample)
    originals: list[float] = []
    blurred: list[float] = []
    with open(root / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["identity"]]
    for row in rows:
        rgb = decode((root / row["path"]).read_bytes()).rgb
        for face in engine.detect(rgb):
            if face.size < settings.min_face_px:
                continue
            soft = cv2.GaussianBlur(rgb, (0, 0), face.size * args.sigma)
            originals.append(sharpness(rgb, face.box))
            blurred.append(sharpness(soft, face.box))
    o, b = np.array(originals), np.array(blurred)
    print(f"faces: {len(o)}   blur sigma: {args.sigma:.0%} of the face size")
    for label, v, edge in (("originals: min", o, o.min()), ("blurred:   max", b, b.max())):
        p5, p95 = np.percentile(v, [5, 95])
        print(f"{label} {edge:7.1f}  p5 {p5:7.1f}  p95 {p95:7.1f}  median {np.median(v):7.1f}")
    print(f"suggested threshold (geometric mean of min original and max blurred): "
          f"{math.sqrt(o.min() * b.max()):.1f}   current: {settings.blur_threshold}")
    passed = (o >= settings.blur_threshold).mean()
    failed = (b < settings.blur_threshold).mean()
    print(f"with the current threshold: originals pass {passed:.1%}, blurred fail {failed:.1%}")


if __name__ == "__main__":
    main()
