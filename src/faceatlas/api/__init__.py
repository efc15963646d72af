"""The HTTP API: a FastAPI app over the library (``create_app``), served by ``faceatlas serve``."""

from __future__ import annotations

from faceatlas.api.app import create_app

__all__ = ["create_app"]
