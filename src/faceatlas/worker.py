"""Celery app and tasks: the same one-person pipeline on many machines.

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

Start workers with ``faceatlas worker`` (or ``celery -A faceatlas.worker worker``); enqueue
with ``faceatlas collect --distributed``; watch with ``faceatlas status``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Collection as Collection_
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

import sqlalchemy.exc as sa_exc
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_process_shutdown
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from faceatlas.errors import AuthError, ConfigError, FaceAtlasError
from faceatlas.settings import Settings, get_settings
from faceatlas.store import db
from faceatlas.store.db import session_scope
from faceatlas.store.jobs import finish_job, worker_name
from faceatlas.store.models import Collection, Face, Image, Job, Person, PersonState

log = logging.getLogger(__name__)

TASK_NAME = "faceatlas.collect_person"
#: person states after which a collect job has nothing left to do
FINISHED_STATES = (PersonState.CURATED, PersonState.PROMOTED, PersonState.TOO_FEW_FACES)
TERMINAL_JOB = ("done", "failed")
#: errors worth another try on the same or another worker: the DB or a socket went away
TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError, TimeoutError,
)


class WorkerConfig(BaseSettings):
    """Knobs of the distributed mode (same ``FACEATLAS_`` env prefix as ``Settings``).

    Keep ``lease_seconds`` well above ``heartbeat_seconds`` (a live worker never looks dead)
    and below ``visibility_timeout`` (a redelivered task finds the dead lease already stale).
    """

    model_config = SettingsConfigDict(
        env_prefix="FACEATLAS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    queue: str = Field("faceatlas", description="Broker queue the collect tasks go to.")
    lease_seconds: float = Field(60.0, description="A job whose heartbeat is older is taken over.")
    heartbeat_seconds: float = Field(10.0, description="How often a running job says it lives.")
    visibility_timeout: float = Field(
        3600.0, description="Redis: an unacked task is redelivered after this (worker lost)."
    )
    task_time_limit: int = Field(1800, description="Hard limit per person (seconds).")
    max_attempts: int = Field(5, description="Claims of one job before the person is failed.")
    retry_backoff: float = Field(5.0, description="First retry delay; doubles per attempt.")
    retry_backoff_max: float = Field(300.0, description="Longest retry delay.")


def worker_config() -> WorkerConfig:
    return WorkerConfig()


def configure(app: Celery, settings: Settings, cfg: WorkerConfig) -> None:
    """Point the app at the broker in the settings; durable, one-at-a-time delivery."""
    restore_every = max(1, min(10, int(cfg.visibility_timeout // 4)))
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": cfg.visibility_timeout,
            # sweep for abandoned (unacked) messages often enough for a short timeout
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
        },
        task_default_queue=cfg.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the job rows are the results
        task_acks_late=True,  # ack only after the person is finished...
        task_reject_on_worker_lost=True,  # ...and requeue if the process running it died
        worker_prefetch_multiplier=1,  # a worker reserves no more people than it runs
        task_time_limit=cfg.task_time_limit,
        task_soft_time_limit=max(1, cfg.task_time_limit - 30),
        worker_hijack_root_logger=False,
    )


app = Celery("faceatlas")
configure(app, get_settings(), worker_config())


# -- the job lease -----------------------------------------------------------------------------


class Claim(Enum):
    CLAIMED = "claimed"  # this process owns the job now
    BUSY = "busy"  # another live worker holds it
    FINISHED = "finished"  # nothing left to do (job or person finished, person deleted)
    GAVE_UP = "gave_up"  # too many attempts: job and person marked failed


def _now() -> datetime:
    return datetime.now(timezone.utc)


def claim_job(settings: Settings, job_id: int, person_id: int, *, lease_seconds: float,
              max_attempts: int, task_id: str | None = None) -> Claim:
    """Take the job atomically if it is queued or its holder's heartbeat is stale."""
    me, now = worker_name(), _now()
    stale = now - timedelta(seconds=lease_seconds)
    with session_scope(settings) as s:
        if s.get_bind().dialect.name != "sqlite":
            # serialise claims of one person (two job rows could exist after racing enqueues);
            # SQLite needs nothing: its single writer lock serialises the UPDATE below
            s.execute(select(Person.id).where(Person.id == person_id).with_for_update())
        other = aliased(Job)
        live_elsewhere = exists().where(
            other.person_id == person_id, other.id != job_id, other.kind == "collect",
            other.state == "running", other.heartbeat >= stale,
        )
        claimable = or_(Job.state == "queued",
                        and_(Job.state == "running",
                             or_(Job.heartbeat.is_(None), Job.heartbeat < stale)))
        result = s.execute(
            update(Job)
            .where(Job.id == job_id, claimable, Job.attempts < max_attempts, ~live_elsewhere)
            .values(state="running", worker=me, heartbeat=now, attempts=Job.attempts + 1,
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
            job.state, job.error = "failed", "the person was deleted"
            return Claim.FINISHED
        if claimed:
            if person.state in FINISHED_STATES:  # e.g. collected in-process meanwhile
                job.state, job.progress, job.message = "done", 1.0, f"already {person.state}"
                return Claim.FINISHED
            return Claim.CLAIMED
        if job.state in TERMINAL_JOB:
            return Claim.FINISHED
        live = job.state == "running" and job.heartbeat is not None and \
            _aware(job.heartbeat) >= stale
        if job.attempts >= max_attempts and not live:
            reason = f"gave up after {job.attempts} attempts ({job.error or 'worker lost'})"
            job.state, job.error = "failed", reason[:2000]
            if person.state not in FINISHED_STATES:
                person.state, person.error = PersonState.FAILED, reason[:2000]
                person.attempts += 1
            return Claim.GAVE_UP
        return Claim.BUSY


def _aware(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def release_job(settings: Settings, job_id: int, error: str) -> None:
    """Give the lease back after a transient error: queued again, the error kept for status."""
    with session_scope(settings) as s:
        s.execute(update(Job).where(Job.id == job_id, Job.worker == worker_name())
                  .values(state="queued", error=error[:2000], heartbeat=_now())
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
                                          Job.state == "running")
                        .values(heartbeat=_now()).execution_options(synchronize_session=False)
                    ).rowcount  # type: ignore[attr-defined]
                if n == 0 and not self._stop.is_set() and not self.lost:
                    self.lost = True  # only a stalled process or a lost DB gets here
                    log.warning("job %s: lease lost to another worker", self.job_id)
            except Exception:  # a missed beat is not fatal; the next one may get through
                log.warning("job %s: heartbeat failed", self.job_id, exc_info=True)


# -- running one job (what the task does; callable without Celery) ----------------------------


@dataclass
class Outcome:
    kind: str  # done | failed | skipped | busy | retry
    countdown: float = 0.0
    error: str | None = None


_pool: Any = None  # this process's FacePool (one analysis thread: processes don't multiply)


def face_pool(settings: Settings) -> Any:
    global _pool
    if _pool is None:
        from faceatlas.faces.analyse import face_pool as new_pool

        _pool = new_pool(settings, background=True)
    return _pool


def close_face_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


def max_waits(cfg: WorkerConfig) -> int:
    return int(2 * cfg.task_time_limit / max(cfg.lease_seconds, 1)) + 10


def backoff(cfg: WorkerConfig, attempt: int) -> float:
    delay = min(cfg.retry_backoff * 2 ** max(0, attempt - 1), cfg.retry_backoff_max)
    return delay * random.uniform(0.8, 1.2)  # jitter: retries of many people don't align


def run_collect_job(settings: Settings, job_id: int, person_id: int, *,
                    cfg: WorkerConfig | None = None, task_id: str | None = None) -> Outcome:
    """Claim the job, run the person's pipeline under a heartbeat, finish the job row."""
    from faceatlas.pipeline import collect_person, mark_failed
    from faceatlas.search.sources import image_search_from_settings

    cfg = cfg or worker_config()
    try:
        claim = claim_job(settings, job_id, person_id, lease_seconds=cfg.lease_seconds,
                          max_attempts=cfg.max_attempts, task_id=task_id)
    except TRANSIENT as exc:  # the database is away: keep the message, try again later
        log.warning("job %s: cannot claim, retrying: %s", job_id, exc)
        return Outcome("retry", countdown=backoff(cfg, 1), error=f"{type(exc).__name__}: {exc}")
    if claim is Claim.BUSY:
        return Outcome("busy", countdown=cfg.lease_seconds)
    if claim is Claim.FINISHED:
        return Outcome("skipped")
    if claim is Claim.GAVE_UP:
        return Outcome("failed", error="too many attempts")
    with Heartbeat(settings, job_id, cfg.heartbeat_seconds):
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
            return Outcome("retry", countdown=backoff(cfg, attempts), error=error)
        except (AuthError, ConfigError) as exc:
            # every person would fail the same way: the person stays resumable, the job
            # row says why (shown by status) until the key is fixed and collect runs again
            finish_job(settings, job_id, error=f"{type(exc).__name__}: {exc}")
            return Outcome("failed", error=str(exc))
        except (FaceAtlasError, SoftTimeLimitExceeded) as exc:
            error = str(exc) if isinstance(exc, FaceAtlasError) else "time limit exceeded"
            mark_failed(settings, person_id, error)
            finish_job(settings, job_id, error=error)
            return Outcome("failed", error=error)
    error = getattr(result, "error", None)
    return Outcome("failed" if error else "done", error=error)


class CollectTask(Task):  # type: ignore[misc]
    """Durable delivery: acked after the work, requeued if the worker process dies."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # our own limits apply: job attempts and lease waits
    ignore_result = True


@app.task(bind=True, base=CollectTask, name=TASK_NAME)
def collect_person_task(self: Task, job_id: int, person_id: int, waits: int = 0) -> str:
    """One person's pipeline; a thin shell over ``run_collect_job``."""
    cfg = worker_config()
    outcome = run_collect_job(get_settings(), job_id, person_id, cfg=cfg, task_id=self.request.id)
    if outcome.kind in ("busy", "retry"):
        # bounded: a live holder finishes within the time limit, a dead one goes stale, and an
        # unreachable database must not loop a message forever (the job row stays open and
        # the next `collect --distributed` sends it again)
        if waits >= max_waits(cfg):
            log.error("job %s: given up waiting (%s)", job_id, outcome.error or "busy")
            return "abandoned"
        raise self.retry(args=(job_id, person_id), kwargs={"waits": waits + 1},
                         countdown=outcome.countdown)
    return outcome.kind


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked pool process must not share the parent's database connections."""
    for url in list(db._ready):
        db._engine(url).dispose(close=False)  # drop inherited sockets without closing them
    db._ready.clear()
    db._engine.cache_clear()
    db._factory.cache_clear()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per image


@worker_process_shutdown.connect
def _close_process(**_: Any) -> None:
    close_face_pool()


# -- the enqueuing side ------------------------------------------------------------------------


def prepare_database(settings: Settings) -> None:
    """Migrate once, under the migration lock of ``store.db`` (advisory lock on PostgreSQL,
    file lock on SQLite), so starting workers never race."""
    db.prepare_database(settings)


def open_jobs(settings: Settings, person_ids: Sequence[int]) -> dict[int, int]:
    """person id → its open collect job (queued/running), created queued where none is."""
    jobs: dict[int, int] = {}
    with session_scope(settings) as s:
        for pid in person_ids:
            job = s.scalar(select(Job).where(Job.kind == "collect", Job.person_id == pid,
                                             Job.state.in_(("queued", "running")))
                           .order_by(Job.id.desc()).limit(1))
            if job is None:
                person = s.get(Person, pid)
                job = Job(kind="collect", person_id=pid, state="queued", attempts=0,
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
    prepare_database(settings)
    jobs = open_jobs(settings, person_ids)
    cfg = worker_config()
    if app.conf.broker_url != settings.broker_url:
        configure(app, settings, cfg)
    with app.connection_for_write() as conn:
        for pid, job in jobs.items():  # the queue named now, not when the app was configured
            collect_person_task.apply_async(args=(job, pid), queue=cfg.queue, connection=conn)
    return jobs


# -- what status and the follower show ---------------------------------------------------------


@dataclass
class PersonResult:
    person_id: int
    name: str
    state: str
    job_state: str
    candidates: int = 0
    accepted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    error: str | None = None


@dataclass
class JobsProgress:
    total: int
    finished: int  # jobs done or failed
    new: list[PersonResult]  # finished people not in ``seen``
    images_done: int
    images_total: int
    running: int

    @property
    def complete(self) -> bool:
        return self.finished >= self.total


_CHUNK = 2000  # ids per IN (...): stays under every driver's bound-parameter limit


def jobs_progress(settings: Settings, jobs: dict[int, int],
                  seen: Collection_[int] = ()) -> JobsProgress:
    """How far the given jobs (person id → job id) are, from the database alone; results
    only for finished people not in ``seen`` (a follower polls this over and over)."""
    items = list(jobs.items())
    finished, new, running, images = 0, [], 0, Counter[str]()
    with session_scope(settings) as s:
        for i in range(0, len(items), _CHUNK):
            chunk = dict(items[i:i + _CHUNK])
            states = {jid: (state, error) for jid, state, error in s.execute(
                select(Job.id, Job.state, Job.error).where(Job.id.in_(list(chunk.values()))))}
            images.update(dict(s.execute(
                select(Image.state, func.count()).where(Image.person_id.in_(list(chunk)))
                .group_by(Image.state)).all()))
            running += sum(1 for st, _ in states.values() if st == "running")
            done = {pid: states.get(jid, ("failed", "job row deleted"))
                    for pid, jid in chunk.items()}
            done = {pid: se for pid, se in done.items() if se[0] in TERMINAL_JOB}
            finished += len(done)
            todo = [pid for pid in done if pid not in seen]
            if todo:
                for person in s.scalars(select(Person).where(Person.id.in_(todo))):
                    new.append(_result(s, person, *done[person.id]))
    return JobsProgress(len(jobs), finished, new,
                        images["analysed"] + images["failed"], sum(images.values()), running)


def _result(s: Any, person: Person, job_state: str, job_error: str | None) -> PersonResult:
    reasons = Counter(s.scalars(select(Image.reason).where(
        Image.person_id == person.id, Image.state == "analysed")))
    accepted = s.scalar(select(func.count()).where(Face.person_id == person.id,
                                                   Face.state == "accepted")) or 0
    return PersonResult(person.id, person.name, person.state, job_state,
                        candidates=sum(reasons.values()), accepted=accepted,
                        reasons=Counter({k or "?": v for k, v in reasons.items()}),
                        error=person.error or job_error)


@dataclass
class RunningJob:
    job_id: int
    person: str
    stage: str
    worker: str | None
    heartbeat_age: float | None
    attempts: int
    stale: bool


@dataclass
class CollectionStatus:
    key: str
    name: str
    counts: dict[str, int]
    running: list[RunningJob]
    queued_jobs: int
    failures: list[tuple[str, str]]  # (person, reason)


def collection_status(settings: Settings, lease_seconds: float | None = None) -> list[
        CollectionStatus]:
    """Per collection: people by state, running jobs (worker, heartbeat age), failures."""
    lease = lease_seconds if lease_seconds is not None else worker_config().lease_seconds
    now = _now()
    out = []
    with session_scope(settings) as s:
        for coll in s.scalars(select(Collection).order_by(Collection.key)):
            counts = dict(s.execute(select(Person.state, func.count())
                                    .where(Person.collection_id == coll.id)
                                    .group_by(Person.state)).all())
            in_coll = select(Person.id).where(Person.collection_id == coll.id)
            running = []
            for job, person in s.execute(
                select(Job, Person).join(Person, Job.person_id == Person.id)
                .where(Job.state == "running", Job.person_id.in_(in_coll)).order_by(Job.id)
            ):
                age = (now - _aware(job.heartbeat)).total_seconds() if job.heartbeat else None
                running.append(RunningJob(job.id, person.name, person.state, job.worker, age,
                                          job.attempts, age is None or age > lease))
            queued = s.scalar(select(func.count()).where(
                Job.state == "queued", Job.kind == "collect", Job.person_id.in_(in_coll))) or 0
            failures = [(p.name, p.error or "") for p in s.scalars(
                select(Person).where(Person.collection_id == coll.id,
                                     Person.state == PersonState.FAILED).order_by(Person.id))]
            # failed jobs of people still unfinished (a missing key, a gave-up retry)
            latest = (select(Job.person_id, func.max(Job.id).label("jid"))
                      .where(Job.kind == "collect", Job.person_id.in_(in_coll))
                      .group_by(Job.person_id).subquery())
            for person, job in s.execute(
                select(Person, Job).join(latest, latest.c.person_id == Person.id)
                .join(Job, Job.id == latest.c.jid)
                .where(Job.state == "failed", Person.state != PersonState.FAILED,
                       Person.state.not_in(FINISHED_STATES))
            ):
                failures.append((person.name, f"job {job.id}: {job.error or ''}"))
            out.append(CollectionStatus(coll.key, coll.name, counts, running, queued, failures))
    return out
