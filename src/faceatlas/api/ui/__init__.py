"""The review UI: server-rendered pages under ``/ui`` (Jinja2, a little htmx, no build step).

- ``base``: the router, errors as HTML pages, security headers, templates
- ``csrf``: the session cookie → who is logged in (``api/sessions.py`` stores sessions), CSRF
- ``pages``: log-in and the pages and forms, thin shells over the library
- ``collection``: a collection's people (search, filters, paging) and bulk actions
- ``pictures``: faces, photos and video tracks by id; static files
- ``sightings``: a person's appearances (CSV, crops), a collection's Candidates page
- ``surgery``: move or split off ticked faces, merge another person in (issue 24)
"""

from __future__ import annotations

from faceatlas.api.ui import (  # noqa: F401  (they register routes)
    collection,
    pages,
    pictures,
    sightings,
    surgery,
)
from faceatlas.api.ui.base import router

__all__ = ["router"]
