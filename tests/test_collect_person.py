"""The one collect use case: every driver ends a failed person ``failed``, never stuck busy."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from faceatlas.domain.errors import ConfigError
from faceatlas.gallery import review
from faceatlas.jobs import runner
from faceatlas.jobs.background import collect_now, start_collect_next
from faceatlas.jobs.collect import JobProgress
from faceatlas.jobs.importer import add_files
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.jobs import start_job
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


def test_collect_now_shows_a_queued_job_at_once_and_ends_with_what_it_came_to(
        home: Path, faces_root: Path) -> None:
    """"Collect now" (the review pages' button): the person is queued with a job row before
    any work starts (the Jobs page shows them), the server's background thread runs them, and
    the finished job says what it came to, not the stage it last passed ("curating")."""
    settings = Settings(home=home, workers=1, rapidapi_key="k")  # photos are stored already
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, "Serbia")
        person, _ = upsert_person(s, coll, "Ana Ivanović")
        busy, _ = upsert_person(s, coll, "Novak Đoković")
        busy.state = PersonState.CURATING  # someone is at work on them
        person_id, busy_id = person.id, busy.id
    photos = sorted((faces_root / "people" / "person_01").iterdir())[:3]
    assert add_files(settings, person_id, photos) == 3
    with session_scope(settings) as s:
        s.get(Person, person_id).state = PersonState.FAILED  # type: ignore[union-attr]

    started = collect_now(settings, [person_id, person_id, busy_id])
    assert started.runner == "server" and started.busy == [busy_id]
    assert list(started.jobs) == [person_id]  # once, however often it was asked
    job = _wait_for_job(settings, started.jobs[person_id])
    assert job.state == "done" and job.progress == 1.0
    assert job.message == "3 faces accepted of 3 photos", job.message
    with session_scope(settings) as s:
        assert s.get(Person, person_id).state == PersonState.CURATED  # type: ignore[union-attr]
        assert s.get(Person, busy_id).state == PersonState.CURATING  # type: ignore[union-attr]
        jobs = s.scalars(select(Job).where(Job.person_id.in_([person_id, busy_id]))).all()
        assert [(j.person_id, j.state) for j in jobs] == [(person_id, "done")]


def test_collect_now_refuses_at_once_without_an_image_source_key(home: Path) -> None:
    settings = Settings(home=home, image_sources=["rapidapi"])
    with session_scope(settings) as s:
        person, _ = upsert_person(s, get_or_create_collection(s, "Serbia"), "Ana Ivanović")
        person_id = person.id
    with pytest.raises(ConfigError, match="RAPIDAPI_KEY"):
        collect_now(settings, [person_id])
    with session_scope(settings) as s:
        assert s.scalar(select(Job.id)) is None  # no job row left queued with nobody at work
    gone = collect_now(Settings(home=home, rapidapi_key="k"), [999])  # erased meanwhile
    assert (gone.jobs, gone.busy, gone.missing) == ({}, [], [999])


def test_collect_now_twice_collects_once(home: Path, faces_root: Path) -> None:
    """A second click while the first is still waiting for the background thread: the person
    is left alone (not collected twice), and no job row is left running."""
    settings = Settings(home=home, workers=1, rapidapi_key="k")  # photos are stored already
    with session_scope(settings) as s:
        person, _ = upsert_person(s, get_or_create_collection(s, "Serbia"), "Ana Ivanović")
        person_id = person.id
    assert add_files(settings, person_id, sorted((faces_root / "people" / "person_01")
                                                 .iterdir())[:2]) == 2
    gate = threading.Event()
    runner.submit(gate.wait, 30)  # the thread is busy with something else
    try:
        first = collect_now(settings, [person_id])
        second = collect_now(settings, [person_id])
    finally:
        gate.set()
    assert list(first.jobs) == [person_id] and second.busy == [person_id] and not second.jobs
    job = _wait_for_job(settings, first.jobs[person_id])
    assert job.state == "done"
    with session_scope(settings) as s:
        rows = s.execute(select(Job.id, Job.state).where(Job.person_id == person_id)).all()
    assert rows == [(job.id, "done")]


def test_job_progress_writes_the_row_at_most_once_a_second_and_at_each_end(home: Path) -> None:
    settings = Settings(home=home)
    job = start_job(settings, "collect")
    seen: list[tuple[int, int, str]] = []
    progress = JobProgress(settings, job, lambda *a: seen.append(a), every=3600)

    def row() -> tuple[float, str | None]:
        with session_scope(settings) as s:
            j = s.get(Job, job)
            assert j is not None
            return j.progress, j.message

    progress(1, 10, "download")
    assert row() == (0.095, "downloading: 1 of 10 photos")
    progress(2, 10, "download")  # within the interval: the row is not written again
    assert row() == (0.095, "downloading: 1 of 10 photos")
    progress(10, 10, "download")  # the end of a stage always is
    assert row() == (0.5, "downloading: 10 of 10 photos")
    progress(4, 4, "faces")
    assert row() == (1.0, "curating: 4 of 4 photos analysed")
    assert len(seen) == 4  # the caller's own callback hears every step
