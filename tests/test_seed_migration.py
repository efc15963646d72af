"""Coming from the old system: its storage folder → migrate-seed → promote → its clients.

The old storage is rebuilt from the shared photos (tests/seed_storage.py); recognition goes
through the old endpoint with an old-style ``{token: domain}`` token and is checked against
the JSON Schema of the old answers (tests/contracts/).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from faceatlas.api import create_app
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.gallery.promote import promote
from faceatlas.jobs.migrate_seed import MigrationReport, migrate_seed, plan_migration
from faceatlas.settings import Settings, get_settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Face, Image, Job, Person
from tests.contracts import assert_fits
from tests.gallery_fixtures import running
from tests.seed_storage import OldStorage, build_old_storage

SERBIA_TOKEN = "serbia-token-0123456789"
OTHER_TOKEN = "slovenia-token-0123456789"
TOKENS_JSON = json.dumps({SERBIA_TOKEN: "serbia", OTHER_TOKEN: "Slovenia"})


@dataclass
class Migrated:
    storage: OldStorage
    settings: Settings
    report: MigrationReport


def _settings(home: Path, **kw: object) -> Settings:
    values: dict[str, object] = {"home": home, "workers": 2, "min_faces_to_promote": 1,
                                 "default_collection": "serbia", **kw}
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Migrated:
    storage = build_old_storage(tmp_path_factory.mktemp("old") / "storage", faces_root)
    settings = _settings(tmp_path_factory.mktemp("new") / "home")
    report = migrate_seed(storage.root, settings)
    promote(settings)
    return Migrated(storage, settings, report)


def _state(settings: Settings) -> tuple[object, ...]:
    """Everything a re-run could change: row counts and the bytes of every stored file."""
    with session_scope(settings) as s:
        counts = tuple(s.scalar(select(func.count()).select_from(m))
                       for m in (Collection, Person, Image, Face, Job))
        people = sorted((p.name, p.state, p.folder, tuple(p.occupations))
                        for p in s.scalars(select(Person)))
    files = sorted(
        (p.relative_to(settings.home).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in settings.home.rglob("*")
        if p.is_file() and not p.name.startswith("faceatlas.db") and p.suffix != ".lock"
    )
    return counts, people, files


@pytest.mark.slow
def test_migrate_promote_recognise_through_the_old_endpoint(migrated: Migrated) -> None:
    settings, storage = migrated.settings, migrated.storage
    with session_scope(settings) as s:
        people = {p.name: p for p in s.scalars(select(Person))}
        # people from file names, original spellings from name_mapping.json
        assert {"Новак Ђоковић", "Đorđe Balašević", "Barack Obama", "Ана Ивановић",
                "Jelena Janković", "Nikola Tesla"} == set(people)
        assert people["Đorđe Balašević"].folder == "Dorde_Balasevic"  # the old file name
        assert people["Новак Ђоковић"].state == "promoted"  # in data.xlsx too: one person
        assert people["Nikola Tesla"].state == "queued"  # the queue stays a queue
        novak = s.scalars(select(Image).where(Image.person_id == people["Новак Ђоковић"].id))
        assert len(list(novak)) == 4  # 3 production + 1 new training-pass crop (1 duplicate)
    assert (settings.home / "excel" / "occupation.xlsx").is_file()
    mapping = json.loads((settings.home / "name_mapping.json").read_text(encoding="utf-8"))
    assert mapping["Dorde_Balasevic"] == "Đorđe Balašević"
    skipped = {s.path: s.reason for s in migrated.report.plan.skipped}
    for path, words in storage.skipped.items():
        assert words in skipped[path], (path, skipped)

    settings = Settings(home=settings.home, workers=2, api_tokens=TOKENS_JSON,  # type: ignore[arg-type]
                        default_collection="elsewhere")
    assert settings.token_collections == {SERBIA_TOKEN: ["serbia"], OTHER_TOKEN: ["slovenia"]}
    with running(create_app(settings, engines=1)) as url:
        for display, photo in storage.queries.items():
            for path in ("/recognize", "/api/recognize"):
                # the old client: the raw token, field "image", no collection (the token's)
                got = httpx.post(f"{url}{path}", headers={"Authorization": SERBIA_TOKEN},
                                 files={"image": (photo.name, photo.read_bytes())}, timeout=120)
                assert got.status_code == 200, got.text
                answer = got.json()
                assert_fits("seed_recognize", answer)
                assert answer["status"] == "success", (display, answer)
                assert answer["person"] == answer["best_match"]["display_name"] == display
                best = answer["best_match"]
                assert best["identity"].startswith(best["person_name"] + "_")
                assert best["confidence_metrics"]["confidence_percentage"] == round(
                    (1 - best["confidence_metrics"]["min_distance"]) * 100, 2)
        photo = storage.queries["Đorđe Balašević"]
        assert httpx.post(f"{url}/recognize", headers={"Authorization": SERBIA_TOKEN},
                          files={"image": (photo.name, photo.read_bytes())}, timeout=120
                          ).json()["best_match"]["person_name"] == "Dorde_Balasevic"
        # another domain's token: neither its own (empty) collection nor Serbia's
        other = httpx.post(f"{url}/recognize", headers={"Authorization": OTHER_TOKEN},
                           files={"image": (photo.name, photo.read_bytes())}, timeout=120)
        asked = httpx.post(f"{url}/recognize", headers={"Authorization": OTHER_TOKEN},
                           data={"collection": "serbia"},
                           files={"image": (photo.name, photo.read_bytes())}, timeout=120)
        assert other.status_code == asked.status_code == 404
        assert other.json()["detail"] == "no collection 'slovenia'"
        # the same words as for a collection that does not exist: nothing leaks
        assert asked.json()["detail"] == "no collection 'serbia'"


@pytest.mark.slow
def test_rerun_changes_nothing(migrated: Migrated) -> None:
    before = _state(migrated.settings)
    plan = plan_migration(migrated.storage.root, migrated.settings)
    assert all(p.exists and p.new_files == 0 for p in plan.people)
    again = migrate_seed(migrated.storage.root, migrated.settings)
    assert not again.changed and again.curated == []
    assert _state(migrated.settings) == before


@pytest.mark.slow
def test_cli_dry_run_then_nothing_new(migrated: Migrated, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    from faceatlas.cli import app

    monkeypatch.setenv("FACEATLAS_HOME", str(migrated.settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["migrate-seed", str(migrated.storage.root), "--dry-run"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "Đorđe Balašević" in out.output and "would add 0 people and 0 photos" in out.output
    assert "no date part" in out.output


def test_dry_run_on_a_fresh_home_writes_nothing(tmp_path: Path, faces_root: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from faceatlas.cli import app

    storage = build_old_storage(tmp_path / "storage", faces_root)
    home = tmp_path / "home"
    monkeypatch.setenv("FACEATLAS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["migrate-seed", str(storage.root), "--dry-run"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "would add 6 people and 21 photos" in out.output, out.output
    for words in ("Новак Ђоковић", "Dorde_Balasevic", "not an image", "temporary"):
        assert words in out.output
    assert not home.exists()  # a dry run creates nothing, not even the database


@pytest.mark.parametrize("with_occupation", [False, True], ids=["name+last", "with-occupation"])
def test_data_sheet_in_both_column_forms(tmp_path: Path, faces_root: Path,
                                         with_occupation: bool) -> None:
    storage = build_old_storage(tmp_path / "storage", faces_root, with_occupation=with_occupation)
    plan = plan_migration(storage.root, _settings(tmp_path / "home"))
    queued = {p.name: p for p in plan.people if p.queued}
    assert set(queued) == {"Nikola Tesla", "Новак Ђоковић"}  # mapped back to the original
    assert queued["Nikola Tesla"].occupations == (["Inventor"] if with_occupation else [])
    assert queued["Новак Ђоковић"].occupations == (["Athlete"] if with_occupation else [])
    assert queued["Новак Ђоковић"].count("gallery") == 3  # the same person as the gallery's
    assert plan.queue_collection == "serbia"  # the only production country
    assert plan.occupations == ["Athlete", "Singer"]


def test_not_an_old_storage_folder(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(FaceAtlasError, match="does not look like the old system"):
        plan_migration(tmp_path / "photos", _settings(tmp_path / "home"))
    with pytest.raises(FaceAtlasError, match="not a folder"):
        plan_migration(tmp_path / "nothing", _settings(tmp_path / "home"))


def test_import_of_the_old_gallery_explains_instead(tmp_path: Path, faces_root: Path) -> None:
    from faceatlas.jobs.importer import scan

    storage = build_old_storage(tmp_path / "storage", faces_root)
    flat = storage.root / "recognized_faces_prod" / "serbia"
    for folder, words in [(flat, "flat gallery of several people"),
                          (flat.parent, "migrate-seed"),
                          (storage.root, "migrate-seed")]:
        with pytest.raises(FaceAtlasError, match=words):
            scan(folder)
    # its parent's country folder would have become one person named "serbia"
    with pytest.raises(FaceAtlasError, match="one person named 'serbia'"):
        scan(_country_only(tmp_path, flat))


def _country_only(tmp_path: Path, flat: Path) -> Path:
    import shutil

    root = tmp_path / "galleries"
    shutil.copytree(flat, root / "serbia")
    return root


def test_token_setting_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inline = Settings(home=tmp_path, api_tokens=TOKENS_JSON)  # type: ignore[arg-type]
    assert inline.api_tokens == [SERBIA_TOKEN, OTHER_TOKEN]
    assert inline.token_collections == {SERBIA_TOKEN: ["serbia"], OTHER_TOKEN: ["slovenia"]}
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({SERBIA_TOKEN: ["Serbia", "Bosnia and Herzegovina"],
                                "admin-token-0123456789": None}))
    monkeypatch.setenv("FACEATLAS_API_TOKENS", str(path))
    from_file = Settings(home=tmp_path)
    assert from_file.token_collections == {SERBIA_TOKEN: ["bosnia_and_herzegovina", "serbia"]}
    assert "admin-token-0123456789" in from_file.api_tokens  # unbound: an admin token
    monkeypatch.setenv("FACEATLAS_API_TOKENS", "a-token-0123456789,b-token-0123456789")
    listed = Settings(home=tmp_path)
    assert listed.api_tokens == ["a-token-0123456789", "b-token-0123456789"]
    assert listed.token_collections == {}
    monkeypatch.setenv("FACEATLAS_API_TOKENS", '["a-token-0123456789"]')  # a JSON list: admins
    assert Settings(home=tmp_path).api_tokens == ["a-token-0123456789"]
    for bad, words in [("{not json", "not valid JSON"), ('[5]', "list"),
                       (str(tmp_path / "missing.json"), "cannot read"),
                       ('{"t-0123456789abcdef": 5}', "collection name")]:
        monkeypatch.setenv("FACEATLAS_API_TOKENS", bad)
        with pytest.raises(ValueError, match=words):
            Settings(home=tmp_path)
