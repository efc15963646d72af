"""The app factory: ``create_app(settings)``; ``faceatlas serve`` runs it with uvicorn.

Everything but ``/healthz`` (and the API docs) needs a token from ``FACEATLAS_API_TOKENS``;
with no token configured the app refuses to start unless auth is explicitly switched off, and
so it does with a token shorter than 16 characters. The schema is migrated here, before the
first request (never inside one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from faceatlas.api import docs, errors
from faceatlas.api.deps import ApiContext, require_token
from faceatlas.api.guard import AuthGate
from faceatlas.api.routes import ROUTERS
from faceatlas.api.schemas import Health
from faceatlas.api.sessions import check_tokens, failure_limiter
from faceatlas.domain.errors import ConfigError
from faceatlas.faces.image import bound_heap
from faceatlas.gallery.index import index_store
from faceatlas.gallery.recognize import engine_pool
from faceatlas.settings import Settings, get_settings
from faceatlas.store.db import prepare_database

log = logging.getLogger("faceatlas.api")

#: a bulk enrolment may carry this many times the single-upload limit in one request
ENROL_BODY_FACTOR = 8
_OVERHEAD = 64 * 1024  # multipart boundaries and form fields


def create_app(
    settings: Settings | None = None,
    *,
    insecure_no_auth: bool = False,
    engines: int | None = None,
) -> FastAPI:
    """The API app. ``engines``: face engines for concurrent recognitions (default: cores)."""
    settings = settings or get_settings()
    if not settings.api_tokens and not insecure_no_auth:
        raise ConfigError(
            "no API tokens configured: set FACEATLAS_API_TOKENS=<token>[,<token>…] "
            "(or, for a local trial only, pass --insecure-no-auth)"
        )
    if not insecure_no_auth:
        check_tokens(settings.api_tokens)
    if insecure_no_auth:
        log.warning("authentication is OFF: every endpoint is open to anyone who can connect")
    bound_heap()  # large decode buffers go back to the system when freed (issue 22)
    # once, now, under the migration lock: concurrent first requests find the schema ready
    prepare_database(settings)
    ctx = ApiContext(
        settings=settings, store=index_store(settings),
        engines=engine_pool(settings, engines), auth_disabled=insecure_no_auth,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # load the models (and the default index) before the first request, not during it
        await asyncio.to_thread(ctx.engines.warm)
        if ctx.store.exists(settings.default_collection):
            await asyncio.to_thread(ctx.store.get, settings.default_collection)
        from faceatlas.jobs.sightings import start_purge_timer

        stop_purge = start_purge_timer(settings)  # sightings past their retention (issue 24)
        yield
        stop_purge()

    app = FastAPI(
        title="faceatlas",
        summary="Face-recognition galleries of public figures.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from a local copy by api.docs, not from a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    # one count of failed authentications for the UI log-in and every API route
    app.state.login_limiter = failure_limiter(settings)
    docs.install(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness; no token needed."""
        return Health(status="ok")

    protected = [Depends(require_token)]
    for router in ROUTERS:
        app.include_router(router, dependencies=protected)
    from faceatlas.api import ui  # review pages: cookie log-in with the same tokens, CSRF

    app.include_router(ui.router)
    errors.install(app)

    single = settings.max_upload_bytes + _OVERHEAD
    bulk = settings.max_upload_bytes * ENROL_BODY_FACTOR + _OVERHEAD

    video = settings.video_max_bytes + _OVERHEAD

    def body_limit(path: str) -> int:
        path = path.rstrip("/")
        if path in ("/api/v1/recognize/video", "/ui/video"):
            return video
        if path == "/api/v1/people":
            return bulk
        if path == "/api/v1/verify":  # two photos
            return 2 * single
        if path.startswith("/ui") and path != "/ui/recognize":  # log-in and small forms
            return settings.login_body_bytes
        return single

    app.add_middleware(errors.BodyLimit, limit_for=body_limit)
    app.add_middleware(AuthGate)  # outermost: no credentials, no body read at all
    return app


def check_bind(host: str, insecure_no_auth: bool) -> None:
    """ConfigError for serving without authentication on anything but a loopback address."""
    if not insecure_no_auth:
        return
    name = host.strip("[]").lower()
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"--insecure-no-auth serves every endpoint to anyone who can connect: it is only "
            f"allowed on a loopback address (127.0.0.1, ::1, localhost), not on {host!r}. "
            "Set FACEATLAS_API_TOKENS instead."
        )


# Options of `faceatlas serve --workers N`, handed to each uvicorn worker process (they import
# the app by name, so they cannot take arguments); the parent checked the bind address.
SERVE_OPTIONS_ENV = "FACEATLAS_SERVE_OPTIONS"


def worker_app() -> FastAPI:
    """The app of one `serve --workers N` process: every worker maps the same index files."""
    import json
    import os

    options = json.loads(os.environ.get(SERVE_OPTIONS_ENV) or "{}")
    return create_app(get_settings(), insecure_no_auth=bool(options.get("insecure_no_auth")),
                      engines=options.get("engines"))
