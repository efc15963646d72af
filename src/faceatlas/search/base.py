"""What every image-search provider answers, behind one protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SearchHit:
    """One image found for a query; ``rank`` is its 0-based position in the provider's answer."""

    url: str
    thumbnail_url: str | None
    width: int | None
    height: int | None
    source_url: str | None
    title: str | None
    rank: int
    query: str


@runtime_checkable
class ImageSearchProvider(Protocol):
    def search(self, query: str, limit: int) -> list[SearchHit]:
        """Up to ``limit`` hits; raises a ProviderError subclass when the provider fails."""
        ...


def query_for(name: str, occupation: str | None = None) -> str:
    """The search query for a person: ``"<name> <occupation>"`` (the seed dropped occupation,
    which made namesakes win)."""
    return " ".join(f"{name} {occupation or ''}".split())
