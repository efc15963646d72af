"""Refuse before reading: an ASGI gate that answers 401 to requests without credentials
before a byte of their body is read (issue 11: unauthenticated bodies were read up to 4× the
limit before the 413).

API paths need a configured token in ``Authorization`` (the same check as the routes'
dependency, which stays for the OpenAPI description); UI requests that may carry a body need
a live session cookie (the log-in form itself excepted: its body is capped small). GET pages
of the UI pass, so a browser is still redirected to the log-in page.

Failed authentications on API paths are counted per address and token prefix in the same
limiter as the UI log-in (``api.sessions``; Redis when configured): past the limit every API
request from there is 429 with ``Retry-After`` before its token is compared (issue 22).
"""

from __future__ import annotations

import json

import anyio
from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from faceatlas.api.deps import bearer_token, check_token, get_ctx
from faceatlas.api.sessions import auth_keys

#: no credentials needed: liveness and the API's own documentation
OPEN_PATHS = frozenset({"/healthz", "/docs", "/openapi.json", "/docs/oauth2-redirect"})
OPEN_PREFIXES = ("/docs/assets/",)
_UI_OPEN = ("/ui/login", "/ui/static/")
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wait = await self._locked(scope)
        if wait is None and await self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await _drain_small(scope, receive)
        if wait is not None:
            await _too_many(send, wait)
        else:
            await _refuse(scope, send)

    async def _locked(self, scope: Scope) -> int | None:
        """API requests from an address (or with a token prefix) past the failure limit:
        seconds to wait, decided before the token is compared; a wrong token counts (a
        missing one is no guess and does not)."""
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or path == "/ui" or (
                path.startswith("/ui/")):
            return None  # the UI log-in counts its own failures (same limiter)
        request = Request(scope)
        ctx = get_ctx(request)
        if ctx.auth_disabled:
            return None
        limiter = request.app.state.login_limiter
        token = bearer_token(request.headers.get("authorization"))
        keys = auth_keys(scope["client"][0] if scope.get("client") else "?", token)
        wait = await anyio.to_thread.run_sync(limiter.retry_after, *keys)
        if wait is not None:
            return int(wait)
        if not token:
            return None  # no token, no guess: a plain 401
        try:
            check_token(ctx, request.headers.get("authorization"))
        except HTTPException:
            await anyio.to_thread.run_sync(limiter.failed, *keys)
        return None

    async def _allowed(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        request = Request(scope)  # headers and cookies only: ``receive`` is never touched
        ctx = get_ctx(request)
        if ctx.auth_disabled:
            return True
        if path == "/ui" or path.startswith("/ui/"):
            if scope["method"] in _BODYLESS or path.startswith(_UI_OPEN):
                return True
            from faceatlas.api.ui.csrf import session_of  # the UI's own session check

            return await anyio.to_thread.run_sync(session_of, request) is not None
        try:
            check_token(ctx, request.headers.get("authorization"))
        except HTTPException:
            return False
        return True


#: a refused request's body is read (and dropped) up to this size: closing a socket with
#: unread bytes makes the kernel answer with a reset, and the client may then lose the 401
#: (a browser posting a form with an expired session); larger bodies stay unread
DRAIN_LIMIT = 64 * 1024
DRAIN_SECONDS = 0.5


async def _drain_small(scope: Scope, receive: Receive) -> None:
    headers = dict(scope.get("headers", []))
    try:
        declared = int(headers.get(b"content-length", b"0"))
    except ValueError:
        return
    if declared <= 0 or declared > DRAIN_LIMIT:
        return
    read = 0
    with anyio.move_on_after(DRAIN_SECONDS):  # a body that never comes is not waited for
        while read <= DRAIN_LIMIT:
            message = await receive()
            read += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return


async def _too_many(send: Send, wait: int) -> None:
    body = json.dumps({"detail": f"too many failed authentications from this address or for "
                       f"this token: try again in {wait} s", "code": "too_many_attempts"}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(wait).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope: Scope, send: Send) -> None:
    headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
    if scope["path"] == "/ui" or scope["path"].startswith("/ui/"):
        body = b'<p>Log in first: <a href="/ui/login">log in</a></p>'
        extra = [(b"hx-redirect", b"/ui/login")] if "hx-request" in headers else []
        ctype = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"detail": "missing or invalid token (Authorization: Bearer <token>)",
                           "code": "unauthorized"}).encode()
        extra = [(b"www-authenticate", b"Bearer")]
        ctype = b"application/json"
    # the body was not read: close the connection rather than leave it to the next request
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})
