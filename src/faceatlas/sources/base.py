"""What every image-search provider answers, behind one protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    # -- keyless sources (issue 14): who answered, and the file's reuse terms
    provider: str | None = None  # None: the seed's provider, rapidapi
    licence: str | None = None
    licence_url: str | None = None
    author: str | None = None
    detail: str | None = None  # e.g. "p18": the person's Wikidata portrait


@dataclass(frozen=True)
class PersonQuery:
    """Who to find photos of: providers that know people (Commons) use the Q-id."""

    name: str
    occupations: Sequence[str] = field(default_factory=tuple)
    qid: str | None = None
    person_id: int | None = None


@runtime_checkable
class ImageSearchProvider(Protocol):
    def search(self, query: str, limit: int) -> list[SearchHit]:
        """Up to ``limit`` hits; raises a ProviderError subclass when the provider fails."""
        ...


@runtime_checkable
class PersonSearchProvider(Protocol):
    """A provider that searches by person (e.g. Wikidata Q-id), not by a query string."""

    def search_person(self, person: PersonQuery, limit: int) -> list[SearchHit]: ...


def person_hits(provider: object, person: PersonQuery, limit: int,
                search_limit: int | None = None) -> list[SearchHit]:
    """Hits for a person from any provider: by person when it can, else one query per
    occupation (``"<name> <occupation>"``, ``search_limit`` hits asked each), de-duplicated
    by URL, at most ``limit``."""
    if isinstance(provider, PersonSearchProvider):
        return provider.search_person(person, limit)[:limit]
    assert isinstance(provider, ImageSearchProvider)
    hits: list[SearchHit] = []
    seen: set[str] = set()
    for occupation in list(person.occupations) or [""]:
        query = query_for(person.name, occupation or None)
        for hit in provider.search(query, search_limit or limit):
            if hit.url not in seen and len(hits) < limit:
                seen.add(hit.url)
                hits.append(hit)
    return hits


def query_for(name: str, occupation: str | None = None) -> str:
    """The search query for a person: ``"<name> <occupation>"`` (the seed dropped occupation,
    which made namesakes win)."""
    return " ".join(f"{name} {occupation or ''}".split())
