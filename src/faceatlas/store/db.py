"""Engine, sessions and schema upgrades.

SQLite (the default) runs in WAL mode with a busy timeout, so a CLI, a server and worker
processes can share one file; any other SQLAlchemy URL (PostgreSQL) works the same way.

Schema upgrades run once per process and database, before the first session, under a lock
that every process and thread respects: an exclusive ``flock`` on ``<db file>.migrate.lock``
for SQLite, ``pg_advisory_lock`` for PostgreSQL (and a thread lock within the process, since
Alembic's command context is process-global). The server migrates at start-up
(``prepare_database``), never inside a request.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from faceatlas.settings import Settings, get_settings

MIGRATIONS = Path(__file__).with_name("migrations")
#: values bound into one ``IN (…)``: far under every driver's bound-parameter limit (SQLite
#: before 3.32: 999), and a query per 500 is a few hundred queries for 100,000 people
IN_CHUNK = 500

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``: one ``IN (…)`` query each."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


#: the PostgreSQL advisory lock id all faceatlas processes take to migrate ("face")
_PG_LOCK_KEY = 0x66616365
_thread_lock = threading.Lock()


def migrate(url: str) -> None:
    """Bring the schema at ``url`` to the newest migration, under the migration lock."""
    with _migration_lock(url):
        _upgrade(url)


def _upgrade(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = _engine(url)
    command.upgrade(cfg, "head")


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Held by one migrating thread of one process at a time for this database."""
    with _thread_lock:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            db_file = parsed.database
            if not db_file or db_file == ":memory:":  # private to this process
                yield
                return
            lock_path = Path(db_file).with_name(Path(db_file).name + ".migrate.lock")
            with open(lock_path, "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        elif parsed.get_backend_name() == "postgresql":
            # a session-level lock on its own connection, outside Alembic's transaction
            with _engine(url).connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                    conn.commit()
        else:
            yield


_ready: set[str] = set()
_ready_lock = threading.Lock()


def prepare_database(settings: Settings | None = None) -> None:
    """Create the home and migrate the schema now (servers call it at start-up)."""
    get_engine(settings)


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured database, migrated on first use in this process."""
    settings = settings or get_settings()
    url = settings.db_url
    if url not in _ready:
        if url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        with _ready_lock:  # threads of one process: one migrates, the others wait for it
            if url not in _ready:
                migrate(url)
                _configure_orm()
                _ready.add(url)
    return _engine(url)


def _configure_orm() -> None:
    """Set the ORM's mappers up now, with the schema, not inside the first query that
    happens to need them (~50 ms once per process: a server's first request, an import's
    first person). A no-op once done."""
    from sqlalchemy.orm import configure_mappers

    from faceatlas.store import models  # noqa: F401  (the mapped classes to configure)

    configure_mappers()


@lru_cache(maxsize=8)
def _factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on error."""
    session = _factory(get_engine(settings))()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_caches(*, close: bool = True) -> None:
    """Forget engines (tests that switch databases, forked workers). A forked child passes
    ``close=False``: it drops the sockets it inherited without closing the parent's."""
    for url in list(_ready):
        _engine(url).dispose(close=close)
    _ready.clear()
    _engine.cache_clear()
    _factory.cache_clear()
