"""Trusted reference photos of a person: a reference outranks the vote of the search results.

A reference is a photo known to show the person: a URL or file from a sheet's ``references``
column (``faceatlas names import``), a face a reviewer marked "this is them", or a portrait
another source supplies (e.g. Wikidata). Curation then takes the face group nearest to the
references as the identity, and fails the person with ``no_face_matches_reference`` rather than
building a confident gallery of someone else when no group comes near.

URL and file references are stored ``pending``; their photos are downloaded with the person's
search hits and measured by the same face workers as the candidates (``plan_curation`` hands
them over with negative keys), so nothing here loads a model. A face reference copies the
face's embedding at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.domain.errors import NotFoundError, ReferencePhotoError
from faceatlas.faces.analyse import ImageAnalysis
from faceatlas.settings import Settings
from faceatlas.sources.download import DownloadItem, download_all_sync
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Face, FaceState, Person, Reason, Reference, ReferenceState
from faceatlas.store.references import add_pending_reference


@dataclass
class ReferenceInfo:
    id: int
    person_id: int
    source: str
    state: str  # pending | ready | failed
    url: str | None = None
    path: str | None = None
    face_id: int | None = None
    error: str | None = None


def add_reference(
    settings: Settings,
    person_id: int,
    *,
    url: str | None = None,
    path: str | Path | None = None,
    face_id: int | None = None,
    root: Path | None = None,
    source: str = "user",
) -> ReferenceInfo:
    """Give a person one trusted photo: exactly one of ``url``, ``path`` or ``face_id``.

    A face must belong to the person and have been measured; it is also accepted (by the
    user), since a reviewer said it is them. URLs and paths are measured at the person's next
    curation; a path must lie inside the folder ``root`` (else ReferencePhotoError). Adding
    the same one twice returns the existing reference.
    """
    given = [v for v in (url, path, face_id) if v is not None]
    if len(given) != 1:
        raise ReferencePhotoError("give exactly one of url, path or face_id for a reference")
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"no person with id {person_id}")
        query = select(Reference).where(Reference.person_id == person_id)
        if face_id is not None:
            face = session.get(Face, face_id)
            if face is None or face.person_id != person_id:
                raise NotFoundError(f"no face {face_id} of {person.name}")
            if face.embedding is None:
                raise ReferencePhotoError(
                    f"face {face_id} was too small or too blurry to be measured: it cannot be "
                    "a reference")
            existing = session.scalar(query.where(Reference.face_id == face_id))
            if face.state != FaceState.ACCEPTED:
                face.state, face.reason = FaceState.ACCEPTED, Reason.ACCEPTED_BY_USER
                face.other_person_id = face.detail = None
            ref = existing or Reference(person_id=person_id, source=source, face_id=face_id)
            ref.embedding, ref.state, ref.error = face.embedding, ReferenceState.READY, None
        else:
            return _info(add_pending_reference(session, person_id, url=url, path=path,
                                               root=root, source=source))
        session.add(ref)
        session.flush()
        return _info(ref)


def list_references(settings: Settings, person_id: int) -> list[ReferenceInfo]:
    with session_scope(settings) as session:
        rows = session.scalars(select(Reference).where(Reference.person_id == person_id)
                               .order_by(Reference.id))
        return [_info(r) for r in rows]


def reference_vectors(session: Session, person_id: int) -> list[np.ndarray]:
    """Embeddings of the person's measured references (pending and failed ones are left out)."""
    blobs = session.scalars(select(Reference.embedding).where(
        Reference.person_id == person_id, Reference.state == ReferenceState.READY,
        Reference.embedding.is_not(None)).order_by(Reference.id))
    return [np.frombuffer(b, dtype=np.float32) for b in blobs]


def download_references(settings: Settings, person_id: int, trusted: tuple[str, ...] | set[str]
                        | frozenset[str] = ()) -> int:
    """Fetch pending URL references into the home (with the downloader's safety rules)."""

    layout = Layout(settings.home)
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            return 0
        folder = _folder(layout, person)
        todo = [(r.id, r.url) for r in session.scalars(select(Reference).where(
            Reference.person_id == person_id, Reference.state == ReferenceState.PENDING,
            Reference.url.is_not(None), Reference.path.is_(None)))]
    if not todo:
        return 0
    results = download_all_sync([DownloadItem(rid, url or "") for rid, url in todo],
                                settings=settings, trusted=trusted)
    fetched = 0
    with session_scope(settings) as session:
        for result in results:
            ref = session.get(Reference, result.key)
            if ref is None:
                continue
            if not result.ok or result.content is None:
                ref.state, ref.error = ReferenceState.FAILED, f"download failed: {result.reason}"
                continue
            dest = folder / f"{result.sha256}.img"
            atomic_write(dest, result.content)
            ref.path = str(dest)
            fetched += 1
    return fetched


def reference_jobs(refs: Sequence[Reference], *, remeasure: bool) -> list[tuple[int, str]]:
    """(-reference id, file) for those of a person's references waiting to be measured; a
    vanished file fails. ``remeasure``: the person's faces are analysed again by another
    engine (see :func:`_remeasure`)."""
    if remeasure:
        for ref in refs:
            _remeasure(ref)
    jobs = []
    for ref in refs:
        if ref.state != ReferenceState.PENDING or ref.path is None:
            continue
        if Path(ref.path).is_file():
            jobs.append((-ref.id, str(ref.path)))
        else:
            ref.state, ref.error = ReferenceState.FAILED, f"reference photo not found: {ref.path}"
    return jobs


def store_reference_analyses(session: Session, analyses: dict[int, ImageAnalysis]) -> None:
    """Keep the largest measured face of each reference photo (keys are -reference id)."""
    for key, a in analyses.items():
        ref = session.get(Reference, -key)
        if ref is None:
            continue
        faces = [f for f in a.faces if f.embedding is not None]
        if a.error or not faces:
            ref.state = ReferenceState.FAILED
            ref.error = a.detail or a.error or (
                "no face large and sharp enough in the reference photo" if a.faces
                else "no face in the reference photo")
            continue
        face = max(faces, key=lambda f: f.size)
        ref.embedding = face.embedding.astype(np.float32).tobytes()  # type: ignore[union-attr]
        ref.state, ref.error = ReferenceState.READY, None


def _folder(layout: Layout, person: Person) -> Path:
    # not under raw/: raw files without an image row are swept as a crash's leftovers
    return layout.home / "references" / person.collection.key / person.folder


def _info(ref: Reference) -> ReferenceInfo:
    return ReferenceInfo(ref.id, ref.person_id, ref.source, ref.state, ref.url, ref.path,
                         ref.face_id, ref.error)


def _remeasure(ref: Reference) -> None:
    """The person's faces are analysed again by another engine: a reference photo is measured
    again with them; a reviewer's face reference cannot be (its face is analysed anew), so it
    waits to be marked again rather than compare another engine's vector."""
    ref.embedding = None
    if ref.face_id is None:  # a photo (file or URL): measured again with the new engine
        ref.state, ref.error = ReferenceState.PENDING, None
    else:
        ref.state = ReferenceState.FAILED
        ref.error = "measured by another face engine: mark the face as a reference again"
