"""Reference photos: the sheet column, ``add_reference``'s checks (no models needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from faceatlas.curation.references import add_reference, list_references, reference_vectors
from faceatlas.domain.errors import NotFoundError, ReferencePhotoError
from faceatlas.names.tables import read_people, write_table
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Image, Reason, Reference
from faceatlas.store.people import get_or_create_collection, upsert_person
from faceatlas.store.references import split_references


def test_a_cell_lists_references_separated_by_spaces_bars_or_semicolons() -> None:
    assert split_references(" https://a/x.jpg | b.jpg;c.png  d.jpg ") == [
        "https://a/x.jpg", "b.jpg", "c.png", "d.jpg"]
    assert split_references("") == []


def test_the_sheet_passes_the_references_column_through(tmp_path: Path) -> None:
    sheet = tmp_path / "p.csv"
    write_table(sheet, ["name", "last_name", "References"], [
        {"name": "Ana", "last_name": "Ivanović", "References": "https://x/1.jpg|2.jpg"},
        {"name": "Novak", "last_name": "Đoković"},
    ])
    rows = read_people(sheet)
    assert [r.references for r in rows] == ["https://x/1.jpg|2.jpg", ""]


def _person_with_faces(settings: Settings) -> tuple[int, int, int, int]:
    """A person with a measured face and an unmeasured one; another person's face."""
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, "Serbia")
        me, _ = upsert_person(s, coll, "Ana Ivanović")
        other, _ = upsert_person(s, coll, "Novak Đoković")
        s.flush()
        ids = []
        for person, emb in ((me, np.ones(128, np.float32)), (me, None),
                            (other, np.ones(128, np.float32))):
            img = Image(person_id=person.id, origin=f"o{len(ids)}", state="analysed")
            s.add(img)
            s.flush()
            face = Face(image_id=img.id, person_id=person.id, idx=0, x=0, y=0, w=90, h=90,
                        embedding=None if emb is None else emb.tobytes(),
                        reason=Reason.NOT_THIS_PERSON, state="rejected")
            s.add(face)
            s.flush()
            ids.append(face.id)
        return me.id, ids[0], ids[1], ids[2]


def test_add_reference_checks_its_input(settings: Settings, tmp_path: Path) -> None:
    pid, measured, unmeasured, foreign = _person_with_faces(settings)
    with pytest.raises(ReferencePhotoError, match="exactly one"):
        add_reference(settings, pid)
    with pytest.raises(ReferencePhotoError, match="exactly one"):
        add_reference(settings, pid, url="https://x/y.jpg", face_id=measured)
    with pytest.raises(ReferencePhotoError, match="http"):
        add_reference(settings, pid, url="ftp://x/y.jpg")
    with pytest.raises(ReferencePhotoError, match="not found"):
        add_reference(settings, pid, path=tmp_path / "missing.jpg", root=tmp_path)
    with pytest.raises(NotFoundError):
        add_reference(settings, pid, face_id=foreign)
    with pytest.raises(NotFoundError):
        add_reference(settings, 10_000, url="https://x/y.jpg")
    with pytest.raises(ReferencePhotoError, match="too small or too blurry"):
        add_reference(settings, pid, face_id=unmeasured)


def test_a_face_reference_is_ready_at_once_and_accepts_the_face(settings: Settings) -> None:
    pid, measured, _, _ = _person_with_faces(settings)
    ref = add_reference(settings, pid, face_id=measured)
    assert ref.state == "ready" and ref.face_id == measured
    assert add_reference(settings, pid, face_id=measured).id == ref.id  # idempotent
    url = add_reference(settings, pid, url="https://example.org/a.jpg", source="sheet")
    assert url.state == "pending"
    assert add_reference(settings, pid, url="https://example.org/a.jpg").id == url.id
    assert [r.state for r in list_references(settings, pid)] == ["ready", "pending"]
    with session_scope(settings) as s:
        face = s.get(Face, measured)
        assert face is not None
        assert (face.state, face.reason) == ("accepted", Reason.ACCEPTED_BY_USER)
        (vec,) = reference_vectors(s, pid)  # pending ones are not used yet
        assert np.allclose(vec, 1.0)


def test_sheet_references_stay_inside_the_named_folder(settings: Settings, tmp_path: Path
                                                       ) -> None:
    """Issue 22, finding 4: ``/etc/passwd``, ``../`` and links out of the folder are refused
    in words that do not depend on whether the file exists; files inside are kept."""
    from faceatlas.names.service import import_people

    folder = tmp_path / "sheets"
    folder.mkdir()
    (folder / "inside.jpg").write_bytes(b"\xff\xd8 a photo")
    (folder / "out.jpg").symlink_to("/etc/hosts")
    cells = ["/etc/passwd", "../../../../../../etc/hosts", "/no/such/file.jpg",
             "../../../../../../no/such/file.jpg", "out.jpg", "inside.jpg",
             "https://example.org/p.jpg"]
    sheet = folder / "people.csv"
    write_table(sheet, ["name", "last_name", "references"],
                [{"name": "Ana", "last_name": "Ivanović", "references": "|".join(cells)}])
    report = import_people(settings, sheet, "Serbia")
    assert report.references == 2
    why = {s.text: s.why for s in report.skipped}
    assert set(why) == set(cells[:5])
    # the same words for a file that exists and one that does not (only the name differs)
    assert {w.replace(t, "X") for t, w in why.items()} == {
        f"reference photo: reference 'X' is outside the references folder {folder.resolve()}: "
        "only files inside it are read (name another with --references-dir or "
        "FACEATLAS_REFERENCES_DIR)"}
    with session_scope(settings) as s:
        pid = s.scalar(select(Reference.person_id))
    refs = list_references(settings, pid)
    assert sorted((r.url or r.path or "") for r in refs) == sorted([
        "https://example.org/p.jpg", str((folder / "inside.jpg").resolve())])
    # a folder named by the caller replaces the sheet's own
    other = tmp_path / "refs"
    other.mkdir()
    (other / "inside.jpg").write_bytes(b"\xff\xd8 another photo")
    report = import_people(settings, sheet, "Serbia", references_dir=other)
    assert report.references == 2 and "inside.jpg" not in {s.text for s in report.skipped}
    assert str((other / "inside.jpg").resolve()) in {r.path for r in list_references(settings, pid)}


def test_a_local_reference_without_a_folder_is_refused(settings: Settings) -> None:
    pid, _, _, _ = _person_with_faces(settings)
    with pytest.raises(ReferencePhotoError, match="only from a folder you name"):
        add_reference(settings, pid, path="/etc/passwd")
