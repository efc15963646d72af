"""Fixture helpers for tests that need the simulated web (import from any test module).

    from tests.simweb_fixtures import simweb_server, testdata_dir

    @pytest.fixture
    def web(tmp_path):
        with simweb_server(PEOPLE, testdata_dir() / "faces") as web:
            yield web          # web.url is the base URL, web.netloc the "host:port" to trust
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from faceatlas.devtools.simweb import SimWeb
from faceatlas.devtools.testdata import HINT
from faceatlas.devtools.testdata import faces_dir as lib_faces_dir
from faceatlas.domain.errors import ConfigError


def testdata_dir() -> Path:
    """The shared test data; missing data fails under CI and skips (one line) elsewhere."""
    try:
        return lib_faces_dir().parent
    except ConfigError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(f"test photos missing: {HINT}")


def faces_dir() -> Path:
    return testdata_dir() / "faces"


@contextmanager
def simweb_server(
    people: Any = (), photos_dir: Path | None = None, latency_ms: float = 0.0
) -> Iterator[SimWeb]:
    """Start simweb on a free loopback port in a thread; stop it afterwards."""
    web = SimWeb(people=people, photos_dir=photos_dir or faces_dir(), host="127.0.0.1", port=0,
                 latency_ms=latency_ms)  # fmt: skip
    web.start()
    try:
        yield web
    finally:
        web.stop()


def person(
    name: str,
    images: Sequence[str],
    *,
    country: str = "Serbia",
    occupations: Sequence[str] = ("Athlete",),
    real: bool = True,
) -> dict[str, Any]:
    return {"name": name, "country": country, "occupations": list(occupations), "real": real,
            "images": list(images)}  # fmt: skip
