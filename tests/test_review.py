"""Reviewer actions on a real promoted gallery: reject, restore, re-collect; and the views."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from faceatlas.curation import duplicates
from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.gallery import review, thumbnails
from faceatlas.gallery.index import IndexStore
from faceatlas.gallery.recognize import recognize_file
from faceatlas.settings import Settings
from faceatlas.store import queries
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Face, Image, Job, Person, PersonState, Reason
from tests.gallery_fixtures import COLLECTION, Gallery, copy_home, gallery  # noqa: F401


@pytest.fixture()
def home(gallery: Gallery, tmp_path: Path) -> Settings:  # noqa: F811
    """A private copy of the promoted gallery (the shared one stays untouched)."""
    return copy_home(gallery.settings, tmp_path / "home")


def index_rows(settings: Settings) -> dict[int, np.ndarray]:
    """The collection index as written on disk (what any other process would load)."""
    index = IndexStore(Layout(settings.home).index_dir).get(COLLECTION)
    return {int(f): index.vectors[i].copy() for i, f in enumerate(index.face_ids)}


def gallery_face(settings: Settings, identity: str = "person_01") -> tuple[int, int, str, str]:
    """(face id, person id, gallery path, raw path) of one promoted face of ``identity``."""
    with session_scope(settings) as s:
        face = s.scalars(
            select(Face).join(Person, Face.person_id == Person.id)
            .where(Person.name == Gallery.person_name(identity), Face.gallery_path.is_not(None))
            .order_by(Face.id)
        ).first()
        assert face is not None
        return face.id, face.person_id, face.gallery_path or "", face.image.path or ""


def face_row(settings: Settings, face_id: int) -> Face:
    with session_scope(settings) as s:
        face = s.get(Face, face_id)
        assert face is not None
        s.expunge(face)
        return face


def test_reject_takes_the_face_out_of_gallery_index_and_answers(home: Settings) -> None:
    layout = Layout(home.home)
    face_id, _, gallery_path, raw = gallery_face(home)
    before = recognize_file(layout.absolute(raw), home, collection=COLLECTION)
    assert Path(gallery_path).stem in {f.identity for f in before.faces}
    assert face_id in index_rows(home)

    result = review.reject_face(home, face_id)

    assert result.changed and result.state == "rejected"
    assert result.reason == Reason.REJECTED_BY_USER == "rejected_by_user"
    row = face_row(home, face_id)
    assert (row.state, row.reason, row.gallery_path) == ("rejected", "rejected_by_user", None)
    assert not layout.absolute(gallery_path).exists()
    assert face_id not in index_rows(home)
    # the crop stays, so a restore needs neither the original nor the models
    assert row.crop_path and layout.absolute(row.crop_path).is_file()
    after = recognize_file(layout.absolute(raw), home, collection=COLLECTION)
    assert Path(gallery_path).stem not in {f.identity for f in after.faces}

    again = review.reject_face(home, face_id)  # idempotent
    assert not again.changed and face_row(home, face_id).state == "rejected"


def test_restore_puts_it_back_exactly(home: Settings) -> None:
    layout = Layout(home.home)
    face_id, _, gallery_path, raw = gallery_face(home)
    vector = index_rows(home)[face_id]
    review.reject_face(home, face_id)

    result = review.restore_face(home, face_id)

    assert result.changed and result.in_gallery
    row = face_row(home, face_id)
    assert (row.state, row.reason, row.gallery_path) == ("accepted", "accepted", gallery_path)
    assert layout.absolute(gallery_path).is_file()
    np.testing.assert_array_equal(index_rows(home)[face_id], vector)
    again = recognize_file(layout.absolute(raw), home, collection=COLLECTION)
    assert Path(gallery_path).stem in {f.identity for f in again.faces}
    index_file = IndexStore(Layout(home.home).index_dir).path(COLLECTION)  # the manifest
    mtime = index_file.stat().st_mtime_ns
    assert not review.restore_face(home, face_id).changed  # idempotent, file not rewritten
    assert index_file.stat().st_mtime_ns == mtime


def test_restore_overriding_curation_is_recorded_and_recrops(home: Settings) -> None:
    """A face curation rejected (here: marked so by hand) comes back as accepted_by_user; a
    lost crop is cut again from the stored original."""
    layout = Layout(home.home)
    face_id = gallery_face(home, "person_02")[0]
    review.reject_face(home, face_id)
    with session_scope(home) as s:
        face = s.get(Face, face_id)
        assert face is not None and face.crop_path
        layout.absolute(face.crop_path).unlink()
        face.reason = Reason.NOT_THIS_PERSON
    result = review.restore_face(home, face_id)
    assert result.reason == review.ACCEPTED_BY_USER == "accepted_by_user"
    row = face_row(home, face_id)
    assert row.crop_path and layout.absolute(row.crop_path).is_file()
    assert row.gallery_path and layout.absolute(row.gallery_path).is_file()
    assert face_id in index_rows(home)


def test_a_crash_after_the_decision_is_finished_by_running_again(home: Settings) -> None:
    """Decision stored, index and file not yet touched: a second reject completes it."""
    layout = Layout(home.home)
    face_id, _, gallery_path, _ = gallery_face(home)
    with session_scope(home) as s:
        face = s.get(Face, face_id)
        assert face is not None
        face.state, face.reason = "rejected", Reason.REJECTED_BY_USER  # gallery_path kept
    result = review.reject_face(home, face_id)
    assert result.changed
    assert face_id not in index_rows(home)
    assert not layout.absolute(gallery_path).exists()
    assert face_row(home, face_id).gallery_path is None


def test_restore_for_an_unpromoted_person_waits_for_promotion(home: Settings) -> None:
    face_id, person_id, _, _ = gallery_face(home)
    review.reject_face(home, face_id)
    with session_scope(home) as s:
        person = s.get(Person, person_id)
        assert person is not None
        person.state = PersonState.CURATED
    result = review.restore_face(home, face_id)
    assert result.state == "accepted" and not result.in_gallery
    assert face_id not in index_rows(home)


def test_review_refuses_while_the_pipeline_works_and_unknown_ids(home: Settings) -> None:
    face_id, person_id, _, _ = gallery_face(home)
    with session_scope(home) as s:
        person = s.get(Person, person_id)
        assert person is not None
        person.state = PersonState.CURATING
    with pytest.raises(FaceAtlasError, match="being collected"):
        review.reject_face(home, face_id)
    with pytest.raises(FaceAtlasError, match="being collected"):
        review.recollect_person(home, person_id)
    assert face_row(home, face_id).state == "accepted"
    with pytest.raises(NotFoundError):
        review.reject_face(home, 10**9)
    with pytest.raises(NotFoundError):
        review.restore_face(home, 10**9)
    with pytest.raises(NotFoundError):
        review.recollect_person(home, 10**9)


def test_a_face_without_embedding_cannot_be_restored(home: Settings) -> None:
    face_id, _, _, _ = gallery_face(home)
    review.reject_face(home, face_id)
    with session_scope(home) as s:
        face = s.get(Face, face_id)
        assert face is not None
        face.embedding, face.reason = None, Reason.FACE_TOO_SMALL
    with pytest.raises(FaceAtlasError, match="cannot join the gallery"):
        review.restore_face(home, face_id)


def test_recollect_queues_the_person_and_retries_failed_downloads(home: Settings) -> None:
    _, person_id, _, _ = gallery_face(home)
    with session_scope(home) as s:
        img = s.scalars(select(Image).where(Image.person_id == person_id)).first()
        assert img is not None
        s.add(Image(person_id=person_id, origin="https://example.org/x.jpg", provider="rapidapi",
                    url="https://example.org/x.jpg", state="failed",
                    reason=Reason.DOWNLOAD_FAILED, detail="http_404"))
    result = review.recollect_person(home, person_id)
    assert result.changed and result.state == PersonState.QUEUED
    assert result.retried_downloads == 1
    with session_scope(home) as s:
        person = s.get(Person, person_id)
        assert person is not None and person.state == "queued"
        states = set(s.scalars(select(Image.state).where(Image.person_id == person_id)))
        assert "failed" not in states and "pending" in states
    # the gallery keeps serving the person until the next promotion
    assert any(True for _ in index_rows(home))
    again = review.recollect_person(home, person_id)
    assert not again.changed and again.retried_downloads == 0


def test_views_show_counts_groups_and_provenance(home: Settings) -> None:
    face_id, person_id, _, _ = gallery_face(home)
    review.reject_face(home, face_id)
    with session_scope(home) as s:
        s.add(Job(kind="collect", person_id=person_id, state="failed", error="no photo"))
    (overview,) = queries.collections_overview(home)
    assert overview.key == COLLECTION and overview.people > 5
    assert sum(c.people for c in overview.by_state) == overview.people
    assert overview.last_activity is not None and overview.gallery_faces > 0

    page = duplicates.person_review(home, person_id)
    assert face_id not in {f.id for f in page.accepted}
    groups = {g.reason: g for g in page.rejected}
    assert face_id in {f.id for f in groups["rejected_by_user"].faces}
    assert page.rejected[0].reason == "rejected_by_user"  # the reviewer's own decisions first
    card = page.accepted[0]
    assert card.source.origin.startswith("file:") and card.source.created_at is not None
    assert [f.quality for f in page.accepted] == sorted((f.quality for f in page.accepted),
                                                        reverse=True)

    people = queries.collection_people(home, COLLECTION)
    assert people.total == overview.people
    assert all(p.cover_face_id for p in people.people if p.accepted_faces)

    (job,) = [j for j in queries.recent_jobs(home) if j.person_id == person_id]
    assert job.state == "failed" and job.error == "no photo" and job.person

    thumb = PILImage.open(io.BytesIO(thumbnails.face_image(home, face_id)))
    assert thumb.format == "JPEG" and max(thumb.size) <= thumbnails.THUMB_SIZE
    with pytest.raises(NotFoundError):
        thumbnails.face_image(home, 10**9)


def test_reject_without_an_index_file_still_rejects(home: Settings, tmp_path: Path) -> None:
    face_id, _, _, _ = gallery_face(home)
    IndexStore(Layout(home.home).index_dir).path(COLLECTION).unlink()
    store = IndexStore(tmp_path / "other-index")  # a store that has no file for it
    result = review.reject_face(home, face_id, store=store)
    assert result.state == "rejected"
    assert not IndexStore(tmp_path / "other-index").exists(COLLECTION)


def _person_state(settings: Settings, person_id: int) -> tuple[object, ...]:
    """Everything a restore may change: the person's face rows, the index file, the files."""
    layout = Layout(settings.home)
    with session_scope(settings) as s:
        faces = sorted(tuple(r) for r in s.execute(
            select(Face.id, Face.state, Face.reason, Face.crop_path, Face.gallery_path)
            .where(Face.person_id == person_id)))
        images = sorted(tuple(r) for r in s.execute(
            select(Image.id, Image.reason).where(Image.person_id == person_id)))
    files = sorted(p.relative_to(settings.home).as_posix()
                   for p in (layout.home / "gallery").rglob("*") if p.is_file())
    rows = {f: v.tobytes() for f, v in index_rows(settings).items()}
    return faces, images, files, rows


def test_restoring_several_is_all_or_nothing(home: Settings) -> None:
    """One face of the batch cannot come back (never measured, another engine, another
    person's, the person busy): the whole batch is refused and nothing changes."""
    with session_scope(home) as s:
        person_id, good, bad = s.execute(
            select(Face.person_id, func.min(Face.id), func.max(Face.id))
            .where(Face.gallery_path.is_not(None)).group_by(Face.person_id)
            .having(func.count() >= 2).order_by(Face.person_id)).first() or (0, 0, 0)
        other = s.scalar(select(Face.id).where(Face.person_id != person_id))
    assert person_id and other
    review.reject_faces(home, [good, bad], person_id=person_id)
    with session_scope(home) as s:
        face = s.get(Face, bad)
        assert face is not None
        face.embedding, face.reason = None, Reason.FACE_TOO_SMALL
    before = _person_state(home, person_id)

    with pytest.raises(FaceAtlasError, match=rf"face {bad} was too small.*nothing was restored"):
        review.restore_faces(home, [good, bad], person_id=person_id)
    assert _person_state(home, person_id) == before
    with pytest.raises(NotFoundError, match=f"no face with id {other}"):  # as if missing
        review.restore_faces(home, [good, other], person_id=person_id)
    assert _person_state(home, person_id) == before
    with session_scope(home) as s:
        face = s.get(Face, bad)
        assert face is not None
        face.embedding = s.get(Face, good).embedding  # type: ignore[union-attr]
        face.engine = "dlib"  # measured by another engine than the index's
    with pytest.raises(FaceAtlasError, match="different engines"):
        review.restore_faces(home, [good, bad], person_id=person_id)
    assert _person_state(home, person_id) == before
    with session_scope(home) as s:
        person = s.get(Person, person_id)
        assert person is not None
        person.state = PersonState.CURATING
    with pytest.raises(FaceAtlasError, match="being collected"):
        review.restore_faces(home, [good], person_id=person_id)
    assert _person_state(home, person_id) == before
    with session_scope(home) as s:
        s.get(Person, person_id).state = PersonState.PROMOTED  # type: ignore[union-attr]

    done = review.restore_faces(home, [good], person_id=person_id)
    assert [r.face_id for r in done.results if r.changed and r.in_gallery] == [good]
    assert good in index_rows(home) and bad not in index_rows(home)
