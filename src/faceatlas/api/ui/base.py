"""What every review-UI route shares: the router, errors turned into HTML pages, security
headers, the templates and their filters."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import Field

from faceatlas.api.errors import client_message, retry_headers, status_of
from faceatlas.api.ui.csrf import CsrfFailed, LoginRequired, session_of
from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.people import find_person

log = logging.getLogger("faceatlas.ui")

HERE = Path(__file__).parent.parent  # faceatlas/api: templates/ and static/
STATIC_FILES = {"ui.css": "text/css; charset=utf-8",
                "htmx.min.js": "text/javascript; charset=utf-8",
                "ui.js": "text/javascript; charset=utf-8"}
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
#: the largest row id a form or an address may name (SQLite's INTEGER is 64-bit signed: a
#: larger number would fail in the database, not in validation)
MAX_ID = 2**62
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]
#: one id among a form's repeated fields (``list[FormId]``)
FormId = Annotated[int, Field(ge=1, le=MAX_ID)]
CollectionKey = Annotated[str, PathParam(pattern=r"^[a-z0-9_\-]{1,100}$")]


class Problem(FaceAtlasError):
    """A user-facing error page (our own words only): ``status``, ``title``, ``message`` and
    where the "back" link goes."""

    code = "problem"

    def __init__(self, status: int, title: str, message: str, back: str | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.back = status, title, back


def no_collection(key: str) -> Problem:
    """The page for a collection that does not exist or that the session may not see."""
    return Problem(404, "Not found", f"No collection {key!r}.", "/ui/")


def person_named(settings: Settings, key: str, text: str, back: str) -> int:
    """The id of the person ``text`` names (a name or an id) in collection ``key``, else a
    404 page whose link goes ``back``."""
    try:
        with session_scope(settings) as s:
            return find_person(s, text.strip(), key).id
    except NotFoundError:
        raise Problem(404, "No such person", f"No person {text.strip()!r} in {key}: pick a "
                      "name from the suggestions, or give an id.", back) from None


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
            started = time.perf_counter()
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
            # the server's time for this answer (benchmarks/bench_review.py reads it)
            response.headers["Server-Timing"] = (
                f"app;dur={(time.perf_counter() - started) * 1000:.1f}")
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
    session = session_of(request)
    return render(request, "error.html", {"problem": p, "session": session},
                   status=p.status)


def _login_required(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/ui/login?next={quote(target)}"
    if _wants_page(request):
        return RedirectResponse(login, 303)
    headers = {"HX-Redirect": login} if "HX-Request" in request.headers else {}
    return HTMLResponse("<p>Log in first: <a href=\"/ui/login\">log in</a></p>", 401,
                        headers=headers)


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
    for name in sorted(STATIC_FILES):
        digest.update((HERE / "static" / name).read_bytes())
    return digest.hexdigest()[:10]


templates.env.filters["ago"] = _ago
templates.env.filters["host"] = _host
templates.env.filters["iso"] = lambda m: m.isoformat(timespec="seconds") if m else ""
templates.env.filters["label"] = lambda s: str(s).replace("_", " ")
templates.env.globals["static_version"] = _static_version()


def render(request: Request, name: str, context: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status,
                                      headers=headers)
