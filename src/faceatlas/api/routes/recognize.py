"""``POST /api/v1/recognize``: who is in a photo (``verify`` and ``detect`` are in ``tools``;
the old system's answer shape in ``seed``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from faceatlas.api.deps import Caller, Ctx
from faceatlas.api.routes.sightings import SOURCE_HELP, where_of
from faceatlas.api.schemas import Recognition
from faceatlas.api.uploads import read_upload
from faceatlas.domain.errors import NotFoundError
from faceatlas.gallery.recognize import collection_keys, face_dict, recognize_bytes

router = APIRouter(prefix="/api/v1")


@router.post("/recognize", response_model=Recognition, tags=["recognition"])
def recognize(
    ctx: Ctx,
    caller: Caller,
    request: Request,
    image: Annotated[UploadFile, File(description="The photo.")],
    collection: Annotated[str | None, Form(
        max_length=2000, description="One collection; several comma-separated; or * for "
        "every collection this token may use (searched as one)")] = None,
    source: Annotated[str | None, Form(max_length=2000, description=SOURCE_HELP)] = None,
    top_k: Annotated[int, Form(ge=0, le=20, description="Also list the k closest people "
                               "per face (``candidates``); 0: only the best.")] = 0,
) -> Any:
    """Every face in the photo, each with its best person or ``unknown``."""
    several: list[str] | None = None
    if collection and (collection.strip() == "*" or "," in collection):
        if collection.strip() == "*":
            several = caller.filter(collection_keys(ctx.settings))
            if not several:
                raise NotFoundError("no collection this token may use")
        else:
            several = [c.strip() for c in collection.split(",") if c.strip()]
            for c in several:
                caller.check(c, f"no collection {c!r}")
        chosen = None
    else:
        chosen = caller.choose(collection, ctx.settings.default_collection)
    data = read_upload(image, ctx.settings.max_upload_bytes)
    result = recognize_bytes(data, ctx.settings, collection=chosen, store=ctx.store,
                             engines=ctx.engines, top_k=top_k, collections=several,
                             where=where_of(request, source))
    return {"status": result.status, "collection": result.collection, "width": result.width,
            "height": result.height, "threshold": result.threshold,
            "faces": [face_dict(f, result) for f in result.faces]}
