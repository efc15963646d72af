"""Face engines: the protocol and the dlib implementation.

dlib's HOG detector (or the CNN/MMOD detector by setting), 5-point landmarks and the 128-d
ResNet embedding, with weights shipped by the ``face_recognition_models`` package: nothing is
downloaded at run time. Models load lazily, once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

EMBEDDING_DIM = 128


@dataclass
class DetectedFace:
    """A face in full-resolution image coordinates."""

    box: tuple[int, int, int, int]  # x, y, w, h (clamped to the image)
    score: float
    landmarks: np.ndarray = field(repr=False)  # 5×2, full resolution
    shape: Any = field(default=None, repr=False)  # engine-private (dlib full_object_detection)

    @property
    def size(self) -> int:
        return min(self.box[2], self.box[3])


class FaceEngine(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray: ...

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray: ...


class DlibEngine:
    """HOG/CNN detection on a downscaled copy; landmarks and embeddings at full resolution."""

    name = "dlib"

    def __init__(self, detector: str = "hog", max_side: int = 1024, upsample: int = 1) -> None:
        self.detector_kind = detector
        self.max_side = max_side
        self.upsample = upsample
        self._models: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any, Any]:
        if self._models is None:
            with self._lock:
                if self._models is None:
                    import dlib
                    import face_recognition_models as frm

                    if self.detector_kind == "cnn":
                        detector = dlib.cnn_face_detection_model_v1(
                            frm.cnn_face_detector_model_location()
                        )
                    else:
                        detector = dlib.get_frontal_face_detector()
                    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
                    encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
                    self._models = (detector, predictor, encoder)
        return self._models

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        import dlib

        detector, predictor, _ = self._load()
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb if scale == 1.0 else _resize(rgb, scale)
        found: list[tuple[Any, float]] = []
        if self.detector_kind == "cnn":
            for d in detector(small, self.upsample):
                found.append((d.rect, float(d.confidence)))
        else:
            rects, scores, _ = detector.run(small, self.upsample, 0.0)
            found = list(zip(rects, (float(s) for s in scores), strict=True))
        faces = []
        for rect, score in found:
            left, top = rect.left() / scale, rect.top() / scale
            right, bottom = rect.right() / scale, rect.bottom() / scale
            full = dlib.rectangle(int(left), int(top), int(right), int(bottom))
            shape = predictor(rgb, full)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            x0, y0 = max(0, int(left)), max(0, int(top))
            x1, y1 = min(w, int(right)), min(h, int(bottom))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            faces.append(DetectedFace((x0, y0, x1 - x0, y1 - y0), score, pts, shape))
        return faces

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        import dlib

        _, _, encoder = self._load()
        shapes = dlib.full_object_detections()
        for f in faces:
            shapes.append(f.shape)
        vectors = encoder.compute_face_descriptor(rgb, shapes)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)


    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray:
        """The face aligned by its landmarks (eyes level, fixed scale): size×size RGB."""
        import dlib

        return np.asarray(dlib.get_face_chip(rgb, face.shape, size=size, padding=0.25))


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


_engines: dict[tuple[str, int, int], DlibEngine] = {}


def get_engine(detector: str = "hog", max_side: int = 1024, upsample: int = 1) -> DlibEngine:
    """One engine (and one copy of the models) per process and configuration."""
    key = (detector, max_side, upsample)
    if key not in _engines:
        _engines[key] = DlibEngine(detector, max_side, upsample)
    return _engines[key]
