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


@pytest.mark.slow  # two detectors loaded, ~0.7 s
def test_yunet_on_onnxruntime_finds_what_opencv_finds(photos: list[np.ndarray]) -> None:
    """The detector redone on ORT (``yunet``: padding, decoding, suppression) against
    ``cv2.FaceDetectorYN``: the same faces in the same order, boxes equal, landmarks and
    scores to float rounding; group photos exercise the suppression."""
    ort_engine, cv_engine = SFaceEngine(runtime="onnxruntime"), SFaceEngine(runtime="opencv")
    faces = 0
    for rgb in photos:
        got, want = ort_engine.detect(rgb), cv_engine.detect(rgb)
        assert [f.box for f in got] == [f.box for f in want]
        for g, w in zip(got, want, strict=True):
            assert np.abs(g.landmarks - w.landmarks).max() < 0.01
            assert abs(g.score - w.score) < 1e-4
        faces += len(got)
    assert faces >= 8


@pytest.mark.slow  # two detectors loaded, ~0.7 s
def test_yunet_on_onnxruntime_finds_a_face_near_the_minimum(photos: list[np.ndarray]) -> None:
    """A face of ~75 px (just over ``min_face_px``) in a 1600 px photo: detection runs on a
    640 px copy, where it is ~30 px; both detectors still find it, at the same place."""
    import cv2

    rgb = photos[3]  # one face
    face = SFaceEngine(runtime="opencv").detect(rgb)[0]
    scale = 75 / face.size
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1600, 3), 128, dtype=np.uint8)
    canvas[500:500 + small.shape[0], 700:700 + small.shape[1]] = small
    got = SFaceEngine(runtime="onnxruntime").detect(canvas)
    want = SFaceEngine(runtime="opencv").detect(canvas)
    assert len(want) == 1 and 65 <= want[0].size <= 85
    assert [f.box for f in got] == [f.box for f in want]
    assert np.abs(got[0].landmarks - want[0].landmarks).max() < 0.01
