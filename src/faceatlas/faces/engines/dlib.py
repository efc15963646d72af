"""The ``dlib`` engine: HOG detector (or the CNN/MMOD detector by setting), 5-point landmarks
and the 128-d ResNet embedding.

Weights ship with the ``face_recognition_models`` package: nothing is downloaded at run time.
Models load lazily, once per engine instance.

dlib embeds and aligns a face from its own landmark object (``full_object_detection``), not
from the 5 points a ``DetectedFace`` carries. The engine keeps that object privately, keyed by
the face (weakly: it goes with the face); a face dlib did not detect (the ensemble's, found by
YuNet) gets one predicted inside its box. The map is process-wide because the predictor is the
same model everywhere: a face found by one dlib instance (analysis' small-image retry, with
more upsampling) is embedded by another.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from faceatlas.domain.faces import DLIB_ENGINE, DLIB_MODEL_HASH, DetectedFace
from faceatlas.faces.engines.base import EngineConfig, EngineSpec

EMBEDDING_DIM = 128

#: face → dlib's landmark object of it (detection's, or predicted inside the box)
_shapes: weakref.WeakKeyDictionary[DetectedFace, Any] = weakref.WeakKeyDictionary()
_shapes_lock = threading.Lock()


class DlibEngine:
    """HOG/CNN detection on a downscaled copy; landmarks and embeddings at full resolution."""

    name = DLIB_ENGINE
    model_hash = DLIB_MODEL_HASH

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

    def warm(self) -> None:
        """Load the models now (else on first use)."""
        self._load()

    def prepare(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> None:
        """Predict dlib's landmarks inside the boxes of faces another detector found (the
        ensemble's), so ``embed`` and ``chip`` can use them."""
        for face in faces:
            self._shape(rgb, face)

    def _shape(self, rgb: np.ndarray, face: DetectedFace) -> Any:
        with _shapes_lock:
            shape = _shapes.get(face)
        if shape is None:
            import dlib

            _, predictor, _ = self._load()
            x, y, w, h = face.box
            shape = predictor(rgb, dlib.rectangle(x, y, x + w, y + h))
            with _shapes_lock:
                _shapes[face] = shape
        return shape

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
            # landmarks inside the unclamped box: a face at the edge keeps its true shape
            full = dlib.rectangle(int(left), int(top), int(right), int(bottom))
            shape = predictor(rgb, full)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            x0, y0 = max(0, int(left)), max(0, int(top))
            x1, y1 = min(w, int(right)), min(h, int(bottom))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            face = DetectedFace((x0, y0, x1 - x0, y1 - y0), score, pts)
            with _shapes_lock:
                _shapes[face] = shape
            faces.append(face)
        return faces

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        import dlib

        _, _, encoder = self._load()
        shapes = dlib.full_object_detections()
        for f in faces:
            shapes.append(self._shape(rgb, f))
        vectors = encoder.compute_face_descriptor(rgb, shapes)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray:
        """The face aligned by its landmarks (eyes level, fixed scale): size×size RGB."""
        import dlib

        return np.asarray(dlib.get_face_chip(rgb, self._shape(rgb, face), size=size,
                                             padding=0.25))


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def build(cfg: EngineConfig) -> DlibEngine:
    return DlibEngine(cfg.detector, cfg.max_side, cfg.upsample)


SPEC = EngineSpec(DLIB_ENGINE, "dlib", DLIB_MODEL_HASH, EMBEDDING_DIM, build,
                  unit_vectors=False, opencv_threads=False, landmarks="dlib")
