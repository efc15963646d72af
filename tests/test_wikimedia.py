"""Keyless sources over loopback: Wikidata names, Commons photos, the polite client, faults."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage
from pydantic import SecretStr

from faceatlas.devtools.simweb import SimWeb
from faceatlas.domain.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    ProviderError,
    RateLimitError,
)
from faceatlas.names.source import generate
from faceatlas.names.wikidata import AmbiguousError, Wikidata, generate_names_wikidata
from faceatlas.settings import Settings
from faceatlas.sources.base import PersonQuery, person_hits
from faceatlas.sources.chain import ChainedSearch, image_search_from_settings, source_names
from faceatlas.sources.commons import PORTRAIT, CommonsImageSearch, portrait_url
from faceatlas.store.db import session_scope
from faceatlas.store.models import Person
from faceatlas.web.wikimedia import WikimediaClient
from tests.simweb_fixtures import simweb_server

P1 = ["people/person_01/img1.jpg", "people/person_01/img2.jpg", "people/person_01/img4.jpg"]
P3 = ["people/person_03/img8.jpg", "people/person_03/img9.jpg"]
P5 = ["people/person_05/img13.jpg", "people/person_05/img14.jpg"]
P6 = ["people/person_06/img16.jpg", "people/person_06/img17.jpg"]

PEOPLE: dict[str, Any] = {
    "entities": [
        {"id": "Q900001", "label": "Player", "kind": "occupation", "description": "game player"},
        {"id": "Q900002", "label": "Player", "kind": "occupation", "description": "music player"},
        {"id": "Q900003", "label": "Stage actor", "kind": "occupation", "subclass_of": ["Q33999"]},
        {"id": "Q900004", "label": "Mime", "kind": "untyped", "description": "no P31 at all"},
    ],
    "people": [
        {"name": "Novak Đoković", "country": "Serbia", "occupations": ["Actor"],
         "labels": {"sr": "Новак Ђоковић", "en": "Novak Djokovic"}, "sitelinks": 150,
         "images": P1, "depicts": ["group/couple.jpg"]},
        {"name": "Ana Ivanović", "country": "Serbia", "occupations": ["Stage actor"],
         "labels": {"sr": "Ана Ивановић", "sr-el": "Ana Ivanović", "en": "Ana Ivanovic"},
         "sitelinks": 120, "images": P3, "died": "1990-01-01"},
        {"name": "Marko Bez Slike", "country": "Serbia", "occupations": ["Actor"], "p18": None,
         "sitelinks": 90, "images": P5},
        {"name": "Fictional Person", "country": "Serbia", "occupations": ["Actor"], "real": False,
         "images": []},
        {"name": "Only Llm", "country": "Serbia", "occupations": ["Actor"], "qid": False,
         "images": []},
        {"name": "Ivo Hrvat", "country": "Croatia", "occupations": ["Actor"], "images": P6},
        {"name": "Mirko Mim", "country": "Serbia", "occupations": ["Mime"], "images": P6},
        {"name": "Ана Ћирић", "country": "Serbia", "occupations": ["Actor"], "sitelinks": 10,
         "labels": {"sr": "Ана Ћирић", "en": "Ana Ciric"}, "images": P6},
    ],
}


@pytest.fixture()
def web(faces_root: Path) -> Iterator[SimWeb]:
    with simweb_server(PEOPLE, faces_root) as server:
        yield server


def wiki_settings(web: SimWeb, home: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        home=home, wikidata_api_url=f"{web.url}/wikidata/w/api.php",
        wikidata_sparql_url=f"{web.url}/wikidata/sparql",
        commons_api_url=f"{web.url}/commons/w/api.php", wikimedia_min_interval=0.0,
        wikimedia_retries=3, wikimedia_timeout=1.0, wikimedia_contact="ops@example.org",
        rapidapi_key=None, image_sources=[])
    return Settings(**{**base, **kw})


@pytest.fixture()
def settings(web: SimWeb, home: Path) -> Settings:
    return wiki_settings(web, home)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# -- names
def test_most_famous_people_with_qids_and_both_scripts(settings: Settings, web: SimWeb) -> None:
    report = generate_names_wikidata(settings, "Serbia", ["Actor"])
    # subclasses of the occupation count (stage actor); Croatia's actor and the invented one
    # do not; most sitelinks first
    assert report.people == ["Novak Đoković", "Ana Ivanović", "Marko Bez Slike", "Ana Ćirić"]
    with session_scope(settings) as s:
        people = {p.name: p for p in s.query(Person)}
        novak = people["Novak Đoković"]
        # Serbian Cyrillic transliterated to Serbian Latin; ASCII folds Đ → Dj as before
        assert (novak.ascii_name, novak.folder) == ("Novak Djokovic", "Novak_Djokovic")
        assert novak.native_name == "Новак Ђоковић"
        assert novak.wikidata_qid == report.qids["Novak Đoković"]
        assert novak.source == "wikidata" and novak.occupations == ["Actor"]
        assert people["Ana Ivanović"].native_name == "Ана Ивановић"  # sr-el label preferred
        assert people["Marko Bez Slike"].native_name is None
        assert people["Ana Ćirić"].native_name == "Ана Ћирић"  # Ć kept, ASCII "Ana Ciric"
    # the words were resolved past the decoys ("Serbia national football team", "Actor (film)")
    agents = set(web.wiki.user_agents)
    assert agents == {f"faceatlas/0.1.0 (ops@example.org) httpx/{httpx.__version__}"}
    api = [p for _, p in web.requests if p.startswith("/wikidata/w/api.php")]
    assert api and all("maxlag=5" in p for p in api)
    assert not any("maxlag" in p for _, p in web.requests if p.startswith("/wikidata/sparql"))


def test_living_and_historical(web: SimWeb, tmp_path: Path) -> None:
    living = generate_names_wikidata(wiki_settings(web, tmp_path / "a", wikidata_era="living"),
                                     "Serbia", ["Actor"])
    assert "Ana Ivanović" not in living.people and len(living.people) == 3
    old = generate_names_wikidata(wiki_settings(web, tmp_path / "b", wikidata_era="historical"),
                                  "Serbia", ["Actor"])
    assert old.people == ["Ana Ivanović"]
    few = generate_names_wikidata(wiki_settings(web, tmp_path / "c", wikidata_limit=1),
                                  "Serbia", ["Actor"])
    assert few.people == ["Novak Đoković"]


def test_ambiguous_and_unknown_words_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(AmbiguousError) as exc:
        generate_names_wikidata(settings, "Serbia", ["Actor", "Player"])
    assert "Q900001" in str(exc.value) and "Q900002" in str(exc.value)
    assert "music player" in str(exc.value)
    assert not (settings.home / "faceatlas.db").exists()  # resolved before anything is stored
    with pytest.raises(AmbiguousError, match="no occupation called 'Astronaut'"):
        generate_names_wikidata(settings, "Serbia", ["Astronaut"])
    # a Q-id is taken as it is, and names the collection and occupation by its label
    report = generate_names_wikidata(settings, "Q403", ["Q900003"])
    assert report.people == ["Ana Ivanović"]
    assert (report.collection, report.occupations) == ("serbia", ["Stage actor"])
    # an item with no occupation type is one when somebody has it as occupation (P106)
    assert generate_names_wikidata(settings, "Serbia", ["Mime"]).people == ["Mirko Mim"]


def test_llm_names_checked_against_wikidata(settings: Settings, web: SimWeb,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{web.url}/v1")
    sourced = generate(settings, "Serbia", ["Actor"])
    assert sourced.source == "llm"
    # the LLM verified 4 (the invented one was rejected); "Only Llm" has no Wikidata item;
    # the Cyrillic name is found through a Serbian-language search
    assert sorted(sourced.report.people) == ["Marko Bez Slike", "Novak Đoković", "Only Llm",
                                             "Ана Ћирић"]
    assert sourced.resolved == (3, 4)
    with session_scope(settings) as s:
        qids = {p.name: p.wikidata_qid for p in s.query(Person)}
    assert qids["Only Llm"] is None and qids["Novak Đoković"] and qids["Marko Bez Slike"]
    assert qids["Ана Ћирић"]
    monkeypatch.delenv("OPENAI_API_KEY")
    assert generate(settings, "Serbia", ["Actor"]).source == "wikidata"  # keyless default


# -- the polite client
def test_retry_after_timeouts_malformed_and_maxlag(settings: Settings, web: SimWeb) -> None:
    web.wiki.timeout_sleep = 1.6
    web.wiki.faults["wikidata"] += ["429", "503", "malformed", "timeout", "maxlag"]
    sleeps = Sleeps()
    patient = settings.model_copy(update={"wikimedia_retries": 5})
    with WikimediaClient(patient, sleep=sleeps, cache=False) as client:
        body = client.api(settings.wikidata_api_url, {"action": "wbsearchentities",
                                                      "search": "Serbia", "type": "item"})
    assert body["search"][0]["id"] == "Q403"
    assert client.requests == 6
    # Retry-After: 1 honoured for 429, 503 and maxlag; exponential back-off otherwise
    assert sleeps == [1.0, 1.0, 4.0, 8.0, 1.0]


def test_retries_run_out_with_the_right_error(settings: Settings, web: SimWeb) -> None:
    quick = settings.model_copy(update={"wikimedia_retries": 1})
    with WikimediaClient(quick, sleep=Sleeps(), cache=False) as client:
        web.wiki.faults["sparql"] += ["429", "429"]
        with pytest.raises(RateLimitError):
            client.sparql(quick.wikidata_sparql_url, "SELECT ?x WHERE {}")
        web.wiki.faults["sparql"] += ["malformed", "malformed"]
        with pytest.raises(BadResponseError):
            client.sparql(quick.wikidata_sparql_url, "SELECT ?x WHERE {}")
        with pytest.raises(ProviderError, match="HTTP 400"):  # not understood: no retry
            client.sparql(quick.wikidata_sparql_url, "SELECT ?x WHERE {}")
        web.wiki.faults["sparql"] += ["403"]  # a User-Agent block stops the run, clearly
        with pytest.raises(AuthError, match="FACEATLAS_WIKIMEDIA_CONTACT"):
            client.sparql(quick.wikidata_sparql_url, "SELECT ?x WHERE {}")


def test_answers_are_cached_on_disk(settings: Settings, web: SimWeb) -> None:
    generate_names_wikidata(settings, "Serbia", ["Actor"])
    asked = len(web.requests)
    again = generate_names_wikidata(settings, "Serbia", ["Actor"])  # a new client, same home
    assert len(web.requests) == asked and again.existing == 4
    assert list((settings.home / "cache" / "wikimedia").rglob("*.json"))
    fresh = settings.model_copy(update={"wikimedia_cache_hours": 0})
    generate_names_wikidata(fresh, "Serbia", ["Actor"])
    assert len(web.requests) > asked


def test_request_rate_is_limited(web: SimWeb, tmp_path: Path) -> None:
    paced = wiki_settings(web, tmp_path, wikimedia_min_interval=0.15)
    with WikimediaClient(paced, cache=False) as client:
        start = time.monotonic()
        for _ in range(4):
            client.api(paced.wikidata_api_url, {"action": "wbgetentities", "ids": "Q403"})
        assert time.monotonic() - start >= 0.4


# -- Commons
def _qid(settings: Settings, name: str) -> str:
    wd = Wikidata(settings)
    return wd.search(name, 1)[0]


def test_commons_portrait_first_then_category_and_depicts(settings: Settings, web: SimWeb,
                                                          faces_root: Path) -> None:
    small = settings.model_copy(update={"commons_thumb_width": 200})
    qid = _qid(small, "Novak Djokovic")
    with CommonsImageSearch(small) as commons:
        hits = commons.search_person(PersonQuery("Novak Đoković", ("Actor",), qid), 50)
    assert [h.rank for h in hits] == list(range(len(hits)))
    first = hits[0]
    assert (first.detail, first.query, first.provider) == (PORTRAIT, f"P18 of {qid}", "commons")
    assert all(h.detail is None for h in hits[1:])
    assert len(hits) == 4  # P18 + 2 category files + the group photo that depicts him
    assert hits[-1].query == f"haswbstatement:P180={qid}"
    assert all(h.licence and h.author and h.source_url for h in hits)
    assert "<a" not in first.author  # the HTML around the author is stripped
    # the official thumbnail at the asked width
    assert "/thumb/" in first.url and "/200px-" in first.url
    image = PILImage.open(io.BytesIO(httpx.get(first.url).content))
    assert image.width == 200
    assert portrait_url(qid, small) == first.url
    nobody = _qid(small, "Marko Bez Slike")
    assert portrait_url(nobody, small) is None  # no P18


def test_missing_p18_still_gives_the_category(settings: Settings) -> None:
    with CommonsImageSearch(settings) as commons:
        # no stored Q-id: the name is looked up (first human)
        hits = commons.search_person(PersonQuery("Marko Bez Slike", ("Actor",)), 50)
    assert len(hits) == 2 and not any(h.detail == PORTRAIT for h in hits)


def test_sources_chain_in_order_and_survive_a_failing_source(
        settings: Settings, web: SimWeb) -> None:
    assert source_names(settings) == ["commons"]  # no RapidAPI key: keyless
    keyed = settings.model_copy(update={"rapidapi_key": SecretStr("k")})
    assert source_names(keyed) == ["rapidapi"]  # as before when a key is set
    with pytest.raises(ConfigError, match="unknown image source"):
        source_names(settings.model_copy(update={"image_sources": ["bing"]}))
    with pytest.raises(ConfigError, match="RAPIDAPI_KEY"):
        image_search_from_settings(settings.model_copy(update={"image_sources": ["rapidapi"]}))
    both = keyed.model_copy(update={"image_sources": ["commons", "rapidapi"],
                                    "wikimedia_retries": 0,
                                    "image_search_url": f"{web.url}/search"})
    with image_search_from_settings(both) as chain:
        assert isinstance(chain, ChainedSearch)
        who = PersonQuery("Novak Đoković", ("Actor",))
        hits = person_hits(chain, who, 70)
        providers = [h.provider or "rapidapi" for h in hits]
        assert providers[0] == "commons" and providers[-1] == "rapidapi"
        assert providers == sorted(providers)  # commons first, then rapidapi
        web.wiki.faults["wikidata"] += ["503"] * 10  # Wikidata is down for this person
        hits = person_hits(chain, PersonQuery("Ivo Hrvat", ("Actor",)), 70)
        assert hits and all(h.provider is None for h in hits)  # RapidAPI still answered
