"""The old system's spreadsheet endpoints, same parameters and answer keys, done safely.

- ``GET /api/excel/check-excel?country=X[&occupation=A,B]`` starts name generation (both LLM
  passes) for the stored occupations in the background.
- ``GET /api/excel/process`` starts the next queued person's collection in the background and
  answers at once with the person and the job id (the old one downloaded for minutes, and
  deleted the spreadsheet row first, losing the name on any error).
- ``GET /api/excel/occupations`` lists the stored occupations.

Keys are checked before anything starts, so a missing key is an immediate, clear error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from faceatlas.api.deps import Caller, Ctx
from faceatlas.jobs.background import start_collect_next, start_names, stored_occupations

router = APIRouter(prefix="/api/excel", tags=["seed: spreadsheets"])


@router.get("/occupations")
def occupations(ctx: Ctx) -> dict[str, Any]:
    """The occupations names are generated for (``excel/occupation.xlsx`` in the home, or
    ``FACEATLAS_OCCUPATIONS_FILE``; else the occupations of the people already stored).
    The list is the server's, not a collection's: every token may read it."""
    found = stored_occupations(ctx.settings)
    return {"success": True, "data": {"occupations": found, "total": len(found)}}


@router.get("/check-excel", response_model=None)
def check_excel(
    ctx: Ctx,
    caller: Caller,
    country: Annotated[str | None, Query(max_length=100)] = None,
    occupation: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated filter.")
    ] = None,
) -> dict[str, Any] | JSONResponse:
    """Start generating names for ``country`` (all stored occupations, or the filter).
    ``row_count``: rows written to the data sheet (``file_path``, the collection's queue)."""
    if not country or not country.strip():
        return JSONResponse(
            {"success": False, "message": "country is required, e.g. ?country=Serbia"}, 400
        )
    caller.check(country.strip(), f"no collection {country.strip()!r}")
    wanted = [o.strip() for o in (occupation or "").split(",") if o.strip()]
    started = start_names(ctx.settings, country.strip(), wanted or None)
    return {
        "success": True,
        "message": f"generating names for {len(started.occupations)} occupation(s) "
                   f"in the background (job {started.job_id})",
        "row_count": started.row_count,
        "file_path": started.file_path,
        "thread_started": True,
        "country": country.strip(),
        "occupation_filter": wanted or None,
        "job_id": started.job_id,
    }


@router.get("/process", response_model=None)
def process(ctx: Ctx, caller: Caller
            ) -> dict[str, Any] | JSONResponse:
    """Start collecting the next queued person (of the token's collections); answers at once
    with the person and job id."""
    started = start_collect_next(ctx.settings, caller.collections)
    if started is None:
        return {"success": False, "message": "No data found: no person is queued for collection"}
    return {
        "success": True,
        "message": f"collecting {started.original_name} in the background (job {started.job_id})",
        "job_id": started.job_id,
        "data": {
            "name": started.first_name, "last_name": started.last_name,
            "occupation": started.occupation, "original_name": started.original_name,
            "person_id": started.person_id, "collection": started.collection,
        },
        "images": {"count": 0, "images": [], "failed": []},
    }
