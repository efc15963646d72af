"""The enqueuing side: one open job row per person, one task per job on the broker."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from faceatlas.domain.errors import ConfigError
from faceatlas.domain.states import JobKind, JobState
from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.store.db import session_scope
from faceatlas.store.models import Job, Person


def prepare_database(settings: Settings) -> None:
    """Migrate once, under the migration lock of ``store.db`` (advisory lock on PostgreSQL,
    file lock on SQLite), so starting workers never race."""
    db.prepare_database(settings)


def open_jobs(settings: Settings, person_ids: Sequence[int]) -> dict[int, int]:
    """person id → its open collect job (queued/running), created queued where none is."""
    jobs: dict[int, int] = {}
    with session_scope(settings) as s:
        for pid in person_ids:
            job = s.scalar(select(Job).where(Job.kind == JobKind.COLLECT, Job.person_id == pid,
                                             Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
                           .order_by(Job.id.desc()).limit(1))
            if job is None:
                person = s.get(Person, pid)
                job = Job(kind=JobKind.COLLECT, person_id=pid, state=JobState.QUEUED, attempts=0,
                          collection_id=person.collection_id if person else None)
                s.add(job)
                s.flush()
            jobs[pid] = job.id
    return jobs


def enqueue_people(settings: Settings, person_ids: Sequence[int]) -> dict[int, int]:
    """Queue one task per person; a person already queued or running is sent again harmlessly
    (the claim lets only one delivery work). Returns person id → job id."""
    if not settings.broker_url:
        raise ConfigError("no broker: set FACEATLAS_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    from faceatlas.jobs.worker.tasks import app, collect_person_task, configure

    prepare_database(settings)
    jobs = open_jobs(settings, person_ids)
    if app.conf.broker_url != settings.broker_url:
        configure(app, settings)
    with app.connection_for_write() as conn:
        for pid, job in jobs.items():  # the queue named now, not when the app was configured
            collect_person_task.apply_async(args=(job, pid), queue=settings.queue,
                                            connection=conn)
    return jobs
