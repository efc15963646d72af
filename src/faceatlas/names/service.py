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
from typing import NamedTuple

from sqlalchemy import select

from faceatlas.domain.errors import StorageError
from faceatlas.domain.names import (
    COUNTRY_MAX,
    NAME_MAX,
    OCCUPATION_MAX,
    InvalidNameError,
    clean_label,
    collection_key,
    name_key,
    one_line,
)
from faceatlas.domain.similar import SimilarNames
from faceatlas.names.llm import NameGenerator
from faceatlas.names.tables import SheetRow, TableLimits, read_people, write_table
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Collection, Person
from faceatlas.store.people import (
    PreparedPerson,
    get_collection,
    get_or_create_collection,
    known_names,
    prepare_person,
    upsert_people,
)
from faceatlas.store.references import sheet_references

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
    # limits hit (names dropped) and suspected duplicates (stored as separate people)
    warnings: list[str] = field(default_factory=list)


class Skipped(NamedTuple):
    """A sheet row that was not imported, and why."""

    row: int  # row number in the sheet (header = 1)
    text: str  # the name as given, shortened for display
    why: str


@dataclass
class ImportReport:
    """What one ``import_people`` run did."""

    collection: str
    created: int = 0
    existing: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    # suspected duplicates: rows stored as new people that look like someone already there
    warnings: list[str] = field(default_factory=list)
    references: int = 0  # reference photos taken from the sheet's references column


def _shown(name: str, limit: int = 80) -> str:
    name = one_line(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _check_similar(similar: SimilarNames, person: PreparedPerson, where: str,
                   warnings: list[str]) -> None:  # fmt: skip
    """Warn when a new person looks like one already known; then know them too."""
    suspects = similar.check_and_add(person.key, person.name)
    if suspects:
        shown = ", ".join(repr(_shown(n)) for n in sorted(suspects)[:3])
        warnings.append(f"{where}{_shown(person.name)!r} looks like {shown}: stored as a "
                        "separate person; if they are one, delete one of them")  # fmt: skip


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
    country = clean_label(country, "country", COUNTRY_MAX)
    by_case: dict[str, str] = {}  # "Singer" and "singer" are one occupation; first spelling wins
    for occupation in occupations:
        label = clean_label(occupation, "occupation", OCCUPATION_MAX)
        by_case.setdefault(label.casefold(), label)
    wanted = list(by_case.values())
    if not wanted:
        raise InvalidNameError("no occupations given")
    # before any request or file: a missing API key must leave nothing behind
    generator = generator or NameGenerator.from_settings(settings)
    report = NamesReport(country=country, collection=collection_key(country), occupations=wanted)
    per_answer, per_run = settings.llm_max_names_per_answer, settings.llm_max_names_per_run
    asked = 0  # names sent for verification in this run
    stored: set[str] = set()
    rejected: set[str] = set()
    try:
        for done, occupation in enumerate(wanted, start=1):
            if asked >= per_run:
                report.warnings.append(
                    f"{occupation}: not asked: the run's limit of {per_run} names was reached "
                    "(FACEATLAS_LLM_MAX_NAMES_PER_RUN)")
                if progress is not None:
                    progress(done, len(wanted), occupation)
                continue
            candidates = generator.generate(country, occupation)
            # Over a cap, keep the first names (the prompt asks for the most famous first): a
            # long answer is still useful, and the warning says how many were dropped.
            if len(candidates) > per_answer:
                report.warnings.append(
                    f"{occupation}: the LLM listed {len(candidates)} names; kept the first "
                    f"{per_answer} (FACEATLAS_LLM_MAX_NAMES_PER_ANSWER)")
                candidates = candidates[:per_answer]
            if len(candidates) > per_run - asked:
                report.warnings.append(
                    f"{occupation}: kept {per_run - asked} of {len(candidates)} names: the "
                    f"run's limit is {per_run} (FACEATLAS_LLM_MAX_NAMES_PER_RUN)")
                candidates = candidates[: per_run - asked]
            asked += len(candidates)
            verdicts = generator.review(country, [c.name for c in candidates])
            with session_scope(settings) as session:
                collection = get_or_create_collection(session, country)
                similar = known_names(session, collection)
                batch: list[PreparedPerson] = []
                for verdict in verdicts:
                    key = name_key(verdict.name)
                    reason = verdict.reason
                    if verdict.verified:
                        try:
                            batch.append(prepare_person(
                                verdict.name, occupations=[occupation], country=country,
                                source="llm", verdict=verdict.reason or "verified"))
                            _check_similar(similar, batch[-1], f"{occupation}: ",
                                           report.warnings)  # fmt: skip
                            continue
                        except InvalidNameError as exc:
                            reason = str(exc)
                    if key not in stored and key not in rejected:
                        rejected.add(key)
                        report.rejections.append((_shown(verdict.name, NAME_MAX), reason))
                results = upsert_people(session, collection, batch)
                for prepared, (_, created) in zip(batch, results, strict=True):
                    if prepared.key in stored:
                        continue
                    stored.add(prepared.key)
                    report.people.append(prepared.name)
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
    for warning in report.warnings:
        log.warning("names for %s: %s", country, warning)
    return report


def import_people(settings: Settings, path: Path | str, country: str, *,
                  references_dir: Path | None = None) -> ImportReport:
    """People from a ``data.xlsx``/CSV sheet join the collection of ``country`` (queued).

    Reference files of the ``references`` column are read only inside ``references_dir``
    (default: ``FACEATLAS_REFERENCES_DIR``, else the sheet's own folder).

    A row that cannot be stored (no letters, a value too long for its column) is reported
    with its row number and reason; the other rows are imported. All rows go to the database
    in one transaction with one query per 500 names, so large sheets import in linear time.
    """
    country = clean_label(country, "country", COUNTRY_MAX)
    # before the session: a bad sheet writes nothing
    rows = read_people(path, TableLimits.from_settings(settings))
    report = ImportReport(collection=collection_key(country))
    prepared: list[tuple[int, PreparedPerson]] = []
    for row in rows:
        try:
            prepared.append((row.row, prepare_person(
                row.full_name, occupations=_split_occupations(row.occupation),
                country=country, source="sheet", first_name=row.name, last_name=row.last_name,
            )))  # fmt: skip
        except InvalidNameError as exc:
            report.skipped.append(Skipped(row.row, _shown(row.full_name), str(exc)))
    seen: set[str] = set()
    row_references = {row.row: row.references for row in rows if row.references}
    references: list[tuple[int, int, str]] = []  # (row number, person id, cell)
    with session_scope(settings) as session:
        collection = get_or_create_collection(session, country)
        similar = known_names(session, collection)
        for number, person in prepared:
            _check_similar(similar, person, f"row {number}: ", report.warnings)
        people = [person for _, person in prepared]
        upserted = upsert_people(session, collection, people)
        for (number, person), (person_id, created) in zip(prepared, upserted, strict=True):
            if number in row_references:
                references.append((number, person_id, row_references[number]))
            if person.key in seen:
                continue  # the same person twice in one sheet: occupations merged, counted once
            seen.add(person.key)
            if created:
                report.created += 1
            else:
                report.existing += 1
    if seen:
        write_name_mapping(settings)
    root = references_dir or settings.references_dir or Path(path).parent
    with session_scope(settings) as session:  # after the commit: the people exist
        for number, person_id, cell in references:
            added, problems = sheet_references(session, person_id, cell, root)
            report.references += added
            report.skipped += [Skipped(number, _shown(item), f"reference photo: {why}")
                               for item, why in problems]
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
            collection = get_collection(session, clean_label(country, "country", COUNTRY_MAX))
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
        ours = {folder: name for folder, name in
                session.execute(select(Person.folder, Person.name).order_by(Person.id))}
    with mapping_lock(path):
        mapping = {**read_mapping(path), **ours}
        data = json.dumps(mapping, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        atomic_write(path, data.encode("utf-8"))
    return mapping


def forget_name(settings: Settings, person_id: int, folder: str, name: str) -> None:
    """Drop the person's entry from name_mapping.json, unless it names someone still stored
    (the mapping is flat over collections; another collection may hold the same folder)."""
    path = Layout(settings.home).name_mapping
    if not path.exists():
        return
    with session_scope(settings) as session:
        others = session.scalar(
            select(Person.id).where(Person.folder == folder, Person.id != person_id).limit(1)
        )
    if others is not None:
        return
    with mapping_lock(path):
        mapping = read_mapping(path)
        if mapping.get(folder) != name:
            return
        del mapping[folder]
        data = json.dumps(mapping, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        atomic_write(path, data.encode("utf-8"))


def _split_occupations(cell: str) -> list[str]:
    """``Singer, Actor`` → two occupations: the form :func:`export_people` writes."""
    return [o.strip() for o in cell.split(",") if o.strip()]


def _first_last(person: Person) -> tuple[str, str]:
    if person.first_name or person.last_name:
        return person.first_name, person.last_name
    parts = person.name.rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (person.name, "")


def read_mapping(path: Path) -> dict[str, str]:
    """``name_mapping.json`` as a dict (empty when missing); unreadable → :class:`StorageError`."""
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
def mapping_lock(path: Path) -> Iterator[None]:
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
    "Progress",
    "SheetRow",
    "Skipped",
    "export_people",
    "forget_name",
    "generate_names",
    "import_people",
    "mapping_lock",
    "read_mapping",
    "write_name_mapping",
]
