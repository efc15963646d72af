"""Enrol a person from uploaded photos (``POST /api/v1/people``): store them, curate, optionally
promote, with an ``enrol`` job row telling how it went.

The photos arrive already checked (size, pixels, real format) and named by their content, so
a re-upload is recognised. Folder import stores and decides photos through the same
:func:`~faceatlas.jobs.importer.register_person`; this adds what an upload needs around it:
a face engine of the server's pool (taken after the registration, so the name's Wikidata
look-up holds none), the job row and the optional promotion.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faceatlas.curation.curate import CurationReport
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.domain.states import JobKind
from faceatlas.faces.analyse import face_pool
from faceatlas.gallery.index import IndexStore
from faceatlas.gallery.promote import PromotionResult, promote_person
from faceatlas.gallery.recognize import EnginePool
from faceatlas.jobs.importer import register_person
from faceatlas.settings import Settings
from faceatlas.store.jobs import finish_job, start_job


@dataclass
class UploadEnrolment:
    """What an upload enrolment came to."""

    person_id: int
    collection: str  # the collection's key
    job_id: int
    report: CurationReport
    #: other people of the collection whose names look like this one (reported, not merged)
    suspects: list[str]
    promotion: PromotionResult | None


def enrol_upload(
    settings: Settings,
    collection: str | None,
    name: str,
    photos: Sequence[tuple[str, bytes]],
    *,
    promote: bool,
    store: IndexStore,
    engines: EnginePool,
    lock: threading.Lock,
) -> UploadEnrolment:
    """Enrol ``name`` in ``collection`` (default: the server's) from ``photos`` (safe file
    name, content); curate every photo and, with ``promote``, promote right after.

    ``lock`` makes enrolments of one server take turns: curation uses the process-wide engine
    of ``faces.analyse``, which must not run in two threads at once. A failure after the job
    row is written marks the job failed and is raised again.
    """
    # refused at once, before anything is stored, when recognition's queue is full; the
    # registration (and the name's Wikidata look-up: network) holds no engine, the analysis
    # waits for one like a recognition, so enrolments' decodes count against the same budget
    engines.admit()
    # one enrolment at a time (the lock): curation's engine, and two uploads of one new name
    with lock, tempfile.TemporaryDirectory(prefix="faceatlas-enrol-") as tmp:
        paths = []
        for file_name, data in photos:
            path = Path(tmp) / file_name
            path.write_bytes(data)
            paths.append(path)
        # a different name that looks like a known one is a new person, and the answer
        # says whom it resembles (never merged: only a person can tell)
        enrolment = register_person(settings, collection or settings.default_collection,
                                     name, paths, source="upload", check_duplicates=True,
                                     anchor=True)
        job_id = start_job(settings, JobKind.ENROL, enrolment.person_id,
                           enrolment.collection_id)
        try:  # from here a failure, a full queue too, is the job's
            with engines.engine(), face_pool(settings, background=True) as pool:
                report = enrolment.submit(pool).finish()
            promotion = (promote_person(settings, enrolment.person_id, store=store)
                         if promote else None)
        except FaceAtlasError as exc:
            finish_job(settings, job_id, error=f"{exc.code}: {exc}")
            raise
        except Exception as exc:
            finish_job(settings, job_id, error=f"internal error: {type(exc).__name__}")
            raise
        finish_job(settings, job_id)
    return UploadEnrolment(enrolment.person_id, enrolment.collection, job_id, report,
                           enrolment.suspects, promotion)
