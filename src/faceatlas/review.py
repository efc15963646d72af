"""A reviewer's corrections, and the pictures the review pages show (their data: store.queries).

Actions (all idempotent: doing one twice changes nothing the second time):

- ``reject_face``: the face is marked rejected with reason ``rejected_by_user`` and leaves the
  collection index and the gallery folder at once. Its crop stays in ``faces/`` so a restore
  needs neither the original photo (``keep_raw`` may have purged it) nor the face models.
- ``restore_face``: back to accepted (the machine's ``accepted`` when undoing a reviewer's
  rejection, ``accepted_by_user`` when overriding a curation decision such as
  ``not_this_person``), and back into the gallery and the index if the person is promoted.
- ``mark_reference``: "this is them": the face becomes a trusted reference of the person (and
  accepted), the person is re-decided around it (a reference outranks the vote), and promoted
  again if they were in the gallery.
- ``recollect_person``: the person goes back to ``queued``, failed downloads to ``pending``,
  so the pipeline (``faceatlas collect`` or a worker) searches, downloads and curates again.
  The gallery keeps serving the person until the next promotion.

Order of work for reject: database decision first, then index, then file, then the
``gallery_path`` is cleared; a crash in between leaves a rejected face that still has a
``gallery_path``, which a second ``reject_face`` (or ``promote``, which drops stale gallery
files) finishes. Restore writes files, then the index, then the database, as promotion does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceatlas.errors import FaceAtlasError, NotFoundError
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop, encode_jpeg
from faceatlas.gallery import index_store, search_vectors
from faceatlas.index import ExactIndex, IndexStore
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import (
    BUSY,
    Face,
    FaceState,
    Image,
    ImageState,
    Person,
    PersonState,
    Reason,
)
from faceatlas.store.queries import accepted_faces

#: a reviewer accepted a face curation had rejected
ACCEPTED_BY_USER = Reason.ACCEPTED_BY_USER


@dataclass
class ReviewResult:
    face_id: int
    person_id: int
    person: str
    state: str  # the face's state after the action
    reason: str
    changed: bool  # False: it already was so (the action is idempotent)
    in_gallery: bool
    accepted_faces: int  # the person's accepted faces after the action
    below_minimum: bool  # fewer accepted faces than promotion needs (promote again)


@dataclass
class RecollectResult:
    person_id: int
    person: str
    state: str
    changed: bool
    retried_downloads: int


def _face_and_person(session: Session, face_id: int) -> tuple[Face, Person]:
    face = session.get(Face, face_id)
    if face is None:
        raise NotFoundError(f"no face with id {face_id}")
    person = session.get(Person, face.person_id)
    assert person is not None  # faces are deleted with their person
    if person.state in BUSY:
        raise FaceAtlasError(
            f"{person.name} is being collected right now ({person.state}); "
            "review the faces when that has finished"
        )
    return face, person


def _image_reason(session: Session, image_id: int, fallback: str) -> None:
    """Keep the image's summary reason true: accepted while any of its faces is."""
    img = session.get(Image, image_id)
    if img is None:
        return
    accepted = session.scalar(
        select(func.count()).select_from(Face)
        .where(Face.image_id == image_id, Face.state == FaceState.ACCEPTED)
    )
    if accepted:
        img.reason = Reason.ACCEPTED
    elif img.reason == Reason.ACCEPTED:
        img.reason = fallback


def reject_face(settings: Settings, face_id: int, *, store: IndexStore | None = None
                ) -> ReviewResult:
    """Reject a face: out of the index and the gallery folder now, reason ``rejected_by_user``."""
    return reject_faces(settings, [face_id], store=store).results[0]


@dataclass
class BulkResult:
    """Several faces of one person rejected or restored."""

    person_id: int
    results: list[ReviewResult]
    accepted_faces: int  # the person's accepted faces after the action
    below_minimum: bool

    @property
    def changed(self) -> int:
        """How many faces changed (the others already were so)."""
        return sum(r.changed for r in self.results)


def reject_faces(settings: Settings, face_ids: Sequence[int], *, person_id: int | None = None,
                 store: IndexStore | None = None) -> BulkResult:
    """Reject several faces of one person (``person_id``: refuse faces of anyone else) with
    one index update: every decision first, then the index, then the gallery files."""
    if not face_ids:
        raise FaceAtlasError("no face to reject: name at least one")
    layout = Layout(settings.home)
    store = store or index_store(settings)
    todo: list[tuple[int, bool, str | None]] = []  # face id, changed, gallery path
    with session_scope(settings) as session:
        for face_id in dict.fromkeys(face_ids):
            face, person = _face_and_person(session, face_id)
            if person_id is None:
                person_id = person.id
            elif person.id != person_id:
                raise NotFoundError(f"face {face_id} is not one of person {person_id}'s faces")
            changed = not (face.state == FaceState.REJECTED
                           and face.reason == Reason.REJECTED_BY_USER)
            face.state, face.reason = FaceState.REJECTED, Reason.REJECTED_BY_USER
            session.flush()
            _image_reason(session, face.image_id, Reason.REJECTED_BY_USER)
            todo.append((face_id, changed, face.gallery_path))
            coll, name = person.collection.key, person.name
    assert person_id is not None
    leaving = [f for f, changed, path in todo if changed or path]
    if leaving and store.path(coll).exists():
        # index before file: recognition stops naming these faces before anything else
        store.update(coll, lambda index: index.remove_faces(leaving))
    for _, _, gallery_path in todo:
        if gallery_path:
            with contextlib.suppress(FileNotFoundError):
                layout.absolute(gallery_path).unlink()
    with session_scope(settings) as session:
        for face_id, _, _ in todo:
            row = session.get(Face, face_id)
            if row is not None:
                row.gallery_path = None
        accepted = accepted_faces(session, person_id)
    below = accepted < settings.min_faces_to_promote
    return BulkResult(person_id, [
        ReviewResult(face_id, person_id, name, FaceState.REJECTED, Reason.REJECTED_BY_USER,
                     changed or bool(path), False, accepted, below)
        for face_id, changed, path in todo], accepted, below)


def restore_faces(settings: Settings, face_ids: Sequence[int], *,
                  person_id: int | None = None, store: IndexStore | None = None
                  ) -> BulkResult:
    """Restore several faces of one person (``person_id``: refuse faces of anyone else), one
    after another as :func:`restore_face` does."""
    if not face_ids:
        raise FaceAtlasError("no face to restore: name at least one")
    with session_scope(settings) as session:
        for face_id in face_ids:
            face = session.get(Face, face_id)
            if face is None:
                raise NotFoundError(f"no face with id {face_id}")
            if person_id is None:
                person_id = face.person_id
            elif face.person_id != person_id:
                raise NotFoundError(f"face {face_id} is not one of person {person_id}'s faces")
    assert person_id is not None
    store = store or index_store(settings)
    results = [restore_face(settings, f, store=store) for f in dict.fromkeys(face_ids)]
    last = results[-1]
    return BulkResult(person_id, results, last.accepted_faces, last.below_minimum)


def restore_face(settings: Settings, face_id: int, *, store: IndexStore | None = None
                 ) -> ReviewResult:
    """Accept a rejected face again; into the gallery and the index if the person is promoted."""
    layout = Layout(settings.home)
    store = store or index_store(settings)
    with session_scope(settings) as session:
        face, person = _face_and_person(session, face_id)
        if face.embedding is None:
            raise FaceAtlasError(
                "this face was too small or too blurry to be measured, so it cannot be "
                "recognised: it cannot join the gallery"
            )
        coll, folder, person_id, name = (person.collection.key, person.folder, person.id,
                                         person.name)
        promoted = person.state == PersonState.PROMOTED
        was_accepted = face.state == FaceState.ACCEPTED
        reason = face.reason if was_accepted else (
            Reason.ACCEPTED if face.reason == Reason.REJECTED_BY_USER else ACCEPTED_BY_USER)
        crop_path, gallery_path = face.crop_path, face.gallery_path
        # the index holds one engine's vectors (the ensemble's SFace half): refuse a mix
        tag, vectors = search_vectors({(face.engine, face.model_hash)},
                                      np.frombuffer(face.embedding, dtype=np.float32)[None])
        vector = vectors[0].copy()
        box = (face.x, face.y, face.w, face.h)
        raw_path = face.image.path
    # 1. files: the crop (cut again from the original if it is gone), the gallery copy
    if not crop_path or not layout.absolute(crop_path).is_file():
        crop_path = _recrop(layout, settings, coll, folder, face_id, raw_path, box)
    if promoted:
        src = layout.absolute(crop_path)
        dest = layout.gallery_file(coll, src.name)
        data = src.read_bytes()
        if not dest.is_file() or dest.read_bytes() != data:
            atomic_write(dest, data)
        new_gallery: str | None = layout.relative(dest)
        # 2. index (``add`` replaces an existing row of the same face)
        store.update(coll, lambda index: _ensure_row(index, face_id, person_id, vector),
                     engine=tag)
    else:
        new_gallery = gallery_path  # not promoted: the next promotion places it
    # 3. database
    with session_scope(settings) as session:
        row = session.get(Face, face_id)
        if row is None:
            raise NotFoundError(f"face {face_id} was deleted meanwhile")
        changed = not was_accepted or row.crop_path != crop_path or (
            promoted and row.gallery_path != new_gallery)
        row.state, row.reason = FaceState.ACCEPTED, reason
        row.crop_path, row.gallery_path = crop_path, new_gallery
        session.flush()
        _image_reason(session, row.image_id, reason)
        accepted = accepted_faces(session, person_id)
    return ReviewResult(face_id, person_id, name, FaceState.ACCEPTED, reason, changed,
                        new_gallery is not None, accepted,
                        accepted < settings.min_faces_to_promote)


def _ensure_row(index: ExactIndex, face_id: int, person_id: int, vector: np.ndarray) -> None:
    mine = index.face_ids == face_id
    if mine.any():
        (row,) = np.flatnonzero(mine)
        if int(index.person_id_array[row]) == person_id and np.array_equal(
                index.vectors[row], vector):
            return  # already there: no version bump, so the file is not rewritten
    index.add([face_id], [person_id], vector.reshape(1, -1))


@dataclass
class ReferenceResult:
    face_id: int
    person_id: int
    person: str
    reference_id: int
    state: str  # the person's state after re-deciding (curated, promoted, failed, …)
    accepted_faces: int
    error: str | None


def mark_reference(settings: Settings, face_id: int, *, store: IndexStore | None = None
                   ) -> ReferenceResult:
    """A reviewer says "this is them": the face becomes a reference; the person is re-decided
    around it (no model needed) and, if they were promoted, promoted again."""
    from faceatlas.curate import CurateParams, redecide
    from faceatlas.gallery import promote_person
    from faceatlas.references import add_reference

    with session_scope(settings) as session:
        _, person = _face_and_person(session, face_id)
        person_id, name = person.id, person.name
        was_promoted = person.state == PersonState.PROMOTED
    ref = add_reference(settings, person_id, face_id=face_id, source="user")
    params = CurateParams.from_settings(settings)
    redecide(person_id, settings, params)
    if params.strategy == "consensus" and params.arbitrate:
        from faceatlas.arbitrate import arbitrate_person

        arbitrate_person(settings, person_id, params)
    if was_promoted:
        promote_person(person_id, settings, store=store or index_store(settings))
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        assert person is not None
        return ReferenceResult(face_id, person_id, name, ref.id, person.state,
                               accepted_faces(session, person_id), person.error)


def _recrop(layout: Layout, settings: Settings, coll: str, folder: str, face_id: int,
            raw_path: str | None, box: tuple[int, int, int, int]) -> str:
    source = layout.absolute(raw_path) if raw_path else None
    if source is None or not source.is_file():
        raise FaceAtlasError(
            "the face's crop and its original photo are no longer stored: collect the "
            "person again to bring it back"
        )
    rgb = decode(source.read_bytes(), max_pixels=settings.max_pixels).rgb
    crop = encode_jpeg(box_crop(rgb, box, settings.crop_margin), settings.crop_quality)
    path = layout.crop_file(coll, folder, datetime.now(timezone.utc), face_id)
    atomic_write(path, crop)
    return layout.relative(path)


def recollect_person(settings: Settings, person_id: int) -> RecollectResult:
    """Queue the person for the pipeline again (search, downloads, curation)."""
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"no person with id {person_id}")
        if person.state in BUSY:
            raise FaceAtlasError(f"{person.name} is being collected right now ({person.state})")
        was = (person.state, person.error)
        retried = requeue(session, person)
        changed = was != (PersonState.QUEUED, None) or bool(retried)
        return RecollectResult(person.id, person.name, person.state, changed, retried)


def requeue(session: Session, person: Person) -> int:
    """Back to ``queued`` (inside the caller's transaction); failed downloads get another go,
    as a retry does. Returns how many downloads were reset."""
    failed = session.scalars(
        select(Image).where(Image.person_id == person.id, Image.state == ImageState.FAILED)
    ).all()
    for img in failed:
        img.state, img.reason, img.detail = ImageState.PENDING, None, None
    person.state, person.error = PersonState.QUEUED, None
    return len(failed)
