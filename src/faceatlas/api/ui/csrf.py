"""Who is logged in to the review UI, and CSRF.

Log-in: the form takes one of the API tokens (compared in constant time with every configured
token) and sets a session cookie holding a random session id; the session lives in the
database (``faceatlas.api.sessions``): log-out revokes it, it expires after
``session_ttl_seconds``, and removing a token from ``FACEATLAS_API_TOKENS`` ends its sessions.
The cookie is HttpOnly, SameSite=Strict, Path=/ui, and Secure — except on plain http to a
loopback host name (127.0.0.1, ::1, localhost), where browsers would not send it back;
that is what a laptop trial and the tests use. Anything else over plain http gets a Secure
cookie and so no working log-in: put TLS in front of the server.

CSRF: every form carries ``csrf`` = HMAC(session key, "csrf:" + sid); htmx sends it as the
``X-CSRF-Token`` header. A POST without the session cookie is 401, with a wrong token 403.
The log-in form itself is protected by a double-submit nonce (cookie + hidden field).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from faceatlas.api import sessions
from faceatlas.api.deps import ApiContext, get_ctx
from faceatlas.api.tokens import ADMIN, Principal
from faceatlas.api.tokens import principal_of_known as _principal_of
from faceatlas.domain.errors import FaceAtlasError

COOKIE = "faceatlas_session"
LOGIN_COOKIE = "faceatlas_login"
_PROCESS_SECRET = secrets.token_bytes(32)  # signs sessions only when auth is switched off


class LoginRequired(FaceAtlasError):
    """No UI session: the UI redirects to the log-in page (``base.UiRoute``)."""

    code = "login_required"

    def __init__(self, message: str = "log in first") -> None:
        super().__init__(message)


class CsrfFailed(FaceAtlasError):
    """A form whose CSRF token is not this session's: the UI answers "Form expired"."""

    code = "csrf_failed"

    def __init__(self, message: str = "the form's CSRF token does not match the session") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class UiSession:
    sid: str
    key: bytes
    principal: Principal = ADMIN  # whose token logged in: what this session may see
    fingerprint: str | None = None  # of that token (audits say who; never the token)

    def mac(self, purpose: str, *values: str) -> bytes:
        """HMAC(session key, purpose:sid[:value…]): what this session may send back (its CSRF
        token, a signed value a page handed out) and no other session can forge."""
        message = ":".join((purpose, self.sid, *values))
        return hmac.new(self.key, message.encode(), hashlib.sha256).digest()

    @property
    def csrf(self) -> str:
        return _b64(self.mac("csrf"))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def csrf_keys(ctx: ApiContext) -> list[bytes]:
    """One CSRF key per API token (derived, so no page ever holds a token)."""
    if ctx.auth_disabled:
        return [_PROCESS_SECRET]
    return [hmac.new(t.encode("utf-8"), b"faceatlas-ui-session-v1", hashlib.sha256).digest()
            for t in ctx.settings.api_tokens]


def token_fingerprints(ctx: ApiContext) -> list[str]:
    """The stored fingerprint of each configured token, in the order of ``_keys``."""
    if ctx.auth_disabled:
        return [sessions.token_fingerprint(_PROCESS_SECRET)]
    return [sessions.token_fingerprint(t) for t in ctx.settings.api_tokens]


def session_of(request: Request) -> UiSession | None:
    sid = request.cookies.get(COOKIE, "")
    if not sid:
        return None
    ctx = get_ctx(request)
    fingerprint = sessions.session_fingerprint(ctx.settings, sid)
    if fingerprint is None:  # unknown, revoked or expired
        return None
    for i, (fp, key) in enumerate(zip(token_fingerprints(ctx), csrf_keys(ctx), strict=True)):
        if hmac.compare_digest(fp, fingerprint):  # its token is still configured
            principal = (ADMIN if ctx.auth_disabled
                         else _principal_of(ctx.settings, ctx.settings.api_tokens[i]))
            return UiSession(sid, key, principal, fingerprint)
    return None


def require_session(request: Request) -> UiSession:
    session = session_of(request)
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


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int
                ) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=True,
                        samesite="strict", secure=secure_cookie(request))


def safe_next(target: str | None) -> str:
    # only our own pages: never an open redirect to another site
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"
