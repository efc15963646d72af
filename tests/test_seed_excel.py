"""The old system's spreadsheet endpoints over real HTTP, against the simulated web."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faceatlas.api.app import create_app
from faceatlas.devtools.simweb import SimWeb
from faceatlas.names.tables import write_table
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Job, Person
from tests.contracts import assert_fits
from tests.gallery_fixtures import running
from tests.simweb_fixtures import person, simweb_server

AUTH = {"Authorization": "Bearer seed-token-0123456789"}


@pytest.fixture()
def web(faces_root: Path) -> Iterator[SimWeb]:
    people = [
        person("Novak Đoković", [f"people/person_01/{n}" for n in ("img1.jpg", "img2.jpg",
                                                                   "img4.jpg", "img5.jpg")],
               occupations=["Athlete"]),
        person("Invented Name", ["people/person_02/img26.jpg"], occupations=["Athlete"],
               real=False),
    ]
    with simweb_server(people, faces_root) as server:
        yield server


def settings_for(web: SimWeb, home: Path, **kw: object) -> Settings:
    values: dict[str, object] = {
        "home": home, "api_tokens": ["seed-token-0123456789"], "rapidapi_key": "k", "workers": 1,
        "image_search_url": f"{web.url}/search", "allow_private_networks": True, **kw,
    }
    return Settings(**values)  # type: ignore[arg-type]


def wait_job(settings: Settings, job_id: int) -> Job:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with session_scope(settings) as s:
            job = s.get(Job, job_id)
            if job is not None and job.state in ("done", "failed"):
                return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_check_excel_then_process(web: SimWeb, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{web.url}/v1")
    settings = settings_for(web, tmp_path / "home")
    settings.home.mkdir(parents=True)
    write_table(settings.home / "occupation.xlsx", ["Occupation"], [{"Occupation": "Athlete"}])
    with running(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH,
                                                            timeout=60) as http:
        occupations = http.get("/api/excel/occupations").json()
        assert_fits("excel_occupations", occupations)
        assert occupations == {"success": True, "data": {"occupations": ["Athlete"], "total": 1}}
        missing = http.get("/api/excel/check-excel")
        assert missing.status_code == 400 and missing.json()["success"] is False
        assert_fits("excel_check_excel", missing.json())
        started = http.get("/api/excel/check-excel", params={"country": "Serbia"}).json()
        assert_fits("excel_check_excel", started)
        assert started["success"] and started["thread_started"] is True
        assert started["country"] == "Serbia" and started["occupation_filter"] is None
        # as the old system: rows written to the data sheet (the queue: empty yet), its path
        assert started["row_count"] == 0 and started["file_path"] == "excel/data.xlsx"
        assert wait_job(settings, started["job_id"]).state == "done"
        with session_scope(settings) as s:
            assert [p.name for p in s.query(Person)] == ["Novak Đoković"]
        # the job wrote the sheet again with the new names, in the old columns
        from faceatlas.names.tables import SheetRow, read_people

        sheet = settings.home / started["file_path"]
        assert read_people(sheet) == [SheetRow("Novak", "Đoković", "Athlete")]
        again = http.get("/api/excel/check-excel", params={"country": "Serbia"}).json()
        assert again["row_count"] == 1
        assert wait_job(settings, again["job_id"]).state == "done"
        first = http.get("/api/excel/process").json()
        assert_fits("excel_process", first)
        assert first["success"] and first["data"]["original_name"] == "Novak Đoković"
        assert first["data"]["name"] == "Novak" and first["data"]["last_name"] == "Đoković"
        assert set(first["images"]) == {"count", "images", "failed"}
        assert wait_job(settings, first["job_id"]).state == "done"
        with session_scope(settings) as s:
            novak = s.query(Person).one()
            assert novak.state == "curated" and any(f.state == "accepted" for f in novak.faces)
        done = http.get("/api/excel/process").json()
        assert_fits("excel_process", done)
        assert done["success"] is False and "No data found" in done["message"]
        assert http.get("/api/excel/process", headers={"Authorization": "x"}).status_code == 401


def test_missing_keys_fail_at_once(web: SimWeb, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RAPIDAPI_KEY", raising=False)
    settings = settings_for(web, tmp_path / "home", rapidapi_key=None)
    with running(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH,
                                                            timeout=60) as http:
        names = http.get("/api/excel/check-excel",
                         params={"country": "Serbia", "occupation": "Actor,Athlete"})
        assert names.status_code == 503 and "OPENAI_API_KEY" in names.text
        with session_scope(settings) as s:
            from faceatlas.store.people import get_or_create_collection, upsert_person

            upsert_person(s, get_or_create_collection(s, "Serbia"), "Novak Đoković")
        process = http.get("/api/excel/process")
        assert process.status_code == 503 and "RAPIDAPI_KEY" in process.text
        with session_scope(settings) as s:
            assert s.query(Person).one().state == "queued"  # nothing was lost
            assert s.query(Job).count() == 0


def test_occupations_as_the_old_system_kept_them(web: SimWeb, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``excel/occupation.xlsx`` in the home (or FACEATLAS_OCCUPATIONS_FILE) drives
    ``names generate`` and ``check-excel`` when no occupation is given."""
    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.settings import get_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{web.url}/v1")
    home = tmp_path / "home"
    write_table(home / "excel" / "occupation.xlsx", ["Occupation"], [{"Occupation": "Athlete"}])
    monkeypatch.setenv("FACEATLAS_HOME", str(home))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["names", "generate", "--country", "Serbia"])
        assert out.exit_code == 0, out.output
        assert "1 new" in out.output
        # a configured file wins; a configured file that is missing is an error
        other = tmp_path / "occupations.csv"
        other.write_text("Occupation\nSinger\n", encoding="utf-8")
        monkeypatch.setenv("FACEATLAS_OCCUPATIONS_FILE", str(tmp_path / "nope.xlsx"))
        get_settings.cache_clear()
        bad = CliRunner().invoke(app, ["names", "generate", "--country", "Serbia"])
        assert bad.exit_code == 1 and "nope.xlsx" in bad.output
    finally:
        get_settings.cache_clear()
    settings = settings_for(web, home, occupations_file=other)
    with running(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH,
                                                            timeout=60) as http:
        assert http.get("/api/excel/occupations").json()["data"]["occupations"] == ["Singer"]
        started = http.get("/api/excel/check-excel", params={"country": "Serbia"}).json()
        assert started["row_count"] == 1  # Novak, queued by the CLI run
        assert "1 occupation" in started["message"]
        assert wait_job(settings, started["job_id"]).state == "done"
