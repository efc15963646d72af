"""Face engines: the protocol, the dlib implementation, and the choice of engine.

dlib's HOG detector (or the CNN/MMOD detector by setting), 5-point landmarks and the 128-d
ResNet embedding, with weights shipped by the ``face_recognition_models`` package: nothing is
downloaded at run time. Models load lazily, once per process.

``get_engine`` is the one place that turns settings into an engine: ``dlib``, ``sface``
(YuNet + SFace, faces/sface.py) or ``ensemble`` (YuNet detection, both embeddings).
Every engine has a ``name`` and a ``model_hash``; stored faces and indexes carry both, so
embeddings of different models are never compared.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from faceatlas.settings import Settings

EMBEDDING_DIM = 128
ENGINES = ("dlib", "sface", "ensemble")
#: SHA-256 prefix of dlib_face_recognition_resnet_model_v1.dat (face_recognition_models 0.3.0)
DLIB_MODEL_HASH = "55533b28a958"


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
    model_hash: str

    def warm(self) -> None: ...

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray: ...

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray: ...


class DlibEngine:
    """HOG/CNN detection on a downscaled copy; landmarks and embeddings at full resolution."""

    name = "dlib"
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

    def shape(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Any:
        """dlib's 5 landmarks inside a box found by another detector (the ensemble's)."""
        import dlib

        _, predictor, _ = self._load()
        x, y, w, h = box
        return predictor(rgb, dlib.rectangle(x, y, x + w, y + h))

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


@dataclass(frozen=True)
class EngineConfig:
    """Everything that makes two engine instances different (the cache key)."""

    name: str = "sface"
    detector: str = "hog"  # dlib's detector
    max_side: int = 1024  # dlib detection size
    upsample: int = 1
    sface_max_side: int = 640
    sface_score: float = 0.7
    models: str | None = None  # sface model folder override

    @classmethod
    def from_settings(cls, s: Settings, upsample: int | None = None) -> EngineConfig:
        return cls(s.engine, s.detector, s.detect_max_side,
                   s.upsample if upsample is None else upsample, s.sface_detect_max_side,
                   s.sface_score_threshold,
                   None if s.sface_model_dir is None else str(s.sface_model_dir))


class EnsembleEngine:
    """YuNet finds the faces; each face is embedded by SFace and by dlib (dlib's landmarks
    inside YuNet's box). The vector is the two concatenated (256-d): SFace's unit vector
    first, so index and recognition use ``[:128]`` while curation checks both halves."""

    name = "ensemble"

    def __init__(self, sface: Any, dlib_engine: DlibEngine) -> None:
        self.sface, self.dlib = sface, dlib_engine
        self.model_hash = f"{sface.model_hash}+{dlib_engine.model_hash}"

    def warm(self) -> None:
        self.sface.warm()
        self.dlib.warm()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        faces = self.sface.detect(rgb)
        for f in faces:
            f.shape = self.dlib.shape(rgb, f.box)
        return faces

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, 2 * EMBEDDING_DIM), dtype=np.float32)
        return np.hstack([self.sface.embed(rgb, faces), self.dlib.embed(rgb, faces)])

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray:
        return self.sface.chip(rgb, face, size)


def create_engine(cfg: EngineConfig) -> FaceEngine:
    """A new engine instance (its own copy of the models once loaded)."""
    from pathlib import Path

    if cfg.name == "dlib":
        return DlibEngine(cfg.detector, cfg.max_side, cfg.upsample)
    from faceatlas.faces.sface import SFaceEngine

    models = None if cfg.models is None else Path(cfg.models)
    sface = SFaceEngine(cfg.sface_max_side, cfg.sface_score, models)
    if cfg.name == "sface":
        return sface
    if cfg.name == "ensemble":
        return EnsembleEngine(sface, DlibEngine(cfg.detector, cfg.max_side, cfg.upsample))
    from faceatlas.domain.errors import ConfigError

    raise ConfigError(f"unknown face engine {cfg.name!r}; choose one of {', '.join(ENGINES)}")


def engine_hash(name: str) -> str:
    """The model hash an engine of this name tags its embeddings with (no model loaded)."""
    from faceatlas.faces.sface import MODEL_HASH

    return {"dlib": DLIB_MODEL_HASH, "sface": MODEL_HASH,
            "ensemble": f"{MODEL_HASH}+{DLIB_MODEL_HASH}"}[name]


def index_dim(name: str) -> int:
    return 2 * EMBEDDING_DIM if name == "ensemble" else EMBEDDING_DIM


_engines: dict[EngineConfig, FaceEngine] = {}
_engines_lock = threading.Lock()


def get_engine(
    config: Settings | EngineConfig | str = "hog", max_side: int = 1024, upsample: int = 1
) -> Any:
    """The configured engine: one instance (one copy of the models) per process and
    configuration, created on first use, models loaded lazily. Pass the Settings (or an
    EngineConfig); the old form ``get_engine(detector, max_side, upsample)`` means dlib."""
    if isinstance(config, EngineConfig):
        cfg = config
    elif isinstance(config, str):
        cfg = EngineConfig("dlib", config, max_side, upsample)
    else:
        cfg = EngineConfig.from_settings(config)
    with _engines_lock:
        engine = _engines.get(cfg)
        if engine is None:
            engine = _engines[cfg] = create_engine(cfg)
    return engine
