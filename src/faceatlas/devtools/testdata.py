"""Where the shared test photos live: ``FACEATLAS_TESTDATA`` (default ``../shared/testdata``)."""

from __future__ import annotations

import os
from pathlib import Path

from faceatlas.domain.errors import ConfigError

HINT = "set FACEATLAS_TESTDATA to the folder holding faces/ (default ../shared/testdata)"


def testdata_dir() -> Path:
    if os.environ.get("FACEATLAS_TESTDATA"):
        return Path(os.environ["FACEATLAS_TESTDATA"]).resolve()
    # ../shared/testdata next to the checkout: from the working folder, or from this file
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = base.parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.cwd().parent / "shared" / "testdata").resolve()


def faces_dir() -> Path:
    path = testdata_dir() / "faces"
    if not (path / "manifest.csv").is_file():
        raise ConfigError(f"test photos not found at {path}: {HINT}")
    return path
