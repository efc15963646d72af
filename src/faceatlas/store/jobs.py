"""Job rows: the live truth about a unit of work (state, attempts, heartbeat, worker, error)."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from sqlalchemy import select

from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Job, JobKind, JobState


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def start_job(settings: Settings, kind: JobKind, person_id: int | None = None,
              collection_id: int | None = None, task_id: str | None = None) -> int:
    """The open job of this kind for the person (resumed after a crash), or a new one.

    Jobs without a person (``names`` runs) are never resumed: each request is its own job,
    so two runs for different countries never report into one row.
    """
    with session_scope(settings) as s:
        job = None
        if person_id is not None:
            job = s.scalar(
                select(Job).where(Job.kind == kind, Job.person_id == person_id,
                                  Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
                .order_by(Job.id.desc()).limit(1)
            )
        if job is None:
            job = Job(kind=kind, person_id=person_id, collection_id=collection_id, attempts=0)
            s.add(job)
        job.state, job.attempts = JobState.RUNNING, job.attempts + 1
        job.worker, job.heartbeat = worker_name(), datetime.now(timezone.utc)
        job.task_id = task_id or job.task_id
        s.flush()
        return job.id


def begin_job(settings: Settings, job_id: int) -> None:
    """A queued job (written before its work could start) is now at work, here."""
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is not None:
            job.state, job.attempts = JobState.RUNNING, job.attempts + 1
            job.worker, job.heartbeat = worker_name(), datetime.now(timezone.utc)


def update_job(settings: Settings, job_id: int, *, progress: float | None = None,
               message: str | None = None) -> None:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        if progress is not None:
            job.progress = progress
        if message is not None:
            job.message = message
        job.heartbeat = datetime.now(timezone.utc)


def finish_job(settings: Settings, job_id: int, *, error: str | None = None,
               message: str | None = None) -> None:
    """Done (or failed with ``error``); ``message``: what it came to, replacing the last
    stage ("curating") so a finished job never reads as if it were still at work."""
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        job.state = JobState.FAILED if error else JobState.DONE
        job.error = error
        if message is not None:
            job.message = message[:500]
        job.progress = job.progress if error else 1.0
        job.heartbeat = datetime.now(timezone.utc)
