"""Review pages for sightings (issue 24): a person's appearances (a section of the person
page, paged, CSV), the small face crops, and a collection's Candidates page with erasure
("not a public figure": faces like it are not kept again). Thin shells over
``gallery.sightings`` and ``gallery.candidates``."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from faceatlas.api.deps import ApiContext, Ctx
from faceatlas.api.tokens import Principal, check_person
from faceatlas.api.ui.base import Id, Problem, no_collection, person_named, render, router
from faceatlas.api.ui.csrf import Checked, Session, UiSession
from faceatlas.domain.errors import NotFoundError
from faceatlas.gallery import candidates as cands
from faceatlas.gallery import sightings

#: appearances per page of the person page
PAGE = 20


def appearances_section(ctx: ApiContext, person_id: int, page: int) -> dict[str, Any]:
    """What the person page's Appearances section shows (page 1: the newest)."""
    found = sightings.appearances(ctx.settings, person_id, limit=PAGE,
                                  offset=(page - 1) * PAGE)
    pages = max(1, -(-found.total // PAGE))
    return {"rows": found.items, "total": found.total, "page": min(page, pages),
            "pages": pages}


@router.get("/people/{person_id}/appearances.csv")
def appearances_csv(ctx: Ctx, session: Session, person_id: Id) -> Response:
    check_person(session.principal, ctx.settings, person_id)
    text = sightings.appearances_csv(sightings.all_appearances(ctx.settings, person_id))
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="appearances-{person_id}.csv"'})


def _own_collection_id(principal: Principal, ctx: ApiContext, coll_id: int) -> bool:
    if principal.admin:
        return True
    from faceatlas.api.tokens import collection_ids

    return coll_id in (collection_ids(principal, ctx.settings) or [])


@router.get("/sightings/{sighting_id}/crop.jpg")
def sighting_crop(ctx: Ctx, session: Session, sighting_id: Id) -> Response:
    try:
        coll_id, _, path = sightings.crop_path(ctx.settings, sighting_id)
        if not _own_collection_id(session.principal, ctx, coll_id):
            raise NotFoundError("no such sighting")
        with open(path, "rb") as fh:
            data = fh.read()
    except (NotFoundError, FileNotFoundError):
        return Response(status_code=404)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


_DONE = {"named": "Named: a new person with {n} sightings as appearances, queued for "
                  "collection.",
         "merged": "Merged: {n} sightings are now the person's appearances.",
         "erased": "Erased: {n} sightings and their crops.",
         "blocked": "Dismissed as not a public figure: {n} sightings erased, and faces like "
                    "it will not be kept again."}


@router.get("/collections/{key}/candidates")
def candidates_page(request: Request, ctx: Ctx, session: Session, key: str,
                    done: str | None = None,
                    n: Annotated[int | None, Query(ge=0)] = None) -> Response:
    if not session.principal.allows(key):
        raise no_collection(key)
    try:
        found = cands.candidates(ctx.settings, key)
        policy = sightings.policy(ctx.settings, key)
    except NotFoundError:
        raise no_collection(key) from None
    flash = [{"kind": "ok", "text": _DONE[done].format(n=n or 0)}] if done in _DONE else []
    return render(request, "candidates.html", {
        "session": session, "key": policy.collection, "policy": policy,
        "candidates": found, "nav": "collections", "messages": flash,
        "min_sightings": ctx.settings.sightings_min_sightings,
        "min_sources": ctx.settings.sightings_min_sources})


@router.post("/clusters/{cluster_id}/erase")
def erase_cluster(ctx: Ctx, session: Checked, cluster_id: Id,
                  confirm: Annotated[str, Form(max_length=10)] = "",
                  block: Annotated[str, Form(max_length=10)] = "") -> Response:
    key = _own_cluster(ctx, session, cluster_id)
    back = f"/ui/collections/{key}/candidates"
    if confirm != "yes":
        raise Problem(400, "Not erased", "Confirm to erase the candidate.", back)
    gone = sightings.erase_cluster(ctx.settings, cluster_id, block=block == "yes")
    code = "blocked" if block == "yes" else "erased"
    return RedirectResponse(f"{back}?done={code}&n={gone.sightings}", 303)


def _own_cluster(ctx: ApiContext, session: UiSession, cluster_id: int) -> str:
    """The cluster's collection key, if the session may touch it; else a 404 page."""
    try:
        key = sightings.cluster_collection(ctx.settings, cluster_id)
    except NotFoundError:
        key = None
    if key is None or not session.principal.allows(key):
        raise Problem(404, "Not found", "No such candidate (named or erased already?).", "/ui/")
    return key


@router.get("/clusters/{cluster_id}/wikidata")
def wikidata_hits(request: Request, ctx: Ctx, session: Session, cluster_id: Id,
                  name: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Search-as-you-type for the name form (an htmx fragment): people on Wikidata, each a
    button that names the candidate with that Q-id."""
    from faceatlas.names.resolve import search_people

    _own_cluster(ctx, session, cluster_id)
    hits = search_people(ctx.settings, name)
    for hit in hits:
        hit["portrait_sig"] = _portrait_sig(session, hit["portrait"]) if hit["portrait"] else ""
    return render(request, "_wikidata_hits.html", {
        "session": session, "cluster_id": cluster_id, "hits": hits, "asked": name.strip()})


def _portrait_sig(session: UiSession, file_name: str) -> str:
    """Signs a P18 file name that a Wikidata answer gave this session: the portrait route
    fetches nothing else (never an arbitrary Commons file, never another host)."""
    return session.mac("portrait", file_name).hex()


@router.get("/wikidata/portrait.jpg")
def wikidata_portrait(ctx: Ctx, session: Session,
                      file: Annotated[str, Query(max_length=250)] = "",
                      sig: Annotated[str, Query(max_length=64)] = "") -> Response:
    """A Wikidata hit's portrait through our own server (the CSP keeps ``img-src 'self'``):
    only a file name signed for this session, as a small fresh JPEG, briefly cached."""
    from faceatlas.sources.portrait_thumbnail import portrait_thumbnail

    if not hmac.compare_digest(sig.encode(), _portrait_sig(session, file).encode()):
        return Response(status_code=404)
    data = portrait_thumbnail(ctx.settings, file)
    if data is None:
        return Response(status_code=404)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.post("/clusters/{cluster_id}/name")
def name_cluster(ctx: Ctx, session: Checked, cluster_id: Id,
                 name: Annotated[str, Form(max_length=200)] = "",
                 qid: Annotated[str, Form(max_length=20, pattern=r"^(Q[1-9][0-9]{0,11})?$")]
                 = "") -> Response:
    from faceatlas.domain.names import InvalidNameError

    key = _own_cluster(ctx, session, cluster_id)
    back = f"/ui/collections/{key}/candidates"
    try:
        done = cands.name_candidate(ctx.settings, cluster_id, name, wikidata_qid=qid or None)
    except InvalidNameError as exc:
        raise Problem(422, "Not named", f"The name: {exc}", back) from None
    return RedirectResponse(f"/ui/people/{done.person_id}#appearances", 303)


@router.post("/clusters/{cluster_id}/merge")
def merge_cluster(ctx: Ctx, session: Checked, cluster_id: Id,
                  person: Annotated[str, Form(max_length=300)] = "") -> Response:
    key = _own_cluster(ctx, session, cluster_id)
    back = f"/ui/collections/{key}/candidates"
    person_id = person_named(ctx.settings, key, person, back)
    try:
        done = cands.merge_candidate(ctx.settings, cluster_id, person_id)
    except NotFoundError:
        raise Problem(404, "Not merged", f"No person {person!r} in {key}.", back) from None
    return RedirectResponse(f"{back}?done=merged&n={done.sightings}", 303)
