"""The ``ensemble`` engine: YuNet finds the faces; each face is embedded by SFace and by dlib
(dlib's landmarks predicted inside YuNet's box).

The vector is the two concatenated (256-d), SFace's unit vector first: the index and
recognition use the SFace part (``SPEC.search``) while curation checks both (``SPEC.parts``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceatlas.domain.faces import DetectedFace
from faceatlas.faces.engines import dlib, sface
from faceatlas.faces.engines.base import EngineConfig, EngineSpec

PARTS = (sface.SPEC, dlib.SPEC)
MODEL_HASH = "+".join(p.model_hash for p in PARTS)


class EnsembleEngine:
    name = "ensemble"
    model_hash = MODEL_HASH

    def __init__(self, sface_engine: sface.SFaceEngine, dlib_engine: dlib.DlibEngine) -> None:
        self.sface, self.dlib = sface_engine, dlib_engine

    def warm(self) -> None:
        self.sface.warm()
        self.dlib.warm()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        faces = self.sface.detect(rgb)
        self.dlib.prepare(rgb, faces)
        return faces

    def embed(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, SPEC.dim), dtype=np.float32)
        return np.hstack([self.sface.embed(rgb, faces), self.dlib.embed(rgb, faces)])

    def chip(self, rgb: np.ndarray, face: DetectedFace, size: int = 150) -> np.ndarray:
        return self.sface.chip(rgb, face, size)


def build(cfg: EngineConfig) -> EnsembleEngine:
    return EnsembleEngine(sface.build(cfg), dlib.build(cfg))


SPEC = EngineSpec("ensemble", "ensemble", MODEL_HASH, sum(p.dim for p in PARTS), build,
                  unit_vectors=False, opencv_threads=True,
                  landmarks=PARTS[0].landmarks, parts=PARTS)
