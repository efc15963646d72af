"""People surgery under /api/v1 (issue 24): move faces, merge two people, split a person, and
each person's audit of such changes.

Token-scoped like the people routes: every person and face named must be in the caller's
collections (else the same 404 as for something that does not exist). The audit records the
caller's token fingerprint (an HMAC), never the token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from faceatlas.api.deps import Caller, Ctx, Id, caller_fingerprint
from faceatlas.api.tokens import check_person
from faceatlas.gallery import surgery

router = APIRouter(prefix="/api/v1")

#: an id in a body: within SQLite's INTEGER (as path ids are)
BodyId = Annotated[int, Field(ge=1, le=2**62)]


class MoveBody(BaseModel):
    face_ids: list[BodyId] = Field(min_length=1, max_length=1000)
    to_person_id: BodyId


class MergeBody(BaseModel):
    gone_id: BodyId = Field(description="The person merged away (deleted afterwards).")


class SplitBody(BaseModel):
    face_ids: list[BodyId] = Field(min_length=1, max_length=1000)
    name: str = Field(min_length=1, max_length=200, description="The new person's name.")


class SurgeryOut(BaseModel):
    action: str
    person_id: int
    faces: list[int]
    images: int
    states: dict[str, str]
    removed_person_id: int | None = None


class AuditOut(BaseModel):
    id: int
    action: str
    by: str | None
    detail: dict[str, Any]
    at: Any


@router.post("/people/{person_id}/faces/move", response_model=SurgeryOut, tags=["people"])
def move(ctx: Ctx, caller: Caller, request: Request, person_id: Id, body: MoveBody) -> Any:
    """Move faces of this person (each with its photo) to another person of the collection;
    both are re-decided and promoted again if they were in the gallery."""
    check_person(caller, ctx.settings, person_id)
    check_person(caller, ctx.settings, body.to_person_id)
    surgery.check_faces_of(ctx.settings, body.face_ids, person_id)
    return surgery.move_faces(ctx.settings, body.face_ids, body.to_person_id,
                              by=caller_fingerprint(request), store=ctx.store).as_dict()


@router.post("/people/{person_id}/merge", response_model=SurgeryOut, tags=["people"])
def merge(ctx: Ctx, caller: Caller, request: Request, person_id: Id, body: MergeBody) -> Any:
    """The same person under two names: ``gone_id``'s photos, faces, references and
    sightings become this person's; ``gone_id`` is deleted."""
    check_person(caller, ctx.settings, person_id)
    check_person(caller, ctx.settings, body.gone_id)
    return surgery.merge_people(ctx.settings, person_id, body.gone_id,
                                by=caller_fingerprint(request), store=ctx.store).as_dict()


@router.post("/people/{person_id}/split", response_model=SurgeryOut, tags=["people"])
def split(ctx: Ctx, caller: Caller, request: Request, person_id: Id, body: SplitBody) -> Any:
    """The ticked faces (with their photos) become a new person of the same collection."""
    check_person(caller, ctx.settings, person_id)
    return surgery.split_person(ctx.settings, person_id, body.face_ids, body.name,
                                by=caller_fingerprint(request), store=ctx.store).as_dict()


@router.get("/people/{person_id}/audit", response_model=list[AuditOut], tags=["people"])
def audit(ctx: Ctx, caller: Caller, person_id: Id,
          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
    """Who moved, merged or split this person's faces, what and when (newest first)."""
    check_person(caller, ctx.settings, person_id)
    return surgery.person_audit(ctx.settings, person_id, limit=limit)
