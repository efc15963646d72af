"""Switching engines: recognition refuses an index of another engine; `reembed` rebuilds it,
resumably; reviewers' verdicts survive it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from faceatlas.cli import app
from faceatlas.domain.errors import EngineMismatchError
from faceatlas.faces.engines.sface import MODEL_HASH
from faceatlas.gallery.index import index_store
from faceatlas.gallery.promote import promote
from faceatlas.gallery.recognize import recognize_file
from faceatlas.gallery.reembed import reembed
from faceatlas.gallery.review import reject_face
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings, get_settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Job, Person, Reason
from tests.services import kill_when

PEOPLE = {"person_01": 3, "person_02": 3, "person_03": 3}


class Interrupted(Exception):
    pass


def _home(faces_root: Path, tmp_path: Path) -> tuple[Settings, list[tuple[str, Path]]]:
    incoming, queries = tmp_path / "incoming", []
    for who, n in PEOPLE.items():
        photos = sorted((faces_root / "people" / who).iterdir())
        (incoming / who).mkdir(parents=True)
        for p in photos[:n]:
            shutil.copyfile(p, incoming / who / p.name)
        queries.append((who, photos[n]))
    settings = Settings(home=tmp_path / "home", workers=1, min_faces_to_promote=1,
                        default_collection="test", engine="dlib")
    list(import_folder(incoming, "test", settings))
    promote(settings, collection="test")
    return settings, queries


@pytest.mark.slow
def test_reembed_resumes_and_switches_the_index(faces_root: Path, tmp_path: Path) -> None:
    dlib, queries = _home(faces_root, tmp_path)
    sface = dlib.model_copy(update={"engine": "sface"})
    who, photo = queries[0]
    assert recognize_file(photo, dlib).best.name == who.replace("_", " ")  # type: ignore[union-attr]
    with pytest.raises(EngineMismatchError, match="analysed again with sface") as info:
        recognize_file(photo, sface)
    assert (info.value.collection, info.value.engine) == ("test", "sface")

    # a reviewer's verdict that must outlive re-analysis
    with session_scope(dlib) as s:
        first = s.scalar(select(Person).order_by(Person.id))
        assert first is not None
        rejected = s.scalar(select(Face).where(Face.person_id == first.id,
                                               Face.state == "accepted").order_by(Face.id))
        assert rejected is not None
        box = (rejected.x, rejected.y, rejected.w, rejected.h)
        image_id = rejected.image_id
    reject_face(dlib, rejected.id)

    def stop_after_first(done: int, total: int, name: str) -> None:
        if done == 1:
            raise Interrupted  # "killed" between people: the first is finished, no others

    with pytest.raises(Interrupted):
        reembed(dlib, "sface", collection="test", on_person=stop_after_first)
    with session_scope(dlib) as s:
        engines = dict(s.execute(select(Person.name, Person.engine)).all())
    assert sorted(engines.values()) == ["dlib", "dlib", "sface"]

    report = reembed(dlib, "sface", collection="test")
    assert (report.skipped, report.done, report.promoted) == (1, 2, 2)
    assert report.indexes_reset == []  # emptied once, in the interrupted run
    with session_scope(dlib) as s:
        assert set(s.scalars(select(Face.engine))) == {"sface"}
        assert set(s.scalars(select(Face.model_hash))) == {MODEL_HASH}
        assert set(s.scalars(select(Person.engine))) == {"sface"}
        assert set(s.scalars(select(Person.state))) == {"promoted"}
        assert not s.scalars(select(Job).where(Job.kind == "reembed",
                                               Job.state != "done")).all()
        again = s.scalar(select(Face).where(Face.image_id == image_id, Face.x.between(
            box[0] - box[2] // 4, box[0] + box[2] // 4)))
        assert again is not None and again.reason == Reason.REJECTED_BY_USER
    index = index_store(dlib).get("test")
    assert (index.engine, index.model_hash) == ("sface", MODEL_HASH)
    assert len(index.person_ids()) == 3
    for who, photo in queries:
        result = recognize_file(photo, sface)
        assert result.best is not None and result.best.name == who.replace("_", " ")
    with pytest.raises(EngineMismatchError, match="built with sface"):
        recognize_file(photo, dlib)
    # a third run has nothing left to do
    assert reembed(dlib, "sface", collection="test").skipped == 3


@pytest.mark.slow
def test_reembed_killed_mid_person_continues(faces_root: Path, tmp_path: Path) -> None:
    """SIGKILL `faceatlas reembed` while a person is being re-curated, then run it again."""
    dlib, queries = _home(faces_root, tmp_path)
    env = {**os.environ, "FACEATLAS_HOME": str(dlib.home), "FACEATLAS_WORKERS": "1",
           "FACEATLAS_MIN_FACES_TO_PROMOTE": "1", "FACEATLAS_ENGINE": "dlib",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "faceatlas.cli", "reembed", "--engine",
                             "sface", "--collection", "test"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, dlib.db_url, "curating")
    with session_scope(dlib) as s:
        assert s.scalar(select(Job.state).where(Job.kind == "reembed")) == "running"
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["reembed", "--engine", "sface", "--collection", "test"],
                                    env={**env, "FACEATLAS_ENGINE": "sface"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "3 people" in result.output
    with session_scope(dlib) as s:
        assert set(s.scalars(select(Face.engine))) == {"sface"}
        assert set(s.scalars(select(Person.state))) == {"promoted"}
        assert set(s.scalars(select(Job.state).where(Job.kind == "reembed"))) == {"done"}
    sface = dlib.model_copy(update={"engine": "sface"})
    for who, photo in queries:
        best = recognize_file(photo, sface).best
        assert best is not None and best.name == who.replace("_", " ")
