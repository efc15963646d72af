"""Shared fixtures: test photos from ../shared/testdata, a fresh storage home per test."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceatlas.devtools.testdata import HINT, faces_dir
from faceatlas.domain.errors import ConfigError
from faceatlas.settings import Settings, get_settings
from faceatlas.store import db

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist hands its workers COLUMNS=80, and a rich Console made while it is set
    # keeps that width for good (faceatlas.cli's is made at import, before any test can set
    # COLUMNS): drop it so a worker's CLI output is as wide as in a run without workers
    os.environ.pop("COLUMNS", None)

#: no test may reach the real Wikidata/Commons (keyless defaults would): a closed loopback
#: port unless the test points the URLs at simweb, one attempt, no waiting
WIKIMEDIA_ON_LOOPBACK = {
    "FACEATLAS_WIKIDATA_API_URL": "http://127.0.0.1:9/wikidata/w/api.php",
    "FACEATLAS_WIKIDATA_SPARQL_URL": "http://127.0.0.1:9/wikidata/sparql",
    "FACEATLAS_COMMONS_API_URL": "http://127.0.0.1:9/commons/w/api.php",
    "FACEATLAS_WIKIMEDIA_RETRIES": "0",
    "FACEATLAS_WIKIMEDIA_MIN_INTERVAL": "0",
}


@pytest.fixture(scope="session", autouse=True)
def _wikimedia_on_loopback_for_the_session() -> Iterator[None]:
    """The same for session and module fixtures, which pytest sets up before any function
    fixture: a reference run in a module fixture otherwise tried the real Wikidata (and
    waited through its retries, ~15 s)."""
    with pytest.MonkeyPatch.context() as mp:
        for var, value in WIKIMEDIA_ON_LOOPBACK.items():
            mp.setenv(var, value)
        yield


@pytest.fixture(autouse=True)
def _wikimedia_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Again for each test, so that one that points the URLs at simweb changes only itself."""
    for var, value in WIKIMEDIA_ON_LOOPBACK.items():
        monkeypatch.setenv(var, value)


@pytest.fixture(scope="session")
def faces_root() -> Path:
    """The shared test photos; missing data fails under CI and skips (one line) elsewhere."""
    try:
        return faces_dir()
    except ConfigError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(f"test photos missing: {HINT}")


@pytest.fixture(scope="session")
def manifest(faces_root: Path) -> list[dict[str, str]]:
    with open(faces_root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh FACEATLAS_HOME (SQLite inside) that also becomes the global settings."""
    path = tmp_path / "home"
    monkeypatch.setenv("FACEATLAS_HOME", str(path))
    monkeypatch.delenv("FACEATLAS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield path
    db.reset_caches()
    get_settings.cache_clear()


@pytest.fixture()
def settings(home: Path) -> Settings:
    return Settings(home=home, workers=2)
