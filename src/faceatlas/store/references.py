"""Reference photos waiting to be measured: the rows a sheet cell, the API or a reviewer adds.

Storing a URL or file reference needs no model: it is measured with the person's next
curation (``curation/references.py``). Names (a sheet's ``references`` column) and curation
both add them through here.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.domain.errors import FaceAtlasError, NotFoundError, ReferencePhotoError
from faceatlas.store.models import Person, Reference, ReferenceState

#: how a sheet cell lists several references
_SPLIT = re.compile(r"[\s|;]+")
_URL = re.compile(r"^https?://", re.IGNORECASE)


def split_references(cell: str) -> list[str]:
    """A sheet cell's references: URLs or paths separated by whitespace, ``|`` or ``;``."""
    return [part for part in _SPLIT.split(cell or "") if part]


def add_pending_reference(
    session: Session,
    person_id: int,
    *,
    url: str | None = None,
    path: str | Path | None = None,
    source: str = "user",
) -> Reference:
    """Store one URL or file reference of a person (``pending``); the same one twice returns
    the existing row."""
    if (url is None) == (path is None):
        raise ReferencePhotoError("give exactly one of url, path or face_id for a reference")
    if session.get(Person, person_id) is None:
        raise NotFoundError(f"no person with id {person_id}")
    query = select(Reference).where(Reference.person_id == person_id)
    if url is not None:
        if not _URL.match(url):
            raise ReferencePhotoError(
                f"a reference URL must start with http:// or https://: {url!r}")
        ref = session.scalar(query.where(Reference.url == url)) or Reference(
            person_id=person_id, source=source, url=url, state=ReferenceState.PENDING)
    else:
        file = Path(str(path)).expanduser()
        if not file.is_file():
            raise ReferencePhotoError(f"reference photo not found: {file}")
        text = str(file.resolve())
        ref = session.scalar(query.where(Reference.path == text)) or Reference(
            person_id=person_id, source=source, path=text, state=ReferenceState.PENDING)
    session.add(ref)
    session.flush()
    return ref


def sheet_references(session: Session, person_id: int, cell: str, base: Path
                     ) -> tuple[int, list[tuple[str, str]]]:
    """Add the references of one sheet cell (relative paths are relative to the sheet's
    folder); returns how many were added and (reference, why) for those that were not."""
    added, problems = 0, []
    for item in split_references(cell):
        try:
            # a refused reference is refused before anything is written: the others stay
            if _URL.match(item):
                add_pending_reference(session, person_id, url=item, source="sheet")
            else:
                file = Path(item).expanduser()
                add_pending_reference(session, person_id, source="sheet",
                                      path=file if file.is_absolute() else base / file)
            added += 1
        except FaceAtlasError as exc:
            problems.append((item, str(exc)))
    return added, problems
