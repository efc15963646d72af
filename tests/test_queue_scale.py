"""A queue of 100,000 people stays fast: enqueue finds open jobs in bulk, and claim, status and
``pending_people`` read through indexes (EXPLAIN on PostgreSQL: no sequential scan of jobs or
people). Speed figures live in ``benchmarks/bench_queue.py``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, insert, select, text, update

from faceatlas.domain.states import JobKind, JobState, PersonState
from faceatlas.jobs.collect import pending_people
from faceatlas.jobs.worker import (
    Claim,
    claim_job,
    collection_status,
    jobs_progress,
    open_jobs,
    prepare_database,
)
from faceatlas.settings import Settings
from faceatlas.store.db import get_engine, session_scope
from faceatlas.store.models import Job, Person
from faceatlas.store.people import get_or_create_collection
from tests.services import pg_url  # noqa: F401  (a fixture)


def _people(settings: Settings, n: int, collection: str = "World") -> list[int]:
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, collection)
        s.execute(insert(Person), [
            {"collection_id": coll.id, "key": f"{collection} {i}", "name": f"P {i}",
             "ascii_name": f"P {i}", "folder": f"P_{i}", "occupations": [], "attempts": 0,
             "state": PersonState.QUEUED} for i in range(n)])
        return list(s.scalars(select(Person.id).where(Person.collection_id == coll.id)
                              .order_by(Person.id)))


def test_open_jobs_in_bulk_keeps_open_ones_and_adds_the_rest(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    prepare_database(settings)
    ids = _people(settings, 2500)  # more than one chunk
    with session_scope(settings) as s:  # an open job, an older open one, a finished one
        s.add_all([Job(kind=JobKind.COLLECT, person_id=ids[0], state=JobState.QUEUED),
                   Job(kind=JobKind.COLLECT, person_id=ids[1], state=JobState.DONE),
                   Job(kind=JobKind.NAMES, person_id=ids[2], state=JobState.QUEUED)])
        s.flush()
        newest = Job(kind=JobKind.COLLECT, person_id=ids[0], state=JobState.RUNNING)
        s.add(newest)
        s.flush()
        kept = newest.id
    jobs = open_jobs(settings, [*ids, ids[5]])  # a repeat is harmless
    assert list(jobs) == ids and jobs[ids[0]] == kept
    with session_scope(settings) as s:
        rows = s.execute(select(Job.person_id, Job.state, Job.collection_id)
                         .where(Job.id.in_(list(jobs.values())))).all()
    assert len(rows) == len(ids) and all(c is not None for p, _, c in rows if p != ids[0])
    assert {st for pid, st, _ in rows if pid != ids[0]} == {JobState.QUEUED}
    assert open_jobs(settings, ids) == jobs  # a second enqueue makes no new rows


@contextmanager
def _captured(url: str) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT/UPDATE the code under test sends, with its parameters."""
    seen: list[tuple[str, Any]] = []
    engine = get_engine(Settings(database_url=url))

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _seq_scans(url: str, statements: list[tuple[str, Any]]) -> list[str]:
    """Plans that must read a whole jobs/people table, with sequential scans discouraged (so a
    scan shows only where no index can serve the query, whatever the table sizes)."""
    engine = create_engine(url)
    bad = []
    with engine.connect() as c:
        c.execute(text("SET enable_seqscan = off"))
        raw = c.connection.driver_connection
        for statement, params in statements:
            with raw.cursor() as cur:
                cur.execute("EXPLAIN " + statement, params)
                plan = "\n".join(row[0] for row in cur.fetchall())
            if _full_scan(plan):
                bad.append(f"{statement}\n{plan}")
        c.rollback()
    engine.dispose()
    return bad


_SCAN = re.compile(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)(?: Backward)?"
                   r"(?: using \S+)? on (jobs|people)\b")


def _full_scan(plan: str) -> bool:
    """A scan of jobs/people that reads it whole: a Seq Scan, or an index walked end to end
    (no Index Cond / Recheck Cond under the node)."""
    lines = plan.splitlines()
    if lines and lines[0].startswith("Limit"):
        return False  # a walk in index order that stops after the first few rows
    for i, line in enumerate(lines):
        m = _SCAN.search(line)
        if not m:
            continue
        if m.group(1) == "Seq Scan":
            return True
        depth = len(line) - len(line.lstrip(" ->"))
        conds = []
        for below in lines[i + 1:]:
            if "->" in below or len(below) - len(below.lstrip(" ")) < depth:
                break
            conds.append(below)
        if not any(c.strip().startswith(("Index Cond", "Recheck Cond")) for c in conds):
            return True
    return False


def _check(url: str, what: str, fn: Callable[[], Any]) -> None:
    with _captured(url) as seen:
        fn()
    assert seen, f"{what}: no statements captured"
    bad = _seq_scans(url, seen)
    assert not bad, f"{what} scans a whole table:\n" + "\n\n".join(bad)


def test_queue_queries_use_indexes_on_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    settings = Settings(home=tmp_path, database_url=pg_url)
    prepare_database(settings)
    ids = _people(settings, 300) + _people(settings, 50, "Other")
    jobs = open_jobs(settings, ids)
    with session_scope(settings) as s:
        s.execute(text("ANALYZE"))
    pid = ids[7]
    _check(pg_url, "enqueue (open_jobs)", lambda: open_jobs(settings, ids))
    _check(pg_url, "claim", lambda: claim_job(settings, jobs[pid], pid, lease_seconds=60,
                                             max_attempts=5))
    assert claim_job(settings, jobs[ids[8]], ids[8], lease_seconds=60,
                     max_attempts=5) is Claim.CLAIMED
    with session_scope(settings) as s:  # a failed job of an unfinished person, for status
        s.add(Job(kind=JobKind.COLLECT, person_id=ids[9], state=JobState.FAILED, error="x"))
    _check(pg_url, "status", lambda: collection_status(settings))
    _check(pg_url, "progress", lambda: jobs_progress(settings, jobs))
    with session_scope(settings) as s:  # most people done: pending ones must be looked up
        s.execute(update(Person).where(Person.id > ids[20]).values(state=PersonState.CURATED))
    with session_scope(settings) as s:
        s.execute(text("ANALYZE"))
    _check(pg_url, "pending_people", lambda: pending_people(settings, "World", limit=10))
    _check(pg_url, "pending_people (all)", lambda: pending_people(settings))
    _check(pg_url, "pending_people (one collection)", lambda: pending_people(settings, "World"))
    assert pending_people(settings, "World") == ids[:21]
    status = {c.key: c for c in collection_status(settings)}
    assert status["world"].queued_jobs == 298 and len(status["world"].running) == 2
    assert any("job" in reason for _, reason in status["world"].failures)


@pytest.mark.parametrize("n", [3])
def test_status_counts_follow_the_rows(tmp_path: Path, n: int) -> None:
    """SQLite: the rewritten status reads give the same figures as before."""
    settings = Settings(home=tmp_path)
    prepare_database(settings)
    ids = _people(settings, n)
    jobs = open_jobs(settings, ids)
    with session_scope(settings) as s:
        s.add(Job(kind=JobKind.COLLECT, person_id=ids[0], state=JobState.FAILED, error="boom"))
        s.get(Job, jobs[ids[0]]).state = JobState.DONE  # type: ignore[union-attr]
    (world,) = collection_status(settings)
    assert world.queued_jobs == n - 1
    assert world.failures == [("P 0", f"job {max(jobs.values()) + 1}: boom")]


def _job_rows_read(settings: Settings, fn: Callable[[], Any]) -> int:
    """Rows the jobs SELECTs of ``fn`` return (each captured statement run again)."""
    with _captured(settings.db_url) as seen:
        fn()
    engine = get_engine(settings)
    rows = 0
    with engine.connect() as c:
        raw = c.connection.driver_connection
        for statement, params in seen:
            if re.search(r"\bFROM jobs\b", statement):
                rows += len(raw.execute(statement, params).fetchall())
    return rows


@pytest.mark.slow
def test_jobs_progress_reads_counts_not_every_job(tmp_path: Path) -> None:
    """A follower's poll of 2,500 jobs (two chunks): the figures of every job, the results of
    the newly finished people only, and per-state counts instead of one row per job."""
    settings = Settings(home=tmp_path)
    prepare_database(settings)
    ids = _people(settings, 2500)
    jobs = open_jobs(settings, ids)
    assert _job_rows_read(settings, lambda: jobs_progress(settings, jobs)) <= 2  # all queued
    with session_scope(settings) as s:
        for pid, state in ((ids[0], JobState.DONE), (ids[1], JobState.FAILED),
                           (ids[2100], JobState.RUNNING), (ids[2200], JobState.DONE)):
            s.get(Job, jobs[pid]).state = state  # type: ignore[union-attr]
        s.get(Job, jobs[ids[1]]).error = "boom"  # type: ignore[union-attr]
        s.delete(s.get(Job, jobs[ids[3]]))
    first = jobs_progress(settings, jobs)
    assert (first.total, first.finished, first.running) == (2500, 4, 1)
    assert not first.complete
    got = {r.person_id: (r.job_state, r.error) for r in first.new}
    assert got == {ids[0]: (JobState.DONE, None), ids[1]: (JobState.FAILED, "boom"),
                   ids[2200]: (JobState.DONE, None), ids[3]: (JobState.FAILED, "job row deleted")}
    again = jobs_progress(settings, jobs, seen=got)  # the next poll: nothing new, same counts
    assert again.new == [] and (again.finished, again.running) == (4, 1)
    rows = _job_rows_read(settings, lambda: jobs_progress(settings, jobs, seen=got))
    assert rows <= 8  # a few (state, count) rows per chunk and the deleted row's lookup
