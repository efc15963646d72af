"""A reviewer's corrections, and the read-only views the review pages show.

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
import io
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from faceatlas.errors import FaceAtlasError, ImageError, NotFoundError
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop, encode_jpeg
from faceatlas.gallery import index_store, search_vectors
from faceatlas.index import ExactIndex, IndexStore
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Collection, Face, Image, Job, Person, PersonState, Reason

#: a reviewer accepted a face curation had rejected
ACCEPTED_BY_USER = Reason.ACCEPTED_BY_USER

#: the pipeline is working on these people right now: a review would race with curation
BUSY = (PersonState.SEARCHING, PersonState.DOWNLOADING, PersonState.CURATING)

#: order of the rejected groups on a person's page: decisions about the person first
REASON_ORDER = (
    Reason.REJECTED_BY_USER, Reason.NOT_THIS_PERSON, Reason.OTHER_PERSON, Reason.DUPLICATE,
    Reason.MULTIPLE_FACES,
    Reason.OVER_LIMIT, Reason.BLURRY, Reason.FACE_TOO_SMALL, Reason.NO_FACE,
    Reason.DECODE_ERROR, Reason.NOT_AN_IMAGE, Reason.DOWNLOAD_FAILED, "pending",
)


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


def _accepted_count(session: Session, person_id: int) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Face)
        .where(Face.person_id == person_id, Face.state == "accepted")
    ) or 0)


def _image_reason(session: Session, image_id: int, fallback: str) -> None:
    """Keep the image's summary reason true: accepted while any of its faces is."""
    img = session.get(Image, image_id)
    if img is None:
        return
    accepted = session.scalar(
        select(func.count()).select_from(Face)
        .where(Face.image_id == image_id, Face.state == "accepted")
    )
    if accepted:
        img.reason = Reason.ACCEPTED
    elif img.reason == Reason.ACCEPTED:
        img.reason = fallback


def reject_face(settings: Settings, face_id: int, *, store: IndexStore | None = None
                ) -> ReviewResult:
    """Reject a face: out of the index and the gallery folder now, reason ``rejected_by_user``."""
    layout = Layout(settings.home)
    store = store or index_store(settings)
    with session_scope(settings) as session:
        face, person = _face_and_person(session, face_id)
        changed = not (face.state == "rejected" and face.reason == Reason.REJECTED_BY_USER)
        face.state, face.reason = "rejected", Reason.REJECTED_BY_USER
        session.flush()
        _image_reason(session, face.image_id, Reason.REJECTED_BY_USER)
        coll, person_id, name = person.collection.key, person.id, person.name
        gallery_path = face.gallery_path
    if changed or gallery_path:
        # index before file: recognition stops naming this face before anything else
        if store.path(coll).exists():
            store.update(coll, lambda index: index.remove_faces([face_id]))
        if gallery_path:
            with contextlib.suppress(FileNotFoundError):
                layout.absolute(gallery_path).unlink()
    with session_scope(settings) as session:
        row = session.get(Face, face_id)
        if row is not None:
            row.gallery_path = None
        accepted = _accepted_count(session, person_id)
    return ReviewResult(face_id, person_id, name, "rejected", Reason.REJECTED_BY_USER,
                        changed or bool(gallery_path), False, accepted,
                        accepted < settings.min_faces_to_promote)


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
        was_accepted = face.state == "accepted"
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
        row.state, row.reason = "accepted", reason
        row.crop_path, row.gallery_path = crop_path, new_gallery
        session.flush()
        _image_reason(session, row.image_id, reason)
        accepted = _accepted_count(session, person_id)
    return ReviewResult(face_id, person_id, name, "accepted", reason, changed,
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
                               _accepted_count(session, person_id), person.error)


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
        failed = session.scalars(
            select(Image).where(Image.person_id == person_id, Image.state == "failed")
        ).all()
        for img in failed:  # downloads that failed get another go, as a retry does
            img.state, img.reason, img.detail = "pending", None, None
        changed = person.state != PersonState.QUEUED or bool(failed) or person.error is not None
        person.state, person.error = PersonState.QUEUED, None
        return RecollectResult(person.id, person.name, person.state, changed, len(failed))


# --------------------------------------------------------------------------- views


@dataclass
class StateCount:
    state: str
    people: int


@dataclass
class CollectionOverview:
    key: str
    name: str
    people: int
    by_state: list[StateCount]
    accepted_faces: int
    gallery_faces: int
    last_activity: datetime | None


def collections_overview(settings: Settings) -> list[CollectionOverview]:
    """Each collection with its people counted by state, its faces and its last activity."""
    with session_scope(settings) as session:
        colls = session.execute(
            select(Collection.id, Collection.key, Collection.name, Collection.created_at)
            .order_by(Collection.key)
        ).all()
        states: dict[int, list[StateCount]] = defaultdict(list)
        for cid, state, n in session.execute(
            select(Person.collection_id, Person.state, func.count())
            .group_by(Person.collection_id, Person.state).order_by(Person.state)
        ):
            states[cid].append(StateCount(state, int(n)))
        faces = {cid: (int(a or 0), int(g or 0)) for cid, a, g in session.execute(
            select(Person.collection_id,
                   func.sum(case((Face.state == "accepted", 1), else_=0)),
                   func.sum(case((Face.gallery_path.is_not(None), 1), else_=0)))
            .join(Person, Face.person_id == Person.id).group_by(Person.collection_id)
        )}
        touched = dict(session.execute(
            select(Person.collection_id, func.max(Person.updated_at))
            .group_by(Person.collection_id)
        ).all())
        jobs = dict(session.execute(
            select(Person.collection_id, func.max(Job.updated_at))
            .join(Person, Job.person_id == Person.id).group_by(Person.collection_id)
        ).all())
    out = []
    for cid, key, name, created in colls:
        moments = [_aware(t) for t in (created, touched.get(cid), jobs.get(cid)) if t]
        accepted, gallery = faces.get(cid, (0, 0))
        counts = states.get(cid, [])
        out.append(CollectionOverview(key, name, sum(c.people for c in counts), counts,
                                      accepted, gallery, max(moments) if moments else None))
    return out


@dataclass
class PersonRow:
    id: int
    name: str
    state: str
    accepted_faces: int
    gallery_faces: int
    cover_face_id: int | None  # the best accepted face, for a thumbnail
    updated_at: datetime | None


@dataclass
class CollectionPage:
    key: str
    name: str
    people: list[PersonRow]
    total: int
    states: list[StateCount]


def collection_people(settings: Settings, key: str, *, state: str | None = None,
                      limit: int = 200, offset: int = 0) -> CollectionPage:
    with session_scope(settings) as session:
        coll = session.scalar(select(Collection).where(Collection.key == key))
        if coll is None:
            raise NotFoundError(f"no collection {key!r}")
        faces = (
            select(Face.person_id,
                   func.sum(case((Face.state == "accepted", 1), else_=0)).label("acc"),
                   func.sum(case((Face.gallery_path.is_not(None), 1), else_=0)).label("gal"))
            .group_by(Face.person_id).subquery()
        )
        query = (select(Person.id, Person.name, Person.state, faces.c.acc, faces.c.gal,
                        Person.updated_at)
                 .outerjoin(faces, faces.c.person_id == Person.id)
                 .where(Person.collection_id == coll.id))
        total_q = select(func.count()).select_from(Person).where(Person.collection_id == coll.id)
        if state:
            query = query.where(Person.state == state)
            total_q = total_q.where(Person.state == state)
        rows = session.execute(
            query.order_by(Person.name, Person.id).limit(limit).offset(offset)).all()
        ids = [r[0] for r in rows]
        covers: dict[int, int] = {}
        if ids:
            # best accepted face per person: one query, first by quality wins
            for pid, fid in session.execute(
                select(Face.person_id, Face.id)
                .where(Face.person_id.in_(ids), Face.state == "accepted")
                .order_by(Face.person_id, Face.quality.desc(), Face.id)
            ):
                covers.setdefault(pid, fid)
        states = [StateCount(s, int(n)) for s, n in session.execute(
            select(Person.state, func.count()).where(Person.collection_id == coll.id)
            .group_by(Person.state).order_by(Person.state))]
        return CollectionPage(
            coll.key, coll.name,
            [PersonRow(i, n, s, int(a or 0), int(g or 0), covers.get(i), _aware(u))
             for i, n, s, a, g, u in rows],
            int(session.scalar(total_q) or 0), states)


@dataclass
class Provenance:
    image_id: int
    source_url: str | None  # the photo itself
    page_url: str | None  # the page it was found on
    query: str | None
    rank: int | None
    provider: str
    origin: str  # file:<name> for imports
    title: str | None
    created_at: datetime | None
    has_file: bool
    licence: str | None = None  # reuse terms (Commons files)
    author: str | None = None


@dataclass
class FaceCard:
    id: int
    state: str
    reason: str
    distance: float | None
    quality: float
    size: int  # face box width in pixels
    in_gallery: bool
    restorable: bool
    source: Provenance
    detail: str | None = None  # arbitration: whose face it is instead, or a same-photo note
    reference: bool = False  # a reviewer marked it "this is them"


@dataclass
class ImageCard:
    """A candidate photo that gave no face to decide about (no face, broken, not fetched)."""

    reason: str
    detail: str | None
    source: Provenance


@dataclass
class ReasonGroup:
    reason: str
    faces: list[FaceCard] = field(default_factory=list)
    images: list[ImageCard] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.faces) + len(self.images)


@dataclass
class PersonReview:
    id: int
    name: str
    collection: str
    state: str
    error: str | None
    occupations: list[str]
    country: str
    selftest: dict[str, object] | None
    updated_at: datetime | None
    accepted: list[FaceCard]
    rejected: list[ReasonGroup]
    candidates: int
    min_faces_to_promote: int
    busy: bool
    can_promote: bool
    wikidata_qid: str | None = None  # keyless sources (issue 14)
    native_name: str | None = None


def _provenance(img: Image) -> Provenance:
    return Provenance(img.id, img.url, img.page_url, img.query, img.rank, img.provider,
                      img.origin, img.title, _aware(img.created_at), bool(img.path),
                      img.licence, img.author)


def person_review(settings: Settings, person_id: int) -> PersonReview:
    """Everything a person's page shows: accepted faces best first, the rest by reason."""
    from faceatlas.gallery import PROMOTABLE

    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"no person with id {person_id}")
        images = session.scalars(
            select(Image).where(Image.person_id == person_id)
            .order_by(Image.rank.nulls_last(), Image.id).options(selectinload(Image.faces))
        ).all()
        from faceatlas.store.models import Reference

        refs = set(session.scalars(select(Reference.face_id).where(
            Reference.person_id == person_id, Reference.face_id.is_not(None))))
        accepted: list[FaceCard] = []
        groups: dict[str, ReasonGroup] = {}
        for img in images:
            source = _provenance(img)
            for f in sorted(img.faces, key=lambda f: f.idx):
                card = FaceCard(f.id, f.state, f.reason, f.distance, f.quality, f.w,
                                f.gallery_path is not None, f.embedding is not None, source,
                                f.detail, f.id in refs)
                if f.state == "accepted":
                    accepted.append(card)
                else:
                    groups.setdefault(f.reason, ReasonGroup(f.reason)).faces.append(card)
            if not img.faces:
                reason = img.reason or ("pending" if img.state in ("pending", "fetched")
                                        else img.state)
                groups.setdefault(reason, ReasonGroup(reason)).images.append(
                    ImageCard(reason, img.detail, source))
        accepted.sort(key=lambda c: (-c.quality, c.id))
        order = {r: i for i, r in enumerate(REASON_ORDER)}
        rejected = sorted(groups.values(), key=lambda g: (order.get(g.reason, 99), g.reason))
        return PersonReview(
            person.id, person.name, person.collection.key, person.state, person.error,
            list(person.occupations or []), person.country, person.selftest,
            _aware(person.updated_at), accepted, rejected, len(images),
            settings.min_faces_to_promote, person.state in BUSY, person.state in PROMOTABLE,
            person.wikidata_qid, person.native_name)


@dataclass
class JobRow:
    id: int
    kind: str
    state: str
    person_id: int | None
    person: str | None
    collection: str | None
    progress: float
    message: str | None
    error: str | None
    attempts: int
    worker: str | None
    heartbeat: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


def recent_jobs(settings: Settings, *, limit: int = 100, state: str | None = None,
                collections: frozenset[str] | None = None) -> list[JobRow]:
    """Newest jobs first, running ones on top, with the person's name; ``collections``:
    only jobs of these collection keys (None: all)."""
    with session_scope(settings) as session:
        query = (
            select(Job, Person.name, Collection.key)
            .outerjoin(Person, Job.person_id == Person.id)
            .outerjoin(Collection, Collection.id == func.coalesce(Job.collection_id,
                                                                   Person.collection_id))
            .order_by(case((Job.state == "running", 0), (Job.state == "queued", 1), else_=2),
                      Job.id.desc())
            .limit(limit)
        )
        if state:
            query = query.where(Job.state == state)
        if collections is not None:
            query = query.where(Collection.key.in_(sorted(collections)))
        return [
            JobRow(j.id, j.kind, j.state, j.person_id, name, coll, j.progress, j.message,
                   j.error, j.attempts, j.worker, _aware(j.heartbeat), _aware(j.created_at),
                   _aware(j.updated_at))
            for j, name, coll in session.execute(query)
        ]


def job_counts(settings: Settings, collections: frozenset[str] | None = None
               ) -> dict[str, int]:
    query = select(Job.state, func.count()).group_by(Job.state)
    if collections is not None:
        query = (query.outerjoin(Person, Job.person_id == Person.id)
                 .join(Collection, Collection.id == func.coalesce(Job.collection_id,
                                                                  Person.collection_id))
                 .where(Collection.key.in_(sorted(collections))))
    with session_scope(settings) as session:
        return {s: int(n) for s, n in session.execute(query)}


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; they were stored in UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


# --------------------------------------------------------------------------- thumbnails

THUMB_SIZE = 200  # px, long side: sharp on a phone's 2x screen at ~100 CSS px
_CACHE_LIMIT = 4096  # thumbnails of ~5-10 kB each: at most a few tens of MB
_cache: OrderedDict[tuple[str, int, int, int, tuple[int, ...]], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def face_image(settings: Settings, face_id: int, *, thumb: bool = True) -> bytes:
    """The face as JPEG: its crop if one is stored, else cut from the original photo."""
    layout = Layout(settings.home)
    with session_scope(settings) as session:
        face = session.get(Face, face_id)
        if face is None:
            raise NotFoundError(f"no face with id {face_id}")
        crop, raw = face.crop_path, face.image.path
        box = (face.x, face.y, face.w, face.h)
    if crop and layout.absolute(crop).is_file():
        path, cut = layout.absolute(crop), None
    elif raw and layout.absolute(raw).is_file():
        path, cut = layout.absolute(raw), box
    else:
        raise NotFoundError(f"face {face_id} has no stored picture")
    if not thumb and cut is None:
        return path.read_bytes()
    return _thumbnail(path, settings, cut, THUMB_SIZE if thumb else 800)


def image_thumbnail(settings: Settings, image_id: int) -> bytes:
    """A whole candidate photo, small."""
    layout = Layout(settings.home)
    with session_scope(settings) as session:
        img = session.get(Image, image_id)
        if img is None:
            raise NotFoundError(f"no image with id {image_id}")
        raw = img.path
    if not raw or not layout.absolute(raw).is_file():
        raise NotFoundError(f"image {image_id} has no stored file")
    return _thumbnail(layout.absolute(raw), settings, None, THUMB_SIZE)


def _thumbnail(path: Path, settings: Settings, box: tuple[int, int, int, int] | None,
               size: int) -> bytes:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, size, box or ())
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        # a whole-photo thumbnail needs no more pixels than it shows
        rgb = decode(path.read_bytes(), max_pixels=settings.max_pixels,
                     max_side=size if box is None else None,
                     max_bytes=settings.decode_max_bytes).rgb
    except ImageError as exc:
        raise NotFoundError("the stored picture cannot be decoded") from exc
    if box is not None:
        rgb = box_crop(rgb, box, settings.crop_margin)
    pic = PILImage.fromarray(rgb)
    pic.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=82, optimize=True)
    data = buf.getvalue()
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return data
