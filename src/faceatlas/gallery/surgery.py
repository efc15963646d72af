"""People surgery: move faces to another person, merge two people, split a person (issue 24).

A face belongs to a photo and a photo to one person, so a face moves **with its photo**: the
image row (origin, provider, url, licence: its provenance) is handed to the other person with
all of its faces. The ticked faces become the target's with reason ``accepted_by_user`` (a
reviewer's decision outlives re-curation); the photo's other faces are decided again under
the target. Crops are renamed into the target's folder, so neither person's sweep of orphan
crops takes them and the gallery names say whose they are.

Order of work, as a reviewer's reject: one transaction moves the rows (and the crop files,
taken back if it fails); the moved faces' index rows and gallery files go; then each person
touched is re-decided (``curation.apply.redecide``) and promoted again if they were in the
gallery (``promote_person`` unpromotes one who fell below the minimum). A merge also hands
over the gone person's references and sightings and then deletes them. Every verb writes one
``person_audit`` row per person touched: who (a token fingerprint, never the token), what,
when.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from faceatlas.curation.apply import redecide
from faceatlas.curation.decide import CurateParams
from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.gallery.index import IndexStore, index_store
from faceatlas.gallery.promote import promote_person
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, unlink_stored
from faceatlas.store.models import (
    BUSY,
    Face,
    FaceState,
    Image,
    Person,
    PersonAudit,
    PersonState,
    Reason,
    Reference,
    Sighting,
)
from faceatlas.store.people import get_person, upsert_person

#: the audit's verbs
MOVE, MERGE, SPLIT = "move", "merge", "split"


@dataclass
class SurgeryResult:
    """What a verb did: the people touched (id → state after), the faces moved."""

    action: str
    person_id: int  # the target (kept, or the new person of a split)
    faces: list[int]
    images: int
    states: dict[int, str] = field(default_factory=dict)
    removed_person_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "person_id": self.person_id, "faces": self.faces,
                "images": self.images, "states": {str(k): v for k, v in self.states.items()},
                "removed_person_id": self.removed_person_id}


def _person(s: Session, person_id: int) -> Person:
    person = get_person(s, person_id)
    if person.state in BUSY:
        raise FaceAtlasError(f"{person.name} is being collected right now ({person.state}); "
                             "change their faces when that has finished")
    return person


def _audit(s: Session, person_id: int, action: str, by: str | None,
           detail: dict[str, Any]) -> None:
    s.add(PersonAudit(person_id=person_id, action=action, by=by, detail=detail))


@dataclass
class _Moved:
    face_ids: list[int]
    images: int
    sources: set[int]
    renamed: list[tuple[Path, Path]]  # crop files (old, new): taken back on failure
    leaving: list[int]  # faces that had an index row or gallery file
    gallery_files: list[str]


def _move_images(s: Session, layout: Layout, out: _Moved, images: Sequence[Image],
                 target: Person, ticked: set[int] | None) -> None:
    """Hand ``images`` (with all their faces) to ``target``, recording it in ``out``;
    ``ticked`` faces (None: every accepted face) become the target's accepted faces by a
    user's decision."""
    now = datetime.now(timezone.utc)
    coll = target.collection.key
    for img in images:
        out.sources.add(img.person_id)
        img.person_id = target.id
        out.images += 1
        for face in img.faces:
            face.person_id = target.id
            if face.other_person_id == target.id:
                face.other_person_id = None
            chosen = face.id in ticked if ticked is not None else face.state == FaceState.ACCEPTED
            if chosen:
                face.state, face.reason = FaceState.ACCEPTED, Reason.ACCEPTED_BY_USER
                out.face_ids.append(face.id)
            if face.gallery_path:
                out.leaving.append(face.id)
                out.gallery_files.append(face.gallery_path)
                face.gallery_path = None
            if face.crop_path:
                old = layout.absolute(face.crop_path)
                new = layout.crop_file(coll, target.folder, now, face.id)
                if old.is_file() and old != new:
                    new.parent.mkdir(parents=True, exist_ok=True)
                    old.rename(new)
                    out.renamed.append((old, new))
                    face.crop_path = layout.relative(new)
                elif not old.is_file():
                    face.crop_path = None  # re-decision crops it again from the photo
    s.flush()


@contextlib.contextmanager
def _moving(settings: Settings) -> Iterator[tuple[Session, Layout, _Moved]]:
    """A verb's one transaction of rows and crop files: ``_move_images`` records its renames
    in the ``_Moved`` yielded, and if anything fails the crops go back where they were."""
    moved = _Moved([], 0, set(), [], [], [])
    try:
        with session_scope(settings) as s:
            yield s, Layout(settings.home), moved
    except BaseException:
        for old, new in reversed(moved.renamed):
            with contextlib.suppress(OSError):
                new.rename(old)
        raise


def _finish(settings: Settings, store: IndexStore, coll: str, moved: _Moved,
            promoted: dict[int, bool]) -> dict[int, str]:
    """Index rows and gallery files of the moved faces go; each person touched is re-decided
    and promoted again if they were in the gallery. Returns their states."""
    layout = Layout(settings.home)
    if moved.leaving and store.exists(coll):
        store.update(coll, lambda index: index.remove_faces(moved.leaving))
    for path in moved.gallery_files:
        unlink_stored(layout, path)
    params = CurateParams.from_settings(settings)
    states: dict[int, str] = {}
    for pid, was_promoted in promoted.items():
        try:
            redecide(settings, pid, params)
        except NotFoundError:  # merged away meanwhile
            continue
        if was_promoted:
            promote_person(settings, pid, store=store)
        with session_scope(settings) as s:
            states[pid] = get_person(s, pid).state
    return states


def _faces_of(s: Session, face_ids: Sequence[int], collection_id: int) -> list[Face]:
    faces = []
    for face_id in dict.fromkeys(face_ids):
        face = s.get(Face, face_id)
        if face is None:
            raise NotFoundError(f"no face with id {face_id}")
        owner = s.get(Person, face.person_id)
        assert owner is not None
        if owner.collection_id != collection_id:
            raise FaceAtlasError(f"face {face_id} belongs to another collection: faces move "
                                 "between people of one collection only; nothing was moved")
        _person(s, owner.id)
        faces.append(face)
    return faces


def move_faces(settings: Settings, face_ids: Sequence[int], to_person_id: int, *,
               by: str | None = None, store: IndexStore | None = None) -> SurgeryResult:
    """Move faces (each with its photo) to ``to_person_id`` of the same collection."""
    if not face_ids:
        raise FaceAtlasError("no face to move: name at least one")
    store = store or index_store(settings)
    with _moving(settings) as (s, layout, moved):
        target = _person(s, to_person_id)
        faces = _faces_of(s, face_ids, target.collection_id)
        images = list({f.image_id: f.image for f in faces
                       if f.person_id != target.id}.values())
        coll, sources = target.collection.key, {f.person_id for f in faces}
        promoted = {pid: s.get(Person, pid).state == PersonState.PROMOTED  # type: ignore[union-attr]
                    for pid in sorted(sources | {target.id})}
        _move_images(s, layout, moved, images, target, {f.id for f in faces})
        for f in faces:  # faces already the target's: a user's decision all the same
            f.state, f.reason = FaceState.ACCEPTED, Reason.ACCEPTED_BY_USER
        ids = sorted(f.id for f in faces)
        for pid in sorted(sources - {target.id}):
            _audit(s, pid, MOVE, by, {"faces": ids, "to": target.id, "to_name": target.name})
        _audit(s, target.id, MOVE, by, {"faces": ids, "from": sorted(sources)})
    states = _finish(settings, store, coll, moved, promoted)
    return SurgeryResult(MOVE, to_person_id, ids, moved.images, states)


def merge_people(settings: Settings, keep_id: int, gone_id: int, *, by: str | None = None,
                 store: IndexStore | None = None) -> SurgeryResult:
    """The same person under two names: ``gone_id``'s photos, faces, references and
    sightings become ``keep_id``'s, then ``gone_id`` is deleted."""
    if keep_id == gone_id:
        raise FaceAtlasError("a person cannot be merged into themselves")
    store = store or index_store(settings)
    with _moving(settings) as (s, layout, moved):
        keep, gone = _person(s, keep_id), _person(s, gone_id)
        if keep.collection_id != gone.collection_id:
            raise FaceAtlasError(f"{gone.name} and {keep.name} are in different "
                                 "collections: only people of one collection merge")
        coll, gone_name = keep.collection.key, gone.name
        promoted = {keep.id: keep.state == PersonState.PROMOTED or
                    gone.state == PersonState.PROMOTED}
        images = list(s.scalars(select(Image).where(Image.person_id == gone.id)))
        _move_images(s, layout, moved, images, keep, None)  # every face of their photos
        s.execute(update(Reference).where(Reference.person_id == gone.id)
                  .values(person_id=keep.id))
        s.execute(update(Sighting).where(Sighting.person_id == gone.id)
                  .values(person_id=keep.id))
        s.execute(update(Face).where(Face.other_person_id == gone.id)
                  .values(other_person_id=keep.id))
        s.execute(update(PersonAudit).where(PersonAudit.person_id == gone.id)
                  .values(person_id=keep.id))
        s.expire(gone)
        s.delete(gone)
        s.flush()
        _audit(s, keep.id, MERGE, by, {"gone": gone_id, "gone_name": gone_name,
                                       "faces": sorted(moved.face_ids),
                                       "images": moved.images})
    store.remove_person(coll, gone_id)  # the gone person's rows: never answered again
    states = _finish(settings, store, coll, moved, promoted)
    return SurgeryResult(MERGE, keep_id, sorted(moved.face_ids), moved.images, states,
                         removed_person_id=gone_id)


def split_person(settings: Settings, person_id: int, face_ids: Sequence[int], new_name: str, *,
                 by: str | None = None, store: IndexStore | None = None) -> SurgeryResult:
    """The ticked faces (with their photos) become a new person ``new_name`` of the same
    collection, in the gallery if the person split was."""

    if not face_ids:
        raise FaceAtlasError("no face to split off: tick at least one")
    with session_scope(settings) as s:
        person = _person(s, person_id)
        _check_faces_of(s, face_ids, person_id)
        new, created = upsert_person(s, person.collection, new_name, source="split")
        if not created:
            raise FaceAtlasError(f"{new.name} already exists in {person.collection.key}: "
                                 "move the faces to them instead")
        new.state = (PersonState.PROMOTED if person.state == PersonState.PROMOTED
                     else PersonState.CURATED)
        new_id, name = new.id, person.name
        _audit(s, new_id, SPLIT, by, {"from": person_id, "from_name": name})
    try:
        result = move_faces(settings, face_ids, new_id, by=by, store=store)
    except BaseException:
        with session_scope(settings) as s:  # nothing moved: the new person goes again
            if (made := s.get(Person, new_id)) is not None:
                s.delete(made)
        raise
    with session_scope(settings) as s:
        _audit(s, person_id, SPLIT, by, {"faces": result.faces, "to": new_id,
                                         "to_name": new_name})
    result.action = SPLIT
    return result


def check_faces_of(settings: Settings, face_ids: Sequence[int], person_id: int) -> None:
    """Refuse faces that are not ``person_id``'s, in the words a missing face gets (the
    caller checked the person: their faces are in the caller's collection)."""
    with session_scope(settings) as s:
        _check_faces_of(s, face_ids, person_id)


def _check_faces_of(s: Session, face_ids: Sequence[int], person_id: int) -> None:
    mine = set(s.scalars(select(Face.id).where(Face.id.in_(face_ids),
                                               Face.person_id == person_id)))
    stranger = next((f for f in face_ids if f not in mine), None)
    if stranger is not None:
        raise NotFoundError(f"no face with id {stranger}")


def person_audit(settings: Settings, person_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """The person's audit entries, newest first."""
    with session_scope(settings) as s:
        if s.get(Person, person_id) is None:
            raise NotFoundError(f"no person with id {person_id}")
        rows = s.scalars(select(PersonAudit).where(PersonAudit.person_id == person_id)
                         .order_by(PersonAudit.id.desc()).limit(limit))
        return [{"id": r.id, "action": r.action, "by": r.by, "detail": r.detail,
                 "at": r.created_at} for r in rows]
