"""The job lease: claim a collect job with one conditional ``UPDATE``, keep it alive with a
heartbeat, give it back after a transient error.

The job row is the truth, not the broker: a job is claimable when it is queued, or running
with a heartbeat older than the lease; a person whose job another live worker holds is busy.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from enum import Enum

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from faceatlas.domain.states import JobKind, JobState, PersonState
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.jobs import worker_name
from faceatlas.store.models import Job, Person, aware

log = logging.getLogger(__name__)

#: person states after which a collect job has nothing left to do
FINISHED_STATES = (PersonState.CURATED, PersonState.PROMOTED, PersonState.TOO_FEW_FACES)
TERMINAL_JOB = (JobState.DONE, JobState.FAILED)


class Claim(Enum):
    CLAIMED = "claimed"  # this process owns the job now
    BUSY = "busy"  # another live worker holds it
    FINISHED = "finished"  # nothing left to do (job or person finished, person deleted)
    GAVE_UP = "gave_up"  # too many attempts: job and person marked failed


def now() -> datetime:
    return datetime.now(timezone.utc)


def claim_job(settings: Settings, job_id: int, person_id: int, *, lease_seconds: float,
              max_attempts: int, task_id: str | None = None) -> Claim:
    """Take the job atomically if it is queued or its holder's heartbeat is stale."""
    me, at = worker_name(), now()
    stale = at - timedelta(seconds=lease_seconds)
    with session_scope(settings) as s:
        if s.get_bind().dialect.name != "sqlite":
            # serialise claims of one person (two job rows could exist after racing enqueues);
            # SQLite needs nothing: its single writer lock serialises the UPDATE below
            s.execute(select(Person.id).where(Person.id == person_id).with_for_update())
        other = aliased(Job)
        live_elsewhere = exists().where(
            other.person_id == person_id, other.id != job_id, other.kind == JobKind.COLLECT,
            other.state == JobState.RUNNING, other.heartbeat >= stale,
        )
        claimable = or_(Job.state == JobState.QUEUED,
                        and_(Job.state == JobState.RUNNING,
                             or_(Job.heartbeat.is_(None), Job.heartbeat < stale)))
        result = s.execute(
            update(Job)
            .where(Job.id == job_id, claimable, Job.attempts < max_attempts, ~live_elsewhere)
            .values(state=JobState.RUNNING, worker=me, heartbeat=at, attempts=Job.attempts + 1,
                    task_id=task_id, error=None)
            .execution_options(synchronize_session=False)
        )
        claimed = result.rowcount == 1  # type: ignore[attr-defined]
        job = s.get(Job, job_id)
        person = s.get(Person, person_id)
        if job is None:
            return Claim.FINISHED
        s.refresh(job)
        if person is None:
            job.state, job.error = JobState.FAILED, "the person was deleted"
            return Claim.FINISHED
        if claimed:
            if person.state in FINISHED_STATES:  # e.g. collected in-process meanwhile
                job.state, job.progress, job.message = JobState.DONE, 1.0, f"already {person.state}"
                return Claim.FINISHED
            return Claim.CLAIMED
        if job.state in TERMINAL_JOB:
            return Claim.FINISHED
        live = job.state == JobState.RUNNING and job.heartbeat is not None and \
            aware(job.heartbeat) >= stale
        if job.attempts >= max_attempts and not live:
            reason = f"gave up after {job.attempts} attempts ({job.error or 'worker lost'})"
            job.state, job.error = JobState.FAILED, reason[:2000]
            if person.state not in FINISHED_STATES:
                person.state, person.error = PersonState.FAILED, reason[:2000]
                person.attempts += 1
            return Claim.GAVE_UP
        return Claim.BUSY


def release_job(settings: Settings, job_id: int, error: str) -> None:
    """Give the lease back after a transient error: queued again, the error kept for status."""
    with session_scope(settings) as s:
        s.execute(update(Job).where(Job.id == job_id, Job.worker == worker_name())
                  .values(state=JobState.QUEUED, error=error[:2000], heartbeat=now())
                  .execution_options(synchronize_session=False))


class Heartbeat:
    """A thread that keeps this process's lease on a job fresh while the work runs."""

    def __init__(self, settings: Settings, job_id: int, every: float) -> None:
        self.settings, self.job_id, self.every = settings, job_id, every
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}",
                                        daemon=True)
        self._me = worker_name()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with session_scope(self.settings) as s:
                    n = s.execute(
                        update(Job).where(Job.id == self.job_id, Job.worker == self._me,
                                          Job.state == JobState.RUNNING)
                        .values(heartbeat=now()).execution_options(synchronize_session=False)
                    ).rowcount  # type: ignore[attr-defined]
                if n == 0 and not self._stop.is_set() and not self.lost:
                    self.lost = True  # only a stalled process or a lost DB gets here
                    log.warning("job %s: lease lost to another worker", self.job_id)
            except Exception:  # a missed beat is not fatal; the next one may get through
                log.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
