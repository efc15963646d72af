"""The old system's recognition endpoint, on both paths its clients use."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from faceatlas.api.deps import Caller, Ctx
from faceatlas.api.routes.sightings import SOURCE_HELP, where_of
from faceatlas.api.schemas import SeedRecognition
from faceatlas.api.uploads import read_upload
from faceatlas.gallery.recognize import recognize_bytes, seed_answer

router = APIRouter(tags=["seed: recognition"])


@router.post("/api/recognize", response_model=SeedRecognition, response_model_exclude_unset=True)
@router.post("/recognize", response_model=SeedRecognition, response_model_exclude_unset=True)
def recognize_seed(
    ctx: Ctx,
    caller: Caller,
    request: Request,
    image: Annotated[UploadFile, File(description="The photo (JPEG, PNG, WebP, …).")],
    collection: Annotated[
        str | None, Form(max_length=100, description="Default: the token's collection "
                                                    "(old {token: domain} tokens), else the "
                                                    "server's.")
    ] = None,
    source: Annotated[str | None, Form(max_length=2000, description=SOURCE_HELP)] = None,
) -> Any:
    """Who is in this photo, in the old system's words: ``success`` with the best person,
    ``error`` ("No matches within threshold") or ``no_faces``."""
    chosen = caller.choose(collection, ctx.settings.default_collection)
    data = read_upload(image, ctx.settings.max_upload_bytes)
    result = recognize_bytes(data, ctx.settings, collection=chosen, store=ctx.store,
                             engines=ctx.engines, where=where_of(request, source))
    return SeedRecognition.model_validate(seed_answer(result))
