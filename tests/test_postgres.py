"""The same schema and the same collect outcomes on PostgreSQL as on SQLite.

Each test gets a fresh PostgreSQL database (``tests.services``); the end-to-end checks are
``tests.test_collect``'s own, run with ``FACEATLAS_DATABASE_URL`` pointing at it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text

from faceatlas.devtools.bigcollection import generate
from faceatlas.devtools.simweb import SimWeb
from faceatlas.jobs.worker import prepare_database
from faceatlas.settings import Settings, get_settings
from faceatlas.store import db
from faceatlas.store.db import session_scope
from faceatlas.store.models import (
    Base,
    Collection,
    Face,
    FaceState,
    Image,
    ImageState,
    Person,
    PersonState,
    Reason,
)
from tests import test_collect
from tests.services import kill_when, pg_url, require_pg, state_of_url  # noqa: F401  (a fixture)
from tests.test_collect import env_for, faceatlas, slow_web, uninterrupted, web  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _postgres_answers() -> None:
    """Checked before the module's SQLite reference run, not after it."""
    require_pg()


def test_migrations_build_the_models_schema(pg_url: str) -> None:  # noqa: F811
    prepare_database(Settings(database_url=pg_url))
    prepare_database(Settings(database_url=pg_url))  # a second run is a no-op
    engine = create_engine(pg_url)
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
        head = c.execute(text("select version_num from alembic_version")).scalar()
    engine.dispose()
    assert diff == [], diff
    assert head


@pytest.mark.slow
def test_run_end_to_end_on_postgres(web: SimWeb, tmp_path: Path, pg_url: str,  # noqa: F811
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`faceatlas run` against simweb with every assertion of the SQLite test."""
    monkeypatch.setenv("FACEATLAS_DATABASE_URL", pg_url)
    monkeypatch.delenv("FACEATLAS_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        test_collect.test_run_end_to_end(web, tmp_path)
        assert not (tmp_path / "home" / "faceatlas.db").exists()  # nothing went to SQLite
    finally:
        db.reset_caches()
        get_settings.cache_clear()


@pytest.mark.slow
def test_crash_resume_on_postgres_equals_sqlite(
    slow_web: SimWeb, uninterrupted: dict[str, Any], tmp_path: Path, pg_url: str  # noqa: F811
) -> None:
    """SIGKILL `faceatlas collect` mid-curation on PostgreSQL, resume: same as SQLite, whole."""
    home = tmp_path / "crashed"
    env = {**env_for(slow_web, home), "FACEATLAS_DATABASE_URL": pg_url}
    env.pop("FACEATLAS_BROKER_URL", None)
    faceatlas("names", "generate", "--country", "Serbia", "-o", "Actor", "-o", "Athlete",
              env=env)
    proc = subprocess.Popen([sys.executable, "-m", "faceatlas.cli", "collect"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, pg_url, "curating")
    faceatlas("collect", env=env)
    assert state_of_url(pg_url, home) == uninterrupted


def test_a_generated_big_collection_leaves_room_for_ordinary_rows(
        pg_url: str, tmp_path: Path, faces_root: Path) -> None:  # noqa: F811
    """bigcollection writes explicit ids; PostgreSQL's id sequences must move past them, or
    the next person, photo or face collected would take an id already used."""
    settings = Settings(home=tmp_path / "home", database_url=pg_url)
    made = generate(settings, people=3, faces=2, crops=2)
    with session_scope(settings) as s:
        coll = s.scalar(select(Collection).where(Collection.key == made.collection))
        before = [s.scalar(select(func.max(m.id))) for m in (Person, Image, Face)]
        person = Person(collection=coll, key="new", name="New", ascii_name="New",
                        folder="New", state=PersonState.CURATED)
        image = Image(person=person, origin="file:new.jpg", state=ImageState.ANALYSED)
        s.add_all([person, image])
        s.flush()  # no duplicate key
        face = Face(image=image, person_id=person.id, idx=0, x=1, y=2, w=30, h=40,
                    state=FaceState.ACCEPTED, reason=Reason.ACCEPTED)
        s.add(face)
        s.flush()
        assert [person.id, image.id, face.id] == [n + 1 for n in before]  # type: ignore[operator]
