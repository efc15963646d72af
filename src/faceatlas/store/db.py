"""Engine, sessions and schema upgrades.

SQLite (the default) runs in WAL mode with a busy timeout, so a CLI, a server and worker
processes can share one file; any other SQLAlchemy URL (PostgreSQL) works the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from faceatlas.settings import Settings, get_settings

MIGRATIONS = Path(__file__).with_name("migrations")


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


def migrate(url: str) -> None:
    """Bring the schema at ``url`` to the newest migration."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = _engine(url)
    command.upgrade(cfg, "head")


_ready: set[str] = set()


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured database, migrated on first use in this process."""
    settings = settings or get_settings()
    url = settings.db_url
    if url not in _ready:
        if url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        migrate(url)
        _ready.add(url)
    return _engine(url)


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


def reset_caches() -> None:
    """Forget engines (tests that switch databases, forked workers)."""
    for url in list(_ready):
        _engine(url).dispose()
    _ready.clear()
    _engine.cache_clear()
    _factory.cache_clear()
