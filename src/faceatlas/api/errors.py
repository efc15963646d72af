"""Errors as JSON ``{"detail": ...}``: one handler maps FaceAtlasError subclasses to statuses,
anything else is a 500 whose text stays in the log; and a request-body size guard."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceatlas.domain.errors import (
    AMBIGUOUS_WORD,
    AmbiguousError,
    BusyError,
    ConfigError,
    DownloadError,
    FaceAtlasError,
    ImageError,
    NotFoundError,
    ProviderError,
    StorageError,
)

log = logging.getLogger("faceatlas.api")

_STATUS: list[tuple[type[FaceAtlasError], int]] = [
    (NotFoundError, 404),
    (BusyError, 503),
    (ImageError, 422),
    (ProviderError, 502),
    (DownloadError, 502),
    (ConfigError, 503),  # the server lacks a setting (an API key): not the client's fault
    (StorageError, 500),
    (FaceAtlasError, 400),
]


def status_of(exc: FaceAtlasError) -> int:
    if isinstance(exc, ImageError) and exc.code in ("not_an_image", "not_a_video"):
        return 415
    if isinstance(exc, AmbiguousError) and exc.code == AMBIGUOUS_WORD:
        return 400  # the request's word, not a missing thing
    return next(code for cls, code in _STATUS if isinstance(exc, cls))


def client_message(exc: FaceAtlasError) -> str:
    """Our own messages are meant for users, but some carry a library's text (Pillow's
    decode errors, file paths in storage errors): those get a fixed sentence instead."""
    if getattr(exc, "client_safe", False):
        return exc.message
    if isinstance(exc, ImageError):
        if exc.code == "not_an_image":
            return "the upload is not an image (send a JPEG, PNG, WebP, GIF, BMP or TIFF file)"
        if "MP limit" in exc.message or "decode budget" in exc.message:  # our own words
            return f"image too large to decode: {exc.message}"
        return "the image could not be decoded (truncated or corrupt file)"
    if isinstance(exc, BusyError):
        return exc.message
    if isinstance(exc, ConfigError):  # our own words about a missing setting: safe to show
        return f"not available on this server: {exc.message}"
    if status_of(exc) >= 500:
        return f"internal error ({exc.code}); the server log has the details"
    return exc.message


def retry_headers(exc: Exception) -> dict[str, str]:
    """``Retry-After`` for a busy server, nothing for other errors."""
    if isinstance(exc, BusyError):
        return {"Retry-After": str(exc.retry_after)}
    return {}


def install(app: FastAPI) -> None:
    async def on_faceatlas_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FaceAtlasError)
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": client_message(exc), "code": exc.code}, status,
                            headers=retry_headers(exc))

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s: unexpected error", request.method, request.url.path,
                      exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, 500)

    app.add_exception_handler(FaceAtlasError, on_faceatlas_error)
    app.add_exception_handler(Exception, on_bug)


class _TooLarge(FaceAtlasError):
    """The request body went over its limit while the app read it: answered 413."""

    code = "too_large"

    def __init__(self, message: str = "request body over the limit") -> None:
        super().__init__(message)


class BodyLimit:
    """413 for request bodies over a per-path limit, before the multipart parser spools them
    to disk. Only requests with credentials get here (``api.guard`` refuses the others
    unread). A declared Content-Length over the limit is answered before any byte reaches the
    app: the body is thrown away up to ``DRAIN_FACTOR`` × the limit, so the client reads its
    413 instead of a connection reset, and past that the connection closes. A chunked body
    is counted as it arrives and cut at the limit."""

    DRAIN_FACTOR = 2

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._drain(receive, limit * self.DRAIN_FACTOR)
            await _send_413(send, limit)
            return
        seen = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app answers after a parse failure, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_413(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not started:
                await _send_413(send, limit)

    @staticmethod
    async def _drain(receive: Receive, cap: int) -> None:
        total = 0
        while total <= cap:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over the {limit} byte limit",
                       "code": "too_large"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
