"""Every catalogue read: collections and people with their counts, a person with their faces,
jobs. The API, the review pages and the CLI all read through here, so a count means the same
thing everywhere (one accepted-face expression, one reason order). Nothing here writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key, name_key, one_line, to_ascii
from faceatlas.settings import Settings
from faceatlas.store.anchors import anchor_of, anchored_filter, anchors_of
from faceatlas.store.db import session_scope
from faceatlas.store.models import (
    BUSY,
    PROMOTABLE,
    REASON_ORDER,
    Anchor,
    Collection,
    Face,
    FaceState,
    Image,
    ImageState,
    Job,
    JobState,
    Person,
    PersonState,
    Reason,
    Reference,
    aware,
)
from faceatlas.store.people import as_person_id

#: 1 for an accepted face, else 0: ``func.sum`` of it counts a person's accepted faces
ACCEPTED_FACE = case((Face.state == FaceState.ACCEPTED, 1), else_=0)
#: 1 for a face with a file in the gallery folder
GALLERY_FACE = case((Face.gallery_path.is_not(None), 1), else_=0)

#: order of the rejected groups on a person's page: the reasons, then photos not yet fetched
GROUP_ORDER: tuple[str, ...] = (*REASON_ORDER, ImageState.PENDING)


def accepted_faces(session: Session, person_id: int) -> int:
    """How many accepted faces the person has now (inside the caller's transaction)."""
    return int(session.scalar(
        select(func.count()).select_from(Face)
        .where(Face.person_id == person_id, Face.state == FaceState.ACCEPTED)
    ) or 0)


# --------------------------------------------------------------------------- collections and people


@dataclass
class CollectionInfo:
    key: str
    name: str
    people: int
    promoted: int
    accepted_faces: int
    gallery_faces: int


@dataclass
class PersonInfo:
    id: int
    name: str
    collection: str
    state: str
    images: int
    accepted_faces: int
    gallery_faces: int
    occupations: list[str] = field(default_factory=list)
    anchor: str = Anchor.NONE  # portrait, reference or none (store/anchors.py)


@dataclass
class PersonDetail(PersonInfo):
    ascii_name: str = ""
    folder: str = ""
    country: str = ""
    source: str = ""
    error: str | None = None
    selftest: dict[str, object] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    wikidata_qid: str | None = None
    native_name: str | None = None
    #: how looking the name up on Wikidata ended: state, candidates (ambiguous), detail
    wikidata_lookup: dict[str, object] | None = None


def list_collections(settings: Settings) -> list[CollectionInfo]:
    with session_scope(settings) as session:
        people = (
            select(
                Person.collection_id.label("cid"),
                func.count().label("people"),
                func.sum(case((Person.state == PersonState.PROMOTED, 1), else_=0))
                .label("promoted"),
            ).group_by(Person.collection_id).subquery()
        )
        faces = (
            select(
                Person.collection_id.label("cid"),
                func.sum(ACCEPTED_FACE).label("accepted"),
                func.sum(GALLERY_FACE).label("gallery"),
            ).join(Person, Face.person_id == Person.id).group_by(Person.collection_id).subquery()
        )
        rows = session.execute(
            select(Collection.key, Collection.name, people.c.people, people.c.promoted,
                   faces.c.accepted, faces.c.gallery)
            .outerjoin(people, people.c.cid == Collection.id)
            .outerjoin(faces, faces.c.cid == Collection.id)
            .order_by(Collection.key)
        ).all()
    return [CollectionInfo(k, n, int(p or 0), int(pr or 0), int(a or 0), int(g or 0))
            for k, n, p, pr, a, g in rows]


def list_people(
    settings: Settings,
    *,
    collection: str | None = None,
    state: str | None = None,
    person_id: int | None = None,
    limit: int | None = 100,
    offset: int = 0,
    collections: Iterable[str] | None = None,
) -> list[PersonInfo]:
    """People with counts; ``collections``: only these collection keys (None: all);
    ``limit`` None: all of them."""
    with session_scope(settings) as session:
        images = (select(Image.person_id, func.count().label("n"))
                  .group_by(Image.person_id).subquery())
        faces = (
            select(
                Face.person_id,
                func.sum(ACCEPTED_FACE).label("accepted"),
                func.sum(GALLERY_FACE).label("gallery"),
            ).group_by(Face.person_id).subquery()
        )
        query = (
            select(Person.id, Person.name, Collection.key, Person.state, images.c.n,
                   faces.c.accepted, faces.c.gallery, Person.occupations)
            .join(Collection)
            .outerjoin(images, images.c.person_id == Person.id)
            .outerjoin(faces, faces.c.person_id == Person.id)
            .order_by(Collection.key, Person.name, Person.id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        if collection is not None:
            query = query.where(Collection.key == collection_key(collection))
        if collections is not None:
            query = query.where(Collection.key.in_(sorted(collections)))
        if state is not None:
            query = query.where(Person.state == state)
        if person_id is not None:
            query = query.where(Person.id == person_id)
        rows = session.execute(query).all()
        anchors = anchors_of(session, [r[0] for r in rows])
    # one_line: a name stored before invisible characters were stripped at entry shows safely
    return [PersonInfo(i, one_line(n), c, s, int(im or 0), int(a or 0), int(g or 0),
                       list(occ or []), anchors[i])
            for i, n, c, s, im, a, g, occ in rows]


def person_detail(settings: Settings, person_id: int) -> PersonDetail:
    """One person: the counts of `list_people` and every descriptive column."""
    found = list_people(settings, person_id=person_id)
    with session_scope(settings) as session:
        p = session.get(Person, person_id)
        if p is None or not found:
            raise NotFoundError(f"no person with id {person_id}")
        return PersonDetail(
            **vars(found[0]), ascii_name=p.ascii_name, folder=p.folder, country=p.country,
            source=p.source, error=p.error, selftest=p.selftest, created_at=p.created_at,
            updated_at=p.updated_at, wikidata_qid=p.wikidata_qid, native_name=p.native_name,
            wikidata_lookup=p.wikidata_lookup)


@dataclass
class BoxInfo:
    x: int
    y: int
    w: int
    h: int


@dataclass
class FaceInfo:
    id: int
    image_id: int
    image: str  # title or origin of the image
    image_reason: str | None
    idx: int
    box: BoxInfo
    det_score: float
    blur: float
    distance: float | None
    quality: float
    state: str
    reason: str
    crop_path: str | None
    gallery_path: str | None


@dataclass
class ImageInfo:
    id: int
    title: str | None
    origin: str
    state: str
    reason: str | None
    faces: list[FaceInfo]
    provider: str | None
    licence: str | None
    licence_url: str | None
    author: str | None
    url: str | None
    rank: int | None


def image_rows(session: Session, person_id: int) -> list[Image]:
    """The person's image rows, best-ranked first, with their faces (two queries): what the
    review shows and curation stores analyses into and decides."""
    return list(session.scalars(
        select(Image).where(Image.person_id == person_id)
        .order_by(Image.rank.nulls_last(), Image.id).options(selectinload(Image.faces))))


def person_images(settings: Settings, person_id: int) -> list[ImageInfo]:
    """Every candidate image of the person, best-ranked first, with its faces by number."""
    with session_scope(settings) as session:
        if session.get(Person, person_id) is None:
            raise NotFoundError(f"no person with id {person_id}")
        images = image_rows(session, person_id)
        return [
            ImageInfo(img.id, img.title, img.origin, img.state, img.reason, [
                FaceInfo(f.id, img.id, img.title or img.origin, img.reason, f.idx,
                         BoxInfo(f.x, f.y, f.w, f.h), f.det_score, f.blur, f.distance,
                         f.quality, f.state, f.reason, f.crop_path, f.gallery_path)
                for f in sorted(img.faces, key=lambda f: f.idx)
            ], img.provider, img.licence, img.licence_url, img.author, img.url, img.rank)
            for img in images
        ]


def list_jobs(settings: Settings, *, state: str | None = None, kind: str | None = None,
              person_id: int | None = None, limit: int = 100,
              restrict: Callable[[Select[tuple[Job]]], Select[tuple[Job]]] | None = None
              ) -> list[Job]:
    """Jobs newest first (detached rows); ``restrict`` narrows the query (the caller's
    collections)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if person_id is not None:
        query = query.where(Job.person_id == person_id)
    if restrict is not None:
        query = restrict(query)
    with session_scope(settings) as session:
        return list(session.scalars(query))


def get_job(settings: Settings, job_id: int) -> Job:
    with session_scope(settings) as session:
        found = session.get(Job, job_id)
        if found is None:
            raise NotFoundError(f"no job with id {job_id}")
        return found


# --------------------------------------------------------------------------- review pages


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
                   func.sum(ACCEPTED_FACE),
                   func.sum(GALLERY_FACE))
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
        moments = [aware(t) for t in (created, touched.get(cid), jobs.get(cid)) if t]
        accepted, gallery = faces.get(cid, (0, 0))
        counts = states.get(cid, [])
        out.append(CollectionOverview(key, name, sum(c.people for c in counts), counts,
                                      accepted, gallery, max(moments) if moments else None))
    return out


class QueryError(FaceAtlasError):
    """A read asked for something there is no such thing as (a sort order)."""

    code = "bad_query"


#: the collection page's sort orders (the first is the default)
SORTS: tuple[str, ...] = ("name", "faces", "updated", "flags")
#: reasons the collection page filters by: every rejection reason, in the one reason order
FILTER_REASONS: tuple[str, ...] = tuple(REASON_ORDER)
#: 1 for a face arbitration flagged: moved to another person of the collection (reason
#: other_person) or kept with a note (``detail``: the same photo is also someone else's).
#: Arbitration writes ``Face.detail``, and curation when the result's text names another
#: person of the collection (evidence against the face: worth a reviewer's look too).
FLAGGED_FACE = case((or_(Face.reason == Reason.OTHER_PERSON, Face.detail.is_not(None)), 1),
                    else_=0)
#: 1 when the person's stored promotion self-test failed (recognised as someone else)
SELFTEST_FAILED = case((Person.selftest["passed"].as_boolean() == false(), 1), else_=0)


@dataclass
class CollectionPerson:
    id: int
    name: str
    state: str
    accepted_faces: int
    gallery_faces: int
    cover_face_id: int | None  # the best accepted face, for a thumbnail
    updated_at: datetime | None
    flags: int = 0  # purity flags: see `collection_people`
    selftest_failed: bool = False
    native_name: str | None = None
    anchor: str = Anchor.NONE


@dataclass
class ReasonCount:
    reason: str
    people: int


@dataclass
class CollectionPage:
    key: str
    name: str
    people: list[CollectionPerson]
    total: int  # people matching the whole filter
    states: list[StateCount]  # people per state, matching the search and reason filter
    reasons: list[ReasonCount] = field(default_factory=list)  # matching search and state
    all_people: int = 0  # everyone in the collection
    #: people per anchor (portrait, reference, none) under the search, state and reason filter
    anchors: dict[str, int] = field(default_factory=dict)
    #: the first names of the collection's people without an anchor (all of them: ``anchors``)
    unanchored: list[str] = field(default_factory=list)
    unanchored_total: int = 0  # the collection's people without an anchor


def _search_terms(q: str) -> list[str]:
    """LIKE patterns (lower case, % and _ escaped) for the spellings of a search: as typed,
    its ASCII transliteration and its name key (``Đoković`` finds ``Djokovic`` and back)."""
    spellings = {one_line(q).lower(), to_ascii(q).lower(), name_key(q)}
    return ["%" + s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for s in sorted(spellings) if s]


def people_filter(coll_id: int, *, q: str | None = None, state: str | None = None,
                  reason: str | None = None, anchor: str | None = None,
                  ) -> list[ColumnElement[bool]]:
    """The WHERE clauses of the collection page's filter (for its reads and bulk actions)."""
    where: list[ColumnElement[bool]] = [Person.collection_id == coll_id]
    if q and q.strip():
        columns = (func.lower(Person.name), func.lower(Person.ascii_name), Person.key,
                   func.lower(func.coalesce(Person.native_name, "")))
        where.append(or_(*(c.like(t, escape="\\") for t in _search_terms(q) for c in columns)))
    if state:
        where.append(Person.state == state)
    if reason:
        where.append(_has_reason(reason))
    if anchor:
        if anchor not in tuple(Anchor):
            raise QueryError(f"anchor must be one of {', '.join(Anchor)}, not {anchor[:40]!r}")
        where.append(anchored_filter(anchor))  # type: ignore[arg-type]
    return where


def collection_row(session: Session, key: str) -> Collection:
    coll = session.scalar(select(Collection).where(Collection.key == key))
    if coll is None:
        raise NotFoundError(f"no collection {key!r}")
    return coll


def collection_people(settings: Settings, key: str, *, q: str | None = None,
                      state: str | None = None, reason: str | None = None,
                      sort: str = "name", limit: int = 100, offset: int = 0,
                      anchor: str | None = None) -> CollectionPage:
    """One page of a collection's people for the review page, and the counts around it.

    - ``q``: part of a name, case- and accent-insensitive: matched against the name, its
      ASCII spelling, its name key and the native-script name (``djokovic`` finds ``Novak
      Đoković``);
    - ``state``: a person state; ``reason``: people with at least one face — or a photo that
      gave no face — with that decision code (``other_person``, ``download_failed``…);
    - ``anchor``: people whose gallery rests on ``portrait``, ``reference`` or ``none``;
    - ``sort``: ``name`` (ASCII spelling, A→Z), ``faces`` (accepted faces, most first),
      ``updated`` (latest first) or ``flags`` (purity flags, most first).

    **Purity flags** of a person: their faces that collection arbitration flagged — faces
    moved to another person (reason ``other_person``) plus accepted faces it kept with a
    note (a non-null ``Face.detail``: the same photo is also someone else's candidate), each
    face counted once — plus 1 if their stored promotion self-test failed.

    ``total`` counts the whole filter; ``states`` counts each state under the search and
    reason filter (not the state filter), ``reasons`` each reason under the search and state
    filter (not the reason filter), so a badge says how many people clicking it shows.
    """
    if sort not in SORTS:
        raise QueryError(f"sort must be one of {', '.join(SORTS)}, not {sort[:40]!r}")
    with session_scope(settings) as session:
        coll = collection_row(session, key)
        where = people_filter(coll.id, q=q, state=state, reason=reason, anchor=anchor)
        query = select(Person.id).where(*where)
        if sort == "faces":
            acc = (select(func.count()).select_from(Face)
                   .where(Face.person_id == Person.id, Face.state == FaceState.ACCEPTED)
                   .correlate(Person).scalar_subquery())
            query = query.order_by(acc.desc(), func.lower(Person.ascii_name), Person.id)
        elif sort == "flags":
            # = faces with a detail + other_person faces without one: both read from the
            # indexes faces(person_id, detail) and faces(person_id, reason)
            noted = (select(func.count()).select_from(Face)
                     .where(Face.person_id == Person.id, Face.detail.is_not(None))
                     .correlate(Person).scalar_subquery())
            moved = (select(func.count()).select_from(Face)
                     .where(Face.person_id == Person.id, Face.reason == Reason.OTHER_PERSON,
                            Face.detail.is_(None))
                     .correlate(Person).scalar_subquery())
            query = query.order_by((noted + moved + SELFTEST_FAILED).desc(),
                                   func.lower(Person.ascii_name), Person.id)
        elif sort == "updated":
            query = query.order_by(Person.updated_at.desc(), Person.id.desc())
        else:
            query = query.order_by(func.lower(Person.ascii_name), Person.name, Person.id)
        ids = list(session.scalars(query.limit(limit).offset(offset)))
        people = _page_people(session, ids)
        total = int(session.scalar(select(func.count()).select_from(Person).where(*where)) or 0)
        states = [StateCount(s, int(n)) for s, n in session.execute(
            select(Person.state, func.count())
            .where(*people_filter(coll.id, q=q, reason=reason))
            .group_by(Person.state).order_by(Person.state))]
        reasons = _reason_counts(session, people_filter(coll.id, q=q, state=state))
        everyone = int(session.scalar(select(func.count()).select_from(Person)
                                      .where(Person.collection_id == coll.id)) or 0)
        around = people_filter(coll.id, q=q, state=state, reason=reason)
        anchors = {str(a): int(session.scalar(select(func.count()).select_from(Person).where(
            *around, anchored_filter(a))) or 0) for a in Anchor}  # type: ignore[arg-type]
        bare_where = (Person.collection_id == coll.id,
                      anchored_filter(Anchor.NONE))  # type: ignore[arg-type]
        bare = list(session.scalars(select(Person.name).where(*bare_where)
                                    .order_by(func.lower(Person.ascii_name), Person.id)
                                    .limit(20)))
        unfiltered = not (q or state or reason)  # then the anchor counts are the collection's
        bare_total = anchors[str(Anchor.NONE)] if unfiltered else int(session.scalar(
            select(func.count()).select_from(Person).where(*bare_where)) or 0)
        return CollectionPage(coll.key, coll.name, people, total, states, reasons, everyone,
                              anchors, bare, bare_total)


def _page_people(session: Session, ids: list[int]) -> list[CollectionPerson]:
    """The cards of one page, in the order of ``ids``: counts, flags and a cover face."""
    if not ids:
        return []
    rows = {r.id: r for r in session.execute(
        select(Person.id, Person.name, Person.state, Person.updated_at, Person.native_name,
               SELFTEST_FAILED.label("failed")).where(Person.id.in_(ids)))}
    counts = {pid: (int(a or 0), int(g or 0), int(f or 0)) for pid, a, g, f in session.execute(
        select(Face.person_id, func.sum(ACCEPTED_FACE), func.sum(GALLERY_FACE),
               func.sum(FLAGGED_FACE))
        .where(Face.person_id.in_(ids)).group_by(Face.person_id))}
    covers: dict[int, int] = {}
    # best accepted face per person: one query, first by quality wins
    for pid, fid in session.execute(
        select(Face.person_id, Face.id)
        .where(Face.person_id.in_(ids), Face.state == FaceState.ACCEPTED)
        .order_by(Face.person_id, Face.quality.desc(), Face.id)
    ):
        covers.setdefault(pid, fid)
    anchors = anchors_of(session, ids)
    out = []
    for pid in ids:
        r = rows[pid]
        acc, gal, flagged = counts.get(pid, (0, 0, 0))
        out.append(CollectionPerson(pid, r.name, r.state, acc, gal, covers.get(pid),
                                    aware(r.updated_at), flagged + int(r.failed),
                                    bool(r.failed), r.native_name, anchors[pid]))
    return out


#: reasons only a photo carries (it gave no face), and those a photo can carry without faces
#: (a byte-identical duplicate is dropped before analysis); the others are faces' only
PHOTO_ONLY_REASONS = frozenset({Reason.NO_FACE, Reason.DECODE_ERROR, Reason.NOT_AN_IMAGE,
                                Reason.DOWNLOAD_FAILED})
PHOTO_REASONS = PHOTO_ONLY_REASONS | {Reason.DUPLICATE}


def _has_reason(reason: str) -> ColumnElement[bool]:
    """The person has a face with this decision, or a photo with it that gave no face (a
    failed download, no face in it). A photo with faces carries one of its faces' reasons,
    so probing faces and photos by (person_id, reason) is enough, and each probe is skipped
    where the reason cannot occur."""
    tests: list[ColumnElement[bool]] = []
    if reason not in PHOTO_ONLY_REASONS:
        tests.append(exists().where(Face.person_id == Person.id, Face.reason == reason))
    if reason in PHOTO_REASONS:
        tests.append(exists().where(Image.person_id == Person.id, Image.reason == reason))
    return or_(*tests)


def _reason_counts(session: Session, where: list[ColumnElement[bool]]) -> list[ReasonCount]:
    """People per reason among those ``where`` picks: one pass over the people, index
    probes per reason (faces(person_id, reason), images(person_id, reason))."""
    row = session.execute(select(*(func.sum(case((_has_reason(r), 1), else_=0))
                                   for r in FILTER_REASONS)).where(*where)).one()
    return [ReasonCount(r, int(n)) for r, n in zip(FILTER_REASONS, row, strict=True) if n]


def people_named_like(settings: Settings, key: str, q: str, *, limit: int = 10
                      ) -> list[tuple[int, str, str]]:
    """(id, name, state) of up to ``limit`` people of collection ``key`` whose name (any
    spelling, as the collection page's search) contains ``q``, or whose id it is; names
    first in alphabetical order. A name picker's suggestions."""
    q = one_line(q)[:200]
    if not q:
        return []
    with session_scope(settings) as session:
        coll = collection_row(session, key)
        match = and_(*people_filter(coll.id, q=q))
        if (person_id := as_person_id(q)) is not None:
            match = or_(match, and_(Person.collection_id == coll.id, Person.id == person_id))
        rows = session.execute(select(Person.id, Person.name, Person.state).where(match)
                               .order_by(Person.name).limit(limit)).all()
    return [(pid, name, str(state)) for pid, name, state in rows]


def collection_person_names(settings: Settings, ids: Iterable[int], *, collection: str
                            ) -> dict[int, str]:
    """id → name of those of the given people who are in ``collection`` (banners and
    confirmations name people, never ids)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with session_scope(settings) as session:
        return dict(session.execute(
            select(Person.id, Person.name).join(Collection)
            .where(Person.id.in_(wanted), Collection.key == collection)).all())


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
    #: accepted faces only: the near-duplicate faces curation set aside for this one
    duplicates: list[FaceCard] = field(default_factory=list)
    #: accepted faces only: photos with the same bytes as this face's photo (never analysed)
    copies: list[ImageCard] = field(default_factory=list)

    @property
    def duplicate_count(self) -> int:
        return len(self.duplicates) + len(self.copies)


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
    #: ``duplicate``: how many are shown under the accepted face they copy instead
    attached: int = 0

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
    #: a failed self-test: who the held-out face was recognised as (id, name)
    selftest_person: tuple[int, str] | None = None
    #: as stored: what folding the duplicate group under the faces they copy needs
    duplicate_rows: DuplicateRows | None = field(default=None, repr=False)
    anchor: str = Anchor.NONE  # what the gallery rests on (store/anchors.py)
    #: how looking the name up on Wikidata ended (candidates of an ambiguous name)
    wikidata_lookup: dict[str, object] | None = None


@dataclass
class DuplicateRows:
    """A person's near-duplicates as stored (the caller measures them: curation.duplicates)."""

    #: face id → (the engine that measured it, its float32 embedding bytes)
    embeddings: dict[int, tuple[str, bytes]]
    #: byte copies of a photo (never analysed): (sha256, card); also in the duplicate group
    copies: list[tuple[str | None, ImageCard]]
    #: sha256 → the face ids of the analysed photo with those bytes
    faces_of_bytes: dict[str, list[int]]


def _provenance(img: Image) -> Provenance:
    return Provenance(img.id, img.url, img.page_url, img.query, img.rank, img.provider,
                      img.origin, img.title, aware(img.created_at), bool(img.path),
                      img.licence, img.author)


def read_person_review(settings: Settings, person_id: int) -> PersonReview:
    """Everything a person's page shows, as stored: accepted faces best first, the rest by
    reason. Near-duplicates are all in the ``duplicate`` group with ``duplicate_rows`` to
    put each under the face it copies (curation.duplicates.person_review does, measuring
    embeddings: the store does no embedding maths)."""
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"no person with id {person_id}")
        images = session.scalars(
            select(Image).where(Image.person_id == person_id)
            .order_by(Image.rank.nulls_last(), Image.id).options(selectinload(Image.faces))
        ).all()
        refs = set(session.scalars(select(Reference.face_id).where(
            Reference.person_id == person_id, Reference.face_id.is_not(None))))
        accepted: list[FaceCard] = []
        groups: dict[str, ReasonGroup] = {}
        embeddings: dict[int, tuple[str, bytes]] = {}  # face id → (its engine, its vector)
        image_faces: dict[int, list[int]] = {}  # image id → its face ids
        copies: list[tuple[str | None, ImageCard]] = []  # byte copies: (sha256, card)
        sha_image: dict[str, int] = {}  # sha256 → the analysed image with those bytes
        for img in images:
            source = _provenance(img)
            for f in sorted(img.faces, key=lambda f: f.idx):
                card = FaceCard(f.id, f.state, f.reason, f.distance, f.quality, f.w,
                                f.gallery_path is not None, f.embedding is not None, source,
                                f.detail, f.id in refs)
                if f.embedding is not None:
                    embeddings[f.id] = (f.engine, f.embedding)
                image_faces.setdefault(img.id, []).append(f.id)
                if f.state == FaceState.ACCEPTED:
                    accepted.append(card)
                else:
                    groups.setdefault(f.reason, ReasonGroup(f.reason)).faces.append(card)
            if img.faces and img.sha256:
                sha_image.setdefault(img.sha256, img.id)
            if not img.faces:
                unfetched = img.state in (ImageState.PENDING, ImageState.FETCHED)
                reason = img.reason or (ImageState.PENDING if unfetched else img.state)
                card_i = ImageCard(reason, img.detail, source)
                if reason == Reason.DUPLICATE:
                    copies.append((img.sha256, card_i))
                else:
                    groups.setdefault(reason, ReasonGroup(reason)).images.append(card_i)
        accepted.sort(key=lambda c: (-c.quality, c.id))
        if copies:
            groups.setdefault(Reason.DUPLICATE, ReasonGroup(Reason.DUPLICATE)).images.extend(
                card_i for _, card_i in copies)
        order = {r: i for i, r in enumerate(GROUP_ORDER)}
        rejected = sorted(groups.values(), key=lambda g: (order.get(g.reason, 99), g.reason))
        return PersonReview(
            person.id, person.name, person.collection.key, person.state, person.error,
            list(person.occupations or []), person.country, person.selftest,
            aware(person.updated_at), accepted, rejected, len(images),
            settings.min_faces_to_promote, person.state in BUSY, person.state in PROMOTABLE,
            person.wikidata_qid, person.native_name, _selftest_person(session, person.selftest),
            DuplicateRows(embeddings, copies,
                          {sha: image_faces[i] for sha, i in sha_image.items()}),
            anchor_of(session, person.id), person.wikidata_lookup)


def _selftest_person(session: Session, selftest: dict[str, object] | None
                     ) -> tuple[int, str] | None:
    """Who a failed self-test recognised (older rows stored only the id: look the name up)."""
    if not selftest or selftest.get("passed") is not False:
        return None
    other = selftest.get("predicted_person_id")
    if not isinstance(other, int):
        return None
    name = selftest.get("predicted_name")
    if not isinstance(name, str) or not name:
        found = session.get(Person, other)
        name = found.name if found is not None else f"a person since deleted (id {other})"
    return other, one_line(name)


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

    @property
    def outcome(self) -> str:
        """What a finished job came to: its closing message, never a stage it passed through
        (rows finished before jobs had closing messages say "curating")."""
        stage = (self.message or "").split(":")[0].split(" ")[0]
        return "done" if not self.message or stage in _STAGES else self.message


#: the first word of a working job's message
_STAGES = frozenset({PersonState.SEARCHING, PersonState.DOWNLOADING, PersonState.CURATING,
                     PersonState.QUEUED})


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
            .order_by(case((Job.state == JobState.RUNNING, 0), (Job.state == JobState.QUEUED, 1),
                           else_=2), Job.id.desc())
            .limit(limit)
        )
        if state:
            query = query.where(Job.state == state)
        if collections is not None:
            query = query.where(Collection.key.in_(sorted(collections)))
        return [
            JobRow(j.id, j.kind, j.state, j.person_id, name, coll, j.progress, j.message,
                   j.error, j.attempts, j.worker, aware(j.heartbeat), aware(j.created_at),
                   aware(j.updated_at))
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


