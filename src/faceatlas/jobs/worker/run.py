"""What one collect task does, callable without Celery: claim the job, run the person's
pipeline (:func:`faceatlas.jobs.collect.collect_person`) under a heartbeat, say what next."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import sqlalchemy.exc as sa_exc
from celery.exceptions import SoftTimeLimitExceeded

from faceatlas.domain.errors import AuthError, ConfigError, FaceAtlasError
from faceatlas.faces.analyse import face_pool as new_pool
from faceatlas.jobs.collect import collect_person, mark_failed
from faceatlas.jobs.worker.leases import Claim, Heartbeat, claim_job, release_job
from faceatlas.settings import Settings
from faceatlas.sources.chain import image_search_from_settings
from faceatlas.store.db import session_scope
from faceatlas.store.jobs import finish_job
from faceatlas.store.models import Job

log = logging.getLogger(__name__)

#: errors worth another try on the same or another worker: the DB or a socket went away
TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError, TimeoutError,
)


@dataclass
class Outcome:
    kind: str  # done | failed | skipped | busy | retry
    countdown: float = 0.0
    error: str | None = None


_pool: Any = None  # this process's FacePool (one analysis thread: processes don't multiply)


def face_pool(settings: Settings) -> Any:
    global _pool
    if _pool is None:
        _pool = new_pool(settings, background=True)
    return _pool


def close_face_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


def max_waits(settings: Settings) -> int:
    return int(2 * settings.task_time_limit / max(settings.lease_seconds, 1)) + 10


def backoff(settings: Settings, attempt: int) -> float:
    delay = min(settings.retry_backoff * 2 ** max(0, attempt - 1), settings.retry_backoff_max)
    return delay * random.uniform(0.8, 1.2)  # jitter: retries of many people don't align


def run_collect_job(settings: Settings, job_id: int, person_id: int, *,
                    task_id: str | None = None) -> Outcome:
    """Claim the job, run the person's pipeline under a heartbeat, finish the job row."""

    try:
        claim = claim_job(settings, job_id, person_id, lease_seconds=settings.lease_seconds,
                          max_attempts=settings.max_attempts, task_id=task_id)
    except TRANSIENT as exc:  # the database is away: keep the message, try again later
        log.warning("job %s: cannot claim, retrying: %s", job_id, exc)
        return Outcome("retry", countdown=backoff(settings, 1),
                       error=f"{type(exc).__name__}: {exc}")
    if claim is Claim.BUSY:
        return Outcome("busy", countdown=settings.lease_seconds)
    if claim is Claim.FINISHED:
        return Outcome("skipped")
    if claim is Claim.GAVE_UP:
        return Outcome("failed", error="too many attempts")
    with Heartbeat(settings, job_id, settings.heartbeat_seconds):
        try:
            with image_search_from_settings(settings) as provider:
                # the time limit gives up on the person (a retry would hit it again)
                result = collect_person(settings, person_id, provider=provider,
                                        pool=face_pool(settings), job_id=job_id,
                                        fail_on=(SoftTimeLimitExceeded,))
        except TRANSIENT as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s (person %s): transient error, retrying: %s", job_id,
                        person_id, error)
            attempts = 1
            try:
                with session_scope(settings) as s:
                    attempts = (s.get(Job, job_id) or Job(attempts=1)).attempts
                release_job(settings, job_id, error)
            except TRANSIENT:  # still away: the lease goes stale by itself
                pass
            return Outcome("retry", countdown=backoff(settings, attempts), error=error)
        except (AuthError, ConfigError) as exc:
            # every person would fail the same way: the person stays resumable, the job
            # row says why (shown by status) until the key is fixed and collect runs again
            finish_job(settings, job_id, error=f"{type(exc).__name__}: {exc}")
            return Outcome("failed", error=str(exc))
        except (FaceAtlasError, SoftTimeLimitExceeded) as exc:
            # outside the pipeline's own policy (e.g. the limit hit while the search opened)
            error = str(exc) if isinstance(exc, FaceAtlasError) else "time limit exceeded"
            mark_failed(settings, person_id, error)
            finish_job(settings, job_id, error=error)
            return Outcome("failed", error=error)
    return Outcome("failed" if result.failed else "done", error=result.error)
