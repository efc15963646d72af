"""Sightings under /api/v1 (issue 24): where a person appeared, the candidates among the
unknown faces, a collection's recording switch and retention, erasure.

Every route is token-scoped like the people routes: another collection's token gets the same
404 as for something that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from faceatlas.api.deps import Caller, Ctx, Id, caller_fingerprint
from faceatlas.api.tokens import Principal, check_person
from faceatlas.domain.errors import NotFoundError
from faceatlas.gallery import candidates as cands
from faceatlas.gallery import sightings

router = APIRouter(prefix="/api/v1")

#: the optional form field of the recognition routes: where the photo comes from
SOURCE_HELP = ("Where the photo comes from (a name or URL), recorded with its sightings when "
               "the collection records them.")


def where_of(request: Request, source: str | None, clip: str | None = None
             ) -> sightings.Where:
    """What a recognition route records about its caller: the source it named and the
    token's fingerprint (an HMAC, never the token)."""
    return sightings.Where(source or "", clip, caller_fingerprint(request))


def _collection(caller: Principal, key: str) -> str:
    caller.check(key, f"no collection {key!r}")
    return key


class PolicyIn(BaseModel):
    enabled: bool | None = Field(None, description="Record this collection's sightings.")
    retention_days: int | None = Field(None, ge=1, le=3650,
                                       description="Days a sighting is kept.")


@router.get("/people/{person_id}/appearances", tags=["sightings"])
def appearances(
    ctx: Ctx,
    caller: Caller,
    person_id: Id,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    """Where the person was seen, newest first: source, clip and time range, when,
    confidence, box. ``format=csv``: every appearance as CSV (no paging)."""
    check_person(caller, ctx.settings, person_id)
    if format == "csv":
        text = sightings.appearances_csv(sightings.all_appearances(ctx.settings, person_id))
        return Response(text, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="appearances-{person_id}.csv"'})
    page = sightings.appearances(ctx.settings, person_id, limit=limit, offset=offset)
    return {"person_id": person_id, "total": page.total, "limit": limit, "offset": offset,
            "items": [a.as_dict() for a in page.items]}


@router.get("/sightings/{sighting_id}/crop", tags=["sightings"],
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def sighting_crop(ctx: Ctx, caller: Caller, sighting_id: Id) -> Response:
    """A sighting's small face crop (JPEG)."""
    coll_id, _, path = sightings.crop_path(ctx.settings, sighting_id)
    _check_collection_id(caller, ctx, coll_id, f"no sighting with id {sighting_id}")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise NotFoundError(f"no sighting with id {sighting_id}") from None
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


def _check_collection_id(caller: Principal, ctx: Any, coll_id: int, missing: str) -> None:
    if caller.admin:
        return
    from faceatlas.api.tokens import collection_ids

    if coll_id not in (collection_ids(caller, ctx.settings) or []):
        raise NotFoundError(missing)


@router.get("/collections/{key}/candidates", tags=["sightings"])
def candidates(
    ctx: Ctx,
    caller: Caller,
    key: str,
    resembling: Annotated[bool, Query(description="Also clusters near a gallery person.")]
    = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Unknown faces seen at least N times in M different sources (settings
    ``sightings_min_sightings``/``sightings_min_sources``): each cluster with how often,
    first and last seen, where, and its best faces (sighting ids; ``/sightings/{id}/crop``)."""
    found = cands.candidates(ctx.settings, _collection(caller, key), resembling=resembling,
                             limit=limit)
    return {"collection": key, "min_sightings": ctx.settings.sightings_min_sightings,
            "min_sources": ctx.settings.sightings_min_sources,
            "candidates": [c.as_dict() for c in found]}


@router.get("/collections/{key}/sightings", tags=["sightings"])
def get_policy(ctx: Ctx, caller: Caller, key: str) -> Any:
    """Whether the collection records sightings, and for how many days it keeps them."""
    p = sightings.policy(ctx.settings, _collection(caller, key))
    return {"collection": p.collection, "enabled": p.enabled,
            "retention_days": p.retention_days}


@router.put("/collections/{key}/sightings", tags=["sightings"])
def put_policy(ctx: Ctx, caller: Caller, key: str, body: PolicyIn) -> Any:
    """Switch recording on or off and/or set the retention (days)."""
    p = sightings.set_policy(ctx.settings, _collection(caller, key), enabled=body.enabled,
                             retention_days=body.retention_days)
    return {"collection": p.collection, "enabled": p.enabled,
            "retention_days": p.retention_days}


@router.delete("/collections/{key}/sightings", tags=["sightings"])
def erase_source(
    ctx: Ctx,
    caller: Caller,
    key: str,
    source: Annotated[str, Query(min_length=1, max_length=2000,
                                 description="Erase everything seen from this source.")],
) -> Any:
    """Erase every sighting from one source: rows, crops, clusters left empty."""
    gone = sightings.erase_source(ctx.settings, _collection(caller, key), source)
    return {"sightings": gone.sightings, "files": gone.files, "clusters": gone.clusters}


@router.delete("/clusters/{cluster_id}", tags=["sightings"])
def erase_cluster(
    ctx: Ctx,
    caller: Caller,
    cluster_id: Id,
    block: Annotated[bool, Query(description="Not a public figure: faces like it are not "
                                 "kept again.")] = False,
) -> Any:
    """Erase a cluster of unknown faces and its sightings."""
    key = sightings.cluster_collection(ctx.settings, cluster_id)
    caller.check(key, f"no cluster with id {cluster_id}")
    gone = sightings.erase_cluster(ctx.settings, cluster_id, block=block)
    return {"sightings": gone.sightings, "files": gone.files, "clusters": gone.clusters}


class NameIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="The person's full name.")
    wikidata_qid: str | None = Field(None, pattern=r"^Q[1-9][0-9]{0,11}$")


class MergeIn(BaseModel):
    person_id: int = Field(ge=1, le=2**62)


def _named(n: cands.Named) -> dict[str, Any]:
    return {"person_id": n.person_id, "person": n.person, "created": n.created,
            "references": n.references, "sightings": n.sightings}


@router.post("/clusters/{cluster_id}/name", tags=["sightings"])
def name_cluster(ctx: Ctx, caller: Caller, cluster_id: Id, body: NameIn) -> Any:
    """Confirm a candidate: a new person (queued for collection) with the candidate's best
    faces as trusted references and its sightings as their appearances."""
    from faceatlas.domain.names import InvalidNameError

    caller.check(sightings.cluster_collection(ctx.settings, cluster_id),
                 f"no cluster with id {cluster_id}")
    try:
        return _named(cands.name_candidate(ctx.settings, cluster_id, body.name,
                                           wikidata_qid=body.wikidata_qid))
    except InvalidNameError as exc:
        raise HTTPException(422, f"name: {exc}") from None


@router.post("/clusters/{cluster_id}/merge", tags=["sightings"])
def merge_cluster(ctx: Ctx, caller: Caller, cluster_id: Id, body: MergeIn) -> Any:
    """The candidate is an existing person of the collection: its sightings become theirs."""
    caller.check(sightings.cluster_collection(ctx.settings, cluster_id),
                 f"no cluster with id {cluster_id}")
    return _named(cands.merge_candidate(ctx.settings, cluster_id, body.person_id))
