"""Anchors (issue 25): every name looked up on Wikidata (the simweb replica over loopback),
the anchor of each gallery shown in the CLI, the API and the review pages, the promotion
rule for unanchored people, and the results' text as evidence in the vote."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from faceatlas.api.app import create_app
from faceatlas.curation.decide import CurateParams, decide
from faceatlas.curation.evidence import against, word_runs
from faceatlas.devtools.bigcollection import generate
from faceatlas.devtools.simweb import SimWeb
from faceatlas.domain.states import Anchor, FaceState, Lookup, PersonState, Reason
from faceatlas.faces.analyse import FaceAnalysis, ImageAnalysis
from faceatlas.jobs.collect import anchor_person
from faceatlas.names.resolve import reset_breaker
from faceatlas.names.service import import_people
from faceatlas.names.tables import write_table
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Face, Person, Reference, ReferenceState
from tests.gallery_fixtures import running
from tests.ui_fixtures import TOKEN, login

PHOTO = "p.jpg"


def _wiki(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={
        "wikidata_api_url": f"{url}/wikidata/w/api.php",
        "wikidata_sparql_url": f"{url}/wikidata/sparql",
        "commons_api_url": f"{url}/commons/w/api.php",
        "allow_private_networks": True})


@pytest.fixture()
def replica(tmp_path: Path, faces_root: Path) -> Iterator[SimWeb]:
    """Wikidata with one Ana Kovač (an actor of Serbia, portrait P18) and two actors of Serbia
    called Marko Petrović (a namesake pair: ambiguous)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    src = next(p for p in sorted(faces_root.rglob("*.jpg")))
    (photos / PHOTO).write_bytes(src.read_bytes())
    people = [
        {"name": "Ana Kovač", "country": "Serbia", "occupations": ["Actor"], "images": [PHOTO]},
        {"name": "Marko Petrović", "country": "Serbia", "occupations": ["Actor"],
         "images": [PHOTO], "qid": "Q7001", "p18": None},
        {"name": "Marko Petrović", "country": "Serbia", "occupations": ["Actor"],
         "images": [PHOTO], "qid": "Q7002", "p18": None},
    ]
    reset_breaker()
    with SimWeb(people=people, photos_dir=photos) as web:
        yield web
    reset_breaker()


def _sheet(tmp_path: Path, *names: tuple[str, str]) -> Path:
    sheet = tmp_path / "people.csv"
    write_table(sheet, ["name", "last_name", "occupation"],
                [{"name": f, "last_name": last, "occupation": "Actor"} for f, last in names])
    return sheet


def _person(settings: Settings, name: str) -> Person:
    with session_scope(settings) as s:
        person = s.scalar(select(Person).where(Person.name == name))
        assert person is not None
        s.expunge(person)
        return person


def test_sheet_names_resolve_to_one_qid_or_candidates(
        tmp_path: Path, settings: Settings, replica: SimWeb) -> None:
    """The collection step looks bare sheet names up: one fitting item stores its Q-id and
    its portrait becomes a reference; two namesakes store both for a reviewer."""
    settings = _wiki(settings, replica.url)
    import_people(settings, _sheet(tmp_path, ("Ana", "Kovač"), ("Marko", "Petrović")), "Serbia")
    ana, marko = _person(settings, "Ana Kovač"), _person(settings, "Marko Petrović")
    assert ana.wikidata_qid is None and ana.wikidata_lookup is None  # import stays offline
    for pid in (ana.id, marko.id):
        anchor_person(settings, pid, trusted={replica.netloc})
    ana, marko = _person(settings, "Ana Kovač"), _person(settings, "Marko Petrović")
    expected = replica.wiki.people[0]["id"]
    assert ana.wikidata_qid == expected
    assert ana.wikidata_lookup is not None and ana.wikidata_lookup["state"] == Lookup.MATCHED
    with session_scope(settings) as s:
        refs = s.scalars(select(Reference).where(Reference.person_id == ana.id)).all()
        assert [(r.source, r.state) for r in refs] == [("wikidata", ReferenceState.PENDING)]
        assert refs[0].path and Path(refs[0].path).is_file()  # fetched, measured at curation
    assert marko.wikidata_qid is None
    lookup = marko.wikidata_lookup
    assert lookup is not None and lookup["state"] == Lookup.AMBIGUOUS
    assert sorted(c["qid"] for c in lookup["candidates"]) == ["Q7001", "Q7002"]
    # settled: the next collection does not ask again
    asked = replica.count("/wikidata/")
    anchor_person(settings, marko.id, trusted={replica.netloc})
    assert replica.count("/wikidata/") == asked


def test_wikidata_down_never_fails_a_person_and_is_asked_again(
        tmp_path: Path, settings: Settings, replica: SimWeb) -> None:
    down = _wiki(settings, f"http://127.0.0.1:{replica.closed_port}")
    import_people(down, _sheet(tmp_path, ("Ana", "Kovač")), "Serbia")
    pid = _person(down, "Ana Kovač").id
    anchor_person(down, pid)  # raises nothing
    ana = _person(down, "Ana Kovač")
    assert ana.state == PersonState.QUEUED and ana.wikidata_qid is None
    assert ana.wikidata_lookup is not None and ana.wikidata_lookup["state"] == Lookup.UNAVAILABLE
    # the next collection, Wikidata back: asked again, resolved
    anchor_person(_wiki(settings, replica.url), pid, trusted={replica.netloc})
    assert _person(settings, "Ana Kovač").wikidata_qid == replica.wiki.people[0]["id"]


@pytest.mark.slow
def test_api_names_resolve_and_the_portrait_anchors_the_enrolment(
        tmp_path: Path, settings: Settings, replica: SimWeb, faces_root: Path) -> None:
    """``POST /api/v1/people`` looks the name up before curating: the answer's person has the
    Q-id and the portrait anchors the gallery; a namesake lists candidates."""
    settings = _wiki(settings, replica.url).model_copy(update={"api_tokens": [TOKEN],
                                                               "default_collection": "serbia"})
    photo = (replica.photos_dir / PHOTO).read_bytes()
    with running(create_app(settings, engines=1)) as url, httpx.Client(
            base_url=url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        got = {}
        for name in ("Ana Kovač", "Marko Petrović"):
            answer = c.post("/api/v1/people", data={"name": name},
                            files=[("files", (f"{name}.jpg", photo, "image/jpeg"))])
            assert answer.status_code == 200, answer.text
            got[name] = c.get(f"/api/v1/people/{answer.json()['person_id']}").json()
        listed = {p["name"]: p["anchor"] for p in c.get("/api/v1/people").json()}
    assert got["Ana Kovač"]["wikidata_qid"] == replica.wiki.people[0]["id"]
    assert got["Ana Kovač"]["anchor"] == listed["Ana Kovač"] == "portrait"
    marko = got["Marko Petrović"]
    assert marko["wikidata_qid"] is None and marko["anchor"] == listed["Marko Petrović"] == "none"
    assert marko["wikidata_lookup"]["state"] == "ambiguous"
    assert {c["qid"] for c in marko["wikidata_lookup"]["candidates"]} == {"Q7001", "Q7002"}


# -- the anchor shown: CLI, API, review pages; the promotion rule -----------------------


@dataclass
class World:
    settings: Settings
    portrait: int  # person ids by their anchor
    reference: int
    bare: int


def _anchored_world(home: Path) -> World:
    settings = Settings(home=home, api_tokens=[TOKEN], min_faces_to_promote=2)
    generate(settings, people=6, faces=6, crops=2, collection="anchored")
    with session_scope(settings) as s:
        people = s.scalars(select(Person).where(Person.state.in_(
            [PersonState.CURATED, PersonState.PROMOTED])).order_by(Person.id)).all()
        assert len(people) >= 3, [p.state for p in s.scalars(select(Person))]
        portrait, reference, bare = people[0], people[1], people[2]
        bare.selftest = None  # generated self-tests carry no distance for the page to show
        for person, source in ((portrait, "wikidata"), (reference, "user")):
            face = s.scalar(select(Face).where(Face.person_id == person.id,
                                               Face.embedding.is_not(None)).limit(1))
            assert face is not None
            s.add(Reference(person_id=person.id, source=source, face_id=face.id,
                            embedding=face.embedding, state=ReferenceState.READY))
        bare.wikidata_lookup = {"state": "ambiguous", "detail": "2 items called it", "candidates": [
            {"qid": "Q7001", "label": bare.name, "description": "Serbian actor"},
            {"qid": "Q7002", "label": bare.name, "description": "Serbian footballer"}]}
        return World(settings, portrait.id, reference.id, bare.id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    try:
        yield _anchored_world(tmp_path_factory.mktemp("anchors") / "home")
    finally:
        reset_caches()


def test_cli_people_and_show_say_the_anchor(world: World, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    from faceatlas.cli import app
    from faceatlas.settings import get_settings

    monkeypatch.setenv("FACEATLAS_HOME", str(world.settings.home))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["people", "--json"])
        assert out.exit_code == 0, out.output
        anchors = {p["id"]: p["anchor"] for p in json.loads(out.output)}
        assert anchors[world.portrait] == "portrait" and anchors[world.reference] == "reference"
        assert anchors[world.bare] == "none"
        table = CliRunner().invoke(app, ["people"], env={"COLUMNS": "200"})
        assert table.exit_code == 0 and "portrait" in table.output
        assert re.search(r"\d+ of \d+ without an anchor", table.output), table.output
        shown = CliRunner().invoke(app, ["show", str(world.bare)], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        assert "anchor none" in shown.output and "Wikidata lookup: ambiguous" in shown.output
        assert "candidate Q7001" in shown.output and "Q7002" in shown.output
        raw = json.loads(CliRunner().invoke(app, ["show", str(world.portrait), "--json"]).output)
        assert raw["anchor"] == "portrait"
    finally:
        get_settings.cache_clear()


def test_api_and_review_pages_show_the_anchor(world: World) -> None:
    with running(create_app(world.settings, engines=1)) as url, httpx.Client(
            base_url=url, timeout=30, follow_redirects=False) as c:
        api = {"Authorization": f"Bearer {TOKEN}"}
        listed = {p["id"]: p["anchor"] for p in c.get("/api/v1/people", headers=api).json()}
        assert listed[world.portrait] == "portrait" and listed[world.bare] == "none"
        detail = c.get(f"/api/v1/people/{world.bare}", headers=api).json()
        assert detail["anchor"] == "none" and detail["wikidata_lookup"]["state"] == "ambiguous"
        login(c)
        page = c.get("/ui/collections/anchored").text
        assert 'data-anchor="portrait"' in page and 'data-anchor="reference"' in page
        assert 'id="unanchored"' in page and "without an anchor" in page
        only = c.get("/ui/collections/anchored?anchor=none").text
        cards = set(re.findall(r'href="/ui/people/(\d+)"', only))
        assert str(world.bare) in cards and str(world.portrait) not in cards
        assert str(world.reference) not in cards
        assert c.get("/ui/collections/anchored?anchor=maybe").status_code == 422
        person = c.get(f"/ui/people/{world.bare}").text
        assert 'id="anchor" data-anchor="none"' in person
        assert "Q7001" in person and "Serbian footballer" in person


def test_require_anchor_holds_the_unanchored_until_a_reviewer_anchors_them(
        world: World) -> None:
    from faceatlas.curation.references import add_reference
    from faceatlas.gallery.promote import HELD, promote_person

    strict = world.settings.model_copy(update={"require_anchor": ["anchored"]})
    held = promote_person(strict, world.bare)
    assert held.state == HELD == Reason.UNANCHORED and held.anchor == Anchor.NONE
    with session_scope(strict) as s:
        person = s.get(Person, world.bare)
        assert person is not None and person.state == PersonState.CURATED
        assert (person.error or "").startswith("unanchored: ")
        assert not s.scalars(select(Face.gallery_path).where(
            Face.person_id == world.bare, Face.gallery_path.is_not(None))).all()
        face = s.scalar(select(Face.id).where(Face.person_id == world.bare,
                                              Face.state == FaceState.ACCEPTED).limit(1))
    assert promote_person(strict, world.portrait).state != HELD  # anchored: not held
    assert face is not None
    add_reference(strict, world.bare, face_id=face)  # a reviewer's "This is them"
    released = promote_person(strict, world.bare)
    assert released.state != HELD and released.anchor == Anchor.REFERENCE


# -- evidence from the results' text (pure) ---------------------------------------------


def test_a_result_naming_someone_else_counts_against_its_group() -> None:
    others = {"tom cruise": "Tom Cruise"}
    texts = {1: "Tom Cruise at the premiere", 2: "Tom Cruise and Jane Rowley on set",
             3: "https://example.org/tom-cruise-gallery", 4: "Jane Rowley, photo 4",
             5: "Rowley with Tom Cruise"}
    assert "tom cruise" in word_runs(texts[3])
    # 2 and 5 name this person too (whole name, or surname): no evidence
    assert against(texts, "jane rowley", others) == {1: "Tom Cruise", 3: "Tom Cruise"}

    rng = np.random.default_rng(4)
    me, costar = rng.normal(size=128), rng.normal(size=128)

    def image(key: int, centre: np.ndarray) -> ImageAnalysis:
        vec = (centre + rng.normal(scale=0.02, size=128)).astype(np.float32)
        return ImageAnalysis(key=key, width=400, height=400, faces=[FaceAnalysis(
            idx=0, box=(10, 10, 200, 200), score=2.0, landmarks=[], blur=80.0, reason=None,
            embedding=vec, phash=None, phash_mirror=None)])

    # 7 photos of the co-star outvote 5 of the person...
    analyses = [image(k, costar) for k in range(7)] + [image(k, me) for k in range(7, 12)]
    p = CurateParams(link_distance=0.5, accept_distance=0.6)
    blind = decide(analyses, p)
    assert {k for k, _ in blind.accepted()} == set(range(7))
    # ...until the text of 4 of them names the co-star: 7 - 2·4 = -1 < 5
    named = {k: "Tom Cruise" for k in range(4)}
    seeing = decide(analyses, p, against=named)
    assert {k for k, _ in seeing.accepted()} == set(range(7, 12))
    assert seeing.notes[(0, 0)] == "the result's text names Tom Cruise"


@pytest.mark.slow  # the look-up is made to take seconds
def test_enrolment_looks_the_name_up_without_holding_an_engine(
        settings: Settings, replica: SimWeb) -> None:
    """While an upload enrolment waits on Wikidata (here 3 s an answer), the server's only
    face engine answers recognitions at once; the enrolment then completes."""
    settings = _wiki(settings, replica.url).model_copy(update={
        "api_tokens": [TOKEN], "default_collection": "serbia",
        "wikidata_api_url": f"{replica.url}/fault/slow/3000/x"})
    photo = (replica.photos_dir / PHOTO).read_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    files = {"image": ("q.jpg", photo, "image/jpeg")}
    enrolled: list[httpx.Response] = []
    with running(create_app(settings, engines=1)) as url:
        warm = httpx.post(f"{url}/api/recognize", files=files, headers=auth, timeout=120)
        assert warm.status_code in (200, 404), warm.text  # the engine's models are loaded
        enrolment = threading.Thread(target=lambda: enrolled.append(httpx.post(
            f"{url}/api/v1/people", data={"name": "Ana Kovač"}, headers=auth, timeout=120,
            files=[("files", ("a.jpg", photo, "image/jpeg"))])))
        enrolment.start()
        deadline = time.monotonic() + 60
        while not replica.count("/fault/slow"):  # the enrolment is asking Wikidata
            assert time.monotonic() < deadline and enrolment.is_alive(), enrolled
            time.sleep(0.02)
        started = time.monotonic()
        answer = httpx.post(f"{url}/api/recognize", files=files, headers=auth, timeout=30)
        took = time.monotonic() - started
        still_looking = enrolment.is_alive()
        enrolment.join(120)
    assert answer.status_code == 200, answer.text
    assert took < 2.0 and still_looking  # not behind the 3 s look-up and the curation
    assert enrolled and enrolled[0].status_code == 200, enrolled
