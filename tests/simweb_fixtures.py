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


def testdata_dir() -> Path:
    """``$FACEATLAS_TESTDATA``, else /work/shared/testdata, else ../shared/testdata.

    Skips the calling test (one clear line) when the photos are not there."""
    candidates = [os.environ.get("FACEATLAS_TESTDATA"), "/work/shared/testdata",
                  str(Path(__file__).resolve().parents[2] / "shared" / "testdata")]  # fmt: skip
    for c in candidates:
        if c and (Path(c) / "faces").is_dir():
            return Path(c)
    pytest.skip("test photos missing: set FACEATLAS_TESTDATA to the shared testdata folder")
    raise AssertionError("unreachable")


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
