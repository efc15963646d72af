"""A gallery archive's trusted references are checked like the rest of the manifest before
anything is written, and one that would arrive with nothing to trust is left out. Fast: a
tiny generated collection (devtools.bigcollection), no face models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from faceatlas.devtools.bigcollection import generate
from faceatlas.gallery.archive import ArchiveError, export_gallery, import_gallery
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Person, Reference
from tests.archive_fixtures import Change, rewrite_manifest


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Path:
    """Two people's archive; the first has a reviewer's face reference and a URL one."""
    root = tmp_path_factory.mktemp("refs")
    settings = Settings(home=root / "home")
    generate(settings, people=2, faces=2, crops=2, collection="src")
    with session_scope(settings) as s:
        person = s.scalars(select(Person).order_by(Person.id)).first()
        assert person is not None
        face = s.scalars(select(Face).where(Face.person_id == person.id)).first()
        assert face is not None
        s.add_all([Reference(person_id=person.id, source="user", face_id=face.id,
                             embedding=face.embedding, state="ready"),
                   Reference(person_id=person.id, source="sheet",
                             url="https://example.org/a.jpg")])
    path = root / "src.tar"
    export_gallery(settings, "src", path)
    return path


def _refs(m: dict[str, Any]) -> list[dict[str, Any]]:
    return next(p["references"] for p in m["people"] if p["references"])


def _drop(key: str) -> Change:
    return lambda m: _refs(m)[0].pop(key)


def _set(key: str, value: object) -> Change:
    return lambda m: _refs(m)[0].__setitem__(key, value)


@pytest.mark.parametrize(("change", "words"), [
    (_drop("state"), "not as export-gallery writes it.*state"),
    (_drop("source"), "not as export-gallery writes it.*source"),
    (_drop("face"), "not as export-gallery writes it.*face"),
    (_set("source", "s" * 31), "source must be a name of at most 30"),
    (_set("source", ""), "source must be a name"),
    (_set("state", "trusted"), "state must be one of failed, pending, ready"),
    (_set("url", 5), "url must be text"),
], ids=["no-state", "no-source", "no-face", "long-source", "empty-source", "odd-state",
        "number-url"])
def test_a_bad_reference_refuses_the_archive_before_any_write(
        archive: Path, tmp_path: Path, change: Change, words: str) -> None:
    bad = rewrite_manifest(archive, tmp_path / "bad.tar", change)
    home = tmp_path / "home"
    with pytest.raises(ArchiveError, match=words):
        import_gallery(Settings(home=home), bad)
    assert not (home / "faces").exists()  # refused before anything was written
    with session_scope(Settings(home=home)) as s:
        assert s.scalars(select(Person)).first() is None


def test_a_reference_left_with_nothing_to_trust_is_not_imported(
        archive: Path, tmp_path: Path) -> None:
    def orphan(m: dict[str, Any]) -> None:  # the reviewer's face is not in the archive
        ref = next(r for r in _refs(m) if r["face"] is not None)
        ref["face"], ref["embedding"] = 10**9, None

    settings = Settings(home=tmp_path / "home")
    import_gallery(settings, rewrite_manifest(archive, tmp_path / "orphan.tar", orphan), "dest")
    with session_scope(settings) as s:
        refs = [(r.source, r.url, r.face_id) for r in s.scalars(select(Reference))]
    assert refs == [("sheet", "https://example.org/a.jpg", None)]
