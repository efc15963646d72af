"""A promoted gallery built once per test session from the shared photos, copies of it for
tests that change things, and a real uvicorn server on a loopback port.

The gallery: for every ``people/`` identity with at least 2 photos, except the ones held out
as strangers, every other photo (sorted by name, the 1st, 3rd, …) is imported and promoted
(``min_faces_to_promote=1``: most identities have fewer than 6 photos); the rest are queries.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from faceatlas.gallery.promote import promote
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings

COLLECTION = "test"
#: identities kept out of the gallery entirely: their photos must answer "unknown"
STRANGERS = ("person_11", "person_12", "person_13", "rose_leslie", "lin_manuel_miranda")


@dataclass(frozen=True)
class Gallery:
    settings: Settings
    queries: list[tuple[str, Path]]  # (identity folder, photo) of gallery people, not promoted
    strangers: list[Path]
    promoted: list[tuple[str, Path]]

    @staticmethod
    def person_name(identity: str) -> str:
        """The imported person's name: folder ``person_01`` → ``person 01``."""
        return identity.replace("_", " ")


def gallery_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"home": home, "workers": 2, "min_faces_to_promote": 1,
                                 "default_collection": COLLECTION}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _build(root: Path, faces_root: Path) -> Gallery:
    incoming = root / "incoming"
    queries, strangers, promoted = [], [], []
    for folder in sorted((faces_root / "people").iterdir()):
        photos = sorted(p for p in folder.iterdir() if p.is_file())
        if folder.name in STRANGERS:
            strangers += photos
            continue
        if len(photos) < 2:
            continue
        for i, photo in enumerate(photos):
            if i % 2 == 0:
                (incoming / folder.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(photo, incoming / folder.name / photo.name)
                promoted.append((folder.name, photo))
            else:
                queries.append((folder.name, photo))
    settings = gallery_settings(root / "home")
    list(import_folder(incoming, COLLECTION, settings))
    promote(settings, collection=COLLECTION)
    return Gallery(settings, queries, strangers, promoted)


_built: dict[str, Gallery] = {}


@pytest.fixture(scope="session")
def gallery(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Gallery:
    """The shared gallery: read-only; use ``copy_home`` before changing anything."""
    # cached by hand: test modules import this fixture, and each import would otherwise be
    # a separate session fixture that analyses every photo again
    if "g" not in _built:
        _built["g"] = _build(tmp_path_factory.mktemp("gallery"), faces_root)
    return _built["g"]


def copy_home(src: Settings, dest: Path, **overrides: object) -> Settings:
    """A private copy of a home: files copied, the database through SQLite's backup API (a
    consistent snapshot even while the source has open connections in WAL mode)."""
    shutil.copytree(src.home, dest, ignore=shutil.ignore_patterns("faceatlas.db*"))
    with sqlite3.connect(src.home / "faceatlas.db") as a, sqlite3.connect(
        dest / "faceatlas.db"
    ) as b:
        a.backup(b)
    return gallery_settings(dest, **{"default_collection": src.default_collection,
                                     "min_faces_to_promote": src.min_faces_to_promote,
                                     **overrides})


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
