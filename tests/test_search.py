"""RapidAPI image search against simweb's copy of the API, over loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from faceatlas.devtools.simweb import SimWeb
from faceatlas.domain.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    ProviderError,
    RateLimitError,
)
from faceatlas.settings import Settings
from faceatlas.sources import ImageSearchProvider, RapidAPIImageSearch, SearchHit, query_for
from tests.simweb_fixtures import person, simweb_server

IMAGES = ["people/person_01/img1.jpg", "people/person_01/img2.jpg", "fault:404", "group/couple.jpg"]
PEOPLE = [
    person("Novak Đoković", IMAGES),
    person("RateLimited Person", ["people/person_02/img26.jpg"]),
    person("BadShape Person", ["people/person_03/img47.jpg"]),
]
KEY = "test-key-123456"


@pytest.fixture(scope="module")
def web() -> Iterator[SimWeb]:
    with simweb_server(PEOPLE) as web:
        yield web


@pytest.fixture
def waits() -> list[float]:
    return []


def provider(web: SimWeb, waits: list[float], key: str = KEY, path: str = "/search",
             **kw: object) -> RapidAPIImageSearch:  # fmt: skip
    client = httpx.Client(timeout=kw.pop("timeout", 5.0), trust_env=False)  # type: ignore[arg-type]
    return RapidAPIImageSearch(key, url=web.url + path, host="real-time-image-search.test",
                               client=client, backoff=0.01, sleep=waits.append,
                               **kw)  # type: ignore[arg-type]  # fmt: skip


def test_query_for() -> None:
    assert query_for("Novak Đoković", "Athlete") == "Novak Đoković Athlete"
    assert query_for("  Ana   Ivanović ", None) == "Ana Ivanović"


def test_good_answer_is_parsed_into_hits(web: SimWeb, waits: list[float]) -> None:
    web.reset_stats()
    search = provider(web, waits)
    assert isinstance(search, ImageSearchProvider)
    hits = search.search(query_for("Novak Djokovic", "Athlete"), 100)
    assert [type(h) for h in hits] == [SearchHit] * 4
    assert hits[0].url == f"{web.url}/img/people/person_01/img1.jpg"
    assert hits[0].thumbnail_url == f"{web.url}/thumb/people/person_01/img1.jpg"
    assert (hits[0].width, hits[0].height) == (1382, 1868)
    assert hits[2].url.startswith(f"{web.url}/fault/404/")
    assert [h.rank for h in hits] == [0, 1, 2, 3]
    assert {h.query for h in hits} == {"Novak Djokovic Athlete"}
    assert search.last_skipped == 0 and waits == []
    # The seed's request: the same parameters, key and host headers.
    [(_method, raw)] = [r for r in web.requests if r[1].startswith("/search")]
    params = {k: v[0] for k, v in parse_qs(urlsplit(raw).query).items()}
    assert params == {"query": "Novak Djokovic Athlete", "limit": "100",
                      "size": "1024x768_and_more", "type": "face", "region": "us"}  # fmt: skip


def test_limit_is_honoured_and_unknown_person_gives_nothing(
    web: SimWeb, waits: list[float]
) -> None:
    search = provider(web, waits)
    assert len(search.search("Novak Đoković Athlete", 2)) == 2
    assert search.search("Nobody Known Actor", 10) == []


@pytest.mark.parametrize(("key", "status"), [("bad-key", 401), ("forbidden", 403)])
def test_bad_key_raises_auth_error_without_retrying(
    web: SimWeb, waits: list[float], key: str, status: int
) -> None:
    web.reset_stats()
    with pytest.raises(AuthError, match="RAPIDAPI_KEY") as exc:
        provider(web, waits, key=key).search("Novak Đoković Athlete", 10)
    assert f"HTTP {status}" in str(exc.value)
    assert web.count("/search") == 1 and waits == []


def test_429_waits_per_retry_after_then_succeeds(waits: list[float]) -> None:
    with simweb_server(PEOPLE) as web:  # fresh server: its first search is the 429
        hits = provider(web, waits, max_retry_after=5.0).search("RateLimited Person Athlete", 10)
        assert len(hits) == 1
        assert waits == [1.0]  # Retry-After: 1, honoured (not the 0.01 backoff)
        assert web.count("/search") == 2


def test_retry_after_is_capped(waits: list[float]) -> None:
    with simweb_server(PEOPLE) as web:
        provider(web, waits, max_retry_after=0.2).search("RateLimited Person Athlete", 10)
    assert waits == [0.2]


def test_429_that_outlives_retries_is_rate_limit_error(waits: list[float]) -> None:
    with simweb_server(PEOPLE) as web, pytest.raises(RateLimitError):
        provider(web, waits, max_retries=0).search("RateLimited Person Athlete", 10)


def test_500_retries_with_backoff_then_provider_error(web: SimWeb, waits: list[float]) -> None:
    web.reset_stats()
    with pytest.raises(ProviderError, match="HTTP 500") as exc:
        provider(web, waits, max_retries=3).search("ServerError Person Athlete", 10)
    assert type(exc.value) is ProviderError
    assert web.count("/search") == 4
    assert waits == [0.01, 0.02, 0.04]  # exponential backoff between the 4 tries


def test_timeout_retries_then_provider_error(web: SimWeb, waits: list[float]) -> None:
    search = provider(web, waits, path="/fault/slow/1000/x", timeout=0.2, max_retries=1)
    with pytest.raises(ProviderError, match="timed out"):
        search.search("Novak Đoković Athlete", 10)
    assert len(waits) == 1


def test_bad_shape_items_are_skipped_or_coerced(web: SimWeb, waits: list[float]) -> None:
    search = provider(web, waits)
    hits = search.search("BadShape Person Athlete", 100)
    # 1 good item + 7 broken ones: url null, url missing, url not http, a string, null are
    # skipped; width "abc" becomes None, width "640" becomes 640.
    assert search.last_skipped == 5
    assert len(hits) == 3
    assert hits[0].url.endswith("/img/people/person_03/img47.jpg")
    junk_sizes = {h.url.rsplit("/", 1)[1]: (h.width, h.height) for h in hits[1:]}
    assert junk_sizes == {"ws": (None, None), "wn": (640, 480)}
    assert all(h.url.startswith("http") for h in hits)


@pytest.mark.parametrize("path", ["/fault/html/1", "/healthz"])
def test_non_json_or_shapeless_answer_is_bad_response(
    web: SimWeb, waits: list[float], path: str
) -> None:
    with pytest.raises(BadResponseError):
        provider(web, waits, path=path).search("Novak Đoković Athlete", 10)


def test_missing_key_is_config_error_naming_rapidapi_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAPIDAPI_KEY", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="RAPIDAPI_KEY"):
        RapidAPIImageSearch.from_settings(settings)
    with pytest.raises(ConfigError, match="RAPIDAPI_KEY"):
        RapidAPIImageSearch("  ")


def test_from_settings_uses_key_and_never_shows_it(
    web: SimWeb, waits: list[float], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("RAPIDAPI_KEY", KEY)
    monkeypatch.setenv("FACEATLAS_IMAGE_SEARCH_URL", web.url + "/search")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    caplog.set_level(logging.DEBUG)
    with RapidAPIImageSearch.from_settings(settings, sleep=waits.append, backoff=0.01) as search:
        assert KEY not in repr(search)
        with pytest.raises(ProviderError):
            search.search("ServerError Person Athlete", 5)
        assert len(search.search("Novak Đoković Athlete", 5)) == 4
    assert KEY not in caplog.text


def test_bad_arguments_are_clear_errors(web: SimWeb, waits: list[float]) -> None:
    search = provider(web, waits)
    with pytest.raises(ValueError, match="query"):
        search.search("  ", 10)
    with pytest.raises(ValueError, match="limit"):
        search.search("Novak", 0)
