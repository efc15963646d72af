"""People under /api/v1: list, read, erase, their photos' decisions, and enrolment from
uploaded photos."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile

from faceatlas.api.deps import Caller, Ctx, Id
from faceatlas.api.schemas import Enrolment, ImageOut, PersonDetail, PersonOut, Removal
from faceatlas.api.tokens import check_person
from faceatlas.api.uploads import check_image
from faceatlas.gallery.erase import remove_person
from faceatlas.store import queries

router = APIRouter(prefix="/api/v1")

#: photos per enrolment request; more is a 413
MAX_ENROL_FILES = 50


@router.get("/people", response_model=list[PersonOut], tags=["people"])
def people(
    ctx: Ctx,
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
def person(ctx: Ctx, caller: Caller, person_id: Id) -> Any:
    """One person: counts, state, error and the last promotion self-test."""
    check_person(caller, ctx.settings, person_id)
    return PersonDetail.model_validate(queries.person_detail(ctx.settings, person_id))


@router.delete("/people/{person_id}", response_model=Removal, tags=["people"])
def delete_person(ctx: Ctx, caller: Caller, person_id: Id) -> Any:
    """Erase a person: rows, raw files, crops, gallery files and index entries."""
    check_person(caller, ctx.settings, person_id)
    return Removal.model_validate(remove_person(ctx.settings, person_id, store=ctx.store))


@router.get("/people/{person_id}/faces", response_model=list[ImageOut], tags=["people"])
def person_faces(ctx: Ctx, caller: Caller, person_id: Id) -> Any:
    """Every candidate image of the person with its faces and the decision about each."""
    check_person(caller, ctx.settings, person_id)
    return [ImageOut.model_validate(i) for i in queries.person_images(ctx.settings, person_id)]


@router.post("/people", response_model=Enrolment, tags=["people"])
def enrol(
    ctx: Ctx,
    caller: Caller,
    name: Annotated[str, Form(min_length=1, max_length=200, description="Full name.")],
    files: Annotated[list[UploadFile], File(description="Photos of the person.")],
    collection: Annotated[str | None, Form(max_length=100)] = None,
    promote: Annotated[bool, Form(description="Promote right after curation.")] = False,
) -> Any:
    """Enrol a person from uploaded photos: store them, curate (every photo gets a decision),
    optionally promote. Any unusable upload refuses the whole batch, so nothing is half-done."""
    from faceatlas.domain.names import InvalidNameError
    from faceatlas.jobs.enrol import enrol_upload
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
    # names are unique per content, so re-uploads are recognised
    done = enrol_upload(settings, collection, name, [(c.name, c.data) for c in checked],
                        promote=promote, store=ctx.store, engines=ctx.engines,
                        lock=ctx.enrol_lock)
    report, promotion = done.report, done.promotion
    return {
        "person_id": done.person_id, "person": report.person, "collection": done.collection,
        "job_id": done.job_id, "candidates": report.candidates, "accepted": report.accepted,
        "new_images": report.new_images, "reasons": dict(report.reasons),
        "warnings": [f"{name!r} looks like {s!r}, a different person in {done.collection}: "
                     "enrolled as a separate person" for s in done.suspects],
        "promotion": None if promotion is None else {
            "state": promotion.state, "faces": promotion.faces,
            "gallery_files": promotion.gallery_files,
            "selftest": None if promotion.selftest is None else asdict(promotion.selftest),
        },
    }
