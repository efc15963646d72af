"""export-gallery → import-gallery into a fresh home: the same people, images, faces,
embeddings, files and recognition answers; bad archives are refused with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from faceatlas.domain.errors import FaceAtlasError
from faceatlas.gallery.archive import ArchiveError, import_gallery
from faceatlas.gallery.recognize import face_dict, recognize_file
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Face, Image, Person, Reference
from tests.archive_fixtures import rewrite_manifest
from tests.gallery_fixtures import Gallery, copy_home, gallery, gallery_settings  # noqa: F401

pytestmark = pytest.mark.slow

SKIP = {"id", "person_id", "image_id", "collection_id", "created_at", "updated_at",
        "crop_path", "gallery_path", "path", "other_person_id", "face_id"}


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACEATLAS_HOME": str(home)}
    env.pop("FACEATLAS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "faceatlas.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def snapshot(settings: Settings) -> list[dict[str, Any]]:
    """Every person with images and faces, ids left out, files read in."""
    layout = Layout(settings.home)

    def row(obj: Any) -> dict[str, Any]:
        return {c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key not in SKIP}

    with session_scope(settings) as s:
        people = s.scalars(select(Person).order_by(Person.key).options(
            selectinload(Person.images).selectinload(Image.faces))).all()
        out = []
        for p in people:
            images = []
            for img in sorted(p.images, key=lambda i: (i.origin, i.rank or 0)):
                faces = []
                for f in sorted(img.faces, key=lambda f: f.idx):
                    other = s.get(Person, f.other_person_id) if f.other_person_id else None
                    faces.append({**row(f), "other_person": other.name if other else None,
                                  "crop": layout.absolute(f.crop_path).read_bytes()
                                  if f.crop_path else None,
                                  "gallery": (Path(f.gallery_path).name,
                                              layout.absolute(f.gallery_path).read_bytes())
                                  if f.gallery_path else None})
                images.append({**row(img), "faces": faces})
            refs = []
            for ref in s.scalars(select(Reference).where(Reference.person_id == p.id)
                                 .order_by(Reference.id)):
                face = s.get(Face, ref.face_id) if ref.face_id else None
                refs.append({**row(ref), "path": ref.path,
                             "face": (face.image.origin, face.idx) if face else None})
            out.append({**row(p), "images": images, "references": refs})
        return out


def answers(settings: Settings, photos: list[Path]) -> list[Any]:
    out = []
    for photo in photos:
        r = recognize_file(photo, settings, collection="test", top_k=3)
        out.append([{k: v for k, v in face_dict(f, r).items() if k != "person_id"}
                    | {"candidates": [(c["person"], c["distance"]) for c in f.candidates or []]}
                    for f in r.faces])
    return out


def _add_references(settings: Settings) -> None:
    """Trusted references of every kind: a reviewer's face, a URL not yet measured, a
    measured URL, and a local file never measured (which cannot travel)."""
    with session_scope(settings) as s:
        person = s.scalars(select(Person).order_by(Person.id)).first()
        assert person is not None
        face = next(f for img in person.images for f in img.faces if f.embedding is not None)
        s.add_all([
            Reference(person_id=person.id, source="user", face_id=face.id,
                      embedding=face.embedding, state="ready"),
            Reference(person_id=person.id, source="sheet", url="https://example.org/a.jpg"),
            Reference(person_id=person.id, source="wikidata", url="https://example.org/p.jpg",
                      embedding=face.embedding, state="ready"),
            Reference(person_id=person.id, source="sheet", path="/somewhere/else/me.jpg"),
        ])


def test_export_import_round_trip(gallery: Gallery, tmp_path: Path) -> None:  # noqa: F811
    home = copy_home(gallery.settings, tmp_path / "home")
    _add_references(home)
    archive = tmp_path / "test.tar"
    out = cli("export-gallery", str(archive), "--collection", "test", home=home.home)
    assert out.returncode == 0, out.stderr
    fresh = gallery_settings(tmp_path / "fresh")
    got = cli("import-gallery", str(archive), home=fresh.home)
    assert got.returncode == 0, got.stderr
    before, after = snapshot(home), snapshot(fresh)
    refs = before[[p["key"] for p in before].index(after[0]["key"])]["references"]
    assert len(refs) == 4 and sum(r["path"] is not None for r in refs) == 1
    assert len(after) == len(before) > 10
    for person in before:  # a local file path cannot travel; everything else does
        person["references"] = [r for r in person["references"] if r["path"] is None]
    assert after == before  # people, images, faces, embeddings, files, references
    photos = [p for _, p in gallery.queries[:12]] + gallery.strangers[:3]
    assert answers(fresh, photos) == answers(home, photos)
    from faceatlas.gallery.index import index_store

    assert len(index_store(fresh).get("test")) == len(index_store(home).get("test"))
    # the same collection again: refused, nothing changed; under another name: fine
    again = cli("import-gallery", str(archive), home=fresh.home)
    assert again.returncode == 1 and "already has people" in again.stderr
    assert snapshot(fresh) == before
    other = cli("import-gallery", str(archive), "--collection", "copy", home=fresh.home)
    assert other.returncode == 0, other.stderr


def test_bad_archives_are_refused(gallery: Gallery, tmp_path: Path) -> None:  # noqa: F811
    from faceatlas.gallery.archive import export_gallery

    archive = tmp_path / "test.tar"
    export_gallery(gallery.settings, "test", archive)

    def other_model(m: dict[str, Any]) -> None:
        m["engines"][0]["model_hash"] = "0" * 12

    def escape(m: dict[str, Any]) -> None:
        face = next(f for p in m["people"] for i in p["images"] for f in i["faces"]
                    if f["crop"])
        face["crop"] = "../../escape.jpg"

    for n, change, words in ((1, other_model, "not comparable"), (2, escape, "unsafe")):
        home = tmp_path / f"home{n}"
        bad = rewrite_manifest(archive, tmp_path / f"bad{n}.tar", change)
        with pytest.raises(ArchiveError, match=words):
            import_gallery(gallery_settings(home), bad)
        assert not (tmp_path / "escape.jpg").exists()
        assert not (home / "faces").exists()  # refused before anything was written
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"hello")
    with pytest.raises(FaceAtlasError, match="not a gallery archive"):
        import_gallery(gallery_settings(tmp_path / "home3"), not_tar)
