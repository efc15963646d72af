"""Promotion on real faces: the more-than-5 rule, seed file names, index rows, self-test,
idempotence, faces leaving the gallery, purge and complete removal."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from faceatlas.gallery.erase import remove_person
from faceatlas.gallery.index import index_store
from faceatlas.gallery.promote import promote
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import gallery_name
from faceatlas.store.models import Attempt, Face, Image, Job, Person, PersonState
from tests.gallery_fixtures import copy_home

SEED_NAME = re.compile(r"^Person_0[15]_20[23]\d-\d\d-\d\d_\d{6}\d+\.jpg$")


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Settings:
    """Person 01 (8 photos) and Person 05 (5 photos), curated with the default settings."""
    root = tmp_path_factory.mktemp("promote")
    for who in ("person_01", "person_05"):
        dest = root / "in" / who.replace("_", " ").title()
        shutil.copytree(faces_root / "people" / who, dest)
    settings = Settings(home=root / "home", workers=2, default_collection="serbia")
    reports = {r.person: r.accepted for r in import_folder(root / "in", "serbia", settings)}
    assert reports["Person 01"] >= 6 and reports["Person 05"] <= 5, reports
    return settings


@pytest.fixture()
def home(curated: Settings, tmp_path: Path) -> Settings:  # a private copy per test
    return copy_home(curated, tmp_path / "copy", min_faces_to_promote=6)


def person(settings: Settings, name: str) -> Person:
    with session_scope(settings) as s:
        found = s.scalar(select(Person).where(Person.name == name))
        assert found is not None
        return found


def gallery_files(settings: Settings) -> list[str]:
    folder = settings.home / "gallery" / "serbia"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def index_rows(settings: Settings) -> dict[int, int]:
    index = index_store(settings).get("serbia")
    return dict(zip(index.face_ids.tolist(), index.person_id_array.tolist(), strict=True))


def test_more_than_five_faces_promoted_five_kept_as_too_few(home: Settings) -> None:
    assert home.min_faces_to_promote == 6  # the seed's "more than 5"
    results = {r.person: r for r in promote(home)}
    p1, p5 = person(home, "Person 01"), person(home, "Person 05")
    assert results["Person 01"].state == p1.state == PersonState.PROMOTED
    assert results["Person 05"].state == p5.state == PersonState.TOO_FEW_FACES
    assert "promotion needs at least 6" in (p5.error or "")
    with session_scope(home) as s:
        # kept, not deleted: rows and crops of Person 05 are all still there
        assert s.scalar(select(func.count()).select_from(Image)
                        .where(Image.person_id == p5.id)) == 5
        accepted = s.scalars(select(Face).where(Face.state == "accepted")).all()
    p1_faces = [f for f in accepted if f.person_id == p1.id]
    p5_faces = [f for f in accepted if f.person_id == p5.id]
    assert all(f.gallery_path is None and (home.home / f.crop_path).is_file() for f in p5_faces)
    # every accepted face of Person 01 is in the gallery under the seed's name, and indexed
    assert len(p1_faces) == results["Person 01"].faces >= 6
    for f in p1_faces:
        assert f.gallery_path == f"gallery/serbia/{gallery_name(Path(f.crop_path).name)}"
        assert (home.home / f.gallery_path).read_bytes() == (home.home / f.crop_path).read_bytes()
    assert all(SEED_NAME.match(n) for n in gallery_files(home)), gallery_files(home)
    assert len(gallery_files(home)) == len(p1_faces)
    assert index_rows(home) == {f.id: p1.id for f in p1_faces}
    # the self-test left one face out and still found Person 01
    test = p1.selftest
    assert test and test["passed"] is True and test["predicted_person_id"] == p1.id
    assert test["face_id"] == min(f.id for f in p1_faces)
    assert test["distance"] < home.thresholds().recognize


def test_repromotion_is_idempotent_and_rejected_faces_leave(home: Settings) -> None:
    promote(home, collection="serbia")
    index_file = index_store(home).path("serbia")
    before = (gallery_files(home), index_rows(home), index_file.stat().st_mtime_ns)
    again = promote(home, collection="serbia")
    assert (gallery_files(home), index_rows(home), index_file.stat().st_mtime_ns) == before
    assert all(r.written == 0 and r.removed == 0 for r in again)

    p1 = person(home, "Person 01")
    with session_scope(home) as s:  # a reviewer rejects one face after promotion
        face = s.scalars(select(Face).where(Face.person_id == p1.id, Face.state == "accepted")
                         .order_by(Face.id.desc())).first()
        assert face is not None and face.gallery_path
        face.state, face.reason = "rejected", "rejected_by_user"
        gone_id, gone_file = face.id, Path(face.gallery_path).name
    (result,) = promote(home, person="Person 01")
    assert result.removed == 1 and result.faces == len(before[0]) - 1
    assert gone_file not in gallery_files(home) and len(gallery_files(home)) == result.faces
    assert gone_id not in index_rows(home) and len(index_rows(home)) == result.faces
    with session_scope(home) as s:
        face = s.get(Face, gone_id)
        assert face is not None and face.gallery_path is None


def test_promotion_needs_a_curated_person(home: Settings) -> None:
    from faceatlas.domain.errors import FaceAtlasError, NotFoundError

    with session_scope(home) as s:
        s.scalar(select(Person).where(Person.name == "Person 05")).state = PersonState.QUEUED
    with pytest.raises(FaceAtlasError, match="only curated people"):
        promote(home, person="Person 05")
    with pytest.raises(NotFoundError):
        promote(home, collection="atlantis")


def test_purge_erases_people_with_too_few_faces(home: Settings) -> None:
    p5 = person(home, "Person 05")
    results = {r.person: r for r in promote(home, purge=True)}
    assert results["Person 05"].purged and results["Person 01"].state == PersonState.PROMOTED
    assert_nothing_left(home, p5)


def test_remove_person_leaves_nothing(home: Settings) -> None:
    promote(home)
    p1 = person(home, "Person 01")
    mapping = home.home / "name_mapping.json"
    mapping.write_text(json.dumps({"Person_01": "Person 01", "Someone_Else": "Someone Else"}))
    report = remove_person(home, p1.id)
    assert report.index_rows_removed >= 6 and report.rows["faces"] >= 6
    assert_nothing_left(home, p1)
    assert json.loads(mapping.read_text()) == {"Someone_Else": "Someone Else"}
    # the other person is untouched
    p5 = person(home, "Person 05")
    with session_scope(home) as s:
        assert s.scalar(select(func.count()).select_from(Image)
                        .where(Image.person_id == p5.id)) == 5


def assert_nothing_left(settings: Settings, gone: Person) -> None:
    with session_scope(settings) as s:
        assert s.get(Person, gone.id) is None
        for model in (Image, Face, Job):
            n = s.scalar(select(func.count()).select_from(model)
                         .where(model.person_id == gone.id))
            assert n == 0, model
        orphans = s.scalar(select(func.count()).select_from(Attempt)
                           .where(~Attempt.image_id.in_(select(Image.id))))
        assert orphans == 0
    leftovers = [p for p in settings.home.rglob("*")
                 if p.is_file() and gone.folder in p.as_posix()]
    assert leftovers == []
    assert gone.id not in set(index_rows(settings).values())
    assert not np.isin(gone.id, index_store(settings).get("serbia").person_id_array).any()


def test_cli_promote(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from faceatlas.cli import serve  # noqa: F401  (registers the commands)
    from faceatlas.cli.base import app
    from faceatlas.settings import get_settings

    monkeypatch.setenv("FACEATLAS_HOME", str(home.home))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["promote", "--collection", "serbia"])
        assert out.exit_code == 0, out.output
        assert "promoted" in out.output and "too_few_faces" in out.output
        assert "passed" in out.output
        bad = CliRunner().invoke(app, ["promote", "--person", "Nobody Here"])
        assert bad.exit_code == 1 and "no person" in bad.output
    finally:
        get_settings.cache_clear()
