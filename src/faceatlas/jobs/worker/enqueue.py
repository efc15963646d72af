"""The enqueuing side: one open job row per person, one task per job on the broker."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, insert, select

from faceatlas.domain.errors import ConfigError
from faceatlas.domain.states import JobKind, JobState
from faceatlas.jobs.runner import distributed
from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.models import Job, Person


def prepare_database(settings: Settings) -> None:
    """Migrate once, under the migration lock of ``store.db`` (advisory lock on PostgreSQL,
    file lock on SQLite), so starting workers never race."""
    db.prepare_database(settings)


_CHUNK = 2000  # ids per IN (...): under the limit of SQLite ≥ 3.32 (32,766) and PostgreSQL


def open_jobs(settings: Settings, person_ids: Sequence[int]) -> dict[int, int]:
    """person id → its open collect job (queued/running), created queued where none is.

    In chunks: one query finds the open jobs of 2,000 people (index ``ix_jobs_person_kind_
    state``), one reads the collections of those without, one insert writes their rows — not a
    query per person (100,000 people in seconds, not minutes)."""
    jobs: dict[int, int] = {}
    ids = list(dict.fromkeys(person_ids))
    with session_scope(settings) as s:
        for chunk in chunked(ids, _CHUNK):
            # the newest open job per person, as the one-by-one lookup picked it
            jobs.update(s.execute(
                select(Job.person_id, func.max(Job.id))
                .where(Job.kind == JobKind.COLLECT, Job.person_id.in_(chunk),
                       Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
                .group_by(Job.person_id)).all())
            missing = [pid for pid in chunk if pid not in jobs]
            if not missing:
                continue
            collections = dict(s.execute(select(Person.id, Person.collection_id)
                                         .where(Person.id.in_(missing))).all())
            rows = [{"kind": JobKind.COLLECT, "person_id": pid, "state": JobState.QUEUED,
                     "attempts": 0, "collection_id": collections.get(pid)} for pid in missing]
            # one batched INSERT … RETURNING (insertmanyvalues), no object per row
            jobs.update(s.execute(insert(Job).returning(Job.person_id, Job.id), rows)
                        .all())
    return {pid: jobs[pid] for pid in ids}


def enqueue_people(settings: Settings, person_ids: Sequence[int]) -> dict[int, int]:
    """Queue one task per person; a person already queued or running is sent again harmlessly
    (the claim lets only one delivery work). Returns person id → job id."""
    if not distributed(settings):
        raise ConfigError("no broker: set FACEATLAS_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    from faceatlas.jobs.worker.tasks import app, collect_person_task, configure

    prepare_database(settings)
    jobs = open_jobs(settings, person_ids)
    if app.conf.broker_url != settings.broker_url:
        configure(app, settings)
    items = list(jobs.items())
    # each message is a broker round trip: a few threads, each with its own connection,
    # overlap them (100,000 messages one by one took ~80 s here, 4 threads ~25 s)
    lanes = max(1, min(_PUBLISHERS, len(items) // 500))
    with ThreadPoolExecutor(lanes, thread_name_prefix="enqueue") as pool:
        for future in [pool.submit(_publish, app, collect_person_task, settings.queue,
                                   items[i::lanes]) for i in range(lanes)]:
            future.result()
    return jobs


_PUBLISHERS = 4


def _publish(app: Any, task: Any, queue: str, items: list[tuple[int, int]]) -> None:
    with app.connection_for_write() as conn, app.amqp.Producer(conn, auto_declare=False) as p:
        for pid, job in items:  # the queue named now, not when the app was configured
            task.apply_async(args=(job, pid), queue=queue, producer=p)
