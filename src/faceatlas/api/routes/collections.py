"""``GET /api/v1/collections``: the token's collections with their counts and index size
(``stats`` and the export are in ``tools``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from faceatlas.api.deps import Caller, Ctx
from faceatlas.api.schemas import CollectionOut
from faceatlas.store import queries

router = APIRouter(prefix="/api/v1")


@router.get("/collections", response_model=list[CollectionOut], tags=["collections"])
def collections(ctx: Ctx, caller: Caller) -> Any:
    """Every collection (of the token's) with its counts of people and faces, and its index
    size."""
    return [CollectionOut(**asdict(c), index_faces=ctx.store.size(c.key))
            for c in queries.list_collections(ctx.settings) if caller.allows(c.key)]
