"""Distributed mode: the same one-person pipeline on many machines (Celery on a broker).

One task = one person's whole pipeline (``pipeline.collect_person``), keyed by a ``jobs`` row.
The job row is the truth, not the broker: a task first *claims* its job with one conditional
``UPDATE`` (queued, or running with a heartbeat older than the lease), keeps the lease alive
with a heartbeat thread while it works, and finishes the row. So

- a second delivery of a finished job does nothing (the row is ``done``/``failed``);
- a delivery while another worker holds a live lease waits (retries after the lease) and then
  either sees the job finished or takes it over if the holder died meanwhile;
- a worker killed mid-person leaves a running row whose heartbeat goes stale; the broker
  redelivers the unacked message (``acks_late``, ``task_reject_on_worker_lost``, Redis
  ``visibility_timeout``) and the new claimer resumes the person where the dead one stopped —
  the pipeline itself is resumable and never stores anything twice;
- transient errors (database or network connections) release the lease and retry with
  backoff; after ``max_attempts`` claims the person is marked failed (a poison pill cannot
  loop forever).

Modules: ``leases`` (claim, release, heartbeat), ``run`` (one task's work, no Celery needed),
``tasks`` (the Celery app and task, configured when first used), ``enqueue`` (job rows and
messages), ``status`` (what ``status`` and the follower show). Start workers with ``faceatlas
worker`` (or ``celery -A faceatlas.jobs.worker worker``); enqueue with ``faceatlas collect
--distributed``; watch with ``faceatlas status``. The knobs are :class:`Settings` fields
(``FACEATLAS_LEASE_SECONDS`` …).
"""

from __future__ import annotations

from typing import Any

from faceatlas.jobs.worker.enqueue import enqueue_people, open_jobs, prepare_database
from faceatlas.jobs.worker.leases import Claim, Heartbeat, claim_job, release_job
from faceatlas.jobs.worker.run import Outcome, run_collect_job
from faceatlas.jobs.worker.status import (
    CollectionStatus,
    JobsProgress,
    PersonResult,
    RunningJob,
    collection_status,
    jobs_progress,
)

__all__ = [
    "Claim", "CollectionStatus", "Heartbeat", "JobsProgress", "Outcome", "PersonResult",
    "RunningJob", "claim_job", "collection_status", "enqueue_people", "jobs_progress",
    "open_jobs", "prepare_database", "release_job", "run_collect_job",
]


def __getattr__(name: str) -> Any:
    """``app`` for ``celery -A faceatlas.jobs.worker``, loaded only when asked for."""
    if name in ("app", "collect_person_task"):
        from faceatlas.jobs.worker import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
