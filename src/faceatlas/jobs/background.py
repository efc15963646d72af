"""Work the HTTP API starts and does not wait for: name generation, collecting people now.

Each run gets a job row first (so `GET /api/v1/jobs` shows it at once), keys are checked before
the work starts (a missing key is the caller's error, not a silent background failure); where
the work runs is ``runner``'s decision (Celery with a broker, else this process's thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from faceatlas.domain.errors import ConfigError, FaceAtlasError
from faceatlas.domain.names import clean_label, collection_key
from faceatlas.faces.analyse import face_pool
from faceatlas.gallery.review import requeue
from faceatlas.jobs.collect import collect_person, pending_people
from faceatlas.jobs.runner import claims, runner, short_error, submit
from faceatlas.jobs.worker.enqueue import enqueue_people, open_jobs
from faceatlas.names.llm import NameGenerator
from faceatlas.names.service import generate_names
from faceatlas.names.tables import SheetRow, read_occupations, write_people
from faceatlas.settings import Settings
from faceatlas.sources.chain import image_search_from_settings
from faceatlas.sources.rapidapi import RapidAPIImageSearch
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.jobs import finish_job, start_job, update_job
from faceatlas.store.models import BUSY, Collection, JobKind, Person, PersonState
from faceatlas.store.people import get_or_create_collection

log = logging.getLogger(__name__)


def occupations_file(settings: Settings) -> Path | None:
    """The old system's occupation list: ``FACEATLAS_OCCUPATIONS_FILE``, else
    ``excel/occupation.xlsx`` in the home (where the old system kept it; ``.csv`` and the
    home itself also work). A configured file that is missing is an error, not a fallback."""
    if settings.occupations_file is not None:
        if not Path(settings.occupations_file).is_file():
            raise ConfigError(f"FACEATLAS_OCCUPATIONS_FILE: no such file "
                              f"{settings.occupations_file}")
        return Path(settings.occupations_file)
    return next((p for p in Layout(settings.home).occupation_files if p.is_file()), None)


def file_occupations(settings: Settings) -> list[str]:
    """The occupations of :func:`occupations_file` (empty when there is none)."""

    path = occupations_file(settings)
    return read_occupations(path) if path is not None else []


def write_data_sheet(settings: Settings, collection: str) -> tuple[Path, int]:
    """``excel/data.xlsx`` as the old system kept it: the collection's queue (people not yet
    collected), columns ``name``, ``last_name``, ``occupation``. Returns (path, rows)."""

    with session_scope(settings) as s:
        rows = [
            SheetRow(p.first_name, p.last_name, ", ".join(p.occupations or []))
            for p in s.scalars(
                select(Person).join(Collection)
                .where(Collection.key == collection_key(collection),
                       Person.state == PersonState.QUEUED).order_by(Person.id))
        ]
    path = Layout(settings.home).data_sheet
    write_people(path, rows)
    return path, len(rows)


def stored_occupations(settings: Settings) -> list[str]:
    """``occupation.xlsx``/``.csv`` (the old system's file), else those in use."""
    found = file_occupations(settings)
    if found:
        return found
    with session_scope(settings) as s:
        seen: dict[str, str] = {}
        for occupations in s.scalars(select(Person.occupations)):
            for o in occupations or []:
                seen.setdefault(o.casefold(), o)
    return sorted(seen.values())


@dataclass
class NamesStarted:
    job_id: int
    occupations: list[str]
    row_count: int
    file_path: str


def start_names(settings: Settings, country: str, occupations: list[str] | None) -> NamesStarted:
    wanted = occupations or stored_occupations(settings)
    if not wanted:
        raise FaceAtlasError(
            "no occupations stored: put occupation.xlsx (column Occupation) in the home, "
            "or pass occupation=A,B"
        )
    generator = NameGenerator.from_settings(settings)  # ConfigError now, not in the thread

    with session_scope(settings) as s:
        # the job belongs to the collection, so its tokens see it
        coll_id = get_or_create_collection(s, clean_label(country, "country")).id
    job = start_job(settings, JobKind.NAMES, collection_id=coll_id)
    update_job(settings, job, message=f"{country}: {', '.join(wanted)}"[:500])
    # the old answer: rows written to the data sheet (the queue as it stands now); the job
    # writes it again when the new names are in
    sheet, rows = write_data_sheet(settings, country)

    def run() -> None:
        try:
            generate_names(settings, country, wanted, generator=generator)
            write_data_sheet(settings, country)
        except Exception as exc:  # the job row is where a background failure is reported
            log.exception("name generation for %s failed", country)
            finish_job(settings, job, error=short_error(exc))
        else:
            finish_job(settings, job)

    submit(run)
    return NamesStarted(job, wanted, rows, Layout(settings.home).relative(sheet))


@dataclass
class CollectStarted:
    job_id: int
    person_id: int
    original_name: str
    first_name: str
    last_name: str
    occupation: str
    collection: str


def start_collect_next(settings: Settings, collections: frozenset[str] | None = None
                       ) -> CollectStarted | None:
    """Start the next queued person (of ``collections`` only, when given) on the background
    thread, searching with RapidAPI as the old system did (a missing key fails the request)."""

    RapidAPIImageSearch.from_settings(settings).close()  # a missing key fails the request
    with claims.lock:
        taken = claims.taken()
        if collections is None:
            pending = pending_people(settings, limit=len(taken) + 1)
        else:
            pending = sorted(i for c in collections
                             for i in pending_people(settings, c, limit=len(taken) + 1))
        ids = [i for i in pending if i not in taken]
        if not ids:
            return None
        person_id = ids[0]
        claims.scheduled.add(person_id)
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        assert person is not None
        started = CollectStarted(0, person_id, person.name, person.first_name, person.last_name,
                                 ", ".join(person.occupations), person.collection.key)
    jobs = open_jobs(settings, [person_id])
    started.job_id = jobs[person_id]
    submit(_collect_batch, settings, jobs, RapidAPIImageSearch.from_settings)
    return started


@dataclass
class CollectNow:
    """What :func:`collect_now` started: person id → its job (queued at once, so the Jobs
    page shows it), where the work runs, who was left alone because they are being collected
    (or already wait for it), and ids that name nobody (erased meanwhile)."""

    jobs: dict[int, int]
    runner: str  # "celery" (FACEATLAS_BROKER_URL is set) or "server" (this process's thread)
    busy: list[int]
    missing: list[int] = field(default_factory=list)


def collect_now(settings: Settings, person_ids: Sequence[int]) -> CollectNow:
    """Queue the people again (as ``recollect``) and start collecting them now: on the Celery
    queue when a broker is configured, else one after another on this server's background
    thread (one face pool for the batch).

    The sources are opened first, so a missing key is the caller's error at once. Who is
    being collected, or already waits for this thread, is left alone (a second click does not
    collect anyone twice); the decision and the re-queueing are one transaction. Job rows are
    written queued before anything runs; a server that stops before it reaches them leaves
    them queued, and `faceatlas collect` (or collect now again) resumes them.
    """

    image_search_from_settings(settings).close()  # ConfigError now, not in the thread
    where = runner(settings)
    wanted = list(dict.fromkeys(person_ids))
    with claims.lock:
        queued, busy, missing = _requeue(settings, wanted, claims.taken())
        if where == "server":
            claims.scheduled.update(queued)
    if not queued:
        return CollectNow({}, where, busy, missing)
    if where == "celery":  # a second delivery is harmless there: the claim lets one work
        return CollectNow(enqueue_people(settings, queued), where, busy, missing)
    jobs = open_jobs(settings, queued)
    submit(_collect_batch, settings, jobs)
    return CollectNow(jobs, where, busy, missing)


def _requeue(settings: Settings, ids: list[int], taken: set[int]
             ) -> tuple[list[int], list[int], list[int]]:
    """In one transaction: queue again everyone not busy; returns (queued, busy, missing)."""

    with session_scope(settings) as s:
        people = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_(ids)))}
        queued, busy = [], []
        for pid in ids:
            person = people.get(pid)
            if person is None:
                continue
            if person.state in BUSY or pid in taken:
                busy.append(pid)
            else:
                requeue(s, person)
                queued.append(pid)
    return queued, busy, [i for i in ids if i not in people]


def _collect_batch(settings: Settings, jobs: dict[int, int],
                   search: Callable[[Settings], Any] | None = None) -> None:
    """Collect people in turn on the background thread (the one way this process collects):
    nobody retries here, so any error fails the person, never leaving them "curating". A bad
    key or setting stops the batch (every later person would fail the same way): their jobs
    say why, they stay queued. ``search``: the sources (default: the configured chain)."""

    left = dict(jobs)
    try:
        with (search or image_search_from_settings)(settings) as provider, \
                face_pool(settings, background=True) as pool:
            for person_id in jobs:
                del left[person_id]
                if not claims.start(person_id):
                    continue
                try:
                    # the queued row → running
                    job = start_job(settings, JobKind.COLLECT, person_id)
                    collect_person(settings, person_id, provider=provider, pool=pool,
                                   job_id=job, fail_on=(Exception,))
                finally:
                    claims.finish(person_id)
    except Exception as exc:
        log.exception("collecting in the background stopped")
        claims.drop(left)
        for job in left.values():
            finish_job(settings, job, error=f"not started: {short_error(exc)}")
