"""What every face engine is (the protocol), what it declares about itself (its spec), and
what makes two engine instances different (their config, the registry's cache key)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from faceatlas.domain.faces import DLIB_ENGINE, DetectedFace
from faceatlas.settings import Settings, default

#: how an engine orders its 5 landmarks: dlib's is two corners of each eye then the nose; the
#: common one (YuNet/SFace, RetinaFace) is right eye, left eye, nose, mouth corners
LandmarkLayout = Literal["dlib", "common"]


class FaceEngine(Protocol):
    name: str
    model_hash: str

    def warm(self) -> None: ...

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray: ...

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray: ...


@dataclass(frozen=True)
class EngineConfig:
    """Everything that makes two engine instances different (the cache key)."""

    name: str = default("engine")
    detector: str = default("detector")  # dlib's detector
    max_side: int = default("detect_max_side")  # dlib detection size
    upsample: int = default("upsample")
    sface_max_side: int = default("sface_detect_max_side")
    sface_score: float = default("sface_score_threshold")
    models: str | None = None  # sface model folder override (FACEATLAS_SFACE_MODEL_DIR)
    sface_runtime: str = default("sface_runtime")  # onnxruntime or opencv: equal embeddings

    @classmethod
    def from_settings(cls, s: Settings, upsample: int | None = None) -> EngineConfig:
        return cls(s.engine, s.detector, s.detect_max_side,
                   s.upsample if upsample is None else upsample, s.sface_detect_max_side,
                   s.sface_score_threshold,
                   None if s.sface_model_dir is None else str(s.sface_model_dir),
                   s.sface_runtime)

    def small_image_retry(self) -> EngineConfig:
        """The detector of the second try on a small photo with no face found: dlib with one
        more upsampling pass, whatever the engine (it finds faces under the usual minimum)."""
        return EngineConfig(DLIB_ENGINE, self.detector, self.max_side, self.upsample + 1)


@dataclass(frozen=True)
class EngineSpec:
    """What the rest of faceatlas knows of an engine without loading its models: the callers
    ask this instead of testing engine names, so a new engine touches only this package."""

    name: str
    label: str  # as reports name it
    model_hash: str  # what its embeddings depend on: tagged on stored faces and indexes
    dim: int  # length of one stored embedding
    build: Callable[[EngineConfig], FaceEngine] = field(repr=False, compare=False)
    #: embeddings are unit length (distances then map to cosine similarities)
    unit_vectors: bool = False
    #: runs OpenCV's DNN: a pool of engines turns OpenCV's own thread pool off
    opencv_threads: bool = False
    landmarks: LandmarkLayout = "common"
    #: a composite engine's embedding is its parts' concatenated, in this order; the first
    #: part is the one indexed and searched, every part checks curation
    parts: tuple[EngineSpec, ...] = ()

    @property
    def search(self) -> EngineSpec:
        """The engine whose vectors an index holds and recognition computes."""
        return self.parts[0] if self.parts else self

    def search_part(self, vectors: np.ndarray) -> np.ndarray:
        """The columns of stored vectors (one or a matrix) that are searched and compared."""
        return vectors[..., : self.search.dim] if self.parts else vectors

    def search_tag(self, model_hash: str) -> tuple[str, str]:
        """The (engine, model hash) tag of ``search_part`` of vectors tagged (name, model_hash)
        (a composite's hash joins its parts' with ``+``)."""
        if not self.parts:
            return self.name, model_hash
        return self.search.name, model_hash.split("+")[0]

    def part_slices(self) -> list[tuple[EngineSpec, slice]]:
        """Each part and its columns in a stored vector (an engine alone: itself, all)."""
        if not self.parts:
            return [(self, slice(0, self.dim))]
        out, start = [], 0
        for part in self.parts:
            out.append((part, slice(start, start + part.dim)))
            start += part.dim
        return out
