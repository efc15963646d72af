"""People surgery on the person page (issue 24): move or split off the ticked faces, merge
another person into this one; each behind one confirmation, CSRF-checked, token-scoped, and
audited with the session's token fingerprint (never the token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from faceatlas.api.deps import ApiContext, Ctx
from faceatlas.api.tokens import check_person
from faceatlas.api.ui.base import (
    CollectionKey,
    FormId,
    Id,
    Problem,
    no_collection,
    person_named,
    render,
    router,
)
from faceatlas.api.ui.csrf import Checked, Session, UiSession
from faceatlas.domain.errors import NotFoundError
from faceatlas.gallery import surgery
from faceatlas.store import queries
from faceatlas.store.db import session_scope
from faceatlas.store.people import get_person

#: the ticked faces (repeated ``face`` fields of the bulk form)
FaceIds = Annotated[list[FormId], Form(alias="face", max_length=1000)]
Confirm = Annotated[str, Form(max_length=10)]
#: another person of the same collection, by name (the picker's suggestion) or id
OtherPerson = Annotated[str, Form(max_length=300)]


@router.get("/collections/{key}/people/names")
def people_names(request: Request, ctx: Ctx, session: Session, key: CollectionKey) -> Response:
    """The name picker's suggestions (an htmx fragment of ``<option>``s for a datalist): the
    text typed arrives under the input's own name (``to_person``, ``gone``)."""
    if not session.principal.allows(key):
        raise no_collection(key)
    typed = next((v for v in request.query_params.values() if v.strip()), "")
    try:
        found = queries.people_named_like(ctx.settings, key, typed)
    except NotFoundError:
        raise no_collection(key) from None
    return render(request, "_people_options.html", {"people": found})


def _other(ctx: ApiContext, session: UiSession, person_id: int, text: str, back: str) -> int:
    """The id of the person ``text`` names (name or id) in ``person_id``'s collection."""
    with session_scope(ctx.settings) as s:
        key = get_person(s, person_id).collection.key
    other = person_named(ctx.settings, key, text, back)
    check_person(session.principal, ctx.settings, other)
    return other


def _ticked(ctx: ApiContext, session: UiSession, person_id: int, faces: list[int],
            confirm: str, verb: str) -> list[int]:
    check_person(session.principal, ctx.settings, person_id)
    ids = list(dict.fromkeys(faces))
    if not ids:
        raise Problem(400, f"Nothing to {verb}", "Tick the faces first, then confirm.",
                      f"/ui/people/{person_id}#accepted")
    if confirm != "yes":
        raise Problem(400, f"Not {verb}d", f"Confirm to {verb} the ticked faces.",
                      f"/ui/people/{person_id}#accepted")
    surgery.check_faces_of(ctx.settings, ids, person_id)
    return ids


@router.post("/people/{person_id}/faces/move")
def move(ctx: Ctx, session: Checked, person_id: Id, face: FaceIds = [],  # noqa: B006
         to_person: OtherPerson = "", confirm: Confirm = "") -> Response:
    ids = _ticked(ctx, session, person_id, face, confirm, "move")
    back = f"/ui/people/{person_id}#accepted"
    if not to_person.strip():
        raise Problem(400, "Not moved", "Give the name of the person the faces belong to.",
                      back)
    target = _other(ctx, session, person_id, to_person, back)
    r = surgery.move_faces(ctx.settings, ids, target, by=session.fingerprint, store=ctx.store)
    return RedirectResponse(f"/ui/people/{person_id}?done=moved&n={len(r.faces)}#audit", 303)


@router.post("/people/{person_id}/faces/split")
def split(ctx: Ctx, session: Checked, person_id: Id, face: FaceIds = [],  # noqa: B006
          new_name: Annotated[str, Form(max_length=200)] = "", confirm: Confirm = ""
          ) -> Response:
    ids = _ticked(ctx, session, person_id, face, confirm, "split")
    if not new_name.strip():
        raise Problem(400, "Not split", "Give the new person's name.",
                      f"/ui/people/{person_id}#accepted")
    r = surgery.split_person(ctx.settings, person_id, ids, new_name, by=session.fingerprint,
                             store=ctx.store)
    return RedirectResponse(f"/ui/people/{r.person_id}?done=split&n={len(r.faces)}#audit", 303)


@router.post("/people/{person_id}/merge")
def merge(ctx: Ctx, session: Checked, person_id: Id,
          gone: OtherPerson = "", confirm: Confirm = "") -> Response:
    check_person(session.principal, ctx.settings, person_id)
    back = f"/ui/people/{person_id}#merge"
    if not gone.strip() or confirm != "yes":
        raise Problem(400, "Not merged", "Give the other person's name and tick the box to "
                      "confirm the merge.", back)
    other = _other(ctx, session, person_id, gone, back)
    r = surgery.merge_people(ctx.settings, person_id, other, by=session.fingerprint,
                             store=ctx.store)
    return RedirectResponse(f"/ui/people/{person_id}?done=merged&n={r.removed_person_id}#audit",
                            303)
