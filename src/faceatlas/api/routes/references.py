"""Trusted references of a person under /api/v1: a face of theirs, or a photo by URL."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Form

from faceatlas.api.deps import Caller, Ctx, Id
from faceatlas.api.tokens import check_face, check_person

router = APIRouter(prefix="/api/v1")


@router.post("/faces/{face_id}/reference", tags=["people"])
def face_reference(ctx: Ctx, caller: Caller, face_id: Id) -> Any:
    """"This is them": the face becomes a trusted reference of its person, who is re-decided
    around it (the identity is the face group nearest the references; none near → failed
    ``no_face_matches_reference``) and promoted again if they were in the gallery."""
    from faceatlas.gallery.review import mark_reference

    check_face(caller, ctx.settings, face_id)
    return asdict(mark_reference(ctx.settings, face_id, store=ctx.store))


@router.post("/people/{person_id}/references", tags=["people"])
def person_reference(
    ctx: Ctx, caller: Caller, person_id: Id,
    url: Annotated[str, Form(min_length=8, max_length=2000,
                             description="http(s) URL of a photo of the person.")],
) -> Any:
    """Add a reference photo by URL; it is measured at the person's next curation."""
    from faceatlas.curation.references import add_reference

    check_person(caller, ctx.settings, person_id)
    return asdict(add_reference(ctx.settings, person_id, url=url, source="api"))
