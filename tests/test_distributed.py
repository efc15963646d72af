"""Celery workers on PostgreSQL and Redis: every person curated exactly once, worker loss healed.

12 people from the test photos, served by simweb; `faceatlas collect --distributed` queues them
and follows the job rows while two `faceatlas worker` processes do the work. The outcome is
compared with an in-process run of the same people (SQLite): same images, same faces, same
files. Short leases and a short Redis visibility timeout make redelivery fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from faceatlas.devtools.simweb import SimWeb
from faceatlas.jobs.worker import Claim, claim_job, open_jobs
from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.store.db import session_scope
from faceatlas.store.people import get_or_create_collection, upsert_person
from tests.services import (  # noqa: F401  (pg_url is a fixture)
    pg_database,
    pg_url,
    redis_client,
    redis_queue,
    require_services,
    state_of_url,
)
from tests.simweb_fixtures import person, simweb_server
from tests.test_collect import env_for, faceatlas, photos

NAMES = ["Milan Petrović", "Jovana Jovanović", "Nikola Nikolić", "Marija Marković",
         "Stefan Stojanović", "Ivana Ilić", "Marko Đorđević", "Ana Pavlović", "Luka Lukić",
         "Mina Milošević", "Petar Popović", "Sara Savić"]
FAST = {  # seconds: lease << visibility timeout, so a redelivered task finds the lease stale
    "FACEATLAS_LEASE_SECONDS": "3",
    "FACEATLAS_HEARTBEAT_SECONDS": "0.5",
    "FACEATLAS_VISIBILITY_TIMEOUT": "6",
    "FACEATLAS_RETRY_BACKOFF": "0.5",
}


def twelve_people(faces_root: Path) -> list[dict[str, Any]]:
    """person_01..12, each with a stranger (person_13) among the hits and one broken URL."""
    stranger = photos("person_13", faces_root)
    return [person(name, [*photos(f"person_{i + 1:02d}", faces_root), stranger[i % 2],
                          "fault:404"], occupations=["Actor"])
            for i, name in enumerate(NAMES)]


def add_people(settings: Settings) -> None:
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, "Serbia")
        for name in NAMES:
            upsert_person(s, coll, name, occupations=["Actor"])


@pytest.fixture(scope="module")
def web(faces_root: Path) -> Iterator[SimWeb]:
    with simweb_server(twelve_people(faces_root), faces_root, latency_ms=20) as server:
        yield server


@pytest.fixture(scope="module")
def in_process(web: SimWeb, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference: the same people collected in-process on SQLite."""
    require_services()  # before the minute of work that only the service tests need
    home = tmp_path_factory.mktemp("local")
    settings = Settings(home=home)
    add_people(settings)
    db.reset_caches()
    env = env_for(web, home)
    env.pop("FACEATLAS_BROKER_URL", None)
    env.pop("FACEATLAS_DATABASE_URL", None)
    out = faceatlas("collect", "--local", env=env)
    assert "12 curated, 0 failed" in out.stdout, out.stdout
    return state_of_url(settings.db_url, home)


class Cluster:
    """A PostgreSQL database, a Redis queue and worker processes (each in its own group)."""

    def __init__(self, web: SimWeb, home: Path, url: str, broker: str, queue: str) -> None:
        self.home, self.url = home, url
        self.env = {**env_for(web, home), **FAST, "FACEATLAS_DATABASE_URL": url,
                    "FACEATLAS_BROKER_URL": broker, "FACEATLAS_QUEUE": queue}
        self.workers: list[subprocess.Popen[bytes]] = []
        self.settings = Settings(home=home, database_url=url)

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.home.parent / f"worker{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "faceatlas.cli", "worker", "--concurrency", "1",
             "--loglevel", "INFO"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(proc)
        return proc

    def collect(self) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "faceatlas.cli", "collect",
                                 "--distributed"], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def jobs(self) -> list[Any]:
        engine = create_engine(self.url)
        with engine.connect() as c:
            rows = c.execute(text(
                "select p.name, j.state, j.attempts, j.worker, j.error from jobs j "
                "join people p on p.id = j.person_id where j.kind = 'collect'")).all()
        engine.dispose()
        return rows

    def queued(self) -> int:
        """Messages waiting in the broker queue."""
        client = redis_client()
        try:
            return int(client.llen(self.env["FACEATLAS_QUEUE"]))
        finally:
            client.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.home.parent.glob("worker*.log")))


@pytest.fixture()
def cluster(web: SimWeb, tmp_path: Path) -> Iterator[Cluster]:
    with pg_database() as url, redis_queue() as (broker, queue):
        c = Cluster(web, tmp_path / "home", url, broker, queue)
        add_people(c.settings)
        db.reset_caches()
        try:
            yield c
        finally:
            c.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def finish(c: Cluster, follower: subprocess.Popen[str], timeout: float = 150) -> str:
    try:
        out, err = follower.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        follower.kill()
        raise AssertionError(
            f"collect --distributed did not finish\n{c.jobs()}\n{c.logs()}") from None
    assert follower.returncode == 0, f"{out}\n{err}\n{c.logs()}"
    return out


def assert_once_each(c: Cluster) -> list[Any]:
    jobs = c.jobs()
    assert sorted(j.name for j in jobs) == sorted(NAMES), jobs  # one job row per person
    assert all(j.state == "done" for j in jobs), jobs
    return jobs


@pytest.mark.slow
def test_two_workers_curate_each_person_once(cluster: Cluster,
                                             in_process: dict[str, Any]) -> None:
    """Every person is queued twice (two followers); each is still worked on exactly once."""
    first = cluster.collect()
    wait_for(lambda: cluster.queued() >= len(NAMES), "first enqueue")
    second = cluster.collect()  # reuses the open job rows: a second message per person
    wait_for(lambda: cluster.queued() >= 2 * len(NAMES), "second enqueue")
    cluster.start_worker()
    cluster.start_worker()
    for follower in (first, second):
        out = finish(cluster, follower)
        assert "12 curated, 0 failed" in out, out
    jobs = assert_once_each(cluster)
    assert all(j.attempts == 1 for j in jobs), jobs  # no second delivery ever claimed a job
    assert len({j.worker.rsplit(":", 1)[1] for j in jobs}) == 2, "both workers took people"
    assert state_of_url(cluster.url, cluster.home) == in_process
    status = faceatlas("status", env=cluster.env).stdout
    assert "serbia" in status and "curated" in status and "12" in status, status
    # a second delivery of every person finds the job done and changes nothing
    again = faceatlas("collect", "--distributed", env=cluster.env).stdout
    assert "nothing to collect" in again


@pytest.mark.slow
def test_worker_killed_mid_person_is_taken_over(cluster: Cluster,
                                                in_process: dict[str, Any]) -> None:
    victim, survivor = cluster.start_worker(), cluster.start_worker()
    follower = cluster.collect()
    engine = create_engine(cluster.url)
    deadline, killed = time.monotonic() + 120, None
    while time.monotonic() < deadline and killed is None and follower.poll() is None:
        with engine.connect() as c:
            running = c.execute(text(
                "select p.name, p.state, j.worker from jobs j join people p on p.id = j.person_id"
                " where j.state = 'running' and p.state in ('downloading', 'curating')")).all()
        for name, _, worker in running:
            pid = int(worker.rsplit(":", 1)[1])
            try:
                if os.getpgid(pid) == victim.pid:  # a pool process of the victim worker
                    os.killpg(victim.pid, signal.SIGKILL)
                    killed = name
                    break
            except ProcessLookupError:
                continue
        time.sleep(0.05)
    engine.dispose()
    assert killed, f"never saw the victim worker mid-person\n{cluster.logs()}"
    victim.wait()
    out = finish(cluster, follower)
    assert "12 curated, 0 failed" in out, out
    jobs = assert_once_each(cluster)
    taken_over = next(j for j in jobs if j.name == killed)
    assert taken_over.attempts == 2, jobs  # the dead claim, then the survivor's
    assert taken_over.worker.split(":")[1] != str(victim.pid)
    assert Counter(j.attempts for j in jobs)[1] == len(NAMES) - 1, jobs
    assert survivor.poll() is None
    assert state_of_url(cluster.url, cluster.home) == in_process


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def test_claim_is_atomic_and_takes_over_stale_leases(backend: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    """Eight claims of one job at once: one wins; a stale lease is taken over; a done job is
    left alone; a job whose claims keep dying fails the person."""
    from concurrent.futures import ThreadPoolExecutor

    from faceatlas.store.models import Job, Person

    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    settings = Settings(home=tmp_path / "home", database_url=url)
    add_people(settings)
    with session_scope(settings) as s:
        pid = s.query(Person.id).order_by(Person.id).first()[0]
    job = open_jobs(settings, [pid])[pid]
    assert open_jobs(settings, [pid])[pid] == job  # the open job is reused, never doubled

    def claim(_: int) -> Claim:
        return claim_job(settings, job, pid, lease_seconds=30, max_attempts=5)

    with ThreadPoolExecutor(8) as pool:
        claims = Counter(pool.map(claim, range(8)))
    assert claims == {Claim.CLAIMED: 1, Claim.BUSY: 7}
    # a second job row for the same person cannot be claimed while the first is live
    with session_scope(settings) as s:
        s.add(Job(kind="collect", person_id=pid, state="queued", attempts=0))
    with session_scope(settings) as s:
        second = max(j.id for j in s.query(Job))
    assert claim_job(settings, second, pid, lease_seconds=30, max_attempts=5) is Claim.BUSY
    # the holder dies (no heartbeat): after the lease it is taken over
    time.sleep(1.2)
    assert claim_job(settings, job, pid, lease_seconds=1, max_attempts=5) is Claim.CLAIMED
    with session_scope(settings) as s:
        assert s.get(Job, job).attempts == 2
        s.get(Job, job).state = "done"
        s.get(Job, second).state = "failed"
    assert claim_job(settings, job, pid, lease_seconds=1, max_attempts=5) is Claim.FINISHED
    # a person whose claims keep dying is failed after max_attempts, not retried forever
    with session_scope(settings) as s:
        s.add(Job(kind="collect", person_id=pid, state="running", attempts=3))
    with session_scope(settings) as s:
        poison = max(j.id for j in s.query(Job))
    assert claim_job(settings, poison, pid, lease_seconds=0, max_attempts=3) is Claim.GAVE_UP
    with session_scope(settings) as s:
        assert s.get(Person, pid).state == "failed"
        assert "gave up after 3 attempts" in (s.get(Job, poison).error or "")


def test_status_shows_states_running_jobs_and_failures(home: Path) -> None:
    """`faceatlas status` on the embedded SQLite: counts, a stale running job, both failures."""
    from datetime import datetime, timedelta, timezone

    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.settings import get_settings
    from faceatlas.store.models import Job

    with session_scope(get_settings()) as s:
        coll = get_or_create_collection(s, "Serbia")
        ana, _ = upsert_person(s, coll, "Ana Test")
        bob, _ = upsert_person(s, coll, "Bob Test")
        dan, _ = upsert_person(s, coll, "Dan Test")
        ana.state, bob.state, bob.error = "downloading", "failed", "no photo could be downloaded"
        s.flush()
        s.add(Job(kind="collect", person_id=ana.id, state="running", attempts=2,
                  worker="host-a:123", heartbeat=datetime.now(timezone.utc) - timedelta(minutes=5)))
        s.add(Job(kind="collect", person_id=dan.id, state="failed", attempts=1,
                  error="AuthError: bad key"))
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Serbia (serbia)" in out
    assert "host-a:123" in out and "5min ago (stale)" in out and "Ana Test" in out
    assert "no photo could be downloaded" in out and "AuthError: bad key" in out
    other = CliRunner().invoke(app, ["status", "--collection", "Croatia"])
    assert "no collection 'Croatia'" in other.output


def test_unreachable_database_is_retried_not_lost(tmp_path: Path) -> None:
    """A task that cannot reach the database keeps its message (retry with backoff)."""
    from faceatlas.jobs.worker import run_collect_job

    settings = Settings(home=tmp_path, database_url="postgresql+psycopg://postgres@127.0.0.1:1/x",
                        retry_backoff=2.0)
    try:
        outcome = run_collect_job(settings, 1, 1)
    finally:
        db.reset_caches()
    assert outcome.kind == "retry" and "OperationalError" in (outcome.error or "")
    assert 1.5 <= outcome.countdown <= 2.5
