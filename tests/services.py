"""Real outside services for tests: a fresh PostgreSQL database per test, a Redis queue.

    from tests.services import pg_url, redis_url   # fixtures: import them into the test module

A service that does not answer fails the test under ``CI=true`` (CI must run everything) and
skips it with one line elsewhere. Addresses: ``FACEATLAS_TEST_PG`` (an admin URL, default the
local ``postgres`` database as user ``postgres``) and ``FACEATLAS_TEST_REDIS`` (default
``redis://127.0.0.1:6379/13``, a database number kept for tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from faceatlas.store import db

PG_ADMIN = os.environ.get("FACEATLAS_TEST_PG",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("FACEATLAS_TEST_REDIS", "redis://127.0.0.1:6379/13")


def unavailable(what: str, why: object) -> None:
    """Fail under CI, skip (one line) elsewhere."""
    message = f"{what} unreachable ({str(why).splitlines()[0][:120]}); run scripts/ci-services.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_pg() -> None:
    """Skip (or fail under CI) at once when PostgreSQL does not answer."""
    admin = create_engine(PG_ADMIN)
    try:
        with admin.connect():
            pass
    except Exception as exc:
        unavailable("PostgreSQL", exc)
    finally:
        admin.dispose()


def require_services() -> None:
    """Skip (or fail under CI) at once when PostgreSQL or Redis does not answer."""
    require_pg()
    redis_client().close()


@contextmanager
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards (connections and all)."""
    admin_url = make_url(PG_ADMIN)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"faceatlas_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        unavailable("PostgreSQL", exc)
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        db.reset_caches()  # this process's pooled connections to the database
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


def redis_client() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        unavailable("Redis", exc)
    return client


@contextmanager
def redis_queue() -> Iterator[tuple[str, str]]:
    """(broker URL, queue name): a queue of its own; its messages are removed afterwards."""
    client = redis_client()
    queue = f"faceatlas-test-{uuid.uuid4().hex[:8]}"
    try:
        yield REDIS, queue
    finally:
        # kombu keeps unacked messages of all queues in one hash: remove only ours
        for tag, payload in client.hgetall("unacked").items():
            try:
                routing_key = json.loads(payload)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.delete(queue, *client.keys(f"{queue}\x06\x16*"),
                      f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()


@pytest.fixture()
def redis_url() -> Iterator[tuple[str, str]]:
    with redis_queue() as pair:
        yield pair


def state_of_url(url: str, home: Path) -> dict[str, Any]:
    """Everything that must be equal between two runs (rows and files), for any database."""
    engine = create_engine(url)
    with engine.connect() as c:
        people = sorted(c.execute(text(
            "select name, state, cast(occupations as text) from people")).all())
        images = sorted(c.execute(text(
            "select p.name, i.origin, i.state, i.reason, i.sha256 from images i "
            "join people p on p.id = i.person_id")).all())
        faces = sorted((*row[:5], int(row[5])) for row in c.execute(text(
            "select p.name, i.origin, f.idx, f.state, f.reason, f.crop_path is not null "
            "from faces f join images i on i.id = f.image_id join people p on p.id = f.person_id"
        )))
        crops = set(c.execute(text("select crop_path from faces where crop_path is not null"))
                    .scalars())
        raws = set(c.execute(text("select path from images where path is not null")).scalars())
    engine.dispose()
    files = {p.relative_to(home).as_posix() for p in home.rglob("*.*")
             if p.is_file() and p.parts[len(home.parts)] in ("faces", "raw")}
    assert files == crops | raws, "orphan or missing files"
    return {"people": [tuple(r) for r in people], "images": [tuple(r) for r in images],
            "faces": faces, "files": sorted(f.split("/")[:3] for f in files)}


def kill_when(proc: subprocess.Popen[bytes], url: str, state: str, timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as some person in the database at ``url`` is in ``state``."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    killed = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            with engine.connect() as c:
                states = set(c.execute(text("select state from people")).scalars())
            if state in states:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
    finally:
        proc.wait()
        engine.dispose()
    assert killed, f"never saw a person {state}"
