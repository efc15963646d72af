"""The review UI's pages and forms: log-in, collections, a person (reject, restore, recollect,
promote, delete), jobs, recognising a photo, a clip. Thin shells over the library."""

from __future__ import annotations

import base64
import hmac
import io
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from PIL import Image as PILImage

from faceatlas.api import sessions
from faceatlas.api.deps import ApiContext, Ctx
from faceatlas.api.tokens import check_face, check_job, check_person
from faceatlas.api.ui.base import (
    FormId,
    Id,
    Problem,
    render,
    router,
)
from faceatlas.api.ui.csrf import (
    COOKIE,
    LOGIN_COOKIE,
    Checked,
    CsrfFailed,
    Session,
    UiSession,
    safe_next,
    set_cookie,
    token_fingerprints,
)
from faceatlas.api.uploads import read_upload
from faceatlas.curation.duplicates import person_review
from faceatlas.domain.errors import NotFoundError
from faceatlas.domain.states import PersonState
from faceatlas.gallery import review
from faceatlas.gallery.erase import remove_person
from faceatlas.gallery.promote import promote_person
from faceatlas.gallery.recognize import recognize_bytes
from faceatlas.jobs.background import collect_now
from faceatlas.store import queries


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"nonce": nonce, "next": safe_next(next),
                                               "session": None, "error": None})
    set_cookie(response, request, LOGIN_COOKIE, nonce, 3600)
    return response


@router.post("/login")
def login(
    request: Request,
    ctx: Ctx,
    token: Annotated[str, Form(max_length=1000)] = "",
    nonce: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
) -> Response:
    # limited per client address and per form, checked before the token is compared
    limiter: sessions.LoginLimiter = request.app.state.login_limiter
    keys = (*sessions.auth_keys(request.client.host if request.client else "?", token.strip()),
            f"nonce:{nonce}")
    wait = limiter.retry_after(*keys)
    if wait is not None:
        return render(request, "login.html", {
            "nonce": request.cookies.get(LOGIN_COOKIE, ""), "next": safe_next(next),
            "session": None, "error": f"Too many wrong tokens from here: log-in is locked "
            f"for {wait} more seconds."}, status=429, headers={"Retry-After": str(wait)})
    cookie_nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie_nonce or not hmac.compare_digest(cookie_nonce.encode(), nonce.encode()):
        raise CsrfFailed
    given = token.strip().encode("utf-8", "surrogateescape")
    matched: str | None = None
    if ctx.auth_disabled:
        matched = token_fingerprints(ctx)[0]
    else:
        for known, fp in zip(ctx.settings.api_tokens, token_fingerprints(ctx), strict=True):
            if hmac.compare_digest(given, known.encode("utf-8")):  # no early exit
                matched = fp
    if matched is None:
        limiter.failed(*keys)
        response = render(request, "login.html", {
            "nonce": cookie_nonce, "next": safe_next(next), "session": None,
            "error": "That token is not valid."}, status=401)
        return response
    sid = sessions.create_session(ctx.settings, matched)
    response = RedirectResponse(safe_next(next), 303)
    set_cookie(response, request, COOKIE, sid, ctx.settings.session_ttl_seconds)
    set_cookie(response, request, LOGIN_COOKIE, "", 0)  # spent: one nonce, one log-in
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, session: Checked) -> Response:
    sessions.revoke_session(ctx.settings, session.sid)  # a copied cookie dies with it
    response = RedirectResponse("/ui/login", 303)
    set_cookie(response, request, COOKIE, "", 0)
    return response


#: what an action's redirect says (``?done=code&n=…``): how it reads (ok: green, info: blue,
#: warn: amber, error: red), its words, and optionally a link (address, words). ``{who}``:
#: the person a failed self-test recognised (the person page fills it in).
_FLASH: dict[str, tuple[str, ...]] = {
    "rejected": ("ok", "Face {n} rejected: it left the gallery and the index."),
    "rejected_many": ("ok", "{n} faces rejected: they left the gallery and the index."),
    "restored": ("ok", "Face {n} restored."),
    "restored_gallery": ("ok", "Face {n} restored and back in the gallery and the index."),
    "restored_many": ("ok", "{n} faces restored (back in the gallery and the index if the "
                            "person is promoted)."),
    "unchanged": ("info", "Nothing to change: face {n} already was so."),
    "unchanged_many": ("info", "Nothing to change: the ticked faces already were so."),
    "none_selected": ("warn", "No face was ticked: tick the faces first, then confirm."),
    "below_minimum": ("warn", "Fewer faces than promotion needs are left: promote again to "
                              "re-check."),
    "recollect": ("info", "Queued again: `faceatlas collect` or a worker will search, download "
                          "and curate this person anew."),
    "collecting": ("info", "Collecting now on the server: search, download and curation run "
                           "in the background.", "/ui/jobs", "Follow it on Jobs"),
    "collecting_celery": ("info", "Queued on the Celery queue: a worker will search, download "
                                  "and curate this person.", "/ui/jobs", "Follow it on Jobs"),
    "collect_busy": ("info", "Already being collected: nothing new was started.", "/ui/jobs",
                     "See Jobs"),
    "promoted": ("ok", "Promoted: the gallery and the index hold exactly the accepted faces."),
    "too_few_faces": ("warn", "Not promoted: too few accepted faces (the person left the "
                              "gallery)."),
    "not_promoted": ("warn", "Not promoted: the person is no longer curated (see the state "
                             "above)."),
    "moved": ("ok", "{n} faces moved with their photos: both people were re-decided."),
    "split": ("ok", "{n} faces split off into this new person."),
    "merged": ("ok", "Person {n} merged into this one: their photos, faces and sightings "
                     "are this person's now."),
    "deleted": ("ok", "Person {n} erased: photos, faces, gallery files and index rows."),
    "reference": ("ok", "Face {n} is now a reference: the person was re-decided around it."),
    "blocked": ("error", "Not promoted: the self-test recognised a face of this person as "
                         "{who}. Reject the faces that are {who}'s, then promote again."),
    "failed": ("error", "No face group matches the references: the person is failed."),
    "unanchored": ("warn", "Not promoted: nothing anchors this gallery (no Wikidata portrait, "
                           "reference photo or “This is them”), and FACEATLAS_REQUIRE_ANCHOR "
                           "asks for one. Mark one face “This is them”, then promote again."),
}


@dataclass
class Flash:
    kind: str  # ok | info | warn | error
    text: str
    href: str | None = None  # a link after the words (same site)
    link: str | None = None


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "another person" if key == "who" else ""


def flash(done: str | None, n: int | None,
          known: Mapping[str, tuple[str, ...]] = _FLASH, **fields: str) -> list[Flash]:
    """The banners for ``?done=`` codes (unknown codes are ignored: the words are ours);
    ``fields`` fill placeholders such as ``{who}``."""
    out = []
    for code in (done or "").split(",")[:3]:
        if code in known:
            kind, text, *link = known[code]
            words = text.format_map(_Blank(n="" if n is None else str(n), **fields))
            out.append(Flash(kind, words, *link))
    return out


@router.get("")
@router.get("/")
def collections(request: Request, ctx: Ctx, session: Session,
                done: str | None = None, n: Annotated[int | None, Query(ge=0)] = None
                ) -> Response:
    overview = [c for c in queries.collections_overview(ctx.settings)
                if session.principal.allows(c.key)]
    index_faces = {c.key: ctx.store.size(c.key) for c in overview}
    return render(request, "collections.html", {
        "session": session, "collections": overview, "index_faces": index_faces,
        "flash": flash(done, n), "nav": "collections"})


@router.get("/people/{person_id}")
def person(request: Request, ctx: Ctx, session: Session, person_id: Id,
           done: str | None = None, n: Annotated[int | None, Query(ge=0)] = None,
           seen: Annotated[int, Query(ge=1, le=2**31)] = 1) -> Response:
    from faceatlas.api.ui.sightings import appearances_section
    from faceatlas.gallery.surgery import person_audit

    check_person(session.principal, ctx.settings, person_id)
    data = person_review(ctx.settings, person_id)
    who = data.selftest_person[1] if data.selftest_person else "another person"
    return render(request, "person.html", {
        "session": session, "p": data, "flash": flash(done, n, who=who), "nav": "collections",
        "promotable": queries.PROMOTABLE,
        "seen": appearances_section(ctx, person_id, seen),
        "audit": person_audit(ctx.settings, person_id, limit=10)})


def _to_person(person_id: int, *codes: str, n: int | None = None, anchor: str = "") -> Response:
    query = "done=" + ",".join(codes) + (f"&n={n}" if n is not None else "")
    return RedirectResponse(f"/ui/people/{person_id}?{query}{anchor}", 303)


@router.post("/faces/{face_id}/reject")
def reject(ctx: Ctx, session: Checked, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    r = review.reject_face(ctx.settings, face_id, store=ctx.store)
    codes = ["rejected" if r.changed else "unchanged"]
    if r.below_minimum and r.changed:
        codes.append("below_minimum")
    # back to the same face (in the rejected list now): keyboard review carries on from it
    return _to_person(r.person_id, *codes, n=face_id, anchor=f"#face-{face_id}")


@router.post("/faces/{face_id}/restore")
def restore(ctx: Ctx, session: Checked, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    r = review.restore_face(ctx.settings, face_id, store=ctx.store)
    code = ("restored_gallery" if r.in_gallery else "restored") if r.changed else "unchanged"
    return _to_person(r.person_id, code, n=face_id, anchor=f"#face-{face_id}")


#: the ticked faces of a bulk form (repeated ``face`` fields)
FaceIds = Annotated[list[FormId], Form(alias="face", max_length=1000)]


def _bulk_faces(ctx: ApiContext, session: UiSession, person_id: int, face_ids: list[int],
                confirm: str, verb: str, done: str) -> list[int] | None:
    """The ticked faces of this person, checked; None: nothing ticked. ``verb``, ``done``:
    the action's words (``restore``, ``restored``) for the refusal page."""
    check_person(session.principal, ctx.settings, person_id)
    ids = list(dict.fromkeys(face_ids))  # each 1..MAX_ID (FormId)
    if not ids:
        return None
    if confirm != "yes":
        faces = "the ticked face" if len(ids) == 1 else f"the {len(ids)} ticked faces"
        raise Problem(400, f"Not {done}", f"Confirm to {verb} {faces}.",
                      f"/ui/people/{person_id}")
    return ids  # faces of anyone but this (checked) person: review answers "no face"


@router.post("/people/{person_id}/faces/reject")
def reject_many(ctx: Ctx, session: Checked, person_id: Id, face: FaceIds = [],  # noqa: B006
                confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    ids = _bulk_faces(ctx, session, person_id, face, confirm, "reject", "rejected")
    if ids is None:
        return _to_person(person_id, "none_selected", anchor="#accepted")
    r = review.reject_faces(ctx.settings, ids, person_id=person_id, store=ctx.store)
    codes = ["rejected_many" if r.changed else "unchanged_many"]
    if r.below_minimum and r.changed:
        codes.append("below_minimum")
    return _to_person(person_id, *codes, n=r.changed, anchor="#accepted")


@router.post("/people/{person_id}/faces/restore")
def restore_many(ctx: Ctx, session: Checked, person_id: Id, face: FaceIds = [],  # noqa: B006
                 confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    ids = _bulk_faces(ctx, session, person_id, face, confirm, "restore", "restored")
    if ids is None:
        return _to_person(person_id, "none_selected", anchor="#rejected")
    r = review.restore_faces(ctx.settings, ids, person_id=person_id, store=ctx.store)
    return _to_person(person_id, "restored_many" if r.changed else "unchanged_many",
                      n=r.changed, anchor="#accepted")


@router.post("/faces/{face_id}/reference")
def reference(ctx: Ctx, session: Checked, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    r = review.mark_reference(ctx.settings, face_id, store=ctx.store)
    codes = ["reference"] + (["failed"] if r.state == PersonState.FAILED else [])
    return _to_person(r.person_id, *codes, n=face_id, anchor=f"#face-{face_id}")


@router.post("/people/{person_id}/recollect")
def recollect(ctx: Ctx, session: Checked, person_id: Id) -> Response:
    """Kept for old pages and scripts: queue only (the person page now has Collect now)."""
    check_person(session.principal, ctx.settings, person_id)
    r = review.recollect_person(ctx.settings, person_id)
    return _to_person(r.person_id, "recollect")


@router.post("/people/{person_id}/collect")
def collect(ctx: Ctx, session: Checked, person_id: Id) -> Response:
    """Collect the person now: the server's background thread, or Celery when configured.
    No image source key: ConfigError, shown as an error page that says what to set."""
    check_person(session.principal, ctx.settings, person_id)
    started = collect_now(ctx.settings, [person_id])
    if started.missing:
        raise NotFoundError(f"no person with id {person_id}")  # erased meanwhile
    if person_id in started.busy:
        return _to_person(person_id, "collect_busy")
    code = "collecting_celery" if started.runner == "celery" else "collecting"
    return _to_person(person_id, code, n=started.jobs[person_id])


#: promotion results the person page has words for; anything else is "not promoted"
_PROMOTE_CODES = frozenset({"promoted", "too_few_faces", "blocked", "failed", "unanchored"})


@router.post("/people/{person_id}/promote")
def promote(ctx: Ctx, session: Checked, person_id: Id) -> Response:
    check_person(session.principal, ctx.settings, person_id)
    data = person_review(ctx.settings, person_id)
    if data.state not in queries.PROMOTABLE:
        raise Problem(409, "Not promotable", f"{data.name} is {data.state.replace('_', ' ')}: "
                      "only curated people can be promoted.", f"/ui/people/{person_id}")
    result = promote_person(ctx.settings, person_id, store=ctx.store)
    # blocked: the banner names who from the self-test stored on the person
    return _to_person(person_id, result.state if result.state in _PROMOTE_CODES
                      else "not_promoted")


@router.post("/people/{person_id}/delete")
def delete(ctx: Ctx, session: Checked, person_id: Id,
           confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    check_person(session.principal, ctx.settings, person_id)
    if confirm != "yes":
        raise Problem(400, "Not deleted", "Tick the box to confirm the deletion.",
                      f"/ui/people/{person_id}#danger")
    report = remove_person(ctx.settings, person_id, store=ctx.store)
    return RedirectResponse(f"/ui/collections/{report.collection}?done=deleted&n={person_id}",
                            303)


@router.get("/jobs")
def jobs(request: Request, ctx: Ctx, session: Session,
         state: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    return render(request, "jobs.html", _jobs_context(ctx, session, state))


@router.get("/jobs/table")
def jobs_table(request: Request, ctx: Ctx, session: Session,
               state: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    """The part of the jobs page htmx polls."""
    return render(request, "_jobs_table.html", _jobs_context(ctx, session, state))


def _jobs_context(ctx: ApiContext, session: UiSession, state: str | None) -> dict[str, Any]:
    mine = session.principal.collections
    return {"session": session,
            "jobs": queries.recent_jobs(ctx.settings, state=state or None, collections=mine),
            "counts": queries.job_counts(ctx.settings, mine), "state": state, "nav": "jobs"}


@router.get("/recognize")
def recognize_form(request: Request, ctx: Ctx, session: Session) -> Response:
    return render(request, "recognize.html", _recognize_context(ctx, session))


@router.post("/recognize")
def recognize(
    request: Request,
    ctx: Ctx,
    session: Checked,
    image: Annotated[UploadFile, File()],
    collection: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    chosen = session.principal.choose(collection or None, ctx.settings.default_collection)
    data = read_upload(image, ctx.settings.max_upload_bytes)
    result = recognize_bytes(data, ctx.settings, collection=chosen,
                             store=ctx.store, engines=ctx.engines, keep_image=True)
    context = _recognize_context(ctx, session, result.collection)
    assert result.image is not None
    context.update(result=result, photo=_display_jpeg(result.image),
                   font=max(12, round(max(result.width, result.height) / 45)))
    return render(request, "recognize.html", context)


def _recognize_context(ctx: ApiContext, session: UiSession, chosen: str | None = None
                       ) -> dict[str, Any]:
    keys = session.principal.filter(c.key for c in queries.list_collections(ctx.settings))
    default = ctx.settings.default_collection
    if not session.principal.allows(default) and keys:
        default = keys[0]
    return {"session": session, "collections": keys,
            "chosen": chosen or default, "result": None,
            "nav": "recognize", "limit_mb": ctx.settings.max_upload_bytes / 1e6}


def _display_jpeg(rgb: np.ndarray) -> str:
    """The picture recognition decoded (orientation applied), at most 1600 px, as a data
    URL; the page scales it to the full image's frame, where the boxes are."""
    pic = PILImage.fromarray(rgb)
    pic.thumbnail((1600, 1600))
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


@router.get("/video")
def video_form(request: Request, ctx: Ctx, session: Session) -> Response:
    return render(request, "video.html", _video_context(ctx, session))


@router.post("/video")
def video_start(
    ctx: Ctx,
    session: Checked,
    video: Annotated[UploadFile, File()],
    collection: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    from faceatlas.video.jobs import start_video_job

    chosen = session.principal.choose(collection or None, ctx.settings.default_collection)
    job_id = start_video_job(ctx.settings, video.file, video.filename or "clip",
                             collection=chosen, engines=ctx.engines, store=ctx.store)
    return RedirectResponse(f"/ui/video/{job_id}", 303)


@router.get("/video/{job_id}")
def video_job(request: Request, ctx: Ctx, session: Session, job_id: Id) -> Response:
    from faceatlas.video.jobs import video_job as load

    check_job(session.principal, ctx.settings, job_id)
    job = load(ctx.settings, job_id)
    context = _video_context(ctx, session)
    context.update(job=job, result=job["result"])
    return render(request, "video.html", context)


def _video_context(ctx: ApiContext, session: UiSession) -> dict[str, Any]:
    return {**_recognize_context(ctx, session), "job": None, "result": None,
            "nav": "video", "limit_mb": ctx.settings.video_max_bytes / 1e6}
