"""What every route shares: the app context (settings, index store, engines) and the token
check."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyHeader

from faceatlas.api.sessions import token_fingerprint
from faceatlas.api.tokens import ADMIN, Principal, principal_for
from faceatlas.gallery.index import IndexStore
from faceatlas.gallery.recognize import EnginePool
from faceatlas.settings import Settings


@dataclass
class ApiContext:
    settings: Settings
    store: IndexStore
    engines: EnginePool
    auth_disabled: bool = False
    # curation uses the process-wide engine of faces.analyse, which must not run in two
    # threads at once: enrolments in one server process take turns
    enrol_lock: threading.Lock = field(default_factory=threading.Lock)


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


#: the app context as a route parameter (API routes and UI pages alike)
Ctx = Annotated[ApiContext, Depends(get_ctx)]

#: an id in an API path; ids are SQL integers: bound them so a huge number is a 422, not a
#: database overflow
Id = Annotated[int, Path(ge=1, le=2**62)]


# An API-key header rather than HTTPBearer: old clients send the raw token without "Bearer ".
_authorization = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="token",
    description="`Bearer <token>`, or the raw token (old clients).",
)


def require_token(
    request: Request, authorization: str | None = Security(_authorization)
) -> Principal:
    """The caller's Principal (admin, or bound to collections: see ``api.tokens``)."""
    return check_token(get_ctx(request), authorization)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization`` header (``Bearer`` optional; empty when none)."""
    token = (authorization or "").strip()
    return token[7:].strip() if token[:7].lower() == "bearer " else token


def caller_fingerprint(request: Request) -> str | None:
    """The caller's token as its fingerprint (an HMAC, never the token), for what a request
    records: sightings, audit entries."""
    token = bearer_token(request.headers.get("authorization"))
    return token_fingerprint(token) if token else None


def check_token(ctx: ApiContext, authorization: str | None) -> Principal:
    """The Principal of ``authorization``, or HTTPException 401 (the route dependency and
    the body-less gate in ``api.guard`` both ask this)."""
    if ctx.auth_disabled:
        return ADMIN
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization or not authorization.strip():
        raise HTTPException(401, "missing Authorization header (Bearer token)", challenge)
    principal = principal_for(ctx.settings, bearer_token(authorization))
    if principal is None:
        raise HTTPException(401, "invalid token", challenge)
    return principal


#: a route's caller; FastAPI runs ``require_token`` once per request however often it is named
Caller = Annotated[Principal, Depends(require_token)]
