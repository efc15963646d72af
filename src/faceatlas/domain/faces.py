"""The face as every engine reports it, and the engine tags the schema needs.

A ``DetectedFace`` is engine-neutral: a box, five landmarks and a score. Whatever an engine
needs beyond that (dlib's landmark object) it keeps to itself, keyed by the face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: the dlib engine's name, and the SHA-256 prefix of dlib_face_recognition_resnet_model_v1.dat
#: (face_recognition_models 0.3.0): what its embeddings depend on
DLIB_ENGINE = "dlib"
DLIB_MODEL_HASH = "55533b28a958"

#: the tag of face rows and index files written before engine tags existed: dlib's vectors
LEGACY_ENGINE = DLIB_ENGINE
LEGACY_MODEL_HASH = DLIB_MODEL_HASH


# eq=False: a face is an identity (hashable, weak-referenceable), so an engine can keep its
# private data about a face in a WeakKeyDictionary that forgets the face with it
@dataclass(eq=False)
class DetectedFace:
    """A face in full-resolution image coordinates."""

    box: tuple[int, int, int, int]  # x, y, w, h (clamped to the image)
    score: float
    landmarks: np.ndarray = field(repr=False)  # 5×2, full resolution, in the engine's order

    @property
    def size(self) -> int:
        return min(self.box[2], self.box[3])
