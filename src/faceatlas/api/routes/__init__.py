"""The API's routers, one per resource; ``ROUTERS`` in the order the app includes them, which
is the order of the paths in the OpenAPI document.

- ``seed``: the old system's ``/recognize`` and ``/api/recognize``
- under ``/api/v1``: ``collections``, ``people`` (with enrolment), ``jobs``, ``recognize``,
  ``video`` (recognition in a clip), ``references``, ``collect`` (collect a person now),
  ``tools`` (verify, detect, stats, export), ``sightings`` (appearances, candidates,
  recording switch, erasure)
- ``excel``: the old system's spreadsheet endpoints under ``/api/excel``
- ``surgery``: move faces, merge and split people, their audit (last: the paths before it
  keep their order)
"""

from __future__ import annotations

from fastapi import APIRouter

from faceatlas.api.routes import (
    collect,
    collections,
    excel,
    jobs,
    people,
    recognize,
    references,
    seed,
    sightings,
    surgery,
    tools,
    video,
)

ROUTERS: tuple[APIRouter, ...] = (
    seed.router, collections.router, people.router, jobs.router, recognize.router,
    video.router, references.router, collect.router, tools.router, sightings.router,
    excel.router, surgery.router,
)
