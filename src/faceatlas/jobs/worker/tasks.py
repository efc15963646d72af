"""The Celery app and its one task. The app is configured from :class:`Settings` when it is
first used — a worker starting, a task being sent — never at import time, so importing this
module reads no environment and needs no broker."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown

from faceatlas.jobs.worker.run import close_face_pool, max_waits, run_collect_job
from faceatlas.settings import Settings, get_settings
from faceatlas.store import db
from faceatlas.web.budget import reset_budgets

log = logging.getLogger(__name__)

TASK_NAME = "faceatlas.collect_person"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The broker in the settings; durable, one-at-a-time delivery."""
    restore_every = max(1, min(10, int(settings.visibility_timeout // 4)))
    return dict(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # sweep for abandoned (unacked) messages often enough for a short timeout
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
        },
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the job rows are the results
        task_acks_late=True,  # ack only after the person is finished...
        task_reject_on_worker_lost=True,  # ...and requeue if the process running it died
        worker_prefetch_multiplier=1,  # a worker reserves no more people than it runs
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(1, settings.task_time_limit - 30),
        worker_hijack_root_logger=False,
    )


def configure(app: Celery, settings: Settings) -> None:
    """Point the app at the broker and limits of ``settings`` (``faceatlas worker`` does this
    before it starts; sending tasks does it when the broker differs)."""
    app.conf.update(celery_config(settings))


app = Celery("faceatlas")
# ``celery -A faceatlas.jobs.worker worker`` without our CLI: the settings are read lazily, on the
# first look at the configuration (worker start-up), not when this module is imported
app.add_defaults(lambda: celery_config(get_settings()))


class CollectTask(Task):  # type: ignore[misc]
    """Durable delivery: acked after the work, requeued if the worker process dies."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # our own limits apply: job attempts and lease waits
    ignore_result = True


@app.task(bind=True, base=CollectTask, name=TASK_NAME)
def collect_person_task(self: Task, job_id: int, person_id: int, waits: int = 0) -> str:
    """One person's pipeline; a thin shell over ``run_collect_job``."""
    settings = get_settings()
    outcome = run_collect_job(settings, job_id, person_id, task_id=self.request.id)
    if outcome.kind in ("busy", "retry"):
        # bounded: a live holder finishes within the time limit, a dead one goes stale, and an
        # unreachable database must not loop a message forever (the job row stays open and
        # the next `collect --distributed` sends it again)
        if waits >= max_waits(settings):
            log.error("job %s: given up waiting (%s)", job_id, outcome.error or "busy")
            return "abandoned"
        raise self.retry(args=(job_id, person_id), kwargs={"waits": waits + 1},
                         countdown=outcome.countdown)
    return outcome.kind


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked pool process must not share the parent's database connections."""
    db.reset_caches(close=False)  # drop inherited sockets without closing them
    reset_budgets(close=False)  # and the parent's Redis connection of the request budget
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per image


@worker_process_shutdown.connect
def _close_process(**_: Any) -> None:
    close_face_pool()
