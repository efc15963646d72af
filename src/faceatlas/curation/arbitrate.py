"""Collection-level arbitration: a face belongs to at most one person of a collection.

Each person is curated from their own search results, which the web fills with co-stars and
look-alikes. The collection knows better: if the co-star is in it, their own curation found
that face. After a person is curated (and again before promotion) their accepted faces are
compared with every other person's of the collection, in both directions:

1. **One identity under two names**: the two galleries' centres are closer than
   ``same_identity × link_distance``. It stays with the person whose own results support it
   more (the share of their measured faces in the gallery; the co-star's own search is mostly
   the co-star, the lesser-known person's only partly), the other loses those faces.
2. **Faces nearer someone else**: a face within ``outsider_accept × accept_distance`` of
   another person's centre and nearer to it (by ``arbitrate_margin`` of accept_distance) than
   to its own gallery's centre moves to that person.
3. **The same photo under two names** (same bytes or near-duplicate crop, same face): the
   person whose centre is farther loses it; the keeper's face notes the other name.

A face that moves is rejected with reason ``other_person``, the other person's id in
``Face.other_person_id`` and their name in ``Face.detail``; its person is then re-decided
without it (``apply.redecide``), so their next identity candidate can win.

At a country's size (thousands of people) reading and comparing every gallery for every
person curated grew with the collection: ~200 ms a round with 817 people. Only the people a
rule can reach are read in full (:func:`people_in_reach`: matrix products of the person's
faces with every accepted face and every gallery centre of the collection, which this
process keeps, re-reading a person's faces only when their gallery changed).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceatlas.curation.apply import CurationReport, redecide_in
from faceatlas.curation.decide import CurateParams
from faceatlas.curation.identity import pairwise, robust_centre
from faceatlas.faces.quality import hamming
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.models import Face, FaceState, Image, Person, PersonState, Reason

#: arbitration repeats until nothing moves; each round can only remove faces, so it ends
MAX_ROUNDS = 4
#: the same photo under two names embeds this close (re-encoded or resized: ~0.15), for
#: every engine
SAME_PHOTO_DISTANCE = 0.3

#: people whose accepted faces count (failed people keep no faces worth defending)
ARBITRATED = (PersonState.CURATED, PersonState.PROMOTED, PersonState.TOO_FEW_FACES)


@dataclass
class Gallery:
    """One person's accepted faces, for comparison."""

    person_id: int
    name: str
    face_ids: list[int]
    vectors: np.ndarray
    shas: list[str | None]
    phashes: list[str | None]
    measured: int  # faces of the person with an embedding (their own results' vote)
    centre: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.centre = robust_centre(self.vectors) if len(self.vectors) else np.zeros(0)

    @property
    def support(self) -> float:
        return len(self.face_ids) / max(1, self.measured)


@dataclass
class Move:
    face_id: int
    loser: int  # person id losing the face
    winner: int
    winner_name: str
    why: str  # same_identity | nearer | same_photo


@dataclass
class ArbitrationReport:
    moves: list[Move] = field(default_factory=list)
    flags: dict[int, str] = field(default_factory=dict)  # kept face id -> note
    rounds: int = 0
    #: people who lost faces, as their last re-decision left them
    redecided: dict[int, CurationReport] = field(default_factory=dict)


def find_moves(me: Gallery, others: list[Gallery], p: CurateParams
               ) -> tuple[list[Move], dict[int, str]]:
    """Pure: which faces leave which gallery, comparing ``me`` with each other gallery."""
    moves: list[Move] = []
    flags: dict[int, str] = {}
    if not me.face_ids:
        return moves, flags
    same = p.link_distance * p.same_identity
    near = p.accept_distance * p.outsider_accept
    margin = p.accept_distance * p.arbitrate_margin
    for other in others:
        if not other.face_ids:
            continue
        if float(np.linalg.norm(me.centre - other.centre)) < same:
            owner, loser = (me, other) if _owns(me, other) else (other, me)
            d = np.linalg.norm(loser.vectors - owner.centre, axis=1)
            moves += [Move(fid, loser.person_id, owner.person_id, owner.name, "same_identity")
                      for fid, dist in zip(loser.face_ids, d, strict=True)
                      if dist <= p.accept_distance]
            continue
        for a, b in ((me, other), (other, me)):
            to_own = np.linalg.norm(a.vectors - a.centre, axis=1)
            to_b = np.linalg.norm(a.vectors - b.centre, axis=1)
            moves += [Move(fid, a.person_id, b.person_id, b.name, "nearer")
                      for fid, own, dist in zip(a.face_ids, to_own, to_b, strict=True)
                      if dist <= near and dist + margin < own]
        m, f = _same_photos(me, other, p)
        moves += m
        flags.update(f)
    return _unique(moves), flags


def _owns(a: Gallery, b: Gallery) -> bool:
    """Who keeps an identity both galleries hold: more support from their own results."""
    return (a.support, -a.person_id) >= (b.support, -b.person_id)


def _same_photos(a: Gallery, b: Gallery, p: CurateParams) -> tuple[list[Move], dict[int, str]]:
    moves, flags = [], {}
    cross = np.linalg.norm(a.vectors[:, None, :] - b.vectors[None, :, :], axis=2)
    for i, j in zip(*np.nonzero(cross < SAME_PHOTO_DISTANCE), strict=True):
        same_bytes = a.shas[i] is not None and a.shas[i] == b.shas[j]
        if not same_bytes and not _phash_near(a.phashes[i], b.phashes[j], p.phash_distance):
            continue
        da = float(np.linalg.norm(a.vectors[i] - a.centre))
        db = float(np.linalg.norm(b.vectors[j] - b.centre))
        keep, lose, ki, li = (a, b, i, j) if da <= db else (b, a, j, i)
        moves.append(Move(lose.face_ids[li], lose.person_id, keep.person_id, keep.name,
                          "same_photo"))
        flags[keep.face_ids[ki]] = f"the same photo is also a candidate of {lose.name}"
    return moves, flags


def _phash_near(x: str | None, y: str | None, bits: int) -> bool:
    if not x or not y:
        return False
    xs, ys = x.split(":"), y.split(":")
    return min(hamming(xs[0], ys[0]), hamming(xs[0], ys[-1])) <= bits


def _unique(moves: list[Move]) -> list[Move]:
    seen: dict[int, Move] = {}
    for m in moves:
        seen.setdefault(m.face_id, m)
    return list(seen.values())


# --------------------------------------------------------------------------- stored people


def load_galleries(session: Session, collection_id: int,
                   only: list[int] | None = None) -> dict[int, Gallery]:
    """Every arbitrated person of the collection with their accepted faces (``only``: of these
    people), in person id order."""
    # with each person, how many of their faces are measured (a correlated count: one query)
    count = (select(func.count()).where(Face.person_id == Person.id, Face.embedding.is_not(None))
             .correlate(Person).scalar_subquery())
    people, measured = {}, {}
    for chunk in [None] if only is None else chunked(only):
        query = select(Person.id, Person.name, count).where(
            Person.collection_id == collection_id, Person.state.in_(ARBITRATED))
        if chunk is not None:
            query = query.where(Person.id.in_(chunk))
        for pid, name, n in session.execute(query.order_by(Person.id)):
            people[pid], measured[pid] = name, n
    if not people:
        return {}
    rows: dict[int, list[tuple[int, bytes, str | None, str | None]]] = defaultdict(list)
    for chunk in chunked(list(people)):
        for fid, pid, emb, sha, ph in session.execute(
                select(Face.id, Face.person_id, Face.embedding, Image.sha256, Face.phash)
                .join(Image, Face.image_id == Image.id)
                .where(Face.person_id.in_(chunk), Face.state == FaceState.ACCEPTED,
                       Face.embedding.is_not(None)).order_by(Face.id)):
            rows[pid].append((fid, emb, sha, ph))
    out = {}
    for pid, name in people.items():
        faces = rows.get(pid, [])
        vectors = (np.stack([np.frombuffer(e, dtype=np.float32) for _, e, _, _ in faces])
                   if faces else np.zeros((0, 0), dtype=np.float32))
        out[pid] = Gallery(pid, name, [f for f, _, _, _ in faces], vectors.astype(np.float64),
                           [s for _, _, s, _ in faces], [h for _, _, _, h in faces],
                           int(measured.get(pid, 0)))
    return out


#: the pruning's distances (a matrix product) stand in for the rules' ones within this
_EPS = 1e-3
#: people whose faces are compared at a time (bounds the temporary matrices)
_BLOCK = 512


@dataclass
class _Kept:
    """One person's accepted faces as this process last read them."""

    #: (faces, sum and max of their ids, newest creation time): any change to the set
    #: changes it (SQLite hands out the highest id again after a delete; the time tells)
    fingerprint: tuple[object, ...]
    vectors: np.ndarray  # float32, in face id order
    centre: np.ndarray  # the gallery's centre, as ``Gallery`` computes it


#: the last few collections' galleries (person id → ``_Kept``; 512 bytes a face with SFace)
_KEPT: OrderedDict[int, dict[int, _Kept]] = OrderedDict()
_KEPT_COLLECTIONS = 4
_kept_lock = threading.Lock()


def people_in_reach(session: Session, collection_id: int, person_id: int, p: CurateParams
                    ) -> list[int]:
    """The other people of the collection whose gallery a rule of :func:`find_moves` can
    reach from the person's (exactly those: a person outside gives no move and no flag):
    centres within ``same``, a face of one within ``near`` of the other's centre, or two
    faces within SAME_PHOTO_DISTANCE. Reads one row a person, and the faces of people whose
    gallery changed since this process last looked."""
    kept = _collection_galleries(session, collection_id)
    mine = kept.get(person_id)
    if mine is None:
        return []
    me, centre = mine.vectors, mine.centre
    pids = np.array(sorted(pid for pid in kept if pid != person_id), dtype=np.int64)
    if not len(pids):
        return []
    near = p.accept_distance * p.outsider_accept + _EPS
    cs = np.stack([kept[int(pid)].centre for pid in pids])
    hit = np.linalg.norm(cs - centre, axis=1) < p.link_distance * p.same_identity + _EPS
    hit |= (pairwise(me, cs) <= near).any(axis=0)
    for start in range(0, len(pids), _BLOCK):  # their faces, a block of people at a time
        block = pids[start:start + _BLOCK]
        faces = np.concatenate([kept[int(pid)].vectors for pid in block])
        owner = np.repeat(np.arange(start, start + len(block)),
                          [len(kept[int(pid)].vectors) for pid in block])
        close = np.linalg.norm(faces - centre, axis=1) <= near
        close |= (pairwise(me, faces) < SAME_PHOTO_DISTANCE + _EPS).any(axis=0)
        hit[np.unique(owner[close])] = True
    return [int(pid) for pid in pids[hit]]


def _collection_galleries(session: Session, collection_id: int) -> dict[int, _Kept]:
    """Person id → their accepted, measured faces, for every arbitrated person of the
    collection with any, now: one aggregate row a person, vectors read only for galleries
    that changed since this process last looked."""
    now = {pid: tuple(fp) for pid, *fp in session.execute(
        select(Face.person_id, func.count(), func.sum(Face.id), func.max(Face.id),
               func.max(Face.created_at))
        .join(Person, Face.person_id == Person.id)
        .where(Person.collection_id == collection_id, Person.state.in_(ARBITRATED),
               Face.state == FaceState.ACCEPTED, Face.embedding.is_not(None))
        .group_by(Face.person_id))}
    with _kept_lock:
        before = _KEPT.get(collection_id, {})
    # a new dict, swapped in whole: another thread may be reading the one before
    kept = {pid: before[pid] for pid, fp in now.items()
            if pid in before and before[pid].fingerprint == fp}
    for chunk in chunked([pid for pid in now if pid not in kept]):
        rows: dict[int, list[np.ndarray]] = defaultdict(list)
        for pid, emb in session.execute(
                select(Face.person_id, Face.embedding)
                .where(Face.person_id.in_(chunk), Face.state == FaceState.ACCEPTED,
                       Face.embedding.is_not(None)).order_by(Face.id)):
            rows[pid].append(np.frombuffer(emb, dtype=np.float32))
        for pid, vectors in rows.items():
            matrix = np.stack(vectors)
            kept[pid] = _Kept(now[pid], matrix, robust_centre(matrix.astype(np.float64)))
    with _kept_lock:
        _KEPT[collection_id] = kept
        _KEPT.move_to_end(collection_id)
        while len(_KEPT) > _KEPT_COLLECTIONS:
            _KEPT.popitem(last=False)
    return kept


def arbitrate_person(settings: Settings, person_id: int, params: CurateParams | None = None
                     ) -> ArbitrationReport:
    """Compare the person with the rest of their collection until nothing moves; people who
    lose faces are re-decided (this person or others). One transaction."""
    with session_scope(settings) as session:
        return arbitrate_in(session, settings, person_id,
                            params or CurateParams.from_settings(settings))


def arbitrate_in(session: Session, settings: Settings, person_id: int, params: CurateParams
                 ) -> ArbitrationReport:
    """:func:`arbitrate_person` inside the caller's transaction (curation decides and
    arbitrates in one commit)."""
    report = ArbitrationReport()
    for _ in range(MAX_ROUNDS):
        report.rounds += 1
        person = session.get(Person, person_id)
        if person is None or person.state not in ARBITRATED:
            return report
        near = people_in_reach(session, person.collection_id, person_id, params)
        galleries = load_galleries(session, person.collection_id, [person_id, *near])
        me = galleries.pop(person_id, None)
        if me is None:
            return report
        moves, flags = find_moves(me, list(galleries.values()), params)
        moves = [m for m in moves if not _user_decided(session, m.face_id)]
        for m in moves:
            face = session.get(Face, m.face_id)
            assert face is not None
            face.state, face.reason = FaceState.REJECTED, Reason.OTHER_PERSON
            face.other_person_id = m.winner
            face.detail = f"{m.winner_name} (person {m.winner}): {_WHY[m.why]}"
        for face_id, note in flags.items():
            face = session.get(Face, face_id)
            if face is not None and face.state == FaceState.ACCEPTED:
                face.detail = note
        report.flags.update(flags)
        if not moves:
            break
        report.moves += moves
        session.flush()  # the re-decisions read the moved faces
        for loser in sorted({m.loser for m in moves}):
            report.redecided[loser] = redecide_in(session, settings, loser, params)
    return report


_WHY = {
    "same_identity": "the same identity, better supported by that person's own results",
    "nearer": "this face is nearer to that person's faces than to this gallery",
    "same_photo": "the same photo is that person's, nearer to their faces",
}


def _user_decided(session: Session, face_id: int) -> bool:
    """A reviewer's decision outranks arbitration."""
    face = session.get(Face, face_id)
    return face is not None and face.reason in (Reason.ACCEPTED_BY_USER,
                                                Reason.REJECTED_BY_USER)
