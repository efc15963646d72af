"""One polite HTTP client for Wikidata (action API, SPARQL) and Wikimedia Commons.

Wikimedia's API etiquette, as code: a descriptive User-Agent with a contact
(``FACEATLAS_WIKIMEDIA_CONTACT``), ``maxlag`` on every ``api.php`` request, one request at a
time per host at most every ``wikimedia_min_interval`` seconds (or the host's
``FACEATLAS_HOST_BUDGETS`` rate) — shared by every worker through Redis when a broker is set
(``web/budget.py``) —, waits on 429/503 and ``maxlag`` errors that honour ``Retry-After`` (and
with a broker make every worker wait), and answers cached on disk under the home so a re-run
asks nothing twice. Every failure ends as a ProviderError subclass with a sentence saying what.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import urlencode

import httpx

from faceatlas import __version__
from faceatlas.domain.errors import AuthError, BadResponseError, ProviderError, RateLimitError
from faceatlas.settings import Settings
from faceatlas.store.files import Layout, read_cached, write_cached
from faceatlas.web.budget import HostBudget, host_budget, host_key, host_rate, wikimedia_rate

log = logging.getLogger(__name__)

_RETRY_STATUS = {429, 503}
_warned = False


def user_agent(contact: str) -> str:
    """``faceatlas/<v> (<contact>) httpx/<v>``: the form the Wikimedia User-Agent policy asks."""
    who = " ".join(contact.split()) or "set FACEATLAS_WIKIMEDIA_CONTACT"
    return f"faceatlas/{__version__} ({who}) httpx/{httpx.__version__}"


class WikimediaClient:
    """GET JSON from Wikimedia endpoints politely; ``sleep``/``clock`` are injectable for tests,
    ``budget`` too (default: the process's, shared through Redis with a broker)."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        cache: bool | None = None,
        budget: HostBudget | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget or host_budget(settings)
        self.user_agent = user_agent(settings.wikimedia_contact)
        global _warned
        if not settings.wikimedia_contact.strip() and not _warned:
            _warned = True
            log.warning("FACEATLAS_WIKIMEDIA_CONTACT is not set: Wikimedia asks for a contact "
                        "in the User-Agent of automated clients")  # fmt: skip
        self._own = client is None
        self._client = client or httpx.Client(
            timeout=settings.wikimedia_timeout, follow_redirects=True,
            headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip"},
        )  # fmt: skip
        self._sleep, self._clock = sleep, clock
        self.cache_seconds = settings.wikimedia_cache_hours * 3600
        self.use_cache = (cache if cache is not None else True) and self.cache_seconds > 0
        self.layout = Layout(settings.home)
        self.requests = 0  # sent over the network (cache hits excluded)
        self.cache_hits = 0

    def close(self) -> None:
        if self._own:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the two kinds of endpoint
    def api(self, url: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        """``api.php`` (Wikidata or Commons): JSON, formatversion 2, maxlag; API errors raise."""
        full = {"format": "json", "formatversion": "2", **{k: str(v) for k, v in params.items()}}
        if self.settings.wikimedia_maxlag > 0:
            full["maxlag"] = str(self.settings.wikimedia_maxlag)
        body = self._get_json(url, full, {"Accept": "application/json"}, api=True)
        if not isinstance(body, dict):
            raise BadResponseError(f"{_host(url)} answered JSON that is not an object")
        return body

    def sparql(self, url: str, query: str) -> list[dict[str, dict[str, str]]]:
        """The bindings of a SPARQL SELECT (SPARQL 1.1 JSON results): var → {type, value…}."""
        body = self._get_json(url, {"query": query, "format": "json"},
                              {"Accept": "application/sparql-results+json"}, api=False)
        try:
            bindings = body["results"]["bindings"]
            return [{var: {k: str(v) for k, v in cell.items()} for var, cell in row.items()}
                    for row in bindings]  # fmt: skip
        except (KeyError, TypeError, AttributeError):
            msg = "the SPARQL endpoint answered without results.bindings"
            raise BadResponseError(msg) from None

    # -- plumbing
    def _get_json(self, url: str, params: dict[str, str], headers: dict[str, str], *,
                  api: bool) -> Any:
        key = hashlib.sha256(f"{url}?{urlencode(sorted(params.items()))}".encode()).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        retries = max(0, self.settings.wikimedia_retries)
        attempt = 0
        while True:
            failure: ProviderError
            wait: float | None = None
            self._pace(url)
            self.requests += 1
            try:
                response = self._client.get(url, params=params, headers=headers)
            except httpx.TimeoutException:
                failure = ProviderError(f"{_host(url)} timed out")
            except httpx.TransportError as exc:
                failure = ProviderError(f"{_host(url)} unreachable: {type(exc).__name__}")
            else:
                status = response.status_code
                if status in _RETRY_STATUS:
                    failure = (RateLimitError if status == 429 else ProviderError)(
                        f"{_host(url)} answered HTTP {status} after {attempt + 1} attempts")
                    wait = self._retry_after(response)
                elif status in (401, 403):  # on Wikimedia: mostly a User-Agent policy block
                    raise AuthError(f"{_host(url)} refused the request (HTTP {status}); set "
                                    "FACEATLAS_WIKIMEDIA_CONTACT to your e-mail and retry "
                                    "later: " + _snippet(response.text))  # fmt: skip
                elif status >= 500:
                    failure = ProviderError(f"{_host(url)} answered HTTP {status}")
                elif status != 200:
                    raise ProviderError(f"{_host(url)} refused the request (HTTP {status}): "
                                        f"{_snippet(response.text)}")  # fmt: skip
                else:
                    try:
                        body = json.loads(response.content)
                    except ValueError:
                        failure = BadResponseError(f"{_host(url)} answered something that is "
                                                   "not JSON")  # fmt: skip
                    else:
                        error = body.get("error") if api and isinstance(body, dict) else None
                        if not error:
                            self._store(key, response.content)
                            return body
                        if not isinstance(error, dict) or error.get("code") != "maxlag":
                            info = error.get("info") if isinstance(error, dict) else error
                            raise ProviderError(f"{_host(url)} API error: {str(info)[:200]}")
                        failure = ProviderError(f"{_host(url)} is lagging (maxlag) after "
                                                f"{attempt + 1} attempts")  # fmt: skip
                        wait = self._retry_after(response)
            if attempt >= retries:
                raise failure
            if wait is not None:  # the host said how long: every worker waits, not only this one
                self.budget.pause(host_key(url), wait)
            wait = wait if wait is not None else min(2.0**attempt, 60.0)
            log.info("wikimedia: %s; retrying in %.1fs", failure, wait)
            self._sleep(wait)
            attempt += 1

    def _pace(self, url: str) -> None:
        """Wait for the host's next slot: at most one request every ``wikimedia_min_interval``
        seconds per host, in this process or (with a broker) in all workers together."""
        rate = host_rate(self.settings, url, wikimedia_rate(self.settings))
        self.budget.acquire(host_key(url), rate, self._sleep,
                            None if self.budget.shared else self._clock())

    def _retry_after(self, response: httpx.Response) -> float | None:
        raw = (response.headers.get("Retry-After") or "").strip()
        if not raw:
            return None
        try:
            wait = float(raw)
        except ValueError:
            try:
                wait = (email.utils.parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                return None
        return min(max(wait, 0.0), self.settings.wikimedia_max_retry_after)

    def _cached(self, key: str) -> Any:
        if not self.use_cache:
            return None
        raw = read_cached(self.layout.cache_file("wikimedia", key), self.cache_seconds)
        try:
            return None if raw is None else json.loads(raw)
        except ValueError:
            return None

    def _store(self, key: str, content: bytes) -> None:
        if self.use_cache:
            write_cached(self.layout.cache_file("wikimedia", key), content)


def _host(url: str) -> str:
    return httpx.URL(url).host or url


def _snippet(text: str) -> str:
    return " ".join(text.split())[:200]
