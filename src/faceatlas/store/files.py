"""Every storage path is built here, from the home folder, collection keys and safe names.

No other module joins storage paths by hand: that keeps hostile names (``..``, slashes,
absolute paths) from ever reaching the file system outside the home.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from datetime import datetime
from pathlib import Path

from faceatlas.domain.errors import StorageError

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,119}$")


def _component(name: str) -> str:
    if not _SAFE.match(name):
        raise StorageError(f"unsafe path component {name!r}")
    return name


class Layout:
    """The folder tree under ``home`` (see docs/architecture.md)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()

    def inside(self, path: Path) -> Path:
        """Resolve ``path`` and make sure it stays inside the home."""
        resolved = (self.home / path).resolve()
        if resolved != self.home and self.home not in resolved.parents:
            raise StorageError(f"path {path} leaves the storage home")
        return resolved

    def relative(self, path: Path) -> str:
        return self.inside(path).relative_to(self.home).as_posix()

    def absolute(self, relative: str) -> Path:
        return self.inside(Path(relative))

    @property
    def database(self) -> Path:
        return self.home / "faceatlas.db"

    @property
    def name_mapping(self) -> Path:
        return self.home / "name_mapping.json"

    def raw_dir(self, collection: str, folder: str) -> Path:
        return self.home / "raw" / _component(collection) / _component(folder)

    def faces_dir(self, collection: str, folder: str) -> Path:
        return self.home / "faces" / _component(collection) / _component(folder)

    def gallery_dir(self, collection: str) -> Path:
        return self.home / "gallery" / _component(collection)

    @property
    def occupation_files(self) -> tuple[Path, ...]:
        """The old system's occupation list, if the user put one in the home: where the old
        system kept it (``excel/occupation.xlsx``) first."""
        return (self.excel_dir / "occupation.xlsx", self.excel_dir / "occupation.csv",
                self.home / "occupation.xlsx", self.home / "occupation.csv")

    @property
    def excel_dir(self) -> Path:
        """The old system's spreadsheets: ``occupation.xlsx`` and ``data.xlsx`` (the queue)."""
        return self.home / "excel"

    @property
    def data_sheet(self) -> Path:
        return self.excel_dir / "data.xlsx"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    def cache_file(self, kind: str, key: str) -> Path:
        """An outside service's answer (e.g. Wikimedia), by request hash: re-runs re-use it."""
        folder = self.home / "cache" / _component(kind) / _component(key[:2])
        return folder / f"{_component(key)}.json"
    def video_job_dir(self, job_id: int) -> Path:
        """A video recognition job's files: the uploaded clip (until done), result, thumbs."""
        return self.home / "video" / str(int(job_id))

    def sighting_file(self, collection: str, when: datetime, name: str) -> Path:
        """A sighting's small face crop: ``sightings/<c>/<YYYY-MM-DD>/<name>.jpg`` (by day,
        so the retention purge and an erasure find them; never the full photo)."""
        return (self.home / "sightings" / _component(collection) / f"{when:%Y-%m-%d}"
                / f"{_component(name)}.jpg")

    def raw_file(self, collection: str, folder: str, sha256: str, ext: str) -> Path:
        """Downloads are stored by content hash: the same bytes are stored once."""
        return self.raw_dir(collection, folder) / f"{sha256[:16]}.{_component(ext)}"

    def crop_file(self, collection: str, folder: str, when: datetime, n: int) -> Path:
        """``faces/<c>/<Person_Name>/<Person_Name>_<YYYYMMDD>_<HHMMSS>_<n>.jpg`` as the seed."""
        name = f"{folder}_{when:%Y%m%d_%H%M%S}_{n}.jpg"
        return self.faces_dir(collection, folder) / name

    def gallery_file(self, collection: str, crop_name: str) -> Path:
        return self.gallery_dir(collection) / gallery_name(crop_name)


_CROP = re.compile(r"^(?P<stem>.+)_(?P<d>\d{8})_(?P<t>\d{6})_(?P<n>\d+)\.jpg$")


_EXT = re.compile(r"^[a-z0-9]{1,5}$")


def ext_of(path: Path) -> str:
    """A stored file's extension: the original's when plain, else ``bin``."""
    ext = path.suffix.lower().lstrip(".")
    return ext if _EXT.match(ext) else "bin"


def gallery_name(crop_name: str) -> str:
    """The seed's promotion rename.

    ``A_B_20250524_044003_66.jpg`` → ``A_B_2025-05-24_04400366.jpg``
    """
    m = _CROP.match(crop_name)
    if not m:
        raise StorageError(f"not a crop file name: {crop_name!r}")
    d = m["d"]
    return f"{m['stem']}_{d[:4]}-{d[4:6]}-{d[6:]}_{m['t']}{m['n']}.jpg"


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cached(path: Path, max_age: float) -> bytes | None:
    """A cache file's bytes if it was written less than ``max_age`` seconds ago, else None
    (missing, stale or unreadable: the caller asks again)."""
    try:
        if time.time() - path.stat().st_mtime < max_age:
            return path.read_bytes()
    except OSError:
        pass
    return None


def write_cached(path: Path, data: bytes) -> None:
    """Write a cache file atomically; a cache that cannot be written is not a failure."""
    try:
        atomic_write(path, data)
    except OSError as exc:
        log.warning("cache file %s not written: %s", path.name, exc)


def unlink_stored(layout: Layout, relative: str) -> int:
    """Remove a stored file by its home-relative path: 1 if it was there, else 0."""
    path = layout.absolute(relative)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return 1
    return 0
