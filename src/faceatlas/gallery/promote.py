"""Stage 4: promote curated people into a collection's production gallery and index.

A person with at least ``min_faces_to_promote`` accepted faces (the seed system's "more than
5") gets their crops copied to ``gallery/<collection>/`` under the seed's file names, their
embeddings added to the collection's index, and a recognition self-test: one of their faces,
left out, must be recognised as them among everyone in the index. The seed system deleted the
source folder before its test and only logged the result; here the test runs before anything is
removed, and its result is stored in ``Person.selftest``.

Everything is idempotent and converges: re-promoting writes the same files and index rows, and
a face rejected since the last promotion leaves the gallery folder and the index. Order of work
is files → index → database, so a crash half-way is repaired by running the command again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.curation.arbitrate import arbitrate_person
from faceatlas.curation.decide import CurateParams
from faceatlas.domain.errors import EngineMismatchError, FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.faces.engines import ENGINES
from faceatlas.gallery.erase import remove_person
from faceatlas.gallery.index import (
    IndexStore,
    Neighbour,
    SegmentedIndex,
    best_person,
    confidence,
    index_store,
)
from faceatlas.settings import Settings, settings_first
from faceatlas.store.anchors import anchor_of
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write, unlink_stored
from faceatlas.store.models import (
    PROMOTABLE,
    Anchor,
    Collection,
    Face,
    FaceState,
    Person,
    PersonState,
    Reason,
)
from faceatlas.store.people import find_person, get_person

#: neighbours fetched per query; enough for ``best_person`` to see several faces per person
SEARCH_K = 10

#: a promotion whose self-test failed: the person stays ``curated`` and out of the gallery
BLOCKED = "blocked"
#: a person held for want of an anchor (FACEATLAS_REQUIRE_ANCHOR): ``curated``, out of the
#: gallery, until a reference or a reviewer's "This is them" anchors them
HELD = Reason.UNANCHORED

@dataclass
class SelfTest:
    """Was a left-out face of the person recognised as them?"""

    passed: bool | None  # None: could not run (a single face leaves nothing to match)
    face_id: int | None = None
    predicted_person_id: int | None = None
    predicted_name: str | None = None
    distance: float | None = None
    confidence: float | None = None
    detail: str = ""


@dataclass
class PromotionResult:
    person_id: int
    person: str
    collection: str
    state: str
    faces: int  # accepted faces
    gallery_files: int = 0  # files in the gallery for this person after the run
    written: int = 0
    removed: int = 0
    selftest: SelfTest | None = None
    purged: bool = False
    anchor: str = Anchor.NONE  # what the gallery's identity rests on (store/anchors.py)


# --------------------------------------------------------------------------- promote


def promote(
    settings: Settings,
    *,
    collection: str | None = None,
    person: str | None = None,
    purge: bool = False,
) -> list[PromotionResult]:
    """Promote every curated person (of one collection, or one person by name or id)."""
    with session_scope(settings) as session:
        if person is not None:
            found = find_person(session, person, collection)
            if found.state not in PROMOTABLE:
                raise FaceAtlasError(
                    f"{found.name} is {found.state}: only curated people can be promoted"
                )
            ids = [found.id]
        else:
            query = select(Person.id).where(Person.state.in_(PROMOTABLE)).order_by(Person.id)
            if collection is not None:
                key = collection_key(collection)
                if session.scalar(select(Collection.id).where(Collection.key == key)) is None:
                    raise NotFoundError(f"no collection {collection!r}")
                query = query.join(Collection).where(Collection.key == key)
            ids = list(session.scalars(query))
    results = {pid: promote_person(settings, pid, purge=purge) for pid in ids}
    # arbitration while promoting a later person may have taken faces from one promoted
    # earlier (re-decided, so ``curated`` again): promote those once more
    with session_scope(settings) as session:
        again = [pid for pid, r in results.items() if r.state == PersonState.PROMOTED and
                 session.scalar(select(Person.state).where(Person.id == pid))
                 == PersonState.CURATED]
    for pid in again:
        results[pid] = promote_person(settings, pid, purge=purge)
    return list(results.values())


@settings_first
def promote_person(
    settings: Settings,
    person_id: int,
    *,
    purge: bool = False,
    store: IndexStore | None = None,
) -> PromotionResult:
    """Promote one person, or mark them ``too_few_faces`` (erase them with ``purge``).

    Two steps: arbitration with the rest of the collection (which may re-decide other
    people, each in its own transaction), then the promotion itself as one unit of work:
    read, self-test, files, index, and the rows committed last (files → index → database).
    """
    store = store or index_store(settings)
    params = CurateParams.from_settings(settings)
    if params.strategy == "consensus" and params.arbitrate:
        # the collection may have learnt since curation that some faces are someone else's
        arbitrate_person(settings, person_id, params)
    with session_scope(settings) as session:
        result = _promote(session, settings, store, person_id, purge)
    if result.purged:  # erasing writes through its own steps, after this unit committed
        remove_person(settings, person_id, store=store)
    return result


def _promote(session: Session, settings: Settings, store: IndexStore, person_id: int,
             purge: bool) -> PromotionResult:
    layout = Layout(settings.home)
    person = get_person(session, person_id)
    coll, name = person.collection.key, person.name
    anchor = anchor_of(session, person_id)
    if person.state not in PROMOTABLE:  # re-decided into failure (references unmatched)
        return PromotionResult(person_id, name, coll, person.state, 0, anchor=anchor)
    accepted = _accepted_faces(session, person_id)
    stale = session.scalars(
        select(Face).where(
            Face.person_id == person_id, Face.gallery_path.is_not(None),
            Face.state != FaceState.ACCEPTED,
        )
    ).all()
    plan = [(f.id, f.crop_path, f.embedding) for f in accepted]
    tags = {(f.engine, f.model_hash) for f in accepted}
    old_paths = {f.id: f.gallery_path for f in [*accepted, *stale] if f.gallery_path}

    result = PromotionResult(person_id, name, coll, PersonState.PROMOTED, len(plan),
                             anchor=anchor)
    if len(plan) < settings.min_faces_to_promote:
        if purge:
            result.state, result.purged = "purged", True
            return result
        result.removed = _unpromote(session, layout, store, person)
        person.state = PersonState.TOO_FEW_FACES
        person.error = (f"{len(plan)} accepted faces; promotion needs at least "
                        f"{settings.min_faces_to_promote}")
        person.selftest = None
        result.state = PersonState.TOO_FEW_FACES
        return result

    if anchor == Anchor.NONE and settings.anchor_required(coll):
        # a majority vote alone may have made the gallery of a co-star: hold it
        result.removed = _unpromote(session, layout, store, person)
        person.state = PersonState.CURATED
        person.error = (f"{Reason.UNANCHORED}: no Wikidata portrait, reference photo or "
                        "reviewer's 'This is them' says who this is (FACEATLAS_REQUIRE_ANCHOR)")
        result.state = HELD
        return result

    # 0. self-test first, as if the index held the new rows: a gallery confused
    # with someone else never reaches the production index
    face_ids = np.array([f for f, _, _ in plan], dtype=np.int64)
    vectors = np.stack([np.frombuffer(e, dtype=np.float32) for _, _, e in plan])
    tag, vectors = search_vectors(tags, vectors, name)
    current = store.get(coll)
    if len(current) and current.engine is not None:  # never mix engines, not even on trial
        current.require_engine(tag[0], tag[1], coll)
    test = _selftest(current, person_id, face_ids, vectors,
                     settings.thresholds(tag[0]).recognize)
    if test.predicted_person_id is not None:
        other = session.get(Person, test.predicted_person_id)
        test.predicted_name = other.name if other else None
        if test.passed is False:
            test.detail = (f"face {test.face_id} was recognised as {test.predicted_name} "
                           f"(person {test.predicted_person_id})")
    if test.passed is False:
        result.removed = _unpromote(session, layout, store, person)
        person.state = PersonState.CURATED
        person.selftest = asdict(test)
        person.error = f"promotion blocked, self-test failed: {test.detail}"
        result.state, result.selftest = BLOCKED, test
        return result

    # 1. files: copy crops under their gallery names; drop files of faces no longer accepted
    new_paths: dict[int, str] = {}
    for face_id, crop_path, _ in plan:
        src = layout.absolute(crop_path)
        dest = layout.gallery_file(coll, src.name)
        data = src.read_bytes()
        if not dest.is_file() or dest.read_bytes() != data:
            atomic_write(dest, data)
            result.written += 1
        new_paths[face_id] = layout.relative(dest)
    for face_id, old in old_paths.items():
        if new_paths.get(face_id) != old:
            result.removed += unlink_stored(layout, old)

    # 2. index: this person's rows become exactly their accepted faces
    store.update(coll, lambda index: _sync_person_rows(index, person_id, face_ids, vectors),
                 engine=tag)

    # 3. the rows, committed when the unit of work ends
    for face in [*accepted, *stale]:
        face.gallery_path = new_paths.get(face.id)
    person.state = PersonState.PROMOTED
    person.selftest = asdict(test)
    person.error = None
    result.selftest = test
    result.gallery_files = len(new_paths)
    return result


def search_vectors(
    tags: set[tuple[str, str]], vectors: np.ndarray, name: str = "?"
) -> tuple[tuple[str, str], np.ndarray]:
    """The (engine, model hash) an index of these face rows is tagged with, and the vectors it
    holds. The ensemble's [SFace | dlib] vectors are searched by their SFace half."""
    if len(tags) != 1:
        found = ", ".join(sorted(f"{e}/{h}" for e, h in tags))
        raise EngineMismatchError(
            f"{name}'s accepted faces come from different engines ({found}); "
            "run `faceatlas reembed` to analyse them all with one engine"
        )
    ((engine, model_hash),) = tags
    spec = ENGINES.get(engine)
    if spec is None or not spec.parts:  # an engine alone (or unknown here): as stored
        return (engine, model_hash), vectors
    return spec.search_tag(model_hash), np.ascontiguousarray(spec.search_part(vectors))


def _sync_person_rows(
    index: SegmentedIndex, person_id: int, face_ids: np.ndarray, vectors: np.ndarray
) -> None:
    """Replace the person's rows only if they differ: an unchanged re-promotion publishes
    nothing (``IndexStore.update`` publishes only on a version change)."""
    current, current_vectors = index.rows_of_person(person_id)  # sorted by face id
    if len(current) == len(face_ids):
        want = np.argsort(face_ids)
        if np.array_equal(current, face_ids[want]) and np.array_equal(
            current_vectors, vectors[want]
        ):
            return
    index.remove_person(person_id)
    index.add(face_ids, np.full(len(face_ids), person_id, dtype=np.int64), vectors)


def _selftest(
    index: SegmentedIndex,
    person_id: int,
    face_ids: np.ndarray,
    vectors: np.ndarray,
    threshold: float,
) -> SelfTest:
    """Search with one face as if the index held the person's new rows and not the face
    itself: the published index without the person's current rows, merged with the new rows
    searched exactly (no copy of the index, however large). The face with the lowest id is
    used, so the test is repeatable."""
    if len(face_ids) < 2:
        return SelfTest(None, detail="a single face: nothing left to match it against")
    i = int(np.argmin(face_ids))
    held_out = int(face_ids[i])
    mine = len(index.rows_of_person(person_id)[0])
    others: list[Neighbour] = []
    if len(index):
        (found,) = index.search(vectors[i], SEARCH_K + mine)
        others = [nb for nb in found if nb.person_id != person_id]
    diff = vectors.astype(np.float64) - vectors[i].astype(np.float64)
    dists = np.sqrt(np.einsum("kd,kd->k", diff, diff))
    own = [Neighbour(int(f), person_id, float(d))
           for f, d in zip(face_ids, dists, strict=True) if int(f) != held_out]
    neighbours = sorted([*others, *own], key=lambda nb: (nb.distance, nb.face_id))[:SEARCH_K]
    best = best_person(neighbours, threshold)
    if best is None:
        closest = neighbours[0].distance if neighbours else None
        return SelfTest(False, held_out, None, None, closest, None,
                        f"face {held_out} matched nobody within "
                        f"{threshold}")
    predicted, distance = best
    conf = confidence(distance, threshold)
    passed = predicted == person_id
    detail = "recognised" if passed else f"face {held_out} recognised as person {predicted}"
    return SelfTest(passed, held_out, predicted, None, round(distance, 4), conf, detail)


# --------------------------------------------------------------------------- take back
# (erasing a person altogether: erasure.py)


@settings_first
def unpromote_person(
    settings: Settings, person_id: int, *, store: IndexStore | None = None
) -> int:
    """Take a person out of the gallery and the index (crops and rows stay).

    Returns the number of gallery files removed. The state is left to the caller.
    """
    with session_scope(settings) as session:
        person = get_person(session, person_id)
        return _unpromote(session, Layout(settings.home), store or index_store(settings), person)


def _unpromote(session: Session, layout: Layout, store: IndexStore, person: Person) -> int:
    faces = session.scalars(select(Face).where(Face.person_id == person.id,
                                               Face.gallery_path.is_not(None))).all()
    store.remove_person(person.collection.key, person.id)  # recognition stops naming them
    removed = sum(unlink_stored(layout, f.gallery_path) for f in faces if f.gallery_path)
    for face in faces:
        face.gallery_path = None
    return removed


# --------------------------------------------------------------------------- helpers


def _accepted_faces(session: Session, person_id: int) -> list[Face]:
    return list(session.scalars(
        select(Face).where(
            Face.person_id == person_id, Face.state == FaceState.ACCEPTED,
            Face.crop_path.is_not(None), Face.embedding.is_not(None),
        ).order_by(Face.id)
    ))


def gallery_identity(gallery_path: str | None) -> str | None:
    """The seed's ``best_match.identity``: the gallery file name without extension."""
    return Path(gallery_path).stem if gallery_path else None
