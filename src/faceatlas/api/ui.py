"""The review UI: server-rendered pages under ``/ui`` (Jinja2, a little htmx, no build step).

Thin shells over ``faceatlas.review``, ``faceatlas.gallery`` and ``faceatlas.recognize``.

Log-in: the form takes one of the API tokens (compared in constant time with every configured
token) and sets a session cookie holding a random session id; the session lives in the
database (``faceatlas.api.sessions``): log-out revokes it, it expires after
``session_ttl_seconds``, and removing a token from ``FACEATLAS_API_TOKENS`` ends its sessions.
Wrong log-ins are limited per client address and per form (429 with ``Retry-After``). The
cookie is HttpOnly, SameSite=Strict, Path=/ui, and Secure — except on plain http to a
loopback host name (127.0.0.1, ::1, localhost), where browsers would not send it back;
that is what a laptop trial and the tests use. Anything else over plain http gets a Secure
cookie and so no working log-in: put TLS in front of the server.

CSRF: every form carries ``csrf`` = HMAC(session key, "csrf:" + sid); htmx sends it as the
``X-CSRF-Token`` header. A POST without the session cookie is 401, with a wrong token 403.
The log-in form itself is protected by a double-submit nonce (cookie + hidden field).

Pictures are served by id (face, image) and resolved through ``Layout``; no path from a
request ever reaches the file system.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import ipaddress
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from PIL import Image as PILImage

from faceatlas import review
from faceatlas.api import sessions
from faceatlas.api.deps import ApiContext, get_ctx
from faceatlas.api.errors import client_message, retry_headers, status_of
from faceatlas.api.tokens import ADMIN, Principal, check_face, check_image, check_person
from faceatlas.api.tokens import principal_of_known as _principal_of
from faceatlas.api.uploads import read_upload
from faceatlas.errors import FaceAtlasError, NotFoundError
from faceatlas.gallery import PROMOTABLE, list_collections, promote_person, remove_person
from faceatlas.recognize import recognize_bytes

log = logging.getLogger("faceatlas.ui")

HERE = Path(__file__).parent
COOKIE = "faceatlas_session"
LOGIN_COOKIE = "faceatlas_login"
_PROCESS_SECRET = secrets.token_bytes(32)  # signs sessions only when auth is switched off
_STATIC = {"ui.css": "text/css; charset=utf-8", "htmx.min.js": "text/javascript; charset=utf-8"}
_SECURITY_HEADERS = {
    # everything from this origin only; data: for the recognised photo; no inline script/style
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
Id = Annotated[int, PathParam(ge=1, le=2**62)]
CollectionKey = Annotated[str, PathParam(pattern=r"^[a-z0-9_\-]{1,100}$")]


# --------------------------------------------------------------------------- errors as pages


class LoginRequired(Exception):
    pass


class CsrfFailed(Exception):
    pass


@dataclass
class Problem(Exception):
    """A user-facing error page (our own words only)."""

    status: int
    title: str
    message: str
    back: str | None = None


def _wants_page(request: Request) -> bool:
    """A browser navigating to a page (redirect it to log in), not a picture or htmx call."""
    return (request.method == "GET" and "HX-Request" not in request.headers
            and not request.url.path.endswith(".jpg"))


class UiRoute(APIRoute):
    """Turns errors into HTML pages (the API's handlers answer JSON) and adds security
    headers to every answer of the UI."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except LoginRequired:
                response = _login_required(request)
            except CsrfFailed:
                response = _problem(request, Problem(
                    403, "Form expired",
                    "This form was not sent from a page of this site, or your session changed "
                    "since the page was loaded. Reload the page and try again."))
            except Problem as p:
                response = _problem(request, p)
            except FaceAtlasError as exc:
                status = status_of(exc)
                if status >= 500:
                    log.error("%s %s failed: %s", request.method, request.url.path, exc)
                response = _problem(request, Problem(status, _TITLES.get(status, "Not done"),
                                                     client_message(exc), _back(request)))
                response.headers.update(retry_headers(exc))
            except RequestValidationError:
                response = _problem(request, Problem(
                    422, "Not understood", "The address or the form had a missing or wrong "
                    "value.", _back(request)))
            except HTTPException as exc:
                response = _problem(request, Problem(
                    exc.status_code, _TITLES.get(exc.status_code, "Not done"),
                    str(exc.detail), _back(request)))
            except Exception:
                log.exception("%s %s: unexpected error", request.method, request.url.path)
                response = _problem(request, Problem(
                    500, "Something went wrong",
                    "The server could not finish this; its log has the details."))
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handler


_TITLES = {400: "Not done", 401: "Log in first", 403: "Not allowed", 404: "Not found",
           413: "Too large", 415: "Not an image", 422: "Not understood", 502: "Outside service "
           "failed", 503: "Not available"}

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _back(request: Request) -> str | None:
    """Where an error page's "back" link goes: the page the form was on (same origin only)."""
    ref = request.headers.get("referer")
    if ref:
        parts = urlsplit(ref)
        if parts.netloc == request.url.netloc and parts.path.startswith("/ui"):
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return None


def _problem(request: Request, p: Problem) -> Response:
    session = _session(request)
    return _render(request, "error.html", {"problem": p, "session": session},
                   status=p.status)


def _login_required(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/ui/login?next={quote(target)}"
    if _wants_page(request):
        return RedirectResponse(login, 303)
    headers = {"HX-Redirect": login} if "HX-Request" in request.headers else {}
    return HTMLResponse("<p>Log in first: <a href=\"/ui/login\">log in</a></p>", 401,
                        headers=headers)


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class UiSession:
    sid: str
    key: bytes
    principal: Principal = ADMIN  # whose token logged in: what this session may see

    @property
    def csrf(self) -> str:
        return _b64(hmac.new(self.key, f"csrf:{self.sid}".encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _keys(ctx: ApiContext) -> list[bytes]:
    """One CSRF key per API token (derived, so no page ever holds a token)."""
    if ctx.auth_disabled:
        return [_PROCESS_SECRET]
    return [hmac.new(t.encode("utf-8"), b"faceatlas-ui-session-v1", hashlib.sha256).digest()
            for t in ctx.settings.api_tokens]


def _fingerprints(ctx: ApiContext) -> list[str]:
    """The stored fingerprint of each configured token, in the order of ``_keys``."""
    if ctx.auth_disabled:
        return [sessions.token_fingerprint(_PROCESS_SECRET)]
    return [sessions.token_fingerprint(t) for t in ctx.settings.api_tokens]


def _session(request: Request) -> UiSession | None:
    sid = request.cookies.get(COOKIE, "")
    if not sid:
        return None
    ctx = get_ctx(request)
    fingerprint = sessions.session_fingerprint(ctx.settings, sid)
    if fingerprint is None:  # unknown, revoked or expired
        return None
    for i, (fp, key) in enumerate(zip(_fingerprints(ctx), _keys(ctx), strict=True)):
        if hmac.compare_digest(fp, fingerprint):  # its token is still configured
            principal = (ADMIN if ctx.auth_disabled
                         else _principal_of(ctx.settings, ctx.settings.api_tokens[i]))
            return UiSession(sid, key, principal)
    return None


def require_session(request: Request) -> UiSession:
    session = _session(request)
    if session is None:
        raise LoginRequired
    return session


Session = Annotated[UiSession, Depends(require_session)]


def require_csrf(request: Request, session: Session,
                 csrf: Annotated[str, Form(max_length=200)] = "") -> UiSession:
    given = csrf or request.headers.get("X-CSRF-Token", "")
    if not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise CsrfFailed
    return session


Checked = Annotated[UiSession, Depends(require_csrf)]
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def secure_cookie(request: Request) -> bool:
    """Secure, except plain http to a loopback host (browsers drop Secure cookies there)."""
    if request.url.scheme == "https":
        return True
    host = (request.url.hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int
                ) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=True,
                        samesite="strict", secure=secure_cookie(request))


def _safe_next(target: str | None) -> str:
    # only our own pages: never an open redirect to another site
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


# --------------------------------------------------------------------------- rendering


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = (datetime.now(timezone.utc) - moment).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _host(url: str | None) -> str:
    return urlsplit(url).hostname or "" if url else ""


def _static_version() -> str:
    digest = hashlib.sha256()
    for name in sorted(_STATIC):
        digest.update((HERE / "static" / name).read_bytes())
    return digest.hexdigest()[:10]


templates.env.filters["ago"] = _ago
templates.env.filters["host"] = _host
templates.env.filters["iso"] = lambda m: m.isoformat(timespec="seconds") if m else ""
templates.env.filters["label"] = lambda s: str(s).replace("_", " ")
templates.env.globals["static_version"] = _static_version()


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status,
                                      headers=headers)


# --------------------------------------------------------------------------- log in / out


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = _render(request, "login.html", {"nonce": nonce, "next": _safe_next(next),
                                               "session": None, "error": None})
    _set_cookie(response, request, LOGIN_COOKIE, nonce, 3600)
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
    keys = (f"ip:{request.client.host if request.client else '?'}", f"nonce:{nonce}")
    wait = limiter.retry_after(*keys)
    if wait is not None:
        return _render(request, "login.html", {
            "nonce": request.cookies.get(LOGIN_COOKIE, ""), "next": _safe_next(next),
            "session": None, "error": f"Too many wrong tokens from here: log-in is locked "
            f"for {wait} more seconds."}, status=429, headers={"Retry-After": str(wait)})
    cookie_nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie_nonce or not hmac.compare_digest(cookie_nonce.encode(), nonce.encode()):
        raise CsrfFailed
    given = token.strip().encode("utf-8", "surrogateescape")
    matched: str | None = None
    if ctx.auth_disabled:
        matched = _fingerprints(ctx)[0]
    else:
        for known, fp in zip(ctx.settings.api_tokens, _fingerprints(ctx), strict=True):
            if hmac.compare_digest(given, known.encode("utf-8")):  # no early exit
                matched = fp
    if matched is None:
        limiter.failed(*keys)
        response = _render(request, "login.html", {
            "nonce": cookie_nonce, "next": _safe_next(next), "session": None,
            "error": "That token is not valid."}, status=401)
        return response
    sid = sessions.create_session(ctx.settings, matched)
    response = RedirectResponse(_safe_next(next), 303)
    _set_cookie(response, request, COOKIE, sid, ctx.settings.session_ttl_seconds)
    _set_cookie(response, request, LOGIN_COOKIE, "", 0)  # spent: one nonce, one log-in
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, session: Checked) -> Response:
    sessions.revoke_session(ctx.settings, session.sid)  # a copied cookie dies with it
    response = RedirectResponse("/ui/login", 303)
    _set_cookie(response, request, COOKIE, "", 0)
    return response


# --------------------------------------------------------------------------- static files


@router.get("/static/{name}")
def static(name: str) -> Response:
    """A fixed list of files: the name never becomes a path unless it is on the list."""
    if name not in _STATIC:
        raise Problem(404, "Not found", "No such file.")
    return Response((HERE / "static" / name).read_bytes(), media_type=_STATIC[name],
                    headers={"Cache-Control": "public, max-age=86400"})


# --------------------------------------------------------------------------- pages


_FLASH = {
    "rejected": "Face {n} rejected: it left the gallery and the index.",
    "restored": "Face {n} restored.",
    "restored_gallery": "Face {n} restored and back in the gallery and the index.",
    "unchanged": "Nothing to change: face {n} already was so.",
    "below_minimum": "Fewer faces than promotion needs are left: promote again to re-check.",
    "recollect": "Queued again: `faceatlas collect` or a worker will search, download and "
                 "curate this person anew.",
    "promoted": "Promoted: the gallery and the index hold exactly the accepted faces.",
    "too_few_faces": "Not promoted: too few accepted faces (the person left the gallery).",
    "deleted": "Person {n} erased: photos, faces, gallery files and index rows.",
    "reference": "Face {n} is now a reference: the person was re-decided around it.",
    "blocked": "Not promoted: the self-test recognised a face as someone else (see above).",
    "failed": "No face group matches the references: the person is failed.",
}


def _flash(done: str | None, n: int | None) -> list[str]:
    out = []
    for code in (done or "").split(",")[:3]:
        if code in _FLASH:
            out.append(_FLASH[code].format(n=n or ""))
    return out


@router.get("")
@router.get("/")
def collections(request: Request, ctx: Ctx, session: Session,
                done: str | None = None, n: Annotated[int | None, Query(ge=0)] = None
                ) -> Response:
    overview = [c for c in review.collections_overview(ctx.settings)
                if session.principal.allows(c.key)]
    index_faces = {c.key: (len(ctx.store.get(c.key)) if ctx.store.path(c.key).exists() else 0)
                   for c in overview}
    return _render(request, "collections.html", {
        "session": session, "collections": overview, "index_faces": index_faces,
        "flash": _flash(done, n), "nav": "collections"})


@router.get("/collections/{key}")
def collection(request: Request, ctx: Ctx, session: Session, key: CollectionKey,
               state: Annotated[str | None, Query(max_length=30)] = None,
               page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    per_page = 200
    session.principal.check(key, f"no collection {key!r}")
    data = review.collection_people(ctx.settings, key, state=state or None, limit=per_page,
                                    offset=(page - 1) * per_page)
    pages = max(1, -(-data.total // per_page))
    return _render(request, "collection.html", {
        "session": session, "c": data, "state": state, "page": page, "pages": pages,
        "nav": "collections"})


@router.get("/people/{person_id}")
def person(request: Request, ctx: Ctx, session: Session, person_id: Id,
           done: str | None = None, n: Annotated[int | None, Query(ge=0)] = None) -> Response:
    check_person(session.principal, ctx.settings, person_id)
    data = review.person_review(ctx.settings, person_id)
    return _render(request, "person.html", {
        "session": session, "p": data, "flash": _flash(done, n), "nav": "collections",
        "promotable": PROMOTABLE})


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
    return _to_person(r.person_id, *codes, n=face_id, anchor="#accepted")


@router.post("/faces/{face_id}/restore")
def restore(ctx: Ctx, session: Checked, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    r = review.restore_face(ctx.settings, face_id, store=ctx.store)
    code = ("restored_gallery" if r.in_gallery else "restored") if r.changed else "unchanged"
    return _to_person(r.person_id, code, n=face_id, anchor="#accepted")


@router.post("/faces/{face_id}/reference")
def reference(ctx: Ctx, _: Checked, face_id: Id) -> Response:
    r = review.mark_reference(ctx.settings, face_id, store=ctx.store)
    codes = ["reference"] + (["failed"] if r.state == "failed" else [])
    return _to_person(r.person_id, *codes, n=face_id, anchor="#accepted")


@router.post("/people/{person_id}/recollect")
def recollect(ctx: Ctx, session: Checked, person_id: Id) -> Response:
    check_person(session.principal, ctx.settings, person_id)
    r = review.recollect_person(ctx.settings, person_id)
    return _to_person(r.person_id, "recollect")


@router.post("/people/{person_id}/promote")
def promote(ctx: Ctx, session: Checked, person_id: Id) -> Response:
    check_person(session.principal, ctx.settings, person_id)
    data = review.person_review(ctx.settings, person_id)
    if data.state not in PROMOTABLE:
        raise Problem(409, "Not promotable", f"{data.name} is {data.state.replace('_', ' ')}: "
                      "only curated people can be promoted.", f"/ui/people/{person_id}")
    result = promote_person(person_id, ctx.settings, store=ctx.store)
    return _to_person(person_id, result.state)


@router.post("/people/{person_id}/delete")
def delete(ctx: Ctx, session: Checked, person_id: Id,
           confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    check_person(session.principal, ctx.settings, person_id)
    if confirm != "yes":
        raise Problem(400, "Not deleted", "Tick the box to confirm the deletion.",
                      f"/ui/people/{person_id}#danger")
    report = remove_person(person_id, ctx.settings, store=ctx.store)
    return RedirectResponse(f"/ui/collections/{report.collection}?done=deleted&n={person_id}",
                            303)


@router.get("/jobs")
def jobs(request: Request, ctx: Ctx, session: Session,
         state: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    return _render(request, "jobs.html", _jobs_context(ctx, session, state))


@router.get("/jobs/table")
def jobs_table(request: Request, ctx: Ctx, session: Session,
               state: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    """The part of the jobs page htmx polls."""
    return _render(request, "_jobs_table.html", _jobs_context(ctx, session, state))


def _jobs_context(ctx: ApiContext, session: UiSession, state: str | None) -> dict[str, Any]:
    mine = session.principal.collections
    return {"session": session,
            "jobs": review.recent_jobs(ctx.settings, state=state or None, collections=mine),
            "counts": review.job_counts(ctx.settings, mine), "state": state, "nav": "jobs"}


@router.get("/recognize")
def recognize_form(request: Request, ctx: Ctx, session: Session) -> Response:
    return _render(request, "recognize.html", _recognize_context(ctx, session))


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
    return _render(request, "recognize.html", context)


def _recognize_context(ctx: ApiContext, session: UiSession, chosen: str | None = None
                       ) -> dict[str, Any]:
    keys = session.principal.filter(c.key for c in list_collections(ctx.settings))
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


# --------------------------------------------------------------------------- video


@router.get("/video")
def video_form(request: Request, ctx: Ctx, session: Session) -> Response:
    return _render(request, "video.html", _video_context(ctx, session))


@router.post("/video")
def video_start(
    ctx: Ctx,
    _: Checked,
    video: Annotated[UploadFile, File()],
    collection: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    from faceatlas.video.jobs import start_video_job

    job_id = start_video_job(ctx.settings, video.file, video.filename or "clip",
                             collection=collection or None, engines=ctx.engines,
                             store=ctx.store)
    return RedirectResponse(f"/ui/video/{job_id}", 303)


@router.get("/video/{job_id}")
def video_job(request: Request, ctx: Ctx, session: Session, job_id: Id) -> Response:
    from faceatlas.video.jobs import video_job as load

    job = load(ctx.settings, job_id)
    context = _video_context(ctx, session)
    context.update(job=job, result=job["result"])
    return _render(request, "video.html", context)


@router.get("/video/{job_id}/tracks/{track}.jpg")
def video_thumb(ctx: Ctx, _: Session, job_id: Id, track: Id) -> Response:
    from faceatlas.video.jobs import video_thumbnail

    return _jpeg(video_thumbnail(ctx.settings, job_id, track))


def _video_context(ctx: ApiContext, session: UiSession) -> dict[str, Any]:
    return {"session": session, "collections": [c.key for c in list_collections(ctx.settings)],
            "chosen": ctx.settings.default_collection, "job": None, "result": None,
            "nav": "video", "limit_mb": ctx.settings.video_max_bytes / 1e6}


# --------------------------------------------------------------------------- pictures by id


def _jpeg(data: bytes) -> Response:
    # private: only this logged-in browser caches it; the picture of an id never changes
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/faces/{face_id}/thumb.jpg")
def face_thumb(ctx: Ctx, session: Session, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    return _jpeg(review.face_image(ctx.settings, face_id))


@router.get("/faces/{face_id}/crop.jpg")
def face_crop(ctx: Ctx, session: Session, face_id: Id) -> Response:
    check_face(session.principal, ctx.settings, face_id)
    return _jpeg(review.face_image(ctx.settings, face_id, thumb=False))


@router.get("/images/{image_id}/thumb.jpg")
def image_thumb(ctx: Ctx, session: Session, image_id: Id) -> Response:
    try:
        check_image(session.principal, ctx.settings, image_id)
        return _jpeg(review.image_thumbnail(ctx.settings, image_id))
    except NotFoundError:
        return Response(status_code=404)
