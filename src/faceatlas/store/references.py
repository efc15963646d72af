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

from faceatlas.domain.errors import FaceAtlasError, ReferencePhotoError
from faceatlas.store.models import Reference, ReferenceState
from faceatlas.store.people import get_person

#: how a sheet cell lists several references
_SPLIT = re.compile(r"[\s|;]+")
_URL = re.compile(r"^https?://", re.IGNORECASE)


def split_references(cell: str) -> list[str]:
    """A sheet cell's references: URLs or paths separated by whitespace, ``|`` or ``;``."""
    return [part for part in _SPLIT.split(cell or "") if part]


def confined(path: str | Path, root: Path | None) -> Path:
    """``path`` resolved, if it lies inside the folder ``root`` (links followed); otherwise
    ReferencePhotoError in words that are the same whether or not the path exists, so a
    refusal never tells what is on the disk. No ``root``: no local file at all."""
    if root is None:
        raise ReferencePhotoError(
            "local reference files are read only from a folder you name (the sheet's folder, "
            "--references-dir or FACEATLAS_REFERENCES_DIR); give an http(s) URL instead")
    base = Path(root).expanduser().resolve()
    file = Path(str(path)).expanduser()
    full = (file if file.is_absolute() else base / file).resolve()
    if not full.is_relative_to(base):
        raise ReferencePhotoError(
            f"reference {str(path)[:200]!r} is outside the references folder {base}: only "
            "files inside it are read (name another with --references-dir or "
            "FACEATLAS_REFERENCES_DIR)")
    return full


def add_pending_reference(
    session: Session,
    person_id: int,
    *,
    url: str | None = None,
    path: str | Path | None = None,
    root: Path | None = None,
    source: str = "user",
) -> Reference:
    """Store one URL or file reference of a person (``pending``); the same one twice returns
    the existing row. A file must lie inside ``root`` (see ``confined``); a URL is fetched
    later through the downloader's SSRF guard."""
    if (url is None) == (path is None):
        raise ReferencePhotoError("give exactly one of url, path or face_id for a reference")
    get_person(session, person_id)
    query = select(Reference).where(Reference.person_id == person_id)
    if url is not None:
        if not _URL.match(url):
            raise ReferencePhotoError(
                f"a reference URL must start with http:// or https://: {url!r}")
        ref = session.scalar(query.where(Reference.url == url)) or Reference(
            person_id=person_id, source=source, url=url, state=ReferenceState.PENDING)
    else:
        file = confined(path, root)  # before any look at the disk
        if not file.is_file():
            raise ReferencePhotoError(f"reference photo not found: {file}")
        text = str(file)
        ref = session.scalar(query.where(Reference.path == text)) or Reference(
            person_id=person_id, source=source, path=text, state=ReferenceState.PENDING)
    session.add(ref)
    session.flush()
    return ref


def sheet_references(session: Session, person_id: int, cell: str, base: Path
                     ) -> tuple[int, list[tuple[str, str]]]:
    """Add the references of one sheet cell: files only inside the folder ``base`` (relative
    paths are relative to it); returns how many were added and (reference, why) for those
    that were not."""
    added, problems = 0, []
    for item in split_references(cell):
        try:
            # a refused reference is refused before anything is written: the others stay
            if _URL.match(item):
                add_pending_reference(session, person_id, url=item, source="sheet")
            else:
                add_pending_reference(session, person_id, source="sheet", path=item, root=base)
            added += 1
        except FaceAtlasError as exc:
            problems.append((item, str(exc)))
    return added, problems
