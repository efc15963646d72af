"""Recognition in a clip under /api/v1: start a background video job, then poll it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from faceatlas.api.deps import Caller, Ctx, Id
from faceatlas.api.routes.sightings import SOURCE_HELP, where_of
from faceatlas.api.tokens import check_job
from faceatlas.domain.states import JobState

router = APIRouter(prefix="/api/v1")


@router.post("/recognize/video", status_code=202, tags=["recognition"])
def recognize_video(
    ctx: Ctx,
    caller: Caller,
    request: Request,
    video: Annotated[UploadFile, File(description="The clip (MP4, MOV, WebM, MKV …).")],
    collection: Annotated[str | None, Form(max_length=100)] = None,
    fps: Annotated[float | None, Form(ge=1.0, le=8.0, description="Frames a second.")] = None,
    source: Annotated[str | None, Form(max_length=2000, description=SOURCE_HELP)] = None,
) -> Any:
    """Start recognising a clip in the background; poll ``GET /recognize/video/{job_id}`` for
    progress and, when done, tracks with times, boxes per sampled frame and identities."""
    from faceatlas.video.jobs import start_video_job

    chosen = caller.choose(collection, ctx.settings.default_collection)
    job_id = start_video_job(ctx.settings, video.file, video.filename or "clip",
                             collection=chosen, fps=fps, engines=ctx.engines,
                             store=ctx.store, where=where_of(request, source))
    return {"job_id": job_id, "state": JobState.RUNNING,
            "status_url": f"/api/v1/recognize/video/{job_id}"}


@router.get("/recognize/video/{job_id}", tags=["recognition"])
def recognize_video_job(ctx: Ctx, caller: Caller, job_id: Id) -> Any:
    """A video job: state, progress (0–1), message, error, and the result once done."""
    from faceatlas.video.jobs import video_job

    check_job(caller, ctx.settings, job_id)
    return video_job(ctx.settings, job_id)
