"""Schema upgrades under a lock: many first users of a fresh home at once all succeed
(issue 11, finding 2). Real threads, real processes, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.store.models import Person
from tests.services import pg_url  # noqa: F401  (a fixture)

N = 8

_CHILD = """
import sys, time
from sqlalchemy import func, select
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Person
start = float(sys.argv[2])
while time.time() < start:  # every process reaches its first use at the same moment
    time.sleep(0.001)
with session_scope(Settings(home=sys.argv[1])) as s:
    print(s.scalar(select(func.count()).select_from(Person)))
"""


def _head_revision(settings: Settings) -> str | None:
    with db.session_scope(settings) as s:
        return s.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def test_threads_first_use_of_a_fresh_home(tmp_path: Path) -> None:
    _threads_first_use(Settings(home=tmp_path / "home"))


def test_threads_first_use_of_a_fresh_postgres_database(pg_url: str) -> None:  # noqa: F811
    _threads_first_use(Settings(database_url=pg_url))  # under pg_advisory_lock


def _threads_first_use(settings: Settings) -> None:
    db.reset_caches()
    barrier = threading.Barrier(N)
    errors: list[BaseException] = []
    counts: list[int] = []

    def first_request() -> None:
        try:
            barrier.wait()
            with db.session_scope(settings) as s:
                counts.append(s.scalar(select(func.count()).select_from(Person)) or 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_request) for _ in range(N)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and counts == [0] * N
        assert _head_revision(settings) is not None
    finally:
        db.reset_caches()


@pytest.mark.slow
def test_processes_first_use_of_a_fresh_home(tmp_path: Path) -> None:
    import time

    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    start = time.time() + 4.0  # after every interpreter has imported faceatlas
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(home), str(start)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(N)]
    results = [p.communicate(timeout=120) for p in procs]
    failed = [(p.returncode, err[-2000:]) for p, (_, err) in zip(procs, results, strict=True)
              if p.returncode != 0]
    assert failed == []
    assert [out.strip() for out, _ in results] == ["0"] * N
    assert (home / "faceatlas.db.migrate.lock").exists()


def test_eight_concurrent_first_requests_on_a_fresh_home(tmp_path: Path) -> None:
    import httpx

    from faceatlas.api import create_app
    from tests.gallery_fixtures import running

    token = "migrate-race-token-0123456789"
    settings = Settings(home=tmp_path / "home", api_tokens=[token], workers=1)
    db.reset_caches()
    try:
        app = create_app(settings, engines=1)
        # migrated at start-up, before any request
        assert _head_revision(settings) is not None
        with running(app) as url:
            barrier = threading.Barrier(N)
            answers: list[int] = []

            def first_request() -> None:
                barrier.wait()
                got = httpx.get(f"{url}/api/v1/collections", timeout=60,
                                headers={"Authorization": f"Bearer {token}"})
                answers.append(got.status_code)

            threads = [threading.Thread(target=first_request) for _ in range(N)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert answers == [200] * N
    finally:
        db.reset_caches()
