"""Image sources in order (``FACEATLAS_IMAGE_SOURCES=commons,rapidapi``), as one provider.

Default: ``rapidapi`` when ``RAPIDAPI_KEY`` is set (as before), else ``commons`` (keyless).
A chain asks each source in turn for the person's photos until the download cap is reached;
a source that fails for one person (timeouts, bad answers) is skipped for that person, but a
missing or refused key stops the run, as it would for that source alone.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from faceatlas.domain.errors import AuthError, ConfigError, ProviderError
from faceatlas.settings import Settings
from faceatlas.sources.base import PersonQuery, SearchHit, person_hits
from faceatlas.sources.commons import CommonsImageSearch
from faceatlas.sources.rapidapi import RapidAPIImageSearch

log = logging.getLogger(__name__)

KNOWN = ("commons", "rapidapi")


def source_names(settings: Settings) -> list[str]:
    names = list(dict.fromkeys(settings.image_sources))
    if not names:
        key = settings.rapidapi_key
        names = ["rapidapi"] if key is not None and key.get_secret_value().strip() else ["commons"]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ConfigError(f"unknown image source(s) {', '.join(unknown)} in "
                          f"FACEATLAS_IMAGE_SOURCES; known: {', '.join(KNOWN)}")  # fmt: skip
    return names


class ChainedSearch:
    """Several providers as one: hits of the first, then of the next, de-duplicated by URL."""

    def __init__(self, providers: list[Any], search_limit: int = 100) -> None:
        if not providers:
            raise ConfigError("no image source configured")
        self.providers = providers
        self.search_limit = search_limit

    def __repr__(self) -> str:
        return f"ChainedSearch({self.providers!r})"

    def close(self) -> None:
        for p in self.providers:
            close = getattr(p, "close", None)
            if close:
                close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(self, query: str, limit: int = 100) -> list[SearchHit]:
        return self._chain(lambda p, n: p.search(query, n), limit)

    def search_person(self, person: PersonQuery, limit: int) -> list[SearchHit]:
        return self._chain(lambda p, n: person_hits(p, person, n, self.search_limit), limit)

    def _chain(self, ask: Any, limit: int) -> list[SearchHit]:
        hits: list[SearchHit] = []
        seen: set[str] = set()
        failures: list[ProviderError] = []
        for provider in self.providers:
            if len(hits) >= limit:
                break
            try:
                found = ask(provider, limit - len(hits))
            except (AuthError, ConfigError):
                raise
            except ProviderError as exc:
                log.warning("image source %r failed, trying the next: %s", provider, exc)
                failures.append(exc)
                continue
            for hit in found:
                if hit.url not in seen and len(hits) < limit:
                    seen.add(hit.url)
                    hits.append(hit)
        if not hits and failures:
            raise failures[0]
        return hits


def image_search_from_settings(settings: Settings) -> ChainedSearch:
    """The configured sources, in order; fails fast on a missing key of a named source."""
    providers: list[Any] = []
    for name in source_names(settings):
        if name == "rapidapi":
            providers.append(RapidAPIImageSearch.from_settings(settings))
        else:
            providers.append(CommonsImageSearch(settings))
    return ChainedSearch(providers, settings.search_limit)
