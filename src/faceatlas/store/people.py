"""Finding and creating collections and people: one row per normalised name and collection."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.errors import NotFoundError
from faceatlas.names.normalize import collection_key, file_stem, name_key, split_name, to_ascii
from faceatlas.store.models import Collection, Person, PersonState


def get_or_create_collection(session: Session, name: str) -> Collection:
    """``Serbia`` and ``serbia`` name the same collection (key ``serbia``)."""
    key = collection_key(name)
    found = session.scalar(select(Collection).where(Collection.key == key))
    if found is None:
        found = Collection(key=key, name=name.strip() or key)
        session.add(found)
        session.flush()
    return found


def get_collection(session: Session, name: str) -> Collection:
    found = session.scalar(select(Collection).where(Collection.key == collection_key(name)))
    if found is None:
        raise NotFoundError(f"no collection {name!r}; see `faceatlas people` for what exists")
    return found


def upsert_person(
    session: Session,
    collection: Collection,
    name: str,
    *,
    occupations: Iterable[str] = (),
    country: str = "",
    source: str = "",
    verdict: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
) -> tuple[Person, bool]:
    """The person with this normalised name in the collection, created if new.

    An existing person keeps its state; new occupations are merged in. Returns (person, created).
    """
    name = " ".join(name.split())
    key = name_key(name)
    if not key:
        raise NotFoundError(f"name {name!r} has no letters or digits to identify a person")
    person = session.scalar(
        select(Person).where(Person.collection_id == collection.id, Person.key == key)
    )
    created = person is None
    if person is None:
        first, last = split_name(name)
        person = Person(
            collection_id=collection.id,
            key=key,
            name=name,
            ascii_name=to_ascii(name),
            first_name=first_name if first_name is not None else first,
            last_name=last_name if last_name is not None else last,
            folder=_free_folder(session, collection.id, file_stem(name)),
            occupations=[],
            country=country or collection.name,
            source=source,
            verdict=verdict,
            state=PersonState.QUEUED,
        )
        session.add(person)
    merged = list(dict.fromkeys([*person.occupations, *(o.strip() for o in occupations if o)]))
    if merged != person.occupations:
        person.occupations = merged
    if verdict and not person.verdict:
        person.verdict = verdict
    session.flush()
    return person, created


def _free_folder(session: Session, collection_id: int, stem: str) -> str:
    """Two different names can share an ASCII stem (rare); suffix the later one."""
    taken = set(
        session.scalars(
            select(Person.folder).where(
                Person.collection_id == collection_id, Person.folder.like(f"{stem}%")
            )
        )
    )
    folder, n = stem, 2
    while folder in taken:
        folder, n = f"{stem}_{n}", n + 1
    return folder


def find_person(session: Session, name_or_id: str, collection: str | None = None) -> Person:
    """A person by id or by name (any spelling); ambiguous names ask for the collection."""
    query = select(Person)
    if collection:
        query = query.join(Collection).where(Collection.key == collection_key(collection))
    if name_or_id.isdigit():
        found = session.scalar(query.where(Person.id == int(name_or_id)))
        if found:
            return found
    matches = list(session.scalars(query.where(Person.key == name_key(name_or_id))))
    if not matches:
        raise NotFoundError(f"no person {name_or_id!r}; `faceatlas people` lists them")
    if len(matches) > 1:
        raise NotFoundError(
            f"{name_or_id!r} is in several collections; add --collection"
        )
    return matches[0]
