"""Verbs users know from deepface / face_recognition: detect the faces of a photo, and verify
whether two photos show the same person.

Both go through the same engine pool as recognition (``recognize.engine_pool``): a photo is
decoded only once an engine is held, so the server's admission control (bounded queue, 503)
and memory bound cover them too; in one CLI process the models load once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceatlas.domain.errors import ImageError
from faceatlas.gallery.recognize import Box, EnginePool, analyse_bytes, engine_pool
from faceatlas.settings import Settings


@dataclass
class FoundFace:
    box: Box
    score: float
    landmarks: list[tuple[float, float]]  # 5 points, full-image pixels

    def as_dict(self, width: int, height: int) -> dict[str, object]:
        return {"box": {"x": self.box.x, "y": self.box.y, "w": self.box.w, "h": self.box.h},
                "face_coordinates": self.box.percent(width, height),
                "score": round(self.score, 4),
                "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks]}


@dataclass
class Detection:
    width: int
    height: int
    faces: list[FoundFace] = field(default_factory=list)
    #: one embedding per face (same order), for verification
    vectors: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height,
                "faces": [f.as_dict(self.width, self.height) for f in self.faces]}


@dataclass
class Verification:
    same: bool
    distance: float
    threshold: float
    a: Detection
    b: Detection
    face_a: int  # index of the face used (the largest)
    face_b: int
    engine: str = ""  # name/model hash of the engine that compared them

    def as_dict(self) -> dict[str, object]:
        return {"verified": self.same, "distance": round(self.distance, 4),
                "threshold": self.threshold, "engine": self.engine,
                "faces_a": len(self.a.faces), "faces_b": len(self.b.faces),
                "face_a": self.a.faces[self.face_a].as_dict(self.a.width, self.a.height),
                "face_b": self.b.faces[self.face_b].as_dict(self.b.width, self.b.height)}


def detect_bytes(data: bytes, settings: Settings, *, engines: EnginePool | None = None,
                 embed: bool = False) -> Detection:
    """Every face of an encoded photo: box, detector score and 5 landmarks, in the full
    image's pixels. ImageError for unusable bytes, BusyError when the engines' queue is full."""
    engines = engines or engine_pool(settings)
    img, found, vectors = analyse_bytes(data, settings, engines, embed=embed)
    width, height = img.full_size
    sx, sy = img.full_factors
    faces = [FoundFace(Box(*img.full_box(f.box)), float(f.score),
                       [(float(x) * sx, float(y) * sy) for x, y in f.landmarks])
             for f in found]
    return Detection(width, height, faces, vectors)


def verify_bytes(a: bytes, b: bytes, settings: Settings, *, engines: EnginePool | None = None,
                 threshold: float | None = None) -> Verification:
    """Do two photos show the same person? The largest face of each is compared; the answer
    is yes when their distance is within ``threshold`` (default: the engine's recognise
    threshold). ImageError
    (code ``no_face``) names the photo without a face."""
    engines = engines or engine_pool(settings)
    # the engine's own recognise threshold and metric (L2 on its vectors, as the index)
    name = engines.config.name
    threshold = settings.thresholds(name).recognize if threshold is None else threshold
    found = []
    for label, data in (("first", a), ("second", b)):
        det = detect_bytes(data, settings, engines=engines, embed=True)
        if not det.faces:
            err = ImageError(f"no face found in the {label} photo", code="no_face")
            err.client_safe = True  # type: ignore[attr-defined]
            raise err
        found.append(det)
    da, db = found
    ia, ib = (max(range(len(d.faces)), key=lambda i, d=d: d.faces[i].box.w * d.faces[i].box.h)
              for d in (da, db))
    assert da.vectors is not None and db.vectors is not None
    distance = float(np.linalg.norm(da.vectors[ia] - db.vectors[ib]))
    return Verification(distance <= threshold, distance, threshold, da, db, ia, ib, name)
