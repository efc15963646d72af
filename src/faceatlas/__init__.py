"""faceatlas: build, keep and serve face-recognition galleries of public figures.

The names in ``__all__`` are the library verbs a user calls (docs/architecture.md, "Public
API", lists the same; a test keeps the two equal). They load lazily, on first use: ``import
faceatlas`` stays cheap for the CLI and pulls in neither the database layer nor the models.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS: dict[str, str] = {
    # configuration and errors
    "Settings": "faceatlas.settings",
    "get_settings": "faceatlas.settings",
    "FaceAtlasError": "faceatlas.domain.errors",
    # who: names in and out
    "generate_names": "faceatlas.names.service",
    "import_people": "faceatlas.names.service",
    "export_people": "faceatlas.names.service",
    # collecting faces
    "import_folder": "faceatlas.jobs.importer",
    "enrol_person": "faceatlas.jobs.importer",
    "collect_person": "faceatlas.jobs.collect",
    "collect_people": "faceatlas.jobs.collect",
    "reembed": "faceatlas.gallery.reembed",
    # the gallery
    "promote": "faceatlas.gallery.promote",
    "promote_person": "faceatlas.gallery.promote",
    "unpromote_person": "faceatlas.gallery.promote",
    "remove_person": "faceatlas.gallery.erase",
    # a reviewer's corrections
    "reject_face": "faceatlas.gallery.review",
    "restore_face": "faceatlas.gallery.review",
    "recollect_person": "faceatlas.gallery.review",
    "mark_reference": "faceatlas.gallery.review",
    "add_reference": "faceatlas.curation.references",
    # recognition
    "recognize_bytes": "faceatlas.gallery.recognize",
    "recognize_file": "faceatlas.gallery.recognize",
    "recognize_video": "faceatlas.video.recognize",
    # the catalogue (read only)
    "list_collections": "faceatlas.store.queries",
    "list_people": "faceatlas.store.queries",
    "person_detail": "faceatlas.store.queries",
    "person_images": "faceatlas.store.queries",
    "list_jobs": "faceatlas.store.queries",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceatlas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

