"""People surgery on the person page (issue 24): move or split off the ticked faces, merge
another person into this one; each behind one confirmation, CSRF-checked, token-scoped, and
audited with the session's token fingerprint (never the token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from fastapi.responses import RedirectResponse, Response

from faceatlas.api import sessions
from faceatlas.api.deps import ApiContext, Ctx
from faceatlas.api.tokens import check_person
from faceatlas.api.ui.base import FormId, Id, Problem, router
from faceatlas.api.ui.csrf import Checked, UiSession
from faceatlas.gallery import surgery

#: the ticked faces (repeated ``face`` fields of the bulk form)
FaceIds = Annotated[list[FormId], Form(alias="face", max_length=1000)]
Confirm = Annotated[str, Form(max_length=10)]


def _by(ctx: ApiContext, session: UiSession) -> str | None:
    return sessions.session_fingerprint(ctx.settings, session.sid)


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
         to_person: Annotated[FormId | None, Form()] = None, confirm: Confirm = "") -> Response:
    ids = _ticked(ctx, session, person_id, face, confirm, "move")
    if to_person is None:
        raise Problem(400, "Not moved", "Give the id of the person the faces belong to.",
                      f"/ui/people/{person_id}#accepted")
    check_person(session.principal, ctx.settings, to_person)
    r = surgery.move_faces(ctx.settings, ids, to_person, by=_by(ctx, session), store=ctx.store)
    return RedirectResponse(f"/ui/people/{person_id}?done=moved&n={len(r.faces)}#audit", 303)


@router.post("/people/{person_id}/faces/split")
def split(ctx: Ctx, session: Checked, person_id: Id, face: FaceIds = [],  # noqa: B006
          new_name: Annotated[str, Form(max_length=200)] = "", confirm: Confirm = ""
          ) -> Response:
    ids = _ticked(ctx, session, person_id, face, confirm, "split")
    if not new_name.strip():
        raise Problem(400, "Not split", "Give the new person's name.",
                      f"/ui/people/{person_id}#accepted")
    r = surgery.split_person(ctx.settings, person_id, ids, new_name, by=_by(ctx, session),
                             store=ctx.store)
    return RedirectResponse(f"/ui/people/{r.person_id}?done=split&n={len(r.faces)}#audit", 303)


@router.post("/people/{person_id}/merge")
def merge(ctx: Ctx, session: Checked, person_id: Id,
          gone: Annotated[FormId | None, Form()] = None, confirm: Confirm = "") -> Response:
    check_person(session.principal, ctx.settings, person_id)
    if gone is None or confirm != "yes":
        raise Problem(400, "Not merged", "Give the other person's id and tick the box to "
                      "confirm the merge.", f"/ui/people/{person_id}#merge")
    check_person(session.principal, ctx.settings, gone)
    r = surgery.merge_people(ctx.settings, person_id, gone, by=_by(ctx, session),
                             store=ctx.store)
    return RedirectResponse(f"/ui/people/{person_id}?done=merged&n={r.removed_person_id}#audit",
                            303)
