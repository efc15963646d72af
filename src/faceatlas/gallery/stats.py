"""Statistics per collection: people by state, faces, images by reason, gallery, index size."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from faceatlas.domain.errors import NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.gallery.index import index_store
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Face, FaceState, Image, Person, PersonState


@dataclass
class CollectionStats:
    key: str
    name: str
    people: int = 0
    people_by_state: dict[str, int] = field(default_factory=dict)
    images: int = 0
    images_by_reason: dict[str, int] = field(default_factory=dict)  # "accepted" for kept ones
    faces: int = 0
    faces_accepted: int = 0
    gallery_faces: int = 0  # faces with a gallery file (promoted)
    index_faces: int = 0  # rows in the collection's recognition index
    index_people: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collection_stats(settings: Settings, collection: str | None = None,
                     allowed: frozenset[str] | None = None) -> list[CollectionStats]:
    """One entry per collection (or only ``collection``; ``allowed``: only these keys)."""
    with session_scope(settings) as session:
        query = select(Collection).order_by(Collection.key)
        if collection is not None:
            query = query.where(Collection.key == collection_key(collection))
        colls = [c for c in session.scalars(query) if allowed is None or c.key in allowed]
        if collection is not None and not colls:
            raise NotFoundError(f"no collection {collection!r}")
        out = []
        for c in colls:
            s = CollectionStats(c.key, c.name)
            people = select(Person.id).where(Person.collection_id == c.id)
            s.people_by_state = dict(session.execute(  # type: ignore[arg-type]
                select(Person.state, func.count()).where(Person.collection_id == c.id)
                .group_by(Person.state).order_by(Person.state)).all())
            s.people = sum(s.people_by_state.values())
            for reason, state, n in session.execute(
                    select(Image.reason, Image.state, func.count())
                    .where(Image.person_id.in_(people)).group_by(Image.reason, Image.state)):
                label = reason or state  # undecided images count under their state
                s.images_by_reason[label] = s.images_by_reason.get(label, 0) + n
            s.images = sum(s.images_by_reason.values())
            face_rows = session.execute(
                select(Face.state, func.count(), func.count(Face.gallery_path))
                .where(Face.person_id.in_(people)).group_by(Face.state)).all()
            s.faces = sum(n for _, n, _ in face_rows)
            s.faces_accepted = sum(n for st, n, _ in face_rows if st == FaceState.ACCEPTED)
            s.gallery_faces = sum(g for _, _, g in face_rows)
            out.append(s)
    store = index_store(settings)
    for s in out:
        if store.exists(s.key):
            index = store.get(s.key)
            s.index_faces, s.index_people = len(index), len(index.person_ids())
    return out


# --------------------------------------------------------------------------- occupations


def occupation_snapshot(settings: Settings, collection: str | None = None
                        ) -> dict[int, tuple[str, str, tuple[str, ...]]]:
    """Person id → (name, state, occupations) of everyone past ``queued``: compared before
    and after a names run, it says who already collected gained an occupation."""
    with session_scope(settings) as session:
        query = select(Person.id, Person.name, Person.state, Person.occupations).where(
            Person.state != PersonState.QUEUED)
        if collection is not None:
            query = query.join(Collection).where(Collection.key == collection_key(collection))
        return {pid: (name, state, tuple(occ or ())) for pid, name, state, occ
                in session.execute(query)}


def gained_occupations(before: dict[int, tuple[str, str, tuple[str, ...]]],
                       after: dict[int, tuple[str, str, tuple[str, ...]]]
                       ) -> list[tuple[str, str, list[str]]]:
    """(name, state, new occupations) of people whose occupations grew between snapshots."""
    out = []
    for pid, (name, state, occ) in before.items():
        if pid in after:
            new = [o for o in after[pid][2] if o not in occ]
            if new:
                out.append((name, state, new))
    return out
