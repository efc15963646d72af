"""A collection's page for thousands of people: search, filters by state and reason, sorts,
paging, and bulk actions (promote, collect now, retry failed) with one confirmation. Thin
shells over ``store.queries.collection_people`` and ``faceatlas.jobs.bulk``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from faceatlas.api.deps import Ctx
from faceatlas.api.ui.base import MAX_ID, CollectionKey, FormId, Problem, render, router
from faceatlas.api.ui.csrf import Checked, Session
from faceatlas.api.ui.pages import Flash, flash
from faceatlas.domain.states import Anchor, PersonState
from faceatlas.jobs import bulk
from faceatlas.settings import Settings
from faceatlas.store import queries

PER_PAGE = 100
#: numbered page links either side of the current page
WINDOW = 3
#: names listed on the confirmation page and in a banner
SHOW_NAMES = 20
_STATES = frozenset(s.value for s in PersonState)

#: what a bulk action's redirect says (``?done=code&n=…``); people are named by
#: :func:`_named_flash`, never by id
_FLASH: dict[str, tuple[str, str]] = {
    "bulk_promoted": ("ok", "People promoted: {n}. Their galleries and the index hold exactly "
                            "their accepted faces."),
    "bulk_promoted_some": ("warn", "People promoted: {n}; the others were not promoted (see "
                                   "below)."),
    "bulk_collecting": ("info", "People being collected now: {n}, on the server's background "
                                "worker; follow them on the Jobs page."),
    "bulk_collecting_celery": ("info", "People queued for the Celery workers: {n}; follow them "
                                       "on the Jobs page."),
    "bulk_nobody": ("warn", "Nothing was done: nobody chosen is eligible any more."),
    "bulk_promoting_later": ("info", "Promotion goes on in the background (job {job}): "
                                     "promoted so far: {n}.", "/ui/jobs", "Follow it on Jobs"),
    "deleted": ("ok", "The person was erased: photos, faces, gallery files and index rows."),
}
#: the banners naming people (``?blocked=ids`` …): how they read and their words
_NAMED: dict[str, tuple[str, str]] = {
    "blocked": ("error", "Not promoted, the self-test recognised a face as someone else: "
                         "{names}."),
    "few": ("warn", "Not promoted, too few accepted faces (they left the gallery): {names}."),
    "notdone": ("warn", "Not done (no longer eligible, or an error): {names}."),
    "busy": ("warn", "Left alone, being collected right now: {names}."),
}


@dataclass
class Filter:
    """The page's query: search, state, reason, sort, page — validated."""

    q: str
    state: str
    reason: str
    sort: str
    page: int
    anchor: str = ""  # portrait, reference or none: what the galleries rest on

    def url(self, key: str, **changes: Any) -> str:
        """This page's address with some parameters changed (defaults left out)."""
        values = {"q": self.q, "state": self.state, "reason": self.reason, "sort": self.sort,
                  "page": self.page, "anchor": self.anchor, **changes}
        query = {k: v for k, v in values.items()
                 if v and not (k == "sort" and v == "name") and not (k == "page" and v == 1)}
        return f"/ui/collections/{key}" + (f"?{urlencode(query)}" if query else "")


def _filter(q: str | None, state: str | None, reason: str | None, sort: str | None,
            page: int, *, key: str | None = None, anchor: str | None = None) -> Filter:
    """``key``: the collection, whose unfiltered page the error page links back to."""
    state, reason, sort = state or "", reason or "", sort or "name"
    back = f"/ui/collections/{key}" if key else "/ui/"
    if state and state not in _STATES:
        raise Problem(422, "Not understood", f"There is no person state {state!r}.", back)
    if reason and reason not in queries.FILTER_REASONS:
        raise Problem(422, "Not understood", f"There is no reason {reason!r}.", back)
    if sort not in queries.SORTS:
        raise Problem(422, "Not understood", f"Sort by {', '.join(queries.SORTS)}.", back)
    if anchor and anchor not in tuple(Anchor):
        raise Problem(422, "Not understood", f"There is no anchor {anchor!r}.", back)
    return Filter(" ".join((q or "").split()), state, reason, sort, page, anchor or "")


Text = Annotated[str | None, Query(max_length=100)]


@router.get("/collections/{key}")
def collection(request: Request, ctx: Ctx, session: Session, key: CollectionKey,
               q: Text = None, state: Text = None, reason: Text = None, sort: Text = None,
               page: Annotated[int, Query(ge=1, le=100_000)] = 1,
               done: Annotated[str | None, Query(max_length=200)] = None,
               n: Annotated[int | None, Query(ge=0)] = None,
               blocked: Text = None, few: Text = None, notdone: Text = None,
               busy: Text = None, job: Annotated[int | None, Query(ge=1, le=2**62)] = None,
               anchor: Text = None) -> Response:
    session.principal.check(key, f"no collection {key!r}")
    f = _filter(q, state, reason, sort, page, key=key, anchor=anchor)

    def read() -> queries.CollectionPage:
        return queries.collection_people(
            ctx.settings, key, q=f.q or None, state=f.state or None, reason=f.reason or None,
            sort=f.sort, limit=PER_PAGE, offset=(f.page - 1) * PER_PAGE,
            anchor=f.anchor or None)

    data = read()
    pages = max(1, -(-data.total // PER_PAGE))
    if f.page > pages:  # e.g. after a bulk action emptied the last page: show the new last
        f.page = pages
        data = read()
    banners = flash(done, n, _FLASH, job=str(job or "")) + _named_flash(
        ctx.settings, data.key, {"blocked": blocked, "few": few, "notdone": notdone,
                                 "busy": busy}, back=f.url(key))
    return render(request, "collection.html", {
        "session": session, "c": data, "f": f, "pages": pages,
        "window": range(max(1, f.page - WINDOW), min(pages, f.page + WINDOW) + 1),
        "sorts": queries.SORTS, "actions": bulk.ACTIONS, "flash": banners,
        "anchors": tuple(Anchor), "required": ctx.settings.anchor_required(data.key),
        "nav": "collections"})


def _ids(text: str | None, limit: int = bulk.MAX_PEOPLE, back: str | None = None
         ) -> list[int]:
    """Person ids written by our own redirects and forms (``1,2,3``): anything else (``²``
    is a digit but no number, an id past any row) was not written by this site."""
    out = []
    for part in (text or "").split(",")[:limit]:
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdecimal() and 1 <= int(part) <= MAX_ID):
            raise Problem(422, "Not understood", "The address names people by ids that this "
                          "site did not write.", back)
        out.append(int(part))
    return out


def _named_flash(settings: Settings, key: str, groups: dict[str, str | None],
                 back: str | None = None) -> list[Flash]:
    """Banners naming people (ids from the redirect, looked up in this collection only)."""
    wanted = {g: _ids(v, SHOW_NAMES + 1, back) for g, v in groups.items() if v}
    if not wanted:
        return []
    names = queries.collection_person_names(
        settings, [i for ids in wanted.values() for i in ids], collection=key)
    out = []
    for group, ids in wanted.items():
        found = [names[i] for i in ids if i in names]
        if found:
            kind, text = _NAMED[group]
            more = " and others" if len(ids) > SHOW_NAMES else ""
            out.append(Flash(kind, text.format(names=", ".join(found[:SHOW_NAMES]) + more)))
    return out


Field = Annotated[str, Form(max_length=100)]


@router.post("/collections/{key}/bulk")
def bulk_action(
    request: Request,
    ctx: Ctx,
    session: Checked,
    key: CollectionKey,
    action: Field = "",
    person: Annotated[list[FormId], Form()] = [],  # noqa: B006  (FastAPI copies defaults)
    ids: Annotated[str, Form(max_length=200_000)] = "",
    q: Field = "",
    state: Field = "",
    reason: Field = "",
    sort: Field = "",
    page: Annotated[int, Form(ge=1, le=100_000)] = 1,
    confirm: Annotated[str, Form(max_length=10)] = "",
    anchor: Field = "",
) -> Response:
    """First POST: the confirmation page (who, how many, what happens). The confirmation's
    POST (``confirm=yes``, the planned ``ids``): do it, then back to the page with banners."""
    session.principal.check(key, f"no collection {key!r}")
    f = _filter(q, state, reason, sort, page, key=key, anchor=anchor)
    back = f.url(key)
    if action not in bulk.ACTIONS:
        raise Problem(422, "Not understood", "Choose one of the page's bulk actions.", back)
    chosen: list[int] | None
    if confirm == "yes":
        chosen = _ids(ids)
    elif bulk.ACTIONS[action].everyone:
        chosen = None  # all matching the filter
    else:
        chosen = person[:bulk.MAX_PEOPLE]
        if not chosen:
            raise Problem(400, "Nobody selected", "Tick the people first, then choose the "
                          "action.", back)
    planned = bulk.plan(ctx.settings, key, action, ids=chosen, q=f.q or None,
                        state=f.state or None, reason=f.reason or None,
                        anchor=f.anchor or None)
    if confirm != "yes":
        return render(request, "confirm.html", {
            "session": session, "plan": planned, "a": planned.action, "f": f, "key": key,
            "back": back, "ids": ",".join(str(p.id) for p in planned.people),
            "show": SHOW_NAMES, "nav": "collections"})
    outcome = bulk.run(ctx.settings, planned, store=ctx.store)
    return RedirectResponse(_after(key, f, outcome), 303)


def _after(key: str, f: Filter, o: bulk.BulkOutcome) -> str:
    """Where a bulk action ends: the page as it was, with banners saying what happened."""
    n = len(o.done)
    if o.job_id is not None:
        code = "bulk_promoting_later"
    elif o.action.kind == "promote":
        code = "bulk_promoted" if o.complete else "bulk_promoted_some"
    else:
        code = "bulk_collecting_celery" if o.runner == "celery" else "bulk_collecting"
    if not n and o.job_id is None:
        code = "bulk_nobody" if not (o.blocked or o.too_few or o.busy) else ""
    extra: dict[str, Any] = {"done": code, "n": str(n) if code else None, "job": o.job_id}
    for group, people in (("blocked", o.blocked), ("few", o.too_few),
                          ("notdone", [p for p, _ in o.failed]), ("busy", o.busy)):
        if people:
            extra[group] = ",".join(str(p.id) for p in people[:SHOW_NAMES + 1])
    return f.url(key, **extra)


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"


def _register_filters() -> None:
    from faceatlas.api.ui.base import templates

    templates.env.filters["people"] = _people


_register_filters()
