"""Where the shared test photos live: ``FACEATLAS_TESTDATA`` (default ``../shared/testdata``)."""

from __future__ import annotations

import os
from pathlib import Path

from faceatlas.errors import ConfigError

HINT = "set FACEATLAS_TESTDATA to the folder holding faces/ (default ../shared/testdata)"


def testdata_dir() -> Path:
    default = Path.cwd().parent / "shared" / "testdata"
    return Path(os.environ.get("FACEATLAS_TESTDATA", default)).resolve()


def faces_dir() -> Path:
    path = testdata_dir() / "faces"
    if not (path / "manifest.csv").is_file():
        raise ConfigError(f"test photos not found at {path}: {HINT}")
    return path
