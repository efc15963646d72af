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
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceatlas.curation.apply import redecide
from faceatlas.curation.arbitrate import arbitrate_person
from faceatlas.curation.decide import CurateParams
from faceatlas.curation.references import add_reference
from faceatlas.domain.errors import EngineMismatchError, FaceAtlasError, NotFoundError
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop, encode_jpeg
from faceatlas.gallery.index import IndexStore, SegmentedIndex, index_store
from faceatlas.gallery.promote import promote_person, search_vectors
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


def _one_persons_faces(session: Session, face_ids: Sequence[int], person_id: int | None
                       ) -> tuple[list[Face], Person]:
    """The faces (each once, in order) and their one person, who must not be busy. A face of
    anyone else (``person_id``, else the first face's person) is answered as missing, in the
    words a missing face gets: a caller checked for one person learns nothing of others."""
    faces: list[Face] = []
    owner: Person | None = None
    for face_id in dict.fromkeys(face_ids):
        face, person = _face_and_person(session, face_id)
        person_id = person.id if person_id is None else person_id
        if person.id != person_id:
            raise NotFoundError(f"no face with id {face_id}")
        faces.append(face)
        owner = person
    assert owner is not None  # callers refuse an empty batch first
    return faces, owner


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
        faces, person = _one_persons_faces(session, face_ids, person_id)
        for face in faces:
            changed = not (face.state == FaceState.REJECTED
                           and face.reason == Reason.REJECTED_BY_USER)
            face.state, face.reason = FaceState.REJECTED, Reason.REJECTED_BY_USER
            session.flush()
            _image_reason(session, face.image_id, Reason.REJECTED_BY_USER)
            todo.append((face.id, changed, face.gallery_path))
        person_id, coll, name = person.id, person.collection.key, person.name
    leaving = [f for f, changed, path in todo if changed or path]
    if leaving and store.exists(coll):
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
    """Restore several faces of one person (``person_id``: refuse faces of anyone else), all
    or nothing: every face is checked first (one person's, not being collected, measured,
    one engine that the index can take, a crop or its original still stored) and a batch
    with any face that cannot come back is refused whole, before anything changes. Then
    files, one index update, the database."""
    if not face_ids:
        raise FaceAtlasError("no face to restore: name at least one")
    layout = Layout(settings.home)
    store = store or index_store(settings)
    todo: list[_Restore] = []
    unmeasured: list[int] = []
    lost: list[int] = []
    with session_scope(settings) as session:
        faces, person = _one_persons_faces(session, face_ids, person_id)
        for face in faces:
            face_id = face.id
            if face.embedding is None:
                unmeasured.append(face_id)
                continue
            raw = face.image.path
            if not (face.crop_path and layout.absolute(face.crop_path).is_file()) and not (
                    raw and layout.absolute(raw).is_file()):
                lost.append(face_id)
            was_accepted = face.state == FaceState.ACCEPTED
            todo.append(_Restore(
                face_id, was_accepted,
                face.reason if was_accepted else (
                    Reason.ACCEPTED if face.reason == Reason.REJECTED_BY_USER
                    else ACCEPTED_BY_USER),
                face.crop_path, face.gallery_path, (face.engine, face.model_hash),
                np.frombuffer(face.embedding, dtype=np.float32), (face.x, face.y, face.w, face.h),
                raw))
        person_id, coll, folder, name = person.id, person.collection.key, person.folder, \
            person.name
        promoted = person.state == PersonState.PROMOTED
    if unmeasured:
        raise FaceAtlasError(
            f"{_faces(unmeasured)} too small or too blurry to be measured, so "
            f"{'it' if len(unmeasured) == 1 else 'they'} cannot be recognised and cannot join "
            "the gallery" + _nothing_done(len(unmeasured), len(todo)))
    if lost:
        raise FaceAtlasError(
            f"the crop and the original photo of {_faces(lost, verb=False)} are no longer "
            "stored: collect the person again to bring them back"
            + _nothing_done(len(lost), len(todo) - len(lost)))
    # the index holds one engine's vectors (the ensemble's SFace half): refuse a mix
    tag, vectors = search_vectors({r.tag for r in todo}, np.stack([r.vector for r in todo]),
                                  name)
    if promoted:
        _check_index_engine(store, coll, tag)
    # 1. files: the crops (cut again from the original where gone), the gallery copies; a
    #    file that fails takes back those written before it
    written: list[Path] = []
    try:
        for r in todo:
            if not r.crop_path or not layout.absolute(r.crop_path).is_file():
                r.crop_path = _recrop(layout, settings, coll, folder, r.face_id, r.raw_path,
                                      r.box)
                written.append(layout.absolute(r.crop_path))
            r.new_gallery = r.gallery_path  # not promoted: the next promotion places it
            if promoted:
                src = layout.absolute(r.crop_path)
                dest = layout.gallery_file(coll, src.name)
                data = src.read_bytes()
                if not dest.is_file() or dest.read_bytes() != data:
                    if not dest.is_file():
                        written.append(dest)
                    atomic_write(dest, data)
                r.new_gallery = layout.relative(dest)
        # 2. index, once (``add`` replaces an existing row of the same face)
        if promoted:
            ids = [r.face_id for r in todo]
            store.update(coll, lambda index: _ensure_rows(index, ids, person_id, vectors),
                         engine=tag)
    except BaseException:
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    # 3. database, in one transaction
    with session_scope(settings) as session:
        changed: dict[int, bool] = {}
        for r in todo:
            row = session.get(Face, r.face_id)
            if row is None:
                raise NotFoundError(f"face {r.face_id} was deleted meanwhile")
            changed[r.face_id] = not r.was_accepted or row.crop_path != r.crop_path or (
                promoted and row.gallery_path != r.new_gallery)
            row.state, row.reason = FaceState.ACCEPTED, r.reason
            row.crop_path, row.gallery_path = r.crop_path, r.new_gallery
            session.flush()
            _image_reason(session, row.image_id, r.reason)
        accepted = accepted_faces(session, person_id)
    below = accepted < settings.min_faces_to_promote
    results = [ReviewResult(r.face_id, person_id, name, FaceState.ACCEPTED, r.reason,
                            changed[r.face_id], r.new_gallery is not None, accepted, below)
               for r in todo]
    return BulkResult(person_id, results, accepted, below)


@dataclass
class _Restore:
    """One face of a restore, as checked (and then as restored)."""

    face_id: int
    was_accepted: bool
    reason: str
    crop_path: str | None
    gallery_path: str | None
    tag: tuple[str, str]
    vector: np.ndarray
    box: tuple[int, int, int, int]
    raw_path: str | None
    new_gallery: str | None = None


def _faces(ids: list[int], *, verb: bool = True) -> str:
    """``face 3 was`` / ``faces 3, 5 were`` (``verb``: with the verb)."""
    words = (f"face {ids[0]}" if len(ids) == 1
             else "faces " + ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else ""))
    return words + ((" was" if len(ids) == 1 else " were") if verb else "")


def _nothing_done(bad: int, others: int) -> str:
    """The end of a refusal: what to do when the batch had restorable faces too."""
    if not others:
        return ""
    return (f": leave {'it' if bad == 1 else 'them'} out and restore the others (nothing was "
            "restored)")


def _check_index_engine(store: IndexStore, coll: str, tag: tuple[str, str]) -> None:
    """Refuse before any change what ``store.update(..., engine=tag)`` would refuse after."""
    if not store.exists(coll):
        return
    index = store.get(coll)
    if len(index) and index.engine is not None and (index.engine, index.model_hash) != tag:
        raise EngineMismatchError(
            f"the index of collection {coll} holds {index.engine} vectors and these faces "
            f"were measured with {tag[0]}: analyse the collection again with one engine "
            "(reembed); nothing was restored", collection=coll, engine=index.engine)


def restore_face(settings: Settings, face_id: int, *, store: IndexStore | None = None
                 ) -> ReviewResult:
    """Accept a rejected face again; into the gallery and the index if the person is promoted."""
    return restore_faces(settings, [face_id], store=store).results[0]


def _ensure_rows(index: SegmentedIndex, face_ids: list[int], person_id: int,
                 vectors: np.ndarray) -> None:
    """Add the faces' rows; rows already there as they are: no version bump, so nothing is
    published for an unchanged index."""
    fids, pids, vecs = index.rows_of_faces(face_ids)  # a few rows of a big index
    present = {int(f): (int(p), v) for f, p, v in zip(fids, pids, vecs, strict=True)}
    missing = [i for i, face_id in enumerate(face_ids)
               if (row := present.get(face_id)) is None
               or row[0] != person_id or not np.array_equal(row[1], vectors[i])]
    if missing:
        index.add([face_ids[i] for i in missing], [person_id] * len(missing),
                  vectors[missing])


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

    with session_scope(settings) as session:
        _, person = _face_and_person(session, face_id)
        person_id, name = person.id, person.name
        was_promoted = person.state == PersonState.PROMOTED
    ref = add_reference(settings, person_id, face_id=face_id, source="user")
    params = CurateParams.from_settings(settings)
    redecide(settings, person_id, params)
    if params.strategy == "consensus" and params.arbitrate:
        arbitrate_person(settings, person_id, params)
    if was_promoted:
        promote_person(settings, person_id, store=store or index_store(settings))
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
