"""Pictures for the review UI, served by id (face, image, video track) and resolved through
``Layout``; no path from a request ever reaches the file system. Plus the UI's static files, a
fixed list."""

from __future__ import annotations

from fastapi.responses import Response

from faceatlas.api.deps import Ctx
from faceatlas.api.tokens import check_face, check_image, check_job
from faceatlas.api.ui.base import (
    HERE,
    STATIC_FILES,
    Id,
    Problem,
    router,
)
from faceatlas.api.ui.csrf import Session
from faceatlas.domain.errors import NotFoundError
from faceatlas.gallery import thumbnails


@router.get("/static/{name}")
def static(name: str) -> Response:
    """A fixed list of files: the name never becomes a path unless it is on the list."""
    if name not in STATIC_FILES:
        raise Problem(404, "Not found", "No such file.")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC_FILES[name],
                    headers={"Cache-Control": "public, max-age=86400"})


def _jpeg(data: bytes) -> Response:
    # private: only this logged-in browser caches it; the picture of an id never changes
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/faces/{face_id}/thumb.jpg")
def face_thumb(ctx: Ctx, session: Session, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    return _jpeg(thumbnails.face_image(ctx.settings, face_id))


@router.get("/faces/{face_id}/crop.jpg")
def face_crop(ctx: Ctx, session: Session, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    return _jpeg(thumbnails.face_image(ctx.settings, face_id, thumb=False))


@router.get("/images/{image_id}/thumb.jpg")
def image_thumb(ctx: Ctx, session: Session, image_id: Id) -> Response:
    try:
        check_image(session.principal, ctx.settings, image_id)
        return _jpeg(thumbnails.image_thumbnail(ctx.settings, image_id))
    except NotFoundError:
        return Response(status_code=404)


@router.get("/video/{job_id}/tracks/{track}.jpg")
def video_thumb(ctx: Ctx, session: Session, job_id: Id, track: Id) -> Response:
    from faceatlas.video.jobs import video_thumbnail

    check_job(session.principal, ctx.settings, job_id)
    return _jpeg(video_thumbnail(ctx.settings, job_id, track))
