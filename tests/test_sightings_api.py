"""Sightings over real HTTP (issue 24): recording from both recognition endpoints with the
caller's source and token fingerprint (never the token), appearances (paged, CSV), the
candidates endpoint, erasure, and token scope (another collection's token sees nothing);
the review UI's Appearances section and Candidates page, in process."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from faceatlas.api import create_app
from faceatlas.api.sessions import token_fingerprint
from faceatlas.gallery import sightings
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Person, Sighting
from faceatlas.store.people import get_or_create_collection
from tests.gallery_fixtures import COLLECTION, Gallery, copy_home, gallery, running  # noqa: F401
from tests.simweb_fixtures import simweb_server
from tests.ui_fixtures import login

pytestmark = pytest.mark.slow  # a gallery copy, a server and ~25 recognitions for the module

T = "test-token-0123456789"  # bound to the gallery's collection
A = "alpha-token-0123456789"  # bound to another collection
ADMIN = "admin-token-0123456789"


@dataclass
class World:
    settings: Settings
    client: httpx.Client
    person: int  # a gallery person seen 3 times
    strangers: list[Path]
    others: list[list[Path]]  # photos of three more strangers


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _recognize(w: World, photo: Path, source: str, *, seed: bool = False) -> None:
    path = "/api/recognize" if seed else "/api/v1/recognize"
    r = w.client.post(path, headers=_auth(T), data={"source": source},
                      files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def world(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
          faces_root: Path) -> Iterator[World]:
    tokens = json.dumps({A: "Alpha", T: COLLECTION, ADMIN: None})
    photo = gallery.promoted[0][1]
    wiki = simweb_server([{"name": "Vesna Wiki", "country": "Serbia", "occupations": ["Actor"],
                           "images": [f"people/{photo.parent.name}/{photo.name}"],
                           "qid": "Q9001"}], faces_root)
    web = wiki.__enter__()
    settings = copy_home(gallery.settings, tmp_path_factory.mktemp("sightings") / "home",
                         api_tokens=tokens, sightings_min_sightings=4,
                         wikidata_api_url=f"{web.url}/wikidata/w/api.php",
                         wikidata_sparql_url=f"{web.url}/wikidata/sparql",
                         allow_private_networks=True, wikimedia_min_interval=0)
    with session_scope(settings) as s:
        get_or_create_collection(s, "Alpha")
    identity, photo = gallery.queries[0]
    by_person: dict[str, list[Path]] = {}
    for p in gallery.strangers:
        by_person.setdefault(p.parent.name, []).append(p)
    try:
        with running(create_app(settings, engines=1)) as url, httpx.Client(
                base_url=url, timeout=60) as client:
            ranked = sorted(by_person.values(), key=len, reverse=True)
            w = World(settings, client, 0, ranked[0], ranked[1:4])
            r = client.put(f"/api/v1/collections/{COLLECTION}/sightings", headers=_auth(T),
                           json={"enabled": True, "retention_days": 14})
            assert r.json() == {"collection": COLLECTION, "enabled": True,
                                "retention_days": 14}
            for i in range(3):
                _recognize(w, photo, f"paper-{i}", seed=i == 2)
            for i in range(4):
                _recognize(w, w.strangers[i % len(w.strangers)], f"channel-{i % 2}")
            sightings.flush()
            with session_scope(settings) as s:
                w.person = s.scalar(select(Person.id).where(
                    Person.name == Gallery.person_name(identity))) or 0
            yield w
    finally:
        wiki.__exit__(None, None, None)
        reset_caches()


def test_recorded_with_source_and_token_fingerprint_never_the_token(world: World) -> None:
    with session_scope(world.settings) as s:
        rows = s.scalars(select(Sighting).order_by(Sighting.id)).all()
    assert len(rows) == 7
    assert [r.source for r in rows[:3]] == ["paper-0", "paper-1", "paper-2"]  # both routes
    assert {r.token_fingerprint for r in rows} == {token_fingerprint(T)}
    raw = b"".join(p.read_bytes() for p in world.settings.home.glob("faceatlas.db*"))
    assert T.encode() not in raw


def test_appearances_paged_newest_first_and_csv(world: World) -> None:
    url = f"/api/v1/people/{world.person}/appearances"
    r = world.client.get(url, headers=_auth(T), params={"limit": 2})
    body = r.json()
    assert r.status_code == 200 and body["total"] == 3
    assert [a["source"] for a in body["items"]] == ["paper-2", "paper-1"]
    r = world.client.get(url, headers=_auth(T), params={"limit": 2, "offset": 2})
    assert [a["source"] for a in r.json()["items"]] == ["paper-0"]
    r = world.client.get(url, headers=_auth(T), params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["source"] for row in rows] == ["paper-2", "paper-1", "paper-0"]
    crop = world.client.get(f"/api/v1/sightings/{body['items'][0]['id']}/crop",
                            headers=_auth(T))
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"


def test_candidates_endpoint(world: World) -> None:
    r = world.client.get(f"/api/v1/collections/{COLLECTION}/candidates", headers=_auth(T))
    found = r.json()["candidates"]
    assert r.status_code == 200 and len(found) == 1
    assert found[0]["sightings"] == 4 and found[0]["sources"] == 2 and found[0]["faces"]


def test_another_collections_token_sees_nothing(world: World) -> None:
    missing = world.client.get("/api/v1/people/999999/appearances", headers=_auth(A))
    for path in (f"/api/v1/people/{world.person}/appearances",
                 f"/api/v1/collections/{COLLECTION}/candidates",
                 f"/api/v1/collections/{COLLECTION}/sightings"):
        r = world.client.get(path, headers=_auth(A))
        assert r.status_code == 404, (path, r.text)
    r = world.client.get(f"/api/v1/people/{world.person}/appearances", headers=_auth(A))
    assert r.json()["detail"].replace(str(world.person), "N") == \
        missing.json()["detail"].replace("999999", "N")  # the same words: nothing leaks
    with session_scope(world.settings) as s:
        sid = s.scalar(select(Sighting.id).limit(1))
    assert world.client.get(f"/api/v1/sightings/{sid}/crop", headers=_auth(A)).status_code \
        == 404
    r = world.client.delete(f"/api/v1/collections/{COLLECTION}/sightings", headers=_auth(A),
                            params={"source": "paper-0"})
    assert r.status_code == 404
    r = world.client.get("/api/v1/collections/alpha/sightings", headers=_auth(A))
    assert r.json()["enabled"] is False  # its own collection: off by default


def test_ui_appearances_section_and_candidates_page(world: World) -> None:
    with httpx.Client(base_url=str(world.client.base_url), timeout=60,
                      follow_redirects=False) as ui:
        csrf = login(ui, T)
        page = ui.get(f"/ui/people/{world.person}")
        assert page.status_code == 200
        section = page.text[page.text.index('id="appearances"'):]
        assert section.index("paper-2") < section.index("paper-1") < section.index("paper-0")
        csv_page = ui.get(f"/ui/people/{world.person}/appearances.csv")
        assert csv_page.status_code == 200 and "paper-0" in csv_page.text
        cands = ui.get(f"/ui/collections/{COLLECTION}/candidates")
        assert cands.status_code == 200 and "Seen 4 times" in cands.text
        cluster = re.search(r'action="/ui/clusters/(\d+)/erase"', cands.text)
        assert cluster
        crop = re.search(r'src="(/ui/sightings/\d+/crop\.jpg)"', cands.text)
        assert crop and ui.get(crop[1]).content[:2] == b"\xff\xd8"
        # no confirmation: nothing erased; without the CSRF token: refused
        r = ui.post(f"/ui/clusters/{cluster[1]}/erase", data={"csrf": csrf})
        assert r.status_code == 400
        r = ui.post(f"/ui/clusters/{cluster[1]}/erase", data={"confirm": "yes"})
        assert r.status_code in (403, 400) and "Seen 4 times" in ui.get(
            f"/ui/collections/{COLLECTION}/candidates").text
        r = ui.post(f"/ui/clusters/{cluster[1]}/erase",
                    data={"csrf": csrf, "confirm": "yes", "block": "yes"})
        assert r.status_code == 303
        after = ui.get(r.headers["location"])
        assert "Dismissed as not a public figure: 4 sightings" in after.text
        assert 'id="none"' in after.text


def _candidate_of(w: World, photos: list[Path], source: str) -> int:
    for i in range(4):
        _recognize(w, photos[i % len(photos)], f"{source}-{i % 2}")
    sightings.flush()
    found = w.client.get(f"/api/v1/collections/{COLLECTION}/candidates",
                         headers=_auth(T)).json()["candidates"]
    assert len(found) == 1, found
    return int(found[0]["cluster_id"])


def test_name_a_candidate_over_http_and_merge_one_in_the_ui(world: World) -> None:
    cluster = _candidate_of(world, world.others[0], "radio")
    body = {"name": "Nova Osoba", "wikidata_qid": "Q42"}
    r = world.client.post(f"/api/v1/clusters/{cluster}/name", headers=_auth(A), json=body)
    assert r.status_code == 404  # another collection's token
    r = world.client.post(f"/api/v1/clusters/{cluster}/name", headers=_auth(T), json=body)
    named = r.json()
    assert r.status_code == 200 and named["created"] and named["sightings"] == 4
    r = world.client.get(f"/api/v1/people/{named['person_id']}/appearances", headers=_auth(T))
    assert r.json()["total"] == 4
    # the next one is merged into that person from the Candidates page
    cluster = _candidate_of(world, world.others[1], "tv")
    with httpx.Client(base_url=str(world.client.base_url), timeout=60,
                      follow_redirects=False) as ui:
        csrf = login(ui, T)
        r = ui.post(f"/ui/clusters/{cluster}/merge", data={"csrf": csrf,
                                                            "person": "Nova Osoba"})
        assert r.status_code == 303, r.text
        assert "Merged: 4 sightings" in ui.get(r.headers["location"]).text
        page = ui.get(f"/ui/people/{named['person_id']}")
        assert "8 sightings" in page.text


def test_name_a_candidate_from_wikidata_as_one_types(world: World) -> None:
    cluster = _candidate_of(world, world.others[2], "blog")
    with httpx.Client(base_url=str(world.client.base_url), timeout=60) as nobody:
        login(nobody, A)  # another collection's reviewer: no such candidate
        assert nobody.get(f"/ui/clusters/{cluster}/wikidata",
                          params={"name": "Vesna"}).status_code == 404
    with httpx.Client(base_url=str(world.client.base_url), timeout=60,
                      follow_redirects=False) as ui:
        login(ui, T)
        page = ui.get(f"/ui/collections/{COLLECTION}/candidates")
        assert f'hx-get="/ui/clusters/{cluster}/wikidata"' in page.text
        hits = ui.get(f"/ui/clusters/{cluster}/wikidata", params={"name": "Vesna"})
        assert hits.status_code == 200 and "Q9001" in hits.text and "Vesna Wiki" in hits.text
        form = re.search(r'<form method="post" action="(/ui/clusters/\d+/name)".*?'
                         r'name="csrf" value="([^"]+)".*?name="name" value="([^"]+)".*?'
                         r'name="qid" value="([^"]+)"', hits.text, re.S)
        assert form
        r = ui.post(form[1], data={"csrf": form[2], "name": form[3], "qid": form[4]})
        assert r.status_code == 303, r.text
    with session_scope(world.settings) as s:
        person = s.scalar(select(Person).where(Person.name == "Vesna Wiki"))
        assert person is not None and person.wikidata_qid == "Q9001"


def test_erase_by_source_over_http(world: World) -> None:
    r = world.client.delete(f"/api/v1/collections/{COLLECTION}/sightings", headers=_auth(T),
                            params={"source": "paper-0"})
    assert r.status_code == 200 and r.json()["sightings"] == 1
    r = world.client.get(f"/api/v1/people/{world.person}/appearances", headers=_auth(T))
    assert [a["source"] for a in r.json()["items"]] == ["paper-2", "paper-1"]
