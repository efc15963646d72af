"""Tokens bound to collections, route by route, over real HTTP.

Collections: ``test`` (the shared gallery: people, faces, images, jobs) and ``alpha`` (one
person). Token A is bound to ``alpha`` (the old ``{token: domain}`` form), token T to
``test``, the admin token to nothing (sees all). A asking about anything of ``test`` gets the
same 404 — same words — as for something that does not exist: existence does not leak.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from faceatlas.api import create_app
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.jobs import finish_job, start_job
from faceatlas.store.models import Face, Image, Job, Person, Reference
from faceatlas.store.people import get_or_create_collection, upsert_person
from tests.gallery_fixtures import Gallery, copy_home, gallery, running  # noqa: F401
from tests.ui_fixtures import login

pytestmark = pytest.mark.slow  # one gallery copy and server for the module

A = "alpha-token-0123456789"
T = "test-token-0123456789"
ADMIN = "admin-token-0123456789"


@dataclass
class World:
    url: str
    settings: Settings
    person: int  # of test, promoted, with faces
    queued: int  # of test, queued
    face: int
    image: int
    job: int  # of a test person
    alpha_person: int
    photo: Path  # a gallery person's query photo
    video_job: int  # of test, running


@pytest.fixture(scope="module")
def world(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
          ) -> Iterator[World]:
    tokens = json.dumps({A: "Alpha", T: "test", ADMIN: None})
    settings = copy_home(gallery.settings, tmp_path_factory.mktemp("scope") / "home",
                         api_tokens=tokens, rapidapi_key="k")
    with session_scope(settings) as s:
        alpha = get_or_create_collection(s, "Alpha")
        a_person, _ = upsert_person(s, alpha, "Alpha Person")
        a_person.state = "curated"  # nothing of alpha's is queued
        test = get_or_create_collection(s, "test")
        queued, _ = upsert_person(s, test, "Queued Person")
        person = s.scalars(select(Person).where(Person.state == "promoted")).first()
        assert person is not None
        face = s.scalars(select(Face).where(Face.person_id == person.id)).first()
        image = s.scalars(select(Image).where(Image.person_id == person.id)).first()
        ids = (person.id, queued.id, face.id, image.id, a_person.id)  # type: ignore[union-attr]
    job = start_job(settings, "collect", ids[0])
    finish_job(settings, job)
    with session_scope(settings) as s:
        test_id = s.scalar(select(Person.collection_id).where(Person.id == ids[0]))
        video = Job(kind="video", collection_id=test_id, state="running", attempts=1)
        s.add(video)
        s.flush()
        video_job = video.id
    photo = next(p for who, p in gallery.queries if who == "barack_obama")
    with running(create_app(settings, engines=1)) as url:
        yield World(url, settings, ids[0], ids[1], ids[2], ids[3], job, ids[4], photo,
                    video_job)


def client(world: World, token: str) -> httpx.Client:
    return httpx.Client(base_url=world.url, timeout=120, follow_redirects=False,
                        headers={"Authorization": f"Bearer {token}"})


def jpeg(photo: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (photo.name, photo.read_bytes(), "image/jpeg")}


def not_found(got: httpx.Response, same_as: httpx.Response) -> None:
    """404 with exactly the words a missing thing gets."""
    assert got.status_code == 404, got.text
    assert same_as.status_code == 404, same_as.text
    def words(r: httpx.Response) -> str:  # ids and names differ, the sentence must not
        return re.sub(r"'[^']*'", "'X'", re.sub(r"\d+", "N", r.json()["detail"]))

    assert words(got) == words(same_as)


def test_api_routes_keep_to_the_tokens_collections(world: World) -> None:
    missing = 2**40
    with client(world, A) as a, client(world, T) as t, client(world, ADMIN) as admin:
        # listing: only its own
        assert [c["key"] for c in a.get("/api/v1/collections").json()] == ["alpha"]
        assert {c["key"] for c in admin.get("/api/v1/collections").json()} == {"alpha", "test"}
        assert [p["collection"] for p in a.get("/api/v1/people").json()] == ["alpha"]
        assert {p["collection"] for p in t.get("/api/v1/people").json()} == {"test"}
        not_found(a.get("/api/v1/people", params={"collection": "test"}),
                  a.get("/api/v1/people", params={"collection": "atlantis"}))
        # one person, its faces, deleting it
        for method, path in [("GET", "/api/v1/people/{}"), ("GET", "/api/v1/people/{}/faces"),
                             ("DELETE", "/api/v1/people/{}")]:
            not_found(a.request(method, path.format(world.person)),
                      a.request(method, path.format(missing)))
            assert t.request("GET", path.format(world.person)).status_code == 200
        with session_scope(world.settings) as s:
            assert s.get(Person, world.person) is not None  # the refused delete deleted nothing
        # changes: references, collect now (nothing queued, no job written)
        not_found(a.post(f"/api/v1/faces/{world.face}/reference"),
                  a.post(f"/api/v1/faces/{missing}/reference"))
        url = {"url": "https://example.org/me.jpg"}
        not_found(a.post(f"/api/v1/people/{world.person}/references", data=url),
                  a.post(f"/api/v1/people/{missing}/references", data=url))
        not_found(a.post(f"/api/v1/people/{world.person}/collect"),
                  a.post(f"/api/v1/people/{missing}/collect"))
        with session_scope(world.settings) as s:
            assert s.scalar(select(func.count()).select_from(Reference)) == 0
            assert s.get(Person, world.person).state == "promoted"  # type: ignore[union-attr]
            assert s.scalar(select(func.count()).select_from(Job)) == 2
        # jobs
        assert world.job not in [j["id"] for j in a.get("/api/v1/jobs").json()]
        assert world.job in [j["id"] for j in t.get("/api/v1/jobs").json()]
        assert world.job in [j["id"] for j in admin.get("/api/v1/jobs").json()]
        not_found(a.get(f"/api/v1/jobs/{world.job}"), a.get(f"/api/v1/jobs/{missing}"))
        not_found(a.get(f"/api/v1/recognize/video/{world.job}"),
                  a.get(f"/api/v1/recognize/video/{missing}"))
        assert t.get(f"/api/v1/jobs/{world.job}").status_code == 200
        # recognition: not in another collection, on all three paths
        for path in ("/recognize", "/api/recognize", "/api/v1/recognize"):
            not_found(a.post(path, files=jpeg(world.photo), data={"collection": "test"}),
                      a.post(path, files=jpeg(world.photo), data={"collection": "atlantis"}))
            mine = t.post(path, files=jpeg(world.photo))  # no collection: the token's own
            assert mine.status_code == 200 and mine.json()["status"] == "success", mine.text
        # A's own (empty) collection: nobody found there, in the old words
        own = a.post("/recognize", files=jpeg(world.photo)).json()
        assert own["status"] == "error" and own["message"] == "No matches within threshold"
        # enrolment: not into another collection, and nothing stored
        refused = a.post("/api/v1/people", data={"name": "Sneaky Person", "collection": "test"},
                         files={"files": ("x.jpg", world.photo.read_bytes(), "image/jpeg")})
        not_found(refused, a.post("/api/v1/people", data={"name": "X", "collection": "atlantis"},
                                  files={"files": ("x.jpg", b"x", "image/jpeg")}))
        with session_scope(world.settings) as s:
            assert s.scalar(select(Person).where(Person.name == "Sneaky Person")) is None


def test_excel_routes_keep_to_the_tokens_collections(world: World) -> None:
    with client(world, A) as a:
        not_found(a.get("/api/excel/check-excel", params={"country": "test"}),
                  a.get("/api/excel/check-excel", params={"country": "atlantis"}))
        # the queue of test is not A's: nothing to do for A, and test's person stays queued
        got = a.get("/api/excel/process").json()
        assert got["success"] is False and got["message"].startswith("No data found")
        assert a.get("/api/excel/occupations").status_code == 200  # the server's list
    with session_scope(world.settings) as s:
        queued = s.get(Person, world.queued)
        assert queued is not None and queued.state == "queued"


def test_ui_pages_and_actions_keep_to_the_tokens_collections(world: World) -> None:
    missing = 2**40
    with httpx.Client(base_url=world.url, timeout=120) as a, \
            httpx.Client(base_url=world.url, timeout=120) as t:
        csrf = login(a, A)
        t_csrf = login(t, T)
        home = a.get("/ui/")
        assert "/ui/collections/alpha" in home.text and "/ui/collections/test" not in home.text
        assert "/ui/collections/test" in t.get("/ui/").text
        assert a.get("/ui/collections/test").status_code == 404
        assert a.get("/ui/collections/alpha").status_code == 200
        pages = ["/ui/people/{}", "/ui/faces/{}/thumb.jpg", "/ui/faces/{}/crop.jpg",
                 "/ui/images/{}/thumb.jpg", "/ui/video/{}"]
        ids = [world.person, world.face, world.face, world.image, world.video_job]
        for page, i in zip(pages, ids, strict=True):
            assert a.get(page.format(i)).status_code == 404, page
            assert a.get(page.format(missing)).status_code == 404, page
            assert t.get(page.format(i)).status_code == 200, page
        for action, i in [("/ui/faces/{}/reject", world.face), ("/ui/faces/{}/restore", world.face),
                          ("/ui/faces/{}/reference", world.face),
                          ("/ui/people/{}/recollect", world.person),
                          ("/ui/people/{}/promote", world.person),
                          ("/ui/people/{}/delete", world.person)]:
            got = a.post(action.format(i), data={"csrf": csrf, "confirm": "yes"})
            assert got.status_code == 404, (action, got.status_code)
        with session_scope(world.settings) as s:
            face, person = s.get(Face, world.face), s.get(Person, world.person)
            assert face is not None and face.state == "accepted" and face.gallery_path
            assert person is not None and person.state == "promoted"
            assert s.scalar(select(func.count()).select_from(Reference)) == 0
        jobs = a.get("/ui/jobs/table").text
        assert f">{world.job}<" not in jobs and "Alpha Person" not in jobs
        assert f"{world.job}" in t.get("/ui/jobs/table").text
        refused = a.post("/ui/recognize", data={"csrf": csrf, "collection": "test"},
                         files=jpeg(world.photo))
        assert refused.status_code == 404
        for page in ("/ui/recognize", "/ui/video"):
            form = a.get(page).text
            assert '"alpha"' in form and '"test"' not in form, page
        assert a.get(f"/ui/video/{world.video_job}/tracks/1.jpg").status_code == 404
        refused = a.post("/ui/video", data={"csrf": csrf, "collection": "test"},
                         files={"video": ("clip.mp4", b"not really a clip", "video/mp4")})
        assert refused.status_code == 404 and "no collection" in refused.text
        ok = t.post("/ui/recognize", data={"csrf": t_csrf}, files=jpeg(world.photo))
        assert ok.status_code == 200 and "barack obama" in ok.text


def test_unbound_tokens_and_old_format_reach_everything(world: World) -> None:
    blank = io.BytesIO()
    PILImage.new("RGB", (300, 200), "white").save(blank, "PNG")
    with client(world, ADMIN) as admin:
        for path in (f"/api/v1/people/{world.person}", f"/api/v1/jobs/{world.job}",
                     f"/api/v1/people/{world.alpha_person}"):
            assert admin.get(path).status_code == 200
        got = admin.post("/recognize", files={"image": ("b.png", blank.getvalue(), "image/png")},
                         data={"collection": "alpha"})
        assert got.json()["status"] == "no_faces"
    # the old client: the raw token, no Bearer
    raw = httpx.post(f"{world.url}/recognize", headers={"Authorization": T},
                     files=jpeg(world.photo), timeout=120)
    assert raw.status_code == 200 and raw.json()["person"] == "barack obama"
