"""Stage 1 as library calls: what the CLI, the HTTP API and workers run.

Every function takes the Settings explicitly, so tests and servers can point at any home.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from faceatlas.errors import StorageError
from faceatlas.names.llm import NameGenerator
from faceatlas.names.normalize import InvalidNameError, clean_label, collection_key, name_key
from faceatlas.names.tables import PersonRow, read_people, write_table
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Collection, Person
from faceatlas.store.people import get_collection, get_or_create_collection, upsert_person

log = logging.getLogger(__name__)

#: ``progress(done, total, occupation)`` after each occupation
Progress = Callable[[int, int, str], None]

EXPORT_COLUMNS = ("name", "last_name", "occupation", "original_name", "country", "state")


@dataclass
class NamesReport:
    """What one ``generate_names`` run did; each person counted once per run."""

    country: str
    collection: str
    occupations: list[str]
    created: int = 0  # new people, queued for collection
    existing: int = 0  # verified, but already in the collection
    rejected: int = 0  # proposed, but not verified
    people: list[str] = field(default_factory=list)  # verified names, first seen first
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


@dataclass
class ImportReport:
    """What one ``import_people`` run did."""

    collection: str
    created: int = 0
    existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row text, why)
    references: int = 0  # reference photos taken from the sheet's references column


def generate_names(
    settings: Settings,
    country: str,
    occupations: Sequence[str],
    generator: NameGenerator | None = None,
    progress: Progress | None = None,
) -> NamesReport:
    """Ask the LLM (two passes) per occupation and queue every verified person.

    Each occupation is stored in its own transaction once both passes succeeded, so a
    failure later keeps the occupations already paid for; the name mapping is written for
    whatever was stored, then the error goes on to the caller.
    """
    country = clean_label(country, "country")
    by_case: dict[str, str] = {}  # "Singer" and "singer" are one occupation; first spelling wins
    for occupation in occupations:
        label = clean_label(occupation, "occupation")
        by_case.setdefault(label.casefold(), label)
    wanted = list(by_case.values())
    if not wanted:
        raise InvalidNameError("no occupations given")
    # before any request or file: a missing API key must leave nothing behind
    generator = generator or NameGenerator.from_settings(settings)
    report = NamesReport(country=country, collection=collection_key(country), occupations=wanted)
    stored: set[str] = set()
    rejected: set[str] = set()
    try:
        for done, occupation in enumerate(wanted, start=1):
            candidates = generator.generate(country, occupation)
            verdicts = generator.review(country, [c.name for c in candidates])
            with session_scope(settings) as session:
                collection = get_or_create_collection(session, country)
                for verdict in verdicts:
                    key = name_key(verdict.name)
                    if not verdict.verified:
                        if key not in stored and key not in rejected:
                            rejected.add(key)
                            report.rejections.append((verdict.name, verdict.reason))
                        continue
                    _, created = upsert_person(
                        session, collection, verdict.name, occupations=[occupation],
                        country=country, source="llm", verdict=verdict.reason or "verified",
                    )  # fmt: skip
                    if key in stored:
                        continue
                    stored.add(key)
                    report.people.append(verdict.name)
                    if created:
                        report.created += 1
                    else:
                        report.existing += 1
            if progress is not None:
                progress(done, len(wanted), occupation)
    finally:
        if stored:
            write_name_mapping(settings)
    # a name rejected for one occupation but verified for another is a person, not a rejection
    report.rejections = [(n, r) for n, r in report.rejections if name_key(n) not in stored]
    report.rejected = len(report.rejections)
    return report


def import_people(settings: Settings, path: Path | str, country: str) -> ImportReport:
    """People from a ``data.xlsx``/CSV sheet join the collection of ``country`` (queued)."""
    country = clean_label(country, "country")
    rows = read_people(path)  # before the session: a bad sheet writes nothing
    report = ImportReport(collection=collection_key(country))
    seen: set[str] = set()
    references: list[tuple[int, str]] = []
    with session_scope(settings) as session:
        collection = get_or_create_collection(session, country)
        for row in rows:
            full = row.full_name
            key = name_key(full)
            if not key:
                report.skipped.append((full, "no letters or digits in the name"))
                continue
            person, created = upsert_person(
                session, collection, full,
                occupations=_split_occupations(row.occupation),
                country=country, source="sheet",
                first_name=row.name, last_name=row.last_name,
            )  # fmt: skip
            if row.references:
                session.flush()
                references.append((person.id, row.references))
            if key in seen:
                continue  # the same person twice in one sheet: occupations merged, counted once
            seen.add(key)
            if created:
                report.created += 1
            else:
                report.existing += 1
    if seen:
        write_name_mapping(settings)
    from faceatlas.references import sheet_references

    for person_id, cell in references:  # after the commit: the people exist
        added, problems = sheet_references(settings, person_id, cell, Path(path).parent)
        report.references += added
        report.skipped += problems
    return report


def export_people(settings: Settings, path: Path | str, country: str | None = None) -> int:
    """Write every person (of one country's collection, or all) as ``.xlsx``/``.csv``.

    Columns: ``name``, ``last_name``, ``occupation`` (joined with ``, ``) — what
    :func:`import_people` reads back — plus ``original_name``, ``country``, ``state``.
    Returns the number of rows written; an unknown ``country`` raises NotFoundError.
    """
    rows = []
    with session_scope(settings) as session:
        query = select(Person).join(Collection).order_by(Collection.key, Person.id)
        if country is not None:
            # an unknown country is a mistake to report, not an empty sheet
            collection = get_collection(session, clean_label(country, "country"))
            query = query.where(Person.collection_id == collection.id)
        for person in session.scalars(query):
            first, last = _first_last(person)
            rows.append({
                "name": first, "last_name": last,
                "occupation": ", ".join(person.occupations or []),
                "original_name": person.name, "country": person.country, "state": person.state,
            })  # fmt: skip
    write_table(path, EXPORT_COLUMNS, rows)
    return len(rows)


def write_name_mapping(settings: Settings) -> dict[str, str]:
    """``name_mapping.json``: ``{"<Person_Folder>": "<original full name>"}`` over everyone.

    The key is the person's folder — the identity that crop and gallery file names start
    with — i.e. the ASCII first and last name joined by ``_``. Entries already in the file
    are kept (ours win on conflicts); the write is atomic and locked against other writers.
    """
    path = Layout(settings.home).name_mapping
    with session_scope(settings) as session:
        ours = {p.folder: p.name for p in session.scalars(select(Person).order_by(Person.id))}
    with _locked(path):
        mapping = {**_read_mapping(path), **ours}
        data = json.dumps(mapping, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        atomic_write(path, data.encode("utf-8"))
    return mapping


def _split_occupations(cell: str) -> list[str]:
    """``Singer, Actor`` → two occupations: the form :func:`export_people` writes."""
    return [o.strip() for o in cell.split(",") if o.strip()]


def _first_last(person: Person) -> tuple[str, str]:
    if person.first_name or person.last_name:
        return person.first_name, person.last_name
    parts = person.name.rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (person.name, "")


def _read_mapping(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # refusing beats overwriting: the file may hold names the database does not
        raise StorageError(f"{path} is not readable JSON ({exc}); fix or move it") from None
    if not isinstance(data, dict):
        raise StorageError(f"{path} must hold one JSON object of name -> original name")
    return {str(k): str(v) for k, v in data.items()}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside ``path`` (POSIX); read-merge-write is then safe."""
    try:
        import fcntl
    except ImportError:  # Windows: single writer assumed
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = [
    "EXPORT_COLUMNS",
    "ImportReport",
    "NamesReport",
    "PersonRow",
    "Progress",
    "export_people",
    "generate_names",
    "import_people",
    "write_name_mapping",
]
