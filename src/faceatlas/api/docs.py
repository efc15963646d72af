"""``/docs`` from a local copy of Swagger UI (the ``swagger-ui-bundle-v2`` package), so the
API's page loads no script from a CDN. Only a fixed list of files is served."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def install(app: FastAPI) -> None:
    """Add ``/docs`` and its assets (create the app with ``docs_url=None, redoc_url=None``)."""
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in _FILES:  # the name never becomes a path unless it is on the list
            raise HTTPException(404, "no such file")
        data = (swagger_ui_path / name).read_bytes()
        return Response(data, media_type=_FILES[name],
                        headers={"Cache-Control": "public, max-age=86400"})
