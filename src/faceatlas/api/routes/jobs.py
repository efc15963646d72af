"""Job rows under /api/v1 (collect, enrol, names, video …), as far as the token may see them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from faceatlas.api.deps import Caller, Ctx, Id
from faceatlas.api.schemas import JobOut
from faceatlas.api.tokens import check_job, visible_jobs
from faceatlas.store import queries

router = APIRouter(prefix="/api/v1")


@router.get("/jobs", response_model=list[JobOut], tags=["jobs"])
def jobs(
    ctx: Ctx,
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
def job(ctx: Ctx, caller: Caller, job_id: Id) -> Any:
    check_job(caller, ctx.settings, job_id)
    return JobOut.model_validate(queries.get_job(ctx.settings, job_id))
