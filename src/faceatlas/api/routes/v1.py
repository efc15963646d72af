"""REST API under /api/v1: collections, people, faces, jobs, recognition, enrolment."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, UploadFile

from faceatlas.api.deps import ApiContext, Caller, get_ctx
from faceatlas.api.schemas import (
    CollectionOut,
    CollectStarted,
    Enrolment,
    ImageOut,
    JobOut,
    PersonDetail,
    PersonOut,
    Recognition,
    Removal,
)
from faceatlas.api.tokens import check_face, check_job, check_person, visible_jobs
from faceatlas.api.uploads import check_image, read_upload
from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.domain.states import JobKind, JobState
from faceatlas.gallery.erase import remove_person
from faceatlas.gallery.promote import promote_person
from faceatlas.gallery.recognize import face_dict, recognize_bytes
from faceatlas.store import queries

router = APIRouter(prefix="/api/v1")

#: ids are SQL integers: bound them so a huge number is a 422, not a database overflow
Id = Annotated[int, Path(ge=1, le=2**62)]
MAX_ENROL_FILES = 50


@router.get("/collections", response_model=list[CollectionOut], tags=["collections"])
def collections(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller) -> Any:
    """Every collection (of the token's) with its counts of people and faces, and its index
    size."""
    out = []
    for c in queries.list_collections(ctx.settings):
        if not caller.allows(c.key):
            continue
        index_faces = len(ctx.store.get(c.key)) if ctx.store.path(c.key).exists() else 0
        out.append(CollectionOut(**asdict(c), index_faces=index_faces))
    return out


@router.get("/people", response_model=list[PersonOut], tags=["people"])
def people(
    ctx: Annotated[ApiContext, Depends(get_ctx)],
    caller: Caller,
    collection: Annotated[str | None, Query(max_length=100)] = None,
    state: Annotated[str | None, Query(max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Any:
    """People with their state and counts (images, accepted faces, gallery faces)."""
    if collection is not None:
        caller.check(collection, f"no collection {collection!r}")
    found = queries.list_people(ctx.settings, collection=collection, state=state, limit=limit,
                                offset=offset, collections=caller.collections)
    return [PersonOut.model_validate(p) for p in found]


@router.get("/people/{person_id}", response_model=PersonDetail, tags=["people"])
def person(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller, person_id: Id) -> Any:
    """One person: counts, state, error and the last promotion self-test."""
    check_person(caller, ctx.settings, person_id)
    return PersonDetail.model_validate(queries.person_detail(ctx.settings, person_id))


@router.delete("/people/{person_id}", response_model=Removal, tags=["people"])
def delete_person(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller,
                  person_id: Id) -> Any:
    """Erase a person: rows, raw files, crops, gallery files and index entries."""
    check_person(caller, ctx.settings, person_id)
    return Removal.model_validate(remove_person(person_id, ctx.settings, store=ctx.store))


@router.get("/people/{person_id}/faces", response_model=list[ImageOut], tags=["people"])
def person_faces(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller,
                 person_id: Id) -> Any:
    """Every candidate image of the person with its faces and the decision about each."""
    check_person(caller, ctx.settings, person_id)
    return [ImageOut.model_validate(i) for i in queries.person_images(ctx.settings, person_id)]


@router.get("/jobs", response_model=list[JobOut], tags=["jobs"])
def jobs(
    ctx: Annotated[ApiContext, Depends(get_ctx)],
    caller: Caller,
    state: Annotated[str | None, Query(max_length=20)] = None,
    kind: Annotated[str | None, Query(max_length=30)] = None,
    person_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Recent jobs, newest first."""
    found = queries.list_jobs(
        ctx.settings, state=state, kind=kind, person_id=person_id, limit=limit,
        restrict=lambda q: visible_jobs(q, caller, ctx.settings))  # type: ignore[arg-type,return-value]
    return [JobOut.model_validate(j) for j in found]


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def job(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller, job_id: Id) -> Any:
    check_job(caller, ctx.settings, job_id)
    return JobOut.model_validate(queries.get_job(ctx.settings, job_id))


@router.post("/recognize", response_model=Recognition, tags=["recognition"])
def recognize(
    ctx: Annotated[ApiContext, Depends(get_ctx)],
    caller: Caller,
    image: Annotated[UploadFile, File(description="The photo.")],
    collection: Annotated[str | None, Form(max_length=100)] = None,
    top_k: Annotated[int, Form(ge=0, le=20, description="Also list the k closest people "
                               "per face (``candidates``); 0: only the best.")] = 0,
) -> Any:
    """Every face in the photo, each with its best person or ``unknown``."""
    chosen = caller.choose(collection, ctx.settings.default_collection)
    data = read_upload(image, ctx.settings.max_upload_bytes)
    result = recognize_bytes(data, ctx.settings, collection=chosen, store=ctx.store,
                             engines=ctx.engines, top_k=top_k)
    return {"status": result.status, "collection": result.collection, "width": result.width,
            "height": result.height, "threshold": result.threshold,
            "faces": [face_dict(f, result) for f in result.faces]}


@router.post("/recognize/video", status_code=202, tags=["recognition"])
def recognize_video(
    ctx: Annotated[ApiContext, Depends(get_ctx)],
    caller: Caller,
    video: Annotated[UploadFile, File(description="The clip (MP4, MOV, WebM, MKV …).")],
    collection: Annotated[str | None, Form(max_length=100)] = None,
    fps: Annotated[float | None, Form(ge=1.0, le=8.0, description="Frames a second.")] = None,
) -> Any:
    """Start recognising a clip in the background; poll ``GET /recognize/video/{job_id}`` for
    progress and, when done, tracks with times, boxes per sampled frame and identities."""
    from faceatlas.video.jobs import start_video_job

    chosen = caller.choose(collection, ctx.settings.default_collection)
    job_id = start_video_job(ctx.settings, video.file, video.filename or "clip",
                             collection=chosen, fps=fps, engines=ctx.engines,
                             store=ctx.store)
    return {"job_id": job_id, "state": JobState.RUNNING,
            "status_url": f"/api/v1/recognize/video/{job_id}"}


@router.get("/recognize/video/{job_id}", tags=["recognition"])
def recognize_video_job(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller,
                        job_id: Id) -> Any:
    """A video job: state, progress (0–1), message, error, and the result once done."""
    from faceatlas.video.jobs import video_job

    check_job(caller, ctx.settings, job_id)
    return video_job(ctx.settings, job_id)


@router.post("/people", response_model=Enrolment, tags=["people"])
def enrol(
    ctx: Annotated[ApiContext, Depends(get_ctx)],
    caller: Caller,
    name: Annotated[str, Form(min_length=1, max_length=200, description="Full name.")],
    files: Annotated[list[UploadFile], File(description="Photos of the person.")],
    collection: Annotated[str | None, Form(max_length=100)] = None,
    promote: Annotated[bool, Form(description="Promote right after curation.")] = False,
) -> Any:
    """Enrol a person from uploaded photos: store them, curate (every photo gets a decision),
    optionally promote. Any unusable upload refuses the whole batch, so nothing is half-done."""
    from faceatlas.domain.names import InvalidNameError
    from faceatlas.faces.analyse import face_pool
    from faceatlas.jobs.importer import enrol_person
    from faceatlas.store.jobs import finish_job, start_job
    from faceatlas.store.people import prepare_person

    settings = ctx.settings
    collection = caller.choose(collection, settings.default_collection)
    try:  # control characters stripped, length checked: before any photo is looked at
        name = prepare_person(name).name
    except InvalidNameError as exc:
        raise HTTPException(422, f"name: {exc}") from None
    if not files:
        raise HTTPException(422, "no files")
    if len(files) > MAX_ENROL_FILES:
        raise HTTPException(413, f"at most {MAX_ENROL_FILES} files per request")
    checked = [check_image(f, settings.max_upload_bytes, settings.max_pixels,
                           settings.decode_max_bytes) for f in files]
    # an engine slot first (bounded queue, 503 when full), so enrolments' decodes count
    # against the same budget as recognitions'; then take turns on curation's engine
    with ctx.engines.engine(), ctx.enrol_lock, \
            tempfile.TemporaryDirectory(prefix="faceatlas-enrol-") as tmp, \
            face_pool(settings, background=True) as pool:
        paths = []
        for c in checked:  # names are unique per content, so re-uploads are recognised
            path = FsPath(tmp) / c.name
            path.write_bytes(c.data)
            paths.append(path)
        # a different name that looks like a known one is a new person, and the answer
        # says whom it resembles (never merged: only a person can tell)
        enrolment = enrol_person(settings, collection or settings.default_collection, name,
                                 paths, source="upload", pool=pool, check_duplicates=True)
        person_id, coll_key, suspects = (enrolment.person_id, enrolment.collection,
                                         enrolment.suspects)
        job_id = start_job(settings, JobKind.ENROL, person_id, enrolment.collection_id)
        try:
            report = enrolment.finish()
            promotion = promote_person(person_id, settings, store=ctx.store) if promote else None
        except FaceAtlasError as exc:
            finish_job(settings, job_id, error=f"{exc.code}: {exc}")
            raise
        except Exception as exc:
            finish_job(settings, job_id, error=f"internal error: {type(exc).__name__}")
            raise
        finish_job(settings, job_id)
    return {
        "person_id": person_id, "person": report.person, "collection": coll_key,
        "job_id": job_id, "candidates": report.candidates, "accepted": report.accepted,
        "new_images": report.new_images, "reasons": dict(report.reasons),
        "warnings": [f"{name!r} looks like {s!r}, a different person in {coll_key}: enrolled "
                     "as a separate person" for s in suspects],
        "promotion": None if promotion is None else {
            "state": promotion.state, "faces": promotion.faces,
            "gallery_files": promotion.gallery_files,
            "selftest": None if promotion.selftest is None else asdict(promotion.selftest),
        },
    }


@router.post("/faces/{face_id}/reference", tags=["people"])
def face_reference(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller,
                   face_id: Id) -> Any:
    """"This is them": the face becomes a trusted reference of its person, who is re-decided
    around it (the identity is the face group nearest the references; none near → failed
    ``no_face_matches_reference``) and promoted again if they were in the gallery."""
    from faceatlas.gallery.review import mark_reference

    check_face(caller, ctx.settings, face_id)
    return asdict(mark_reference(ctx.settings, face_id, store=ctx.store))


@router.post("/people/{person_id}/references", tags=["people"])
def person_reference(
    ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller, person_id: Id,
    url: Annotated[str, Form(min_length=8, max_length=2000,
                             description="http(s) URL of a photo of the person.")],
) -> Any:
    """Add a reference photo by URL; it is measured at the person's next curation."""
    from faceatlas.curation.references import add_reference

    check_person(caller, ctx.settings, person_id)
    return asdict(add_reference(ctx.settings, person_id, url=url, source="api"))


@router.post("/people/{person_id}/collect", status_code=202, response_model=CollectStarted,
             tags=["people"])
def collect(ctx: Annotated[ApiContext, Depends(get_ctx)], caller: Caller,
            person_id: Id) -> Any:
    """Collect the person again now (search, download, curate): on the Celery queue when
    ``FACEATLAS_BROKER_URL`` is set, else on this server's background thread. The job is
    queued at once; poll ``GET /jobs/{job_id}``. 409 while the person is being collected (or
    already waits for it)."""
    from faceatlas.jobs.background import collect_now

    check_person(caller, ctx.settings, person_id)
    started = collect_now(ctx.settings, [person_id])
    if started.missing:
        raise NotFoundError(f"no person with id {person_id}")  # erased meanwhile
    if started.busy:
        raise HTTPException(409, "the person is being collected right now")
    job_id = started.jobs[person_id]
    return CollectStarted(person_id=person_id, job_id=job_id, runner=started.runner,
                          status_url=f"/api/v1/jobs/{job_id}")


def _missing(person_id: int) -> Any:
    raise NotFoundError(f"no person with id {person_id}")
