"""The sface models alone, runtimes side by side in one run, on one core: what chose the
runtime and the batch size (docs/architecture.md).

SFace per face on the aligned faces of the shared photos: OpenCV's ``FaceRecognizerSF`` one
face at a time (the path before), ONNX Runtime on the float graph (``onnx_graph``) at batch
1 / 4 / 16, OpenCV's DNN on the same float graph; CPU ms per face, the ratio to the path
before and the smallest cosine to its embeddings (goal ≥ 0.9999). Then YuNet per photo: OpenCV's
``FaceDetectorYN`` at 640 px (before), ONNX Runtime (``yunet``) at 640 (after) and at 320 / 160
px, with whether the boxes are the same, the faces missed, how far the landmarks of the others
move (full-resolution px) and how much that changes their embeddings.

    python benchmarks/bench_sface.py [--photos 40] [--repeat 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from faceatlas.devtools.testdata import faces_dir  # noqa: E402
from faceatlas.domain.faces import DetectedFace  # noqa: E402
from faceatlas.faces.engines import onnx_graph  # noqa: E402
from faceatlas.faces.engines.sface import (  # noqa: E402
    RECOGNIZER_FILE,
    SFaceEngine,
    align,
    model_dir,
)
from faceatlas.faces.image import decode  # noqa: E402
from faceatlas.faces.quality import iou  # noqa: E402


def cpu_per(items: int, repeat: int, fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    fn()  # warm: first-call allocations are not per-face cost
    t0 = time.process_time()
    for _ in range(repeat):
        out = fn()
    return 1000 * (time.process_time() - t0) / (items * repeat), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    with contextlib.suppress(AttributeError, OSError):  # not Linux: not pinned
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    root = faces_dir()
    files = sorted((root / "group").iterdir()) + sorted((root / "people").glob("*/*"))
    files = files[: args.photos]
    before = SFaceEngine(runtime="opencv")
    images = [decode(f.read_bytes()).rgb for f in files]
    crops = [align(rgb, face.landmarks) for rgb in images for face in before.detect(rgb)]
    n = len(crops)
    print(f"# bench_sface: {n} faces of {len(files)} photos, one core, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (CPU time: side by side, "
          "same run)\n")
    ref_ms, ref = cpu_per(n, args.repeat, lambda: before.embed_crops(crops))
    rows = [("opencv FaceRecognizerSF, 1 at a time (before)", ref_ms, 1.0)]
    ort_engine = SFaceEngine(runtime="onnxruntime")
    sess = onnx_graph.session(model_dir() / RECOGNIZER_FILE)
    blob = cv2.dnn.blobFromImages(crops, 1.0, (112, 112), (0, 0, 0), False, False)

    def ort_batches(size: int) -> np.ndarray:
        return np.vstack([sess.run(None, {"data": blob[i:i + size]})[0]
                          for i in range(0, n, size)])

    for size in (1, 4, 16):
        ms, out = cpu_per(n, args.repeat, lambda size=size: ort_batches(size))
        rows.append((f"onnxruntime float graph, batch {size}", ms, _min_cos(out, ref)))
    ms, out = cpu_per(n, args.repeat, lambda: ort_engine.embed_crops(crops))
    rows.append(("onnxruntime via SFaceEngine.embed_crops (after)", ms, _min_cos(out, ref)))
    net = cv2.dnn.readNetFromONNX(np.frombuffer(
        onnx_graph.runtime_graph(model_dir() / RECOGNIZER_FILE), np.uint8))

    def cv_float() -> np.ndarray:
        rows_ = []
        for i in range(n):
            net.setInput(blob[i:i + 1])
            rows_.append(net.forward().copy())
        return np.vstack(rows_)

    ms, out = cpu_per(n, args.repeat, cv_float)
    rows.append(("opencv DNN float graph, batch 1", ms, _min_cos(out, ref)))
    print("| SFace | CPU ms/face | vs before | min cosine to before |")
    print("|---|---|---|---|")
    for label, ms, cos in rows:
        print(f"| {label} | {ms:.2f} | {ref_ms / ms:.2f}× | {cos:.6f} |")
    print("\n| YuNet on a copy of | runtime | CPU ms/photo | vs before | same boxes | "
          "faces missed | max landmark shift px | min cosine of embeddings |")
    print("|---|---|---|---|---|---|---|---|")
    ref_faces: list[list[DetectedFace]] = []
    base = 0.0
    for side, runtime in ((640, "opencv"), (640, "onnxruntime"), (320, "onnxruntime"),
                          (160, "onnxruntime")):
        eng = SFaceEngine(max_side=side, runtime=runtime)
        eng.warm()
        ms, _ = cpu_per(len(images), args.repeat,
                        lambda eng=eng: np.array([len(eng.detect(rgb)) for rgb in images]))
        found = [eng.detect(rgb) for rgb in images]
        ref_faces = ref_faces or found
        base = base or ms
        same, missed, shift, cos = _compare(found, ref_faces, images, ort_engine)
        label = f"{side} px" + (" (before)" if runtime == "opencv" else "")
        print(f"| {label} | {runtime} | {ms:.2f} | {base / ms:.2f}× | {same} | {missed} | "
              f"{shift:.4f} | {cos:.6f} |")


def _compare(found: list[list[DetectedFace]], ref: list[list[DetectedFace]],
             images: list[np.ndarray], engine: SFaceEngine) -> tuple[bool, int, float, float]:
    """Whether every photo has the same boxes as ``ref``; the faces of ``ref`` with no found
    face over them (IoU < 0.5); for the others, the largest landmark shift (px, full
    resolution) and the smallest cosine between the embeddings aligned on either's
    landmarks."""
    same, missed, shift, cos = True, 0, 0.0, 1.0
    for got, want, rgb in zip(found, ref, images, strict=True):
        same = same and [f.box for f in got] == [f.box for f in want]
        for w in want:
            g = max(got, key=lambda f, w=w: iou(f.box, w.box), default=None)
            if g is None or iou(g.box, w.box) < 0.5:
                missed += 1
                continue
            shift = max(shift, float(np.abs(g.landmarks - w.landmarks).max()))
            cos = min(cos, _min_cos(engine.embed(rgb, [g]), engine.embed(rgb, [w])))
    return same, missed, shift, cos

def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


if __name__ == "__main__":
    main()
