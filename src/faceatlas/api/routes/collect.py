"""``POST /api/v1/people/{person_id}/collect``: collect a person again now, in the background."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from faceatlas.api.deps import Caller, Ctx, Id
from faceatlas.api.schemas import CollectStarted
from faceatlas.api.tokens import check_person
from faceatlas.domain.errors import NotFoundError

router = APIRouter(prefix="/api/v1")


@router.post("/people/{person_id}/collect", status_code=202, response_model=CollectStarted,
             tags=["people"])
def collect(ctx: Ctx, caller: Caller, person_id: Id) -> Any:
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
