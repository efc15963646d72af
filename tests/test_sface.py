"""The sface engine (YuNet + SFace) on real faces; model integrity; engine tags on indexes."""

from __future__ import annotations

import io
import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from faceatlas.cli.base import cli_hint
from faceatlas.domain.errors import ConfigError, EngineMismatchError
from faceatlas.domain.faces import DLIB_MODEL_HASH
from faceatlas.faces.analyse import AnalyseParams, FacePool, ImageAnalysis
from faceatlas.faces.engines import get_engine
from faceatlas.faces.engines.sface import MODEL_HASH, RECOGNIZER_FILE, SFaceEngine, model_dir
from faceatlas.faces.image import decode
from faceatlas.faces.quality import iou
from faceatlas.gallery.index import ExactIndex, IndexStore
from faceatlas.settings import Settings
from tests.photos import expected_faces


@pytest.fixture(scope="session")
def sface_analysed(faces_root: Path, manifest: list[dict[str, str]]) -> dict[str, ImageAnalysis]:
    """Every test photo analysed once by sface (quality gates off: every face embedded)."""
    params = AnalyseParams(min_face_px=1, blur_threshold=0.0, engine="sface")
    items = [(i, str(faces_root / row["path"])) for i, row in enumerate(manifest)]
    with FacePool(params, 1) as pool:
        by_key = {a.key: a for a in pool.analyse(items)}
    return {manifest[k]["path"]: a for k, a in by_key.items()}


@pytest.mark.slow  # the session fixture analyses every test photo
def test_finds_every_labelled_face(
    sface_analysed: dict[str, ImageAnalysis], manifest: list[dict[str, str]]
) -> None:
    """Single-face photos: the labelled face is found and is the surest one (YuNet also finds
    small faces in the background). Group photos: exactly the faces a person would count
    (tests/photos.py says where that differs from the manifest's HOG counts)."""
    for row in manifest:
        a = sface_analysed[row["path"]]
        assert a.engine == "sface" and a.model_hash == MODEL_HASH
        if row["path"].startswith("people/"):
            assert a.faces, row["path"]
            best = max(a.faces, key=lambda f: f.box[2] * f.box[3])
            assert best.score >= 0.9, row["path"]
    groups = {r["path"]: (expected_faces(r, "sface"), len(sface_analysed[r["path"]].faces))
              for r in manifest if r["path"].startswith("group/")}
    assert len(groups) >= 5
    assert {p: found for p, (_, found) in groups.items()} == {
        p: want for p, (want, _) in groups.items()}
    # the crowded selfie: HOG finds 4 faces; YuNet finds those and the two at the border
    assert groups["group/selfie-many-people.jpg"][1] == 6 > 4


@pytest.mark.slow  # the session fixture analyses every test photo
def test_pair_accuracy_on_the_shared_photos(
    sface_analysed: dict[str, ImageAnalysis], manifest: list[dict[str, str]]
) -> None:
    """At sface's own accept threshold, same-identity pairs within, others outside (dlib's
    test_engine demands ≥ 99%; sface must do at least as well)."""
    accept = Settings().thresholds("sface").accept
    labelled = []
    for r in manifest:
        a = sface_analysed[r["path"]]
        if r["identity"] and int(r["faces"]) == 1 and a.faces:
            main = max(a.faces, key=lambda f: f.box[2] * f.box[3])
            labelled.append((r["identity"], main.embedding))
    right = total = 0
    for (id_a, va), (id_b, vb) in itertools.combinations(labelled, 2):
        d = float(np.linalg.norm(va - vb))
        right += (d <= accept) if id_a == id_b else (d > accept)
        total += 1
    assert total > 3000
    assert right / total >= 0.995


@pytest.mark.slow  # the session fixture analyses every test photo
def test_embeddings_are_unit_128d(sface_analysed: dict[str, ImageAnalysis]) -> None:
    for a in sface_analysed.values():
        for f in a.faces:
            assert f.embedding is not None and f.embedding.shape == (128,)
            assert abs(float(np.linalg.norm(f.embedding)) - 1.0) < 1e-4


def test_boxes_and_landmarks_are_in_full_resolution(faces_root: Path) -> None:
    """A 2400 px photo is detected on a 640 px copy; the box and eyes map back to the original:
    about the same box at 640 px as at 1280 px."""
    rgb = decode((faces_root / "people/person_04/img54.jpg").read_bytes()).rgb
    engine = SFaceEngine(max_side=640)
    face = max(engine.detect(rgb), key=lambda f: f.box[2] * f.box[3])
    x, y, w, h = face.box
    assert max(rgb.shape[:2]) > 2000 and w > 400  # full-resolution pixels, not 640 px ones
    eyes = face.landmarks[:2]
    assert ((eyes[:, 0] > x) & (eyes[:, 0] < x + w) & (eyes[:, 1] > y) & (eyes[:, 1] < y + h)).all()
    big = SFaceEngine(max_side=1280)
    ref = max(big.detect(rgb), key=lambda f: f.box[2] * f.box[3])
    assert np.abs(np.array(face.box) - np.array(ref.box)).max() < 0.08 * w


def test_large_photos_are_analysed_from_a_reduced_decode(tmp_path: Path,
                                                         faces_root: Path) -> None:
    """A 2400 px JPEG is decoded at 1/2 (libjpeg's scaled decode): the same face, its box and
    landmarks in the full image's pixels, its crop from the reduced pixels (half the size),
    and an embedding close to the whole decode's. A face that would keep under 112 px in a
    reduced decode (a 150 px face in a 2600 px photo, at 1/4) gets its quality, crop and
    embedding from the full pixels instead."""
    from PIL import Image

    from faceatlas.faces.analyse import REDUCED_FACE_MIN, analyse_bytes

    params = AnalyseParams(engine="sface")
    whole = replace(params, reduced_decode=False)
    data = (faces_root / "people/person_04/img54.jpg").read_bytes()
    a, b = analyse_bytes(0, data, params), analyse_bytes(0, data, whole)
    assert (a.width, a.height) == (b.width, b.height) and max(a.width, a.height) > 2000
    fa = max(a.faces, key=lambda f: f.size)
    fb = max(b.faces, key=lambda f: f.size)
    assert fa.size > 400 and iou(fa.box, fb.box) > 0.95 and fa.reason is fb.reason is None
    assert np.abs(np.array(fa.landmarks) - np.array(fb.landmarks)).max() < 0.02 * fa.size
    assert fa.embedding is not None and fb.embedding is not None
    assert float(fa.embedding @ fb.embedding) > 0.95
    crop_a = Image.open(io.BytesIO(fa.crop_jpeg or b""))
    crop_b = Image.open(io.BytesIO(fb.crop_jpeg or b""))
    assert abs(crop_a.width * 2 - crop_b.width) <= 2  # the reduced pixels' crop

    canvas = Image.new("RGB", (2600, 2600), (128, 120, 110))
    x, y, w, h = fb.box
    face = Image.open(faces_root / "people/person_04/img54.jpg").crop((x, y, x + w, y + h))
    canvas.paste(face.resize((150, round(150 * h / w))), (1200, 1200))
    canvas.save(tmp_path / "small-face.jpg", quality=95)
    data = (tmp_path / "small-face.jpg").read_bytes()
    small = analyse_bytes(0, data, params)
    (f,) = [f for f in small.faces if f.reason is None]
    assert 100 < f.size < 4 * REDUCED_FACE_MIN and 1150 < f.box[0] < 1250
    crop = Image.open(io.BytesIO(f.crop_jpeg or b""))
    assert crop.width >= f.box[2]  # the full pixels' crop (1/4 would be ~50 px)
    ref = next(g for g in analyse_bytes(0, data, whole).faces if g.reason is None)
    assert f.embedding is not None and ref.embedding is not None
    assert float(f.embedding @ ref.embedding) > 0.98


def test_changed_model_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    shutil.copytree(model_dir(), folder)
    data = bytearray((folder / RECOGNIZER_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / RECOGNIZER_FILE).write_bytes(bytes(data))
    settings = Settings(home=tmp_path / "home", engine="sface", sface_model_dir=folder)
    engine = get_engine(settings)
    with pytest.raises(ConfigError, match=r"SHA-256 .* expected fb143eea"):
        engine.warm()
    missing = Settings(home=tmp_path / "home", engine="sface", sface_model_dir=tmp_path / "none")
    with pytest.raises(ConfigError, match="cannot be read"):
        get_engine(missing).warm()


def test_one_engine_per_configuration() -> None:
    a = get_engine(Settings(engine="sface"))
    assert a is get_engine(Settings(engine="sface"))
    assert a is not get_engine(Settings(engine="sface", sface_detect_max_side=320))
    assert get_engine(Settings(engine="dlib")).name == "dlib"


# --------------------------------------------------------------------------- engine tags


def test_index_refuses_vectors_of_another_engine(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 128)).astype(np.float32)
    store.update("serbia", lambda ix: ix.add([1, 2, 3], [1, 1, 2], vecs),
                 engine=("dlib", DLIB_MODEL_HASH))
    loaded = IndexStore(tmp_path).get("serbia")
    assert (loaded.engine, loaded.model_hash) == ("dlib", DLIB_MODEL_HASH)
    with pytest.raises(EngineMismatchError) as info:
        store.update("serbia", lambda ix: ix.add([4], [3], vecs[:1]), engine=("sface", MODEL_HASH))
    assert str(info.value) == (
        f"index of collection serbia was built with dlib/{DLIB_MODEL_HASH}; this server runs "
        f"sface/{MODEL_HASH}; its faces must be analysed again with sface (reembed)")
    # the CLI, not the library, names the command and its flags
    assert cli_hint(info.value) == "run `faceatlas reembed --collection serbia --engine sface`"
    assert len(IndexStore(tmp_path).get("serbia")) == 3  # nothing was added
    # emptied and retagged (what reembed does), the other engine's vectors are welcome
    store.update("serbia", lambda ix: ix.reset("sface", MODEL_HASH))
    store.update("serbia", lambda ix: ix.add([4], [3], vecs[:1]), engine=("sface", MODEL_HASH))
    assert IndexStore(tmp_path).get("serbia").engine == "sface"


def test_index_file_from_before_engine_tags_is_dlib(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    vecs = np.ones((2, 128), dtype=np.float32)
    np.savez(path, format_version=np.array(1, dtype=np.int64), vectors=vecs,
             face_ids=np.array([1, 2], dtype=np.int64), person_ids=np.array([1, 1], np.int64))
    index = ExactIndex.load(path)
    assert (index.engine, index.model_hash) == ("dlib", DLIB_MODEL_HASH)
    with pytest.raises(EngineMismatchError, match="analysed again with sface") as info:
        index.require_engine("sface", MODEL_HASH, "old")
    assert (info.value.collection, info.value.engine) == ("old", "sface")


# --------------------------------------------------------------------------- thresholds


def test_thresholds_per_engine_calibration_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    s = Settings(home=home)
    assert s.thresholds("dlib").recognize == s.recognize_threshold == 0.55
    assert s.thresholds("sface").recognize == s.sface_recognize_threshold
    assert s.thresholds("ensemble").engine == "sface"
    (home / "thresholds.json").write_text(
        '{"engines": {"sface": {"recognize": 1.07, "link": 0.9}}}')
    assert Settings(home=home).thresholds("sface").recognize == 1.07
    assert Settings(home=home).thresholds("sface").link == 0.9
    assert Settings(home=home).thresholds("dlib").recognize == 0.55  # untouched
    monkeypatch.setenv("FACEATLAS_SFACE_RECOGNIZE_THRESHOLD", "1.01")
    assert Settings(home=home).thresholds("sface").recognize == 1.01  # explicit wins
    assert Settings(home=home).thresholds("sface").link == 0.9
