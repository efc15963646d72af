"""SFace on ONNX Runtime (the default) against OpenCV's FaceRecognizerSF (the path before) on
real photos: the same embeddings, one face at a time or many at once, whatever the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceatlas.domain.errors import ConfigError
from faceatlas.faces.engines.sface import SFaceEngine, align
from faceatlas.faces.image import decode

PHOTOS = ["group/obama_and_biden.jpg", "group/kit_with_rose.jpg",
          "group/selfie-many-people.jpg", "people/barack_obama/obama.jpg"]


@pytest.fixture(scope="module")
def photos(faces_root: Path) -> list[np.ndarray]:
    out = []
    for rel in PHOTOS:
        path = faces_root / rel
        if not path.is_file():  # the manifest names every photo; a renamed one fails loudly
            raise FileNotFoundError(path)
        out.append(decode(path.read_bytes()).rgb)
    return out


def test_runtimes_give_the_same_embeddings(photos: list[np.ndarray]) -> None:
    ort_engine, cv_engine = SFaceEngine(runtime="onnxruntime"), SFaceEngine(runtime="opencv")
    faces = 0
    for rgb in photos:
        found = cv_engine.detect(rgb)
        assert found
        faces += len(found)
        batched = ort_engine.embed(rgb, found)  # every face of the photo in one call
        before = cv_engine.embed(rgb, found)  # OpenCV, one face at a time (the old path)
        single = np.vstack([ort_engine.embed(rgb, [f]) for f in found])
        assert batched.shape == before.shape == (len(found), 128)
        assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
        assert (batched * before).sum(axis=1).min() >= 0.9999
        assert (batched * single).sum(axis=1).min() >= 0.9999
    assert faces >= 8  # the group photos: several faces per call


def test_crops_of_many_photos_embed_together(photos: list[np.ndarray]) -> None:
    """``embed_crops`` (video, many frames): one call for faces of several photos."""
    engine = SFaceEngine()
    crops, each = [], []
    for rgb in photos:
        found = engine.detect(rgb)
        crops += [align(rgb, f.landmarks) for f in found]
        each.append(engine.embed(rgb, found))
    together = engine.embed_crops(crops)
    assert (together * np.vstack(each)).sum(axis=1).min() >= 0.9999
    assert engine.embed_crops([]).shape == (0, 128)


def test_unknown_runtime_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="runtime"):
        SFaceEngine(runtime="tensorflow")
