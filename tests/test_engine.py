"""The dlib engine on real faces: detection counts and identity distances."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from faceatlas.faces.analyse import AnalyseParams, FacePool, ImageAnalysis
from faceatlas.settings import Settings


@pytest.fixture(scope="session")
def analysed(faces_root: Path, manifest: list[dict[str, str]]) -> dict[str, ImageAnalysis]:
    """Every test photo analysed once (quality gates off, so every face is embedded)."""
    params = AnalyseParams(min_face_px=1, blur_threshold=0.0, engine="dlib")
    items = [(i, str(faces_root / row["path"])) for i, row in enumerate(manifest)]
    with FacePool(params, 2) as pool:
        by_key = {a.key: a for a in pool.analyse(items)}
    return {manifest[k]["path"]: a for k, a in by_key.items()}


@pytest.mark.slow
def test_finds_the_labelled_number_of_faces(
    analysed: dict[str, ImageAnalysis], manifest: list[dict[str, str]]
) -> None:
    wrong = {
        row["path"]: (int(row["faces"]), len(analysed[row["path"]].faces))
        for row in manifest
        if len(analysed[row["path"]].faces) != int(row["faces"])
    }
    assert wrong == {}
    groups = [r for r in manifest if r["path"].startswith("group/")]
    assert groups and all(int(r["faces"]) >= 2 for r in groups)


@pytest.mark.slow  # analyses every test photo with dlib: ~25 s on a 2-core machine
def test_same_identity_within_and_different_outside_accept_distance(
    analysed: dict[str, ImageAnalysis], manifest: list[dict[str, str]]
) -> None:
    accept = Settings().thresholds("dlib").accept
    labelled = [
        (r["identity"], analysed[r["path"]].faces[0].embedding)
        for r in manifest
        if r["identity"] and int(r["faces"]) == 1 and analysed[r["path"]].faces
    ]
    right = total = 0
    errors = []
    for (id_a, va), (id_b, vb) in itertools.combinations(labelled, 2):
        d = float(np.linalg.norm(va - vb))
        ok = d <= accept if id_a == id_b else d > accept
        right += ok
        total += 1
        if not ok:
            errors.append((id_a, id_b, round(d, 3)))
    accuracy = right / total
    print(f"pair accuracy at {accept}: {accuracy:.4%} of {total} pairs; errors: {errors[:10]}")
    assert total > 3000
    assert accuracy >= 0.99


def test_embeddings_are_128d_and_finite(faces_root: Path) -> None:
    """dlib's vectors on a portrait and a group photo (every face embedded, none NaN)."""
    from faceatlas.faces.engines import EngineConfig, get_engine
    from faceatlas.faces.image import decode

    # dlib: HOG detector, ResNet vectors
    engine = get_engine(EngineConfig("dlib", "hog", max_side=800, upsample=1))
    for path, expected in (("people/person_01/img5.jpg", 1), ("group/couple.jpg", 2)):
        rgb = decode((faces_root / path).read_bytes()).rgb
        faces = engine.detect(rgb)
        assert len(faces) == expected, path
        vectors = engine.embed(rgb, faces)
        assert vectors.shape == (expected, 128) and np.isfinite(vectors).all()


@pytest.mark.slow
def test_cnn_detector_by_setting(faces_root: Path) -> None:
    """The MMOD CNN detector (weights from face_recognition_models) behind the same protocol."""
    from faceatlas.faces.engines import EngineConfig, get_engine
    from faceatlas.faces.image import decode

    engine = get_engine(EngineConfig("dlib", "cnn", max_side=500, upsample=0))
    for path, expected in (("people/person_01/img5.jpg", 1), ("group/couple.jpg", 2)):
        rgb = decode((faces_root / path).read_bytes()).rgb
        faces = engine.detect(rgb)
        assert len(faces) == expected, path
        vectors = engine.embed(rgb, faces)
        assert vectors.shape == (expected, 128)
