"""Review pages on an in-process server (uvicorn in a thread) over a tiny generated
collection: fast checks of what a page says and refuses.

Crafted addresses and forms get a "Not understood" page (4xx), never a server error: ids
that are digits but no numbers (``²``), ids past any database row (SQLite's INTEGER is 64-bit),
unknown filters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from faceatlas.api.app import create_app
from faceatlas.devtools.bigcollection import generate
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Face, Person, PersonState
from tests.gallery_fixtures import running
from tests.ui_fixtures import TOKEN, login

KEY = "big"
HUGE = str(2**63)  # past SQLite's INTEGER: the database would raise OverflowError


@dataclass
class Site:
    settings: Settings
    client: httpx.Client
    csrf: str
    person: int  # a collected person
    mine: list[int]  # their faces

    def faces(self) -> dict[int, tuple[str, str]]:
        with session_scope(self.settings) as s:
            return {f: (st, r) for f, st, r in s.execute(select(Face.id, Face.state,
                                                                 Face.reason))}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Site]:
    settings = Settings(home=tmp_path_factory.mktemp("crafted") / "home", api_tokens=[TOKEN])
    generate(settings, people=4, faces=3, crops=2, collection=KEY)
    with session_scope(settings) as s:
        pid = s.scalar(select(Face.person_id).order_by(Face.id).limit(1))
        mine = list(s.scalars(select(Face.id).where(Face.person_id == pid)))
    assert pid is not None and len(mine) >= 2
    try:
        with running(create_app(settings, engines=1)) as url, httpx.Client(
                base_url=url, timeout=30, follow_redirects=False) as client:
            yield Site(settings, client, login(client), pid, mine)
    finally:
        reset_caches()


def _not_understood(r: httpx.Response) -> None:
    assert r.status_code == 422, (r.status_code, r.text[:500])
    assert "Not understood" in r.text and "Something went wrong" not in r.text


@pytest.mark.parametrize("value", ["²", "1,²", "٣", HUGE, "0", "-1", "1e3"])
def test_named_banner_ids_that_this_site_never_wrote(site: Site, value: str) -> None:
    r = site.client.get(f"/ui/collections/{KEY}", params={"blocked": value, "state": "curated"})
    _not_understood(r)
    assert f'href="/ui/collections/{KEY}?state=curated"' in r.text  # back to the page


def test_named_banner_with_real_ids_names_them(site: Site) -> None:
    with session_scope(site.settings) as s:
        name = s.scalar(select(Person.name).where(Person.id == site.person))
    r = site.client.get(f"/ui/collections/{KEY}", params={"few": f"{site.person}, "})
    assert r.status_code == 200 and "too few accepted faces" in r.text
    assert name is not None and name in r.text


def test_an_unknown_filter_links_back_to_the_collection(site: Site) -> None:
    for params in ({"state": "nonsense"}, {"reason": "nonsense"}, {"sort": "nonsense"}):
        r = site.client.get(f"/ui/collections/{KEY}", params=params)
        _not_understood(r)
        assert f'href="/ui/collections/{KEY}"' in r.text, params


def test_confirmed_bulk_ids_past_any_row(site: Site) -> None:
    before = site.faces()
    for ids in (HUGE, "²", f"{site.person},{HUGE}"):
        r = site.client.post(f"/ui/collections/{KEY}/bulk", data={
            "csrf": site.csrf, "action": "promote", "confirm": "yes", "ids": ids})
        _not_understood(r)
    assert site.faces() == before


def test_ticked_person_past_any_row(site: Site) -> None:
    r = site.client.post(f"/ui/collections/{KEY}/bulk", data={
        "csrf": site.csrf, "action": "promote", "person": HUGE})
    _not_understood(r)


@pytest.mark.parametrize("verb", ["reject", "restore"])
@pytest.mark.parametrize("bad", [HUGE, "0", "²"])
def test_several_faces_with_an_id_past_any_row(site: Site, verb: str, bad: str) -> None:
    before = site.faces()
    r = site.client.post(f"/ui/people/{site.person}/faces/{verb}", data={
        "csrf": site.csrf, "confirm": "yes", "face": [*map(str, site.mine), bad]})
    _not_understood(r)
    assert site.faces() == before


def test_unconfirmed_faces_are_refused_in_plain_words(site: Site) -> None:
    before = site.faces()
    for verb, done in (("reject", "rejected"), ("restore", "restored")):
        r = site.client.post(f"/ui/people/{site.person}/faces/{verb}", data={
            "csrf": site.csrf, "face": [str(f) for f in site.mine[:2]]})
        assert r.status_code == 400, r.text[:300]
        assert f"Not {done}" in r.text and f"Confirm to {verb} the 2 ticked faces." in r.text
        r = site.client.post(f"/ui/people/{site.person}/faces/{verb}", data={
            "csrf": site.csrf, "face": str(site.mine[0])})
        assert f"Confirm to {verb} the ticked face." in r.text
    assert site.faces() == before


def test_the_collect_button_of_a_busy_person_has_one_title(site: Site) -> None:
    def button() -> str:
        page = site.client.get(f"/ui/people/{site.person}").text
        found = re.search(r'<button[^>]*class="collect-now"[^>]*>', page)
        assert found, page
        return found[0]

    with session_scope(site.settings) as s:
        person = s.get(Person, site.person)
        assert person is not None
        state, person.state = person.state, PersonState.SEARCHING
    try:
        busy = button()
    finally:
        with session_scope(site.settings) as s:
            s.get(Person, site.person).state = state  # type: ignore[union-attr]
    assert busy.count("title=") == 1 and 'title="being collected right now"' in busy
    assert "disabled" in busy
    idle = button()
    assert idle.count("title=") == 1 and "disabled" not in idle
