"""The daily-use verbs as library calls, quick enough for the fast loop: verify, detect,
statistics and the gallery archive's refusals (the CLI and HTTP shells are in the slow
test_cli_tools / test_tools_api / test_gallery_archive)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from faceatlas.domain.errors import FaceAtlasError, ImageError, NotFoundError
from faceatlas.gallery.archive import FORMAT, ArchiveError, import_gallery
from faceatlas.gallery.recognize import engine_pool
from faceatlas.gallery.stats import collection_stats
from faceatlas.gallery.verify import detect_bytes, verify_bytes
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.people import get_or_create_collection


def _photo(faces_root: Path, rel: str) -> bytes:
    return (faces_root / rel).read_bytes()


def test_verify_same_and_different_people(faces_root: Path, settings: Settings) -> None:
    pool = engine_pool(settings, 1)
    a = _photo(faces_root, "people/person_01/img1.jpg")
    same = verify_bytes(a, _photo(faces_root, "people/person_01/img2.jpg"), settings,
                        engines=pool)
    other = verify_bytes(a, _photo(faces_root, "people/person_02/img26.jpg"), settings,
                         engines=pool)
    assert same.same and not other.same
    assert same.distance < same.threshold < other.distance
    assert same.as_dict()["verified"] is True and same.as_dict()["faces_a"] == 1


def test_verify_names_the_photo_without_a_face(faces_root: Path, settings: Settings) -> None:
    blank = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (320, 240), "grey").save(blank, "PNG")
    with pytest.raises(ImageError, match="second photo") as info:
        verify_bytes(_photo(faces_root, "people/person_01/img1.jpg"), blank.getvalue(),
                     settings, engines=engine_pool(settings, 1))
    assert info.value.code == "no_face"


def test_detect_boxes_and_landmarks_inside_the_photo(faces_root: Path,
                                                      settings: Settings) -> None:
    found = detect_bytes(_photo(faces_root, "group/couple.jpg"), settings,
                         engines=engine_pool(settings, 1))
    assert len(found.faces) == 2
    for face in found.faces:
        b = face.box
        assert 0 <= b.x < b.x + b.w <= found.width and 0 <= b.y < b.y + b.h <= found.height
        assert len(face.landmarks) == 5
        assert all(b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h for x, y in face.landmarks)


def test_stats_of_a_new_collection_and_an_unknown_one(settings: Settings) -> None:
    from faceatlas.store.db import prepare_database

    prepare_database(settings)
    with session_scope(settings) as session:
        get_or_create_collection(session, "Serbia")
    (stats,) = collection_stats(settings)
    assert (stats.key, stats.people, stats.images, stats.faces, stats.index_faces) == (
        "serbia", 0, 0, 0, 0)
    with pytest.raises(NotFoundError):
        collection_stats(settings, "atlantis")


def _archive(manifest: dict[str, object], matrix: np.ndarray) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (("manifest.json", json.dumps(manifest).encode()),
                           ("embeddings.npy", _npy(matrix))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


def _npy(matrix: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, matrix)
    return buf.getvalue()


def test_import_gallery_refuses_what_it_cannot_trust(settings: Settings) -> None:
    with pytest.raises(ArchiveError, match="not a gallery archive"):
        import_gallery(settings, io.BytesIO(b"not a tar at all"))
    alien = {"format": FORMAT, "collection": {"name": "x"},
             "engines": [{"engine": "alien", "model_hash": "0" * 64}]}
    with pytest.raises(ArchiveError, match="does not have"):
        import_gallery(settings, _archive(alien, np.zeros((1, 128), np.float32)))
    with pytest.raises(FaceAtlasError, match="unknown archive format"):
        import_gallery(settings, _archive({"format": "zip-of-jpegs/9"},
                                          np.zeros((0, 128), np.float32)))


def test_verify_detect_and_stats_over_http(faces_root: Path, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from faceatlas.api import create_app

    token = "a-token-for-the-tools-routes"
    app = create_app(settings.model_copy(update={"api_tokens": [token]}), engines=1)
    a = _photo(faces_root, "people/person_01/img1.jpg")
    b = _photo(faces_root, "people/person_01/img2.jpg")
    with TestClient(app) as client:
        assert client.post("/api/v1/verify", files={"first": a, "second": b}).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        answer = client.post("/api/v1/verify", headers=auth,
                             files={"first": ("a.jpg", a), "second": ("b.jpg", b)})
        assert answer.status_code == 200 and answer.json()["verified"] is True, answer.text
        found = client.post("/api/v1/detect", headers=auth,
                            files={"image": ("c.jpg", _photo(faces_root, "group/couple.jpg"))})
        assert found.status_code == 200 and len(found.json()["faces"]) == 2, found.text
        assert client.get("/api/v1/stats", headers=auth).json() == []


def test_ensemble_engine_embeds_with_both_models(faces_root: Path) -> None:
    from faceatlas.faces.engines import EngineConfig, get_engine
    from faceatlas.faces.image import decode

    engine = get_engine(EngineConfig("ensemble"))
    rgb = decode(_photo(faces_root, "people/person_01/img1.jpg")).rgb
    faces = engine.detect(rgb)
    vectors = engine.embed(rgb, faces)
    assert len(faces) == 1 and vectors.shape == (1, 256)
    sface, dlib = vectors[0, :128], vectors[0, 128:]
    assert abs(float(np.linalg.norm(sface)) - 1.0) < 1e-3  # SFace: unit length
    assert abs(float(np.linalg.norm(dlib)) - 1.0) > 1e-2  # dlib: its raw descriptor
