"""The one collect use case: every driver ends a failed person ``failed``, never stuck busy."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from faceatlas import review
from faceatlas.importer import add_files
from faceatlas.jobs_background import start_collect_next
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Image, Job, Person, PersonState
from faceatlas.store.people import get_or_create_collection, upsert_person
from tests.simweb_fixtures import simweb_server


def _wait_for_job(settings: Settings, job_id: int, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(settings) as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.state in ("done", "failed"):
                s.expunge(job)
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_background_curation_error_fails_the_person_who_can_be_recollected(
        home: Path, faces_root: Path) -> None:
    """A curation error on the server's background path used to leave the person
    ``curating``, which ``recollect`` refuses as busy. Now the person ends ``failed`` with
    the error and can be queued again."""
    settings = Settings(home=home, workers=1, rapidapi_key="k")  # the search is never asked
    with session_scope(settings) as s:
        person, _ = upsert_person(s, get_or_create_collection(s, "Serbia"), "Ana Ivanović")
        person_id = person.id
    photos = sorted((faces_root / "people" / "person_01").iterdir())[:2]
    assert add_files(settings, person_id, photos) == 2
    # the stored photos vanish before curation reads them (a disk cleaned up meanwhile):
    # searching and downloading have nothing left to do, the curation itself fails
    layout = Layout(settings.home)
    with session_scope(settings) as s:
        paths = list(s.scalars(select(Image.path).where(Image.person_id == person_id)))
    for path in paths:
        layout.absolute(path).unlink()

    started = start_collect_next(settings)
    assert started is not None and started.person_id == person_id
    job = _wait_for_job(settings, started.job_id)
    assert job.state == "failed" and "FileNotFoundError" in (job.error or "")
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        assert person is not None
        assert person.state == PersonState.FAILED, person.state
        assert "FileNotFoundError" in (person.error or "")
        assert person.attempts == 1
    result = review.recollect_person(settings, person_id)
    assert result.state == PersonState.QUEUED and result.changed


def test_a_bad_key_stops_the_background_run_and_leaves_the_person_queued(
        home: Path, faces_root: Path) -> None:
    """A rejected key fails the job (every person would fail alike) but not the person, who
    goes back to ``queued`` rather than staying ``searching`` with nobody at work."""
    with simweb_server([], faces_root) as web:
        settings = Settings(home=home, workers=1, rapidapi_key="bad-key",
                            image_search_url=f"{web.url}/search")
        with session_scope(settings) as s:
            person, _ = upsert_person(s, get_or_create_collection(s, "Serbia"), "Ana Ivanović",
                                      occupations=["Athlete"])
            person_id = person.id
        started = start_collect_next(settings)
        assert started is not None
        job = _wait_for_job(settings, started.job_id)
    assert job.state == "failed" and (job.error or "").startswith("AuthError")
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        assert person is not None
        assert person.state == PersonState.QUEUED and person.attempts == 0
    assert not review.recollect_person(settings, person_id).changed  # not refused as busy
