"""What ``status`` and the ``collect --distributed`` follower show, from the job rows alone
(any mode: in-process, server or Celery jobs all write the same rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection as Collection_
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from faceatlas.domain.states import FaceState, ImageState, JobKind, JobState, PersonState
from faceatlas.jobs.worker.leases import FINISHED_STATES, TERMINAL_JOB, now
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.models import Collection, Face, Image, Job, Person, aware


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


_CHUNK = 2000  # ids per IN (...): under the limit of SQLite ≥ 3.32 (32,766) and PostgreSQL


def jobs_progress(settings: Settings, jobs: dict[int, int],
                  seen: Collection_[int] = ()) -> JobsProgress:
    """How far the given jobs (person id → job id) are, from the database alone; results
    only for finished people not in ``seen`` (a follower polls this over and over).

    Aggregates, not rows: per chunk one row of per-state counts over the jobs, and rows only
    of the finished jobs of people not yet seen (a follower's ``seen`` grows with every
    poll), so a poll of 100,000 jobs moves a few counts, not 100,000 rows."""
    items = list(jobs.items())
    finished, new, running, images = 0, [], 0, Counter[str]()
    # one row of FILTERed counts a chunk, not GROUP BY state: PostgreSQL would walk the
    # whole state index for the grouping instead of looking the ids up
    states = list(JobState)
    with session_scope(settings) as s:
        for part in chunked(items, _CHUNK):
            chunk = dict(part)
            row = s.execute(select(*(func.count().filter(Job.state == st) for st in states))
                            .where(Job.id.in_(list(chunk.values())))).one()
            counts = dict(zip(states, row, strict=True))
            images.update(dict(s.execute(
                select(Image.state, func.count()).where(Image.person_id.in_(list(chunk)))
                .group_by(Image.state)).all()))
            running += counts[JobState.RUNNING]
            # a job row deleted under the follower counts as failed, as its person's job did
            deleted = len(set(chunk.values())) - sum(counts.values())
            finished += sum(counts[st] for st in TERMINAL_JOB) + deleted
            unseen = {jid: pid for pid, jid in chunk.items() if pid not in seen}
            if not unseen:
                continue
            done = {unseen[jid]: (state, error) for jid, state, error in s.execute(
                select(Job.id, Job.state, Job.error).where(
                    Job.id.in_(list(unseen)), Job.state.in_(TERMINAL_JOB)))}
            if deleted and s.scalar(select(func.count()).where(
                    Job.id.in_(list(unseen)))) != len(unseen):  # which: only while unseen
                present = set(s.scalars(select(Job.id).where(Job.id.in_(list(unseen)))))
                done.update({pid: (JobState.FAILED, "job row deleted")
                             for jid, pid in unseen.items() if jid not in present})
            if done:
                for person in s.scalars(select(Person).where(Person.id.in_(list(done)))):
                    new.append(_result(s, person, *done[person.id]))
    return JobsProgress(len(jobs), finished, new,
                        images[ImageState.ANALYSED] + images[ImageState.FAILED],
                        sum(images.values()), running)


def _result(s: Any, person: Person, job_state: str, job_error: str | None) -> PersonResult:
    reasons = Counter(s.scalars(select(Image.reason).where(
        Image.person_id == person.id, Image.state == ImageState.ANALYSED)))
    accepted = s.scalar(select(func.count()).where(Face.person_id == person.id,
                                                   Face.state == FaceState.ACCEPTED)) or 0
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
    lease = lease_seconds if lease_seconds is not None else settings.lease_seconds
    at = now()
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
                .where(Job.state == JobState.RUNNING, Job.person_id.in_(in_coll)).order_by(Job.id)
            ):
                age = (at - aware(job.heartbeat)).total_seconds() if job.heartbeat else None
                running.append(RunningJob(job.id, person.name, person.state, job.worker, age,
                                          job.attempts, age is None or age > lease))
            queued = s.scalar(select(func.count()).where(
                Job.state == JobState.QUEUED, Job.kind == JobKind.COLLECT,
                Job.person_id.in_(in_coll))) or 0
            failures = [(p.name, p.error or "") for p in s.scalars(
                select(Person).where(Person.collection_id == coll.id,
                                     Person.state == PersonState.FAILED).order_by(Person.id))]
            # failed jobs of people still unfinished (a missing key, a gave-up retry): from
            # the failed jobs (few), each the person's latest, not a max over every job
            newer = aliased(Job)
            for person, job in s.execute(
                select(Person, Job).join(Job, Job.person_id == Person.id)
                .where(Person.collection_id == coll.id, Job.kind == JobKind.COLLECT,
                       Job.state == JobState.FAILED, Person.state != PersonState.FAILED,
                       Person.state.not_in(FINISHED_STATES),
                       ~exists().where(newer.person_id == Job.person_id,
                                       newer.kind == JobKind.COLLECT, newer.id > Job.id))
                .order_by(Job.id)
            ):
                failures.append((person.name, f"job {job.id}: {job.error or ''}"))
            out.append(CollectionStatus(coll.key, coll.name, counts, running, queued, failures))
    return out
