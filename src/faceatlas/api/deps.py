"""What every route shares: the app context (settings, index store, engines) and the token
check."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from faceatlas.index import IndexStore
from faceatlas.recognize import EnginePool
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


# An API-key header rather than HTTPBearer: old clients send the raw token without "Bearer ".
_authorization = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="token",
    description="`Bearer <token>`, or the raw token (old clients).",
)


def require_token(
    request: Request, authorization: str | None = Security(_authorization)
) -> None:
    check_token(get_ctx(request), authorization)


def check_token(ctx: ApiContext, authorization: str | None) -> None:
    """HTTPException 401 unless ``authorization`` carries a configured token (the route
    dependency and the body-less gate in ``api.guard`` both ask this)."""
    if ctx.auth_disabled:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization or not authorization.strip():
        raise HTTPException(401, "missing Authorization header (Bearer token)", challenge)
    token = authorization.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    given = token.encode("utf-8", "surrogateescape")
    # compare with every token, no early exit: timing does not tell which one nearly matched
    matched = False
    for known in ctx.settings.api_tokens:
        matched |= hmac.compare_digest(given, known.encode("utf-8"))
    if not matched:
        raise HTTPException(401, "invalid token", challenge)
