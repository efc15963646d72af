"""Sightings in Chromium (issue 24): a person's appearances (paged, newest first, photo and
clip time ranges, CSV), and the Candidates page — one candidate named through the Wikidata
replica as one types (portrait thumbnails through our own server), one merged into a
gallery person, one dismissed as not a public figure. One server, one gallery copy and one
browser for the module; the tests run in order, each making its own candidate."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps
from sqlalchemy import func, select

from faceatlas.api import create_app
from faceatlas.api.ui.sightings import PAGE
from faceatlas.domain.states import PersonState
from faceatlas.gallery import sightings
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Person, Reference, Sighting, SightingCluster
from faceatlas.video.recognize import recognize_video
from tests.gallery_fixtures import COLLECTION, Gallery, copy_home, gallery, running  # noqa: F401
from tests.simweb_fixtures import simweb_server
from tests.ui_fixtures import TOKEN, browser, browser_login, shot  # noqa: F401
from tests.video_fixtures import encode

pytestmark = pytest.mark.slow  # a gallery copy, a server, chromium and ~40 recognitions

KNOWN = "person_01"  # the gallery person whose appearances are listed
PORTRAIT_QID = "Q9001"


@dataclass
class World:
    settings: Settings
    url: str
    api: httpx.Client
    person: int  # KNOWN's person id
    clip: str  # the clip's file name, recorded last
    strangers: list[list[Path]]  # photos of people not in the gallery, one list each


def _recognize(w: World, photo: Path, source: str) -> None:
    r = w.api.post("/api/v1/recognize", data={"source": source},
                   files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text


def _slideshow(photos: list[Path], dest: Path) -> Path:
    """A short clip: each photo shown for one second (10 frames), padded to 320×400."""
    frames = []
    for p in photos:
        with PILImage.open(p) as pic:
            frame = np.asarray(ImageOps.pad(pic.convert("RGB"), (320, 400)))
        frames += [frame] * 10
    return encode(dest, frames, rate=10)


@pytest.fixture(scope="module")
def world(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
          faces_root: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("sightings-ui")
    portrait = gallery.promoted[0][1]
    wiki = simweb_server([{"name": "Vesna Wiki", "country": "Serbia", "occupations": ["Actor"],
                           "images": [f"people/{portrait.parent.name}/{portrait.name}"],
                           "qid": PORTRAIT_QID}], faces_root)
    web = wiki.__enter__()
    settings = copy_home(gallery.settings, root / "home", api_tokens=[TOKEN],
                         sightings_min_sightings=4,
                         wikidata_api_url=f"{web.url}/wikidata/w/api.php",
                         wikidata_sparql_url=f"{web.url}/wikidata/sparql",
                         commons_api_url=f"{web.url}/commons/w/api.php",
                         allow_private_networks=True, wikimedia_min_interval=0)
    sightings.set_policy(settings, COLLECTION, enabled=True)
    mine = [p for ident, p in gallery.queries if ident == KNOWN]
    by_person: dict[str, list[Path]] = {}
    for p in gallery.strangers:
        by_person.setdefault(p.parent.name, []).append(p)
    try:
        with running(create_app(settings, engines=1)) as url, httpx.Client(
                base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            with session_scope(settings) as s:
                person = s.scalar(select(Person.id).where(
                    Person.name == Gallery.person_name(KNOWN)))
            assert person is not None
            clip = _slideshow(mine[:3], root / "evening-news.mp4")
            w = World(settings, url, api, person, clip.name,
                      sorted(by_person.values(), key=len, reverse=True))
            for i in range(PAGE + 2):  # more than a page: two pages of appearances
                _recognize(w, mine[i % len(mine)], f"paper-{i:02d}")
            sightings.flush()
            recognize_video(clip, settings, fps=2, where=sightings.Where("evening news"))
            sightings.flush()
            yield w
    finally:
        wiki.__exit__(None, None, None)
        reset_caches()


@pytest.fixture(scope="module")
def page(world: World, browser: Any) -> Iterator[Any]:  # noqa: F811
    page = browser_login(browser, world.url)
    yield page
    assert not page.errors, page.errors
    page.context.close()


def _candidate(w: World, photos: list[Path], source: str) -> tuple[int, set[int]]:
    """Four unknown sightings in two sources → one candidate: (cluster id, sighting ids)."""
    for i in range(4):
        _recognize(w, photos[i % len(photos)], f"{source}-{i % 2}")
    sightings.flush()
    found = w.api.get(f"/api/v1/collections/{COLLECTION}/candidates").json()["candidates"]
    assert len(found) == 1, found
    cluster = int(found[0]["cluster_id"])
    with session_scope(w.settings) as s:
        members = set(s.scalars(select(Sighting.id).where(Sighting.cluster_id == cluster)))
    assert len(members) == 4
    return cluster, members


def _loaded(page: Any, selector: str) -> bool:
    """The image has arrived and decoded (polled: the CSP forbids wait_for_function)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if page.evaluate("s => { const i = document.querySelector(s);"
                         " return !!i && i.complete && i.naturalWidth > 0; }", selector):
            return True
        time.sleep(0.05)
    return False


def test_appearances_paged_newest_first_with_clip_times_and_csv(world: World,
                                                                page: Any) -> None:
    with session_scope(world.settings) as s:
        rows = s.scalars(select(Sighting).where(Sighting.person_id == world.person)
                         .order_by(Sighting.seen_at.desc(), Sighting.id.desc())).all()
        clip_rows = [(r.t_start, r.t_end) for r in rows if r.clip == world.clip]
        total = len(rows)
    assert clip_rows and total > PAGE
    page.goto(f"{world.url}/ui/people/{world.person}#appearances")
    section = page.locator("#appearances")
    assert f"{total} sightings, newest first" in section.locator("h2").inner_text()
    first = section.locator("tr.appearance")
    assert first.count() == PAGE
    # the clip was recorded last: its tracks open the list, with their from–to seconds
    top = first.nth(0).locator("td")
    assert top.nth(3).inner_text() == world.clip and top.nth(2).inner_text() == "evening news"
    shown = {first.nth(i).locator("td").nth(4).inner_text() for i in range(len(clip_rows))}
    assert shown == {f"{a:.1f}–{(b if b is not None else a):.1f}" for a, b in clip_rows}
    stamps = section.locator("time").evaluate_all("ts => ts.map(t => t.dateTime)")
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert _loaded(page, "#appearances tr.appearance img")
    shot(page, "sightings-01-appearances")

    section.locator("a[rel=next]").click()
    page.wait_for_url(re.compile(r"[?&]seen=2"))
    older = page.locator("#appearances tr.appearance")
    assert older.count() == total - PAGE
    sources = [older.nth(i).locator("td.source").inner_text() for i in range(older.count())]
    assert sources[-1] == "paper-00" and sources == sorted(sources, reverse=True)
    assert "Page 2 of 2" in page.locator("#appearances .pager").inner_text()

    with page.expect_download() as got:
        page.locator("#appearances a[href$='appearances.csv']").click()
    table = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
    assert len(table) == total
    assert table[0]["clip"] == world.clip and table[-1]["source"] == "paper-00"
    assert float(table[0]["t_end"]) >= float(table[0]["t_start"])


def test_name_a_candidate_through_wikidata_as_one_types(world: World, page: Any) -> None:
    cluster, members = _candidate(world, world.strangers[0], "radio")
    with session_scope(world.settings) as s:
        faces = {bytes(e) for e in s.scalars(select(Sighting.embedding)
                                             .where(Sighting.id.in_(members)))}
    page.goto(f"{world.url}/ui/collections/{COLLECTION}/candidates")
    card = page.locator(f"#cluster-{cluster}")
    assert "Seen 4 times" in card.inner_text()
    card.locator("input[name=name]").press_sequentially("Vesna", delay=40)
    hit = page.locator(f"#wikidata-{cluster} li.hit")
    hit.first.wait_for()
    assert PORTRAIT_QID in hit.first.inner_text() and "Vesna Wiki" in hit.first.inner_text()
    # the portrait comes from our own server (the CSP allows no other), a small JPEG
    src = hit.first.locator("img.portrait").get_attribute("src") or ""
    assert src.startswith("/ui/wikidata/portrait.jpg?")
    assert _loaded(page, f"#wikidata-{cluster} li.hit img.portrait")
    size = page.evaluate("s => { const i = document.querySelector(s);"
                         " return [i.naturalWidth, i.naturalHeight]; }",
                         f"#wikidata-{cluster} li.hit img.portrait")
    assert 0 < max(size) <= 120
    cached = list((world.settings.home / "cache" / "portraits").rglob("*.jpg"))
    assert len(cached) == 1  # asked of Commons once, then from the disk
    # the route fetches only the file names signed for this session: not another file, not
    # the same one with a forged signature, not without a session
    other = re.sub(r"file=[^&]+", "file=Another_file.jpg", src)
    forged = re.sub(r"sig=[0-9a-f]+", "sig=" + "0" * 64, src)
    for bad in (other, forged):
        assert page.request.get(f"{world.url}{bad}").status == 404
    assert httpx.get(f"{world.url}{src}").status_code in (401, 303)
    csp = page.request.get(page.url).headers["content-security-policy"]
    assert "img-src 'self' data:;" in csp  # no third-party image host
    shot(page, "sightings-02-name-from-wikidata")

    hit.first.locator("button[type=submit]").click()  # pick the hit: confirms the name
    page.wait_for_url(re.compile(r"/ui/people/\d+"))
    new = int(re.search(r"/ui/people/(\d+)", page.url)[1])  # type: ignore[index]
    with session_scope(world.settings) as s:
        person = s.get(Person, new)
        assert person is not None
        assert (person.name, person.wikidata_qid) == ("Vesna Wiki", PORTRAIT_QID)
        assert person.state == PersonState.QUEUED  # queued for collection
        refs = s.scalars(select(Reference).where(Reference.person_id == new)).all()
        assert refs and {r.source for r in refs} == {"sighting"}
        assert {bytes(r.embedding) for r in refs} <= faces  # the candidate's own faces
        assert set(s.scalars(select(Sighting.id).where(Sighting.person_id == new))) == members
        assert s.get(SightingCluster, cluster) is None
    assert "4 sightings, newest first" in page.locator("#appearances h2").inner_text()


def test_merge_a_candidate_into_a_gallery_person(world: World, page: Any) -> None:
    cluster, members = _candidate(world, world.strangers[1], "tv")
    with session_scope(world.settings) as s:
        before = s.scalar(select(func.count(Sighting.id))
                          .where(Sighting.person_id == world.person))
    page.goto(f"{world.url}/ui/collections/{COLLECTION}/candidates")
    card = page.locator(f"#cluster-{cluster}")
    picker = card.locator(".merge-form input[name=person]")
    picker.press_sequentially("person 0", delay=30)  # the name picker suggests people
    page.wait_for_selector(f"#people-{cluster} option[value='{Gallery.person_name(KNOWN)}']",
                           state="attached")
    picker.fill(Gallery.person_name(KNOWN))
    card.locator(".merge-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=merged"))
    assert "Merged: 4 sightings" in page.locator(".flash.ok").inner_text()
    assert page.locator(f"#cluster-{cluster}").count() == 0
    with session_scope(world.settings) as s:
        ids = set(s.scalars(select(Sighting.id).where(Sighting.person_id == world.person)))
    assert members <= ids and len(ids) == before + 4
    page.goto(f"{world.url}/ui/people/{world.person}")
    assert f"{before + 4} sightings" in page.locator("#appearances h2").inner_text()


def test_dismiss_a_candidate_as_not_a_public_figure(world: World, page: Any) -> None:
    photos = world.strangers[2]
    cluster, members = _candidate(world, photos, "blog")
    page.goto(f"{world.url}/ui/collections/{COLLECTION}/candidates")
    card = page.locator(f"#cluster-{cluster}")
    card.locator("details.danger summary").click()
    card.locator("input[name=confirm]").check()
    card.locator("input[name=block]").check()
    shot(page, "sightings-03-dismiss")
    card.locator("button.danger[type=submit]").click()
    page.wait_for_url(re.compile(r"done=blocked"))
    assert "Dismissed as not a public figure: 4 sightings" in page.locator(
        ".flash.ok").inner_text()
    assert page.locator("#none").is_visible()
    with session_scope(world.settings) as s:
        assert s.get(SightingCluster, cluster) is None
        assert s.scalars(select(Sighting.id).where(Sighting.id.in_(members))).all() == []
        count = s.scalar(select(func.count(Sighting.id)))
    _recognize(world, photos[0], "blog-again")  # faces like it are not kept again
    sightings.flush()
    with session_scope(world.settings) as s:
        assert s.scalar(select(func.count(Sighting.id))) == count
