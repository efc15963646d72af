"""Erasing a person: index rows, gallery files, crops, raw files, folders, the name-mapping
entry and database rows, in that order (recognition stops naming them first; a crash half-way
is finished by running it again)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceatlas.gallery.index import IndexStore, index_store
from faceatlas.names.service import forget_name
from faceatlas.settings import Settings, settings_first
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, unlink_stored
from faceatlas.store.models import Face, Image, Job, Reference, Sighting
from faceatlas.store.people import get_person


@dataclass
class RemovalReport:
    person_id: int
    person: str
    collection: str
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    files_removed: int = 0
    index_rows_removed: int = 0


@settings_first
def remove_person(
    settings: Settings, person_id: int, *, store: IndexStore | None = None
) -> RemovalReport:
    """Erase a person: index rows, gallery files, crops, raw files, folders, name mapping
    entry and database rows (images, faces, attempts and jobs go with the person)."""
    layout = Layout(settings.home)
    store = store or index_store(settings)
    with session_scope(settings) as session:
        person = get_person(session, person_id)
        report = RemovalReport(person_id, person.name, person.collection.key)
        folder = person.folder
        faces = session.scalars(select(Face).where(Face.person_id == person_id)).all()
        files = [p for f in faces for p in (f.gallery_path, f.crop_path) if p]
        # raw files are named by content hash inside the person's own folder, so they are
        # never shared with another person
        files += [p for p in session.scalars(
            select(Image.path).where(Image.person_id == person_id, Image.path.is_not(None))
        )]
        # where they were seen (issue 24): the small face crops of their sightings
        files += [p for p in session.scalars(select(Sighting.crop_path).where(
            Sighting.person_id == person_id, Sighting.crop_path.is_not(None)))]
    # index first: recognition stops naming them before anything else disappears
    report.index_rows_removed = store.remove_person(report.collection, person_id)
    report.files_removed = sum(unlink_stored(layout, p) for p in files)
    for d in (layout.faces_dir(report.collection, folder),
              layout.raw_dir(report.collection, folder)):
        if d.is_dir():
            report.files_removed += sum(1 for p in d.rglob("*") if p.is_file())
            shutil.rmtree(d)
    forget_name(settings, person_id, folder, report.person)
    with session_scope(settings) as session:
        person = get_person(session, person_id)
        report.rows = {
            "images": _count(session, Image, person_id),
            "faces": _count(session, Face, person_id),
            "jobs": _count(session, Job, person_id),
            "sightings": _count(session, Sighting, person_id),
            "people": 1,
        }
        # explicit deletes, not only ON DELETE CASCADE: correct on databases without it too
        for model in (Face, Job, Reference, Sighting):
            for row in session.scalars(select(model).where(model.person_id == person_id)):
                session.delete(row)
        session.flush()
        session.delete(person)  # images and their attempts go by the ORM cascade
    return report


def _count(session: Session, model: Any, person_id: int) -> int:
    return int(session.scalar(
        select(func.count()).select_from(model).where(model.person_id == person_id)
    ) or 0)
