"""Finding and creating collections and people: one row per normalised name and collection.

Every name reaches the database through here (sheets, the LLM, folders, uploads), so this is
where names are cleaned of invisible characters and their lengths checked against the
columns: :func:`prepare_person` refuses a bad value with a reason before any SQL runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from faceatlas.domain.errors import AmbiguousError, NotFoundError
from faceatlas.domain.names import (
    COUNTRY_MAX,
    NAME_MAX,
    OCCUPATION_MAX,
    InvalidNameError,
    collection_key,
    file_stem,
    name_key,
    one_line,
    split_name,
    to_ascii,
)
from faceatlas.domain.similar import SimilarNames
from faceatlas.store.db import chunked
from faceatlas.store.models import Collection, Person, PersonState

_KEY_MAX = 200  # people.key
_ASCII_MAX = 300  # people.ascii_name
_COLLECTION_NAME_MAX = 200  # collections.name
_SOURCE_MAX = 50  # people.source
_VERDICT_MAX = 2000  # people.verdict is TEXT; a verifier's reason is a sentence


@dataclass(frozen=True)
class PreparedPerson:
    """A person's values, cleaned and checked: safe to store on any database."""

    key: str
    name: str
    first_name: str | None
    last_name: str | None
    occupations: tuple[str, ...]
    country: str
    source: str
    verdict: str | None


def prepare_person(
    name: str,
    *,
    occupations: Iterable[str] = (),
    country: str = "",
    source: str = "",
    verdict: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
) -> PreparedPerson:
    """Clean every value (:func:`~faceatlas.domain.names.one_line`) and check it fits.

    Raises InvalidNameError with a short reason ("no letters or digits in the name", "name is
    5000 characters long; at most 200", …): refused, never cut — a cut name is another name.
    """
    name = one_line(name)
    key = name_key(name)
    if not key:
        raise InvalidNameError("no letters or digits in the name")
    _fits("name", name, NAME_MAX)
    if len(key) > _KEY_MAX:
        raise InvalidNameError(f"name is {len(key)} characters long once transliterated; "
                               f"at most {_KEY_MAX}")  # fmt: skip
    first = None if first_name is None else one_line(first_name)
    last = None if last_name is None else one_line(last_name)
    _fits("first name", first or "", NAME_MAX)
    _fits("last name", last or "", NAME_MAX)
    cleaned: list[str] = []
    for occupation in occupations:
        occupation = one_line(occupation or "")
        if occupation:
            _fits("occupation", occupation, OCCUPATION_MAX)
            cleaned.append(occupation)
    country = one_line(country)
    _fits("country", country, COUNTRY_MAX)
    source = one_line(source)[:_SOURCE_MAX]
    verdict = None if verdict is None else one_line(verdict)[:_VERDICT_MAX]
    return PreparedPerson(key, name, first, last, tuple(cleaned), country, source, verdict)


def _fits(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidNameError(f"{what} is {len(value)} characters long; at most {limit}")


def get_or_create_collection(session: Session, name: str) -> Collection:
    """``Serbia`` and ``serbia`` name the same collection (key ``serbia``)."""
    name = one_line(name)
    _fits("collection name", name, _COLLECTION_NAME_MAX)
    key = collection_key(name)
    found = session.scalar(select(Collection).where(Collection.key == key))
    if found is None:
        found = Collection(key=key, name=name or key)
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
    Raises InvalidNameError (see :func:`prepare_person`) before touching the database.
    """
    prepared = prepare_person(name, occupations=occupations, country=country, source=source,
                              verdict=verdict, first_name=first_name, last_name=last_name)
    ((person_id, created),) = upsert_people(session, collection, [prepared])
    person = session.get(Person, person_id)
    assert person is not None
    return person, created


def upsert_people(
    session: Session, collection: Collection, people: Sequence[PreparedPerson]
) -> list[tuple[int, bool]]:
    """:func:`upsert_person` for many at once: ``(person id, created)`` per entry.

    Existing people are read with one query per 500 keys and new ones written with one
    multi-row INSERT, so a 100k-row sheet costs a few hundred statements, not 100k round
    trips. The same key twice in ``people`` is one person (occupations merged, created once).
    """
    keys = list(dict.fromkeys(p.key for p in people))
    found: dict[str, Person] = {}
    for chunk in chunked(keys):
        found.update((p.key, p) for p in session.scalars(
            select(Person).where(Person.collection_id == collection.id, Person.key.in_(chunk))
        ))  # fmt: skip
    new: dict[str, dict[str, Any]] = {}  # key -> row to insert, in first-seen order
    spelled: dict[str, PreparedPerson] = {}  # a new key's first spelling names the person
    for p in people:
        if p.key not in found:
            spelled.setdefault(p.key, p)
    asciis = {key: to_ascii(p.name) for key, p in spelled.items()}
    stems = {key: file_stem(p.name, asciis[key]) for key, p in spelled.items()}
    taken = _taken_folders(session, collection.id, set(stems.values())) if stems else set()
    for p in people:
        person = found.get(p.key)
        if person is not None:  # already stored: merge occupations, keep the rest
            merged = list(dict.fromkeys([*person.occupations, *p.occupations]))
            if merged != person.occupations:
                person.occupations = merged
            if p.verdict and not person.verdict:
                person.verdict = p.verdict
            continue
        row = new.get(p.key)
        if row is None:
            first, last = split_name(p.name)
            folder = _pick_folder(taken, stems[p.key])
            taken.add(folder)
            row = new[p.key] = {
                "collection_id": collection.id, "key": p.key, "name": p.name,
                "ascii_name": asciis[p.key][:_ASCII_MAX],
                "first_name": p.first_name if p.first_name is not None else first,
                "last_name": p.last_name if p.last_name is not None else last,
                "folder": folder, "occupations": [], "country": p.country or collection.name,
                "source": p.source, "verdict": p.verdict, "state": PersonState.QUEUED,
            }  # fmt: skip
        row["occupations"] = list(dict.fromkeys([*row["occupations"], *p.occupations]))
        row["verdict"] = row["verdict"] or p.verdict
    session.flush()
    ids = {person.key: person.id for person in found.values()}
    rows = list(new.values())
    if rows:
        # one executemany (no RETURNING: SQLite would run it row by row), then the ids by key
        session.execute(insert(Person.__table__), rows)  # Core: no ORM bookkeeping per row
        new_keys = list(new)
        for chunk in chunked(new_keys):
            ids.update((key, pid) for key, pid in session.execute(
                select(Person.key, Person.id)
                .where(Person.collection_id == collection.id, Person.key.in_(chunk))
            ))  # fmt: skip
    out: list[tuple[int, bool]] = []
    seen: set[str] = set()
    for p in people:
        out.append((ids[p.key], p.key in new and p.key not in seen))
        seen.add(p.key)
    return out


def known_names(session: Session, collection: Collection) -> SimilarNames:
    """The collection's keys, indexed for suspected-duplicate checks."""
    rows = session.execute(
        select(Person.key, Person.name).where(Person.collection_id == collection.id))
    return SimilarNames((key, name) for key, name in rows)


def suspected_duplicates(session: Session, collection: Collection, name: str) -> list[str]:
    """Names in the collection that look like ``name`` but are another person's (see
    :mod:`faceatlas.domain.similar`): to report, never to merge."""
    return known_names(session, collection).similar(name_key(name))


def _pick_folder(taken: set[str], stem: str) -> str:
    """Two different names can share an ASCII stem (``Ali علي`` / ``Ali عالي``); suffix the
    later one."""
    folder, n = stem, 2
    while folder in taken:
        folder, n = f"{stem}_{n}", n + 1
    return folder


def _taken_folders(session: Session, collection_id: int, stems: set[str]) -> set[str]:
    """Folders in use that a new person's stem could collide with: per stem for a few
    people, all of the collection's at once for a batch (one query, not one per row)."""
    query = select(Person.folder).where(Person.collection_id == collection_id)
    if len(stems) > 20:
        return set(session.scalars(query))
    taken: set[str] = set()
    for stem in stems:
        taken.update(session.scalars(query.where(Person.folder.like(f"{stem}%"))))
    return taken


def as_person_id(text: str) -> int | None:
    """``text`` as a person id if it is one: ASCII digits, not past any row (SQLite's
    integers are 64-bit: a larger one fails there); else None (a name)."""
    return int(text) if text.isascii() and text.isdigit() and int(text) < 2**62 else None


def find_person(session: Session, name_or_id: str, collection: str | None = None) -> Person:
    """A person by id or by name (any spelling); ambiguous names ask for the collection."""
    query = select(Person)
    if collection:
        query = query.join(Collection).where(Collection.key == collection_key(collection))
    person_id = as_person_id(name_or_id)
    if person_id is not None:
        found = session.scalar(query.where(Person.id == person_id))
        if found:
            return found
    matches = list(session.scalars(query.where(Person.key == name_key(name_or_id))))
    if not matches:
        raise NotFoundError(f"no person {name_or_id!r}; `faceatlas people` lists them")
    if len(matches) > 1:
        raise AmbiguousError(f"{name_or_id!r} is in several collections; say which")
    return matches[0]


def get_person(session: Session, person_id: int) -> Person:
    """The person with this id, or NotFoundError."""
    person = session.get(Person, person_id)
    if person is None:
        raise NotFoundError(f"no person with id {person_id}")
    return person
