"""The index as a whole: rebuild it from the database, compact it, describe it.

``IndexStore.update`` changes an index incrementally; these verbs are for an index that was
lost, damaged, or left behind a crash between its publication and the database commit (files →
index → rows: a promotion killed after publishing leaves rows the database does not have; the
rebuild makes the index exactly the database's gallery again).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy import select

from faceatlas.domain.states import FaceState, PersonState
from faceatlas.gallery.index import index_store
from faceatlas.gallery.promote import search_vectors
from faceatlas.gallery.recognize import existing_collection
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Face, Person


def gallery_rows(settings: Settings, collection: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, str] | None]:
    """(face ids, person ids, search vectors, engine tag) of the collection's gallery: the
    accepted faces with a gallery file of its promoted people, as promotion indexes them."""
    with session_scope(settings) as session:
        rows = session.execute(
            select(Face.id, Face.person_id, Face.embedding, Face.engine, Face.model_hash)
            .join(Person, Person.id == Face.person_id)
            .join(Collection, Collection.id == Person.collection_id)
            .where(Collection.key == collection, Person.state == PersonState.PROMOTED,
                   Face.state == FaceState.ACCEPTED, Face.gallery_path.is_not(None),
                   Face.embedding.is_not(None))
            .order_by(Face.id)
        ).all()
    if not rows:
        return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 0), np.float32),
                None)
    tag, vectors = search_vectors({(r[3], r[4]) for r in rows},
                                  np.stack([np.frombuffer(r[2], dtype=np.float32)
                                            for r in rows]), collection)
    return (np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.ascontiguousarray(vectors, dtype=np.float32), tag)


def rebuild_index(settings: Settings, collection: str) -> dict[str, Any]:
    """Replace the collection's index by one built from the database, published atomically."""
    key = existing_collection(settings, collection)
    start = time.perf_counter()
    face_ids, person_ids, vectors, tag = gallery_rows(settings, key)
    store = index_store(settings)
    if not len(face_ids):
        vectors = np.empty((0, store.get(key).dim), np.float32)
    faces = store.rebuild(key, face_ids, person_ids, vectors, tag)
    return {"collection": key, "faces": faces, "people": len(np.unique(person_ids)),
            "seconds": time.perf_counter() - start, "version": store.get(key).generation}


def compact_index(settings: Settings, collection: str) -> dict[str, Any]:
    key = existing_collection(settings, collection)
    store = index_store(settings)
    faces = store.compact(key)
    return {"collection": key, "faces": faces, "version": store.get(key).generation}


def index_status(settings: Settings, collection: str) -> dict[str, Any]:
    return index_store(settings).describe(existing_collection(settings, collection))
