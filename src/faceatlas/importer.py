"""``faceatlas import``: curate local folders of photos, one sub-folder per person."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.curate import CurationReport, collect, finish_curation, plan_curation
from faceatlas.errors import FaceAtlasError
from faceatlas.faces.analyse import AnalyseParams, FacePool
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Image, Person
from faceatlas.store.people import get_or_create_collection, upsert_person

_EXT = re.compile(r"^[a-z0-9]{1,5}$")


@dataclass
class PersonFolder:
    name: str
    path: Path
    files: list[Path]


def scan(root: Path) -> list[PersonFolder]:
    """Person folders under ``root`` (folder name = person name), with their files."""
    if not root.is_dir():
        raise FaceAtlasError(
            f"{root} is not a folder; give a folder with one sub-folder per person"
        )
    from faceatlas.migrate_seed import explain_old_layout

    old = explain_old_layout(root)
    if old:  # not silently one person named after the country
        raise FaceAtlasError(old)
    people = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.is_file() and not f.name.startswith("."))
        people.append(PersonFolder(person_name(sub.name), sub, files))
    if not people:
        raise FaceAtlasError(f"{root} has no sub-folders: put each person's photos in a folder "
                             "named after the person")
    return people


def person_name(folder: str) -> str:
    """Folder ``Novak_Djokovic`` or ``Novak Đoković`` → the person's name."""
    return " ".join(folder.replace("_", " ").split())


def ext_of(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return ext if _EXT.match(ext) else "bin"


def add_files(person_id: int, files: list[Path], settings: Settings) -> int:
    """Copy new files into the person's raw folder and register them. Returns how many."""
    layout = Layout(settings.home)
    added = 0
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        assert person is not None
        known = {
            origin: sha for origin, sha in session.execute(
                select(Image.origin, Image.sha256).where(Image.person_id == person_id)
            )
        }
        for rank, path in enumerate(files):
            origin = f"file:{path.name}"
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if known.get(origin) == sha:
                continue
            if origin in known:  # the file changed since the last import: start it over
                old = session.scalar(
                    select(Image).where(Image.person_id == person_id, Image.origin == origin)
                )
                session.delete(old)
                session.flush()
                _drop_unreferenced_raw(session, layout, old.path)
            dest = layout.raw_file(person.collection.key, person.folder, sha, ext_of(path))
            if not dest.exists():
                atomic_write(dest, data)
            session.add(Image(
                person_id=person_id, origin=origin, provider="folder", rank=rank,
                title=path.name, sha256=sha, path=layout.relative(dest), bytes=len(data),
                state="fetched",
            ))
            added += 1
    return added


def import_folder(
    root: Path,
    collection: str,
    settings: Settings,
    *,
    strategy: str | None = None,
    on_person: Callable[[PersonFolder], Callable[[int, int], None] | None] | None = None,
    pool: FacePool | None = None,
) -> Iterator[CurationReport]:
    """Import and curate every person folder; yields one report per person as it finishes.

    Every person's new photos go to the face pool at once, so both cores stay busy across
    people; each person is decided as soon as their own photos are analysed.
    """
    folders = scan(root)
    own = pool is None
    if pool is None:
        pool = FacePool(AnalyseParams.from_settings(settings), settings.worker_count).start()
    try:
        queued = []
        for folder in folders:
            with session_scope(settings) as session:
                coll = get_or_create_collection(session, collection)
                person, _ = upsert_person(session, coll, folder.name, source="folder")
                person_id = person.id
            add_files(person_id, folder.files, settings)
            queued.append((folder, person_id, pool.submit(plan_curation(person_id, settings))))
        for folder, person_id, futures in queued:
            progress = on_person(folder) if on_person else None
            fresh = collect(futures, progress)
            yield finish_curation(person_id, settings, fresh, strategy)
    finally:
        if own:
            pool.close()


def _drop_unreferenced_raw(session: Session, layout: Layout, path: str | None) -> None:
    if path and session.scalar(select(Image.id).where(Image.path == path).limit(1)) is None:
        layout.absolute(path).unlink(missing_ok=True)
