"""RapidAPI "Real-Time Image Search": the image provider the seed system used.

Same request as the seed (``limit=100``, ``size=1024x768_and_more``, ``type=face``,
``region=us``), but the answer is validated: a broken item is skipped and counted instead of
crashing the run, and the failure modes map to the error tree (401/403 stop the run, 429 waits
and retries, 5xx and timeouts retry with backoff). Built from settings, it paces itself by the
search host's budget (``FACEATLAS_HOST_BUDGETS``; unpaced when unlisted) and, with a broker,
shares that budget and every ``Retry-After`` with all workers (``web/budget.py``).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from faceatlas.domain.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    ProviderError,
    RateLimitError,
)
from faceatlas.settings import Settings
from faceatlas.sources.base import SearchHit, query_for
from faceatlas.web.budget import HostBudget, host_budget, host_key, host_rate

log = logging.getLogger(__name__)

__all__ = ["RapidAPIImageSearch", "query_for"]


def _lenient_int(value: Any) -> int | None:
    """Providers send sizes as ints, floats or strings; junk becomes None, not a failure."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return None


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    thumbnail_url: str | None = None
    width: int | None = None
    height: int | None = None
    source_url: str | None = None
    title: str | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> str:
        url = _http_url(value)
        if url is None:
            raise ValueError("url missing or not http(s)")
        return url

    @field_validator("thumbnail_url", "source_url", mode="before")
    @classmethod
    def _optional_url(cls, value: Any) -> str | None:
        return _http_url(value)

    @field_validator("width", "height", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int | None:
        return _lenient_int(value)

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: Any) -> str | None:
        return value if isinstance(value, str) else None


class RapidAPIImageSearch:
    """``ImageSearchProvider`` over RapidAPI Real-Time Image Search.

    After each ``search``, ``last_skipped`` says how many items were dropped as malformed.
    ``sleep`` is the wait function (tests pass a recorder to keep runs fast).
    """

    def __init__(
        self,
        api_key: str | SecretStr,
        url: str = "https://real-time-image-search.p.rapidapi.com/search",
        host: str = "real-time-image-search.p.rapidapi.com",
        client: httpx.Client | None = None,
        max_retries: int = 3,
        *,
        backoff: float = 1.0,
        max_retry_after: float = 30.0,
        timeout: float = 30.0,
        size: str = "1024x768_and_more",
        image_type: str = "face",
        region: str = "us",
        sleep: Callable[[float], None] = time.sleep,
        budget: HostBudget | None = None,
        rate: float = 0.0,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key or not key.strip():
            raise ConfigError("RAPIDAPI_KEY is not set: the image search needs a RapidAPI key")
        self._key = SecretStr(key.strip())  # SecretStr: never shows up in reprs or logs
        self.url, self.host = url, host
        self.max_retries = max(0, max_retries)
        self.backoff, self.max_retry_after = backoff, max_retry_after
        self.params = {"size": size, "type": image_type, "region": region}
        self._sleep = sleep
        # None: no pacing and a Retry-After waited out here alone (as before budgets)
        self.budget, self.rate, self._host_key = budget, rate, host_key(url)
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self.last_skipped = 0

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> RapidAPIImageSearch:
        key = settings.rapidapi_key
        if key is None or not key.get_secret_value().strip():
            raise ConfigError("RAPIDAPI_KEY is not set: the image search needs a RapidAPI key")
        kwargs.setdefault("backoff", settings.image_search_backoff)
        kwargs.setdefault("budget", host_budget(settings))
        kwargs.setdefault("rate", host_rate(settings, settings.image_search_url))
        return cls(key, url=settings.image_search_url, host=settings.image_search_host, **kwargs)

    def __repr__(self) -> str:
        return f"RapidAPIImageSearch(url={self.url!r})"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request
    def search(self, query: str, limit: int = 100) -> list[SearchHit]:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search query must be a non-empty string")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        params = {"query": query.strip(), "limit": str(limit), **self.params}
        headers = {"x-rapidapi-key": self._key.get_secret_value(), "x-rapidapi-host": self.host}
        attempt = 0
        while True:
            failure: ProviderError
            if self.budget is not None:
                self.budget.acquire(self._host_key, self.rate, self._sleep)
            told = False  # the host said how long to wait (Retry-After)
            try:
                response = self._client.get(self.url, params=params, headers=headers)
            except httpx.TimeoutException:
                failure = ProviderError(f"image search timed out for {query!r}")
                wait = self._backoff(attempt)
            except httpx.TransportError as exc:
                failure = ProviderError(f"image search unreachable: {type(exc).__name__}")
                wait = self._backoff(attempt)
            else:
                status = response.status_code
                if status in (401, 403):
                    raise AuthError(f"image search refused the request (HTTP {status}): "
                                    "bad or missing key — set RAPIDAPI_KEY")  # fmt: skip
                if status == 429:
                    failure = RateLimitError(f"image search rate limit still hit after "
                                             f"{attempt + 1} attempts")  # fmt: skip
                    wait = self._retry_after(response, attempt)
                    told = bool((response.headers.get("Retry-After") or "").strip())
                elif status >= 500:
                    failure = ProviderError(f"image search failed: HTTP {status} after "
                                            f"{attempt + 1} attempts")  # fmt: skip
                    wait = self._backoff(attempt)
                elif status != 200:
                    raise ProviderError(f"image search answered HTTP {status}")
                else:
                    return self._parse(response, query, limit)
            if told and self.budget is not None:  # every worker waits, not only this one
                self.budget.pause(self._host_key, wait)
            if attempt >= self.max_retries:
                raise failure
            log.info("image search: %s; retrying in %.2fs", failure.code, wait)
            self._sleep(wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * (2**attempt), self.max_retry_after)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        """Seconds from Retry-After (delta or HTTP date), capped; backoff when absent/bad."""
        raw = (response.headers.get("Retry-After") or "").strip()
        wait: float | None = None
        if raw:
            try:
                wait = float(raw)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(raw)
                    wait = (when - datetime.now(UTC)).total_seconds()
                except (TypeError, ValueError):
                    wait = None
        if wait is None or wait < 0:
            return self._backoff(attempt)
        return min(wait, self.max_retry_after)

    def _parse(self, response: httpx.Response, query: str, limit: int) -> list[SearchHit]:
        try:
            body = response.json()
        except ValueError:
            msg = "image search answered with something that is not JSON"
            raise BadResponseError(msg) from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadResponseError("image search answer has no 'data' list")
        if body.get("status") not in (None, "OK"):
            raise ProviderError(f"image search status {str(body.get('status'))[:40]!r}")
        hits: list[SearchHit] = []
        skipped = 0
        for position, raw in enumerate(body["data"]):
            try:
                item = _Item.model_validate(raw)
            except ValidationError:
                skipped += 1
                continue
            hits.append(SearchHit(url=item.url, thumbnail_url=item.thumbnail_url,
                                  width=item.width, height=item.height,
                                  source_url=item.source_url, title=item.title,
                                  rank=position, query=query))  # fmt: skip
        self.last_skipped = skipped
        if skipped:
            log.info("image search %r: skipped %d malformed items", query, skipped)
        return hits[:limit]
