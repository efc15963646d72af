"""The review UI end to end: `faceatlas serve` in a subprocess on a loopback port, a promoted
gallery built from the test photos, headless Debian chromium driven by Playwright, and httpx
for what a browser would never send (no cookie, wrong CSRF token, forged cookies).

Screenshots of every page land in artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from faceatlas.gallery.index import IndexStore
from faceatlas.gallery.promote import promote
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Face, Image, Job, Person
from tests.gallery_fixtures import COLLECTION, Gallery, copy_home, gallery  # noqa: F401
from tests.ui_fixtures import (  # noqa: F401
    OTHER_TOKEN,
    TOKEN,
    VISIBLE_IMAGES,
    browser,
    client_for,
    login,
    serve,
    shot,
)


@dataclass
class Server:
    url: str
    settings: Settings

    def face(self, face_id: int) -> Face:
        with session_scope(self.settings) as s:
            face = s.get(Face, face_id)
            assert face is not None
            s.expunge(face)
            return face

    def person_id(self, identity: str) -> int:
        with session_scope(self.settings) as s:
            pid = s.scalar(select(Person.id).where(
                Person.name == Gallery.person_name(identity)))
            assert pid is not None
            return pid

    def gallery_face_ids(self, person_id: int) -> list[int]:
        with session_scope(self.settings) as s:
            return list(s.scalars(select(Face.id).where(
                Face.person_id == person_id, Face.gallery_path.is_not(None)).order_by(Face.id)))

    def index_face_ids(self) -> set[int]:
        store = IndexStore(Layout(self.settings.home).index_dir)  # as another process sees it
        return {int(f) for f in store.get(COLLECTION).face_ids}

    def identities(self, photo: Path) -> set[str | None]:
        """The gallery identities the recognition API names for the faces of ``photo``."""
        got = httpx.post(f"{self.url}/api/v1/recognize", timeout=120,
                         headers={"Authorization": f"Bearer {TOKEN}"},
                         files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
        assert got.status_code == 200, got.text
        return {f["identity"] for f in got.json()["faces"]}


@pytest.fixture(scope="module")
def server(
    gallery: Gallery, faces_root: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui")
    settings = copy_home(gallery.settings, root / "home", api_tokens=[TOKEN, OTHER_TOKEN])
    _add_jobs(settings)
    _add_mixed_person(settings, faces_root, root / "incoming")
    with serve(settings, root, FACEATLAS_MIN_FACES_TO_PROMOTE="1",
               FACEATLAS_DEFAULT_COLLECTION=COLLECTION) as url:
        yield Server(url, settings)


def _add_jobs(settings: Settings) -> None:
    """Job rows as the pipeline writes them: one running, one failed with its reason, one
    done as jobs finished before they had closing messages (its last stage still stored),
    one done with its closing message, one queued."""
    with session_scope(settings) as s:
        pid = s.scalar(select(Person.id).order_by(Person.id))
        s.add(Job(kind="collect", person_id=pid, state="done", progress=1.0, attempts=1,
                  message="curating"))
        s.add(Job(kind="collect", person_id=pid, state="done", progress=1.0, attempts=1,
                  message="12 faces accepted of 30 photos"))
        s.add(Job(kind="collect", person_id=pid, state="queued", progress=0.0, attempts=0))
        s.add(Job(kind="collect", person_id=pid, state="failed", attempts=2,
                  error="no photo could be downloaded (http_404 5, timeout 2)"))
        s.add(Job(kind="collect", person_id=pid, state="running", progress=0.3,
                  message="downloading 3 of 10", attempts=1, worker="host:123"))


MIXED = "Barack Obama"


def _add_mixed_person(settings: Settings, faces_root: Path, incoming: Path) -> None:
    """A person in a second collection whose candidates were rejected for several reasons:
    other people, a re-sized copy, a group photo, a file that is no image. Half of the
    photos get web provenance (URL, page, query, rank) as if an image search found them."""
    folder = incoming / MIXED
    folder.mkdir(parents=True)
    for src in sorted((faces_root / "people" / "barack_obama").iterdir()):
        shutil.copyfile(src, folder / src.name)
    for name in ("obama-240p.jpg", "obama-720p.jpg"):
        shutil.copyfile(faces_root / "variants" / name, folder / name)
    shutil.copyfile(faces_root / "group" / "kit_with_rose.jpg", folder / "kit_with_rose.jpg")
    for src in sorted((faces_root / "people" / "person_02").iterdir())[:3]:
        shutil.copyfile(src, folder / f"other_{src.name}")
    (folder / "notes.jpg").write_bytes(b"not a photo at all")
    list(import_folder(incoming, "usa", settings))
    promote(settings, collection="usa")
    with session_scope(settings) as s:
        images = s.scalars(select(Image).join(Person).where(Person.name == MIXED)
                           .order_by(Image.id)).all()
        for rank, img in enumerate(images[::2]):
            img.url = f"https://upload.example.org/photos/{img.id}.jpg"
            img.page_url = f"https://news.example.com/story/{img.id}"
            img.query, img.rank, img.provider = f"{MIXED} politician", rank, "rapidapi"


# --------------------------------------------------------------------------- httpx helpers


# --------------------------------------------------------------------------- refusals


@pytest.mark.slow
def test_pages_actions_and_pictures_need_the_cookie(server: Server) -> None:
    pid = server.person_id("person_03")
    face_id = server.gallery_face_ids(pid)[0]
    with client_for(server) as c:
        for path in ("/ui/", "/ui/jobs", "/ui/recognize", f"/ui/people/{pid}",
                     f"/ui/collections/{COLLECTION}"):
            got = c.get(path)
            assert got.status_code == 303, path
            assert got.headers["location"].startswith("/ui/login?next=")
        assert c.get(f"/ui/faces/{face_id}/thumb.jpg").status_code == 401
        assert c.get("/ui/jobs/table", headers={"HX-Request": "true"}).status_code == 401
        # the API's bearer token is not a UI session
        bearer = c.get("/ui/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 303
        for action in (f"/ui/faces/{face_id}/reject", f"/ui/people/{pid}/delete",
                       f"/ui/people/{pid}/recollect", "/ui/logout"):
            assert c.post(action, data={"csrf": "x", "confirm": "yes"}).status_code == 401
        # a forged cookie (right shape, wrong signature) is no session either
        c.cookies.set("faceatlas_session", f"abc.{int(time.time()) + 999}.AAAA", path="/ui")
        assert c.post(f"/ui/faces/{face_id}/reject").status_code == 401
    assert server.face(face_id).state == "accepted"
    assert face_id in server.index_face_ids()


def test_wrong_or_missing_csrf_token_is_refused(server: Server) -> None:
    pid = server.person_id("person_04")
    face_id = server.gallery_face_ids(pid)[0]
    with client_for(server) as c, client_for(server) as other:
        csrf = login(c)
        other_csrf = login(other, OTHER_TOKEN)
        assert other_csrf != csrf
        for data in ({}, {"csrf": ""}, {"csrf": "wrong"}, {"csrf": other_csrf}):
            got = c.post(f"/ui/faces/{face_id}/reject", data=data)
            assert got.status_code == 403, data
            assert "Form expired" in got.text and "Traceback" not in got.text
        assert c.post(f"/ui/faces/{face_id}/reject",
                      headers={"X-CSRF-Token": "wrong"}).status_code == 403
        assert server.face(face_id).state == "accepted"

        ok = c.post(f"/ui/faces/{face_id}/reject", data={"csrf": csrf})
        assert ok.status_code == 303 and ok.headers["location"].startswith(f"/ui/people/{pid}")
        assert server.face(face_id).reason == "rejected_by_user"
        assert face_id not in server.index_face_ids()
        back = c.post(f"/ui/faces/{face_id}/restore", headers={"X-CSRF-Token": csrf})
        assert back.status_code == 303
        assert server.face(face_id).state == "accepted" and face_id in server.index_face_ids()


def test_login_cookie_flags_and_refusals(server: Server) -> None:
    with client_for(server) as c:
        form = c.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce
        bad = c.post("/ui/login", data={"token": "nope", "nonce": nonce[1]})
        assert bad.status_code == 401 and "not valid" in bad.text
        assert "faceatlas_session" not in c.cookies
        assert c.post("/ui/login", data={"token": TOKEN, "nonce": "forged"}).status_code == 403
        ok = c.post("/ui/login", data={"token": TOKEN, "nonce": nonce[1],
                                       "next": "//evil.example/x"})
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/"
        cookie = next(h for h in ok.headers.get_list("set-cookie")
                      if h.startswith("faceatlas_session="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "path=/ui", "samesite=strict"} <= flags
        assert "secure" not in flags  # plain http to 127.0.0.1: a browser would drop it
        assert TOKEN not in cookie
        page = c.get("/ui/")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # any other host name over http gets a Secure cookie (so put TLS in front of the server)
    with client_for(server) as c:
        headers = {"Host": "faceatlas.example.org"}
        form = c.get("/ui/login", headers=headers)
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce
        assert "secure" in form.headers["set-cookie"].lower()
        # httpx, like a browser, keeps Secure cookies off plain http: send the nonce by hand
        ok = c.post("/ui/login", data={"token": TOKEN, "nonce": nonce[1]},
                    headers={**headers, "Cookie": f"faceatlas_login={nonce[1]}"})
        assert ok.status_code == 303
        cookie = next(h for h in ok.headers.get_list("set-cookie")
                      if h.startswith("faceatlas_session="))
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_pictures_by_id_only_and_errors_as_pages(server: Server) -> None:
    with client_for(server) as c:
        login(c)
        pid = server.person_id("person_05")
        face_id = server.gallery_face_ids(pid)[0]
        thumb = c.get(f"/ui/faces/{face_id}/thumb.jpg")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert thumb.content[:2] == b"\xff\xd8"
        assert c.get(f"/ui/faces/{face_id}/crop.jpg").status_code == 200
        assert c.get("/ui/faces/abc/thumb.jpg").status_code == 422
        assert c.get("/ui/faces/..%2F..%2Ffaceatlas.db/thumb.jpg").status_code in (404, 422)
        assert c.get("/ui/static/..%2Fui.py").status_code == 404
        missing = c.get("/ui/people/999999")
        assert missing.status_code == 404 and "no person with id 999999" in missing.text
        assert "<html" in missing.text  # a page, not JSON
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/recognize").text)
        assert csrf
        not_image = c.post("/ui/recognize", data={"csrf": csrf[1]},
                           files={"image": ("notes.jpg", b"plain text", "image/jpeg")})
        assert not_image.status_code == 415 and "not an image" in not_image.text
        assert "Traceback" not in not_image.text and "PIL" not in not_image.text


def test_recollect_promote_and_delete_with_confirmation(server: Server) -> None:
    with client_for(server) as c:
        csrf = login(c)
        pid = server.person_id("person_09")
        faces = server.gallery_face_ids(pid)
        assert faces and set(faces) <= server.index_face_ids()
        promoted = c.post(f"/ui/people/{pid}/promote", data={"csrf": csrf})
        assert promoted.status_code == 303 and "done=promoted" in promoted.headers["location"]

        kept = c.post(f"/ui/people/{pid}/delete", data={"csrf": csrf})
        assert kept.status_code == 400 and "confirm" in kept.text
        assert server.gallery_face_ids(pid) == faces

        queued = c.post(f"/ui/people/{pid}/recollect", data={"csrf": csrf})
        assert queued.status_code == 303
        with session_scope(server.settings) as s:
            person = s.get(Person, pid)
            assert person is not None and person.state == "queued"
        refused = c.post(f"/ui/people/{pid}/promote", data={"csrf": csrf})
        assert refused.status_code == 409 and "only curated people" in refused.text

        gone = c.post(f"/ui/people/{pid}/delete", data={"csrf": csrf, "confirm": "yes"})
        assert gone.status_code == 303
        assert gone.headers["location"].startswith(f"/ui/collections/{COLLECTION}")
        with session_scope(server.settings) as s:
            assert s.get(Person, pid) is None
        assert not set(faces) & server.index_face_ids()


# --------------------------------------------------------------------------- the browser


@pytest.mark.slow
def test_review_in_a_browser(server: Server, browser: Any, faces_root: Path) -> None:  # noqa: F811
    layout = Layout(server.settings.home)
    pid = server.person_id("person_01")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{server.url}/ui/")
        assert "/ui/login" in page.url
        shot(page, "01-login")
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        assert page.locator("text=That token is not valid").is_visible()
        assert len(errors) == 1 and "401" in errors[0]  # the refused log-in itself
        errors.clear()
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/ui/")
        assert page.locator(f".collection:has-text('{COLLECTION}')").is_visible()
        shot(page, "02-collections")

        page.click(f".collection:has-text('{COLLECTION}')")
        page.wait_for_url(f"**/ui/collections/{COLLECTION}")
        shot(page, "03-collection")
        assert page.evaluate(f"{VISIBLE_IMAGES}.every(i => i.naturalWidth > 0)")
        page.click("a.person-card:has-text('person 01')")
        page.wait_for_url(f"**/ui/people/{pid}")
        accepted = page.locator("#accepted li.face")
        assert accepted.count() == len(server.gallery_face_ids(pid)) >= 2
        assert page.locator("#accepted li.face img[loading=lazy]").count() == accepted.count()
        assert page.locator("#accepted .prov").first.inner_text().strip()  # provenance
        shot(page, "04-person")
        assert page.evaluate(f"{VISIBLE_IMAGES}.every(i => i.naturalWidth > 0)")

        # reject: out of the gallery folder, the index and the recognition answer at once
        card = accepted.first
        face_id = int(card.get_attribute("data-face-id") or 0)
        before = server.face(face_id)
        assert before.gallery_path and layout.absolute(before.gallery_path).is_file()
        photo = layout.absolute(_raw_path(server, face_id))
        stem = Path(before.gallery_path).stem
        assert stem in server.identities(photo)
        card.locator("button.reject").click()
        page.wait_for_selector(f"#rejected #face-{face_id}")
        assert "rejected" in page.locator(".flash").first.inner_text()
        assert page.locator(f"#accepted #face-{face_id}").count() == 0
        assert page.locator("#reason-rejected_by_user").is_visible()
        after = server.face(face_id)
        assert (after.state, after.reason, after.gallery_path) == (
            "rejected", "rejected_by_user", None)
        assert not layout.absolute(before.gallery_path).exists()
        assert face_id not in server.index_face_ids()
        assert stem not in server.identities(photo)
        shot(page, "05-person-rejected")

        # restore: back in all three
        page.locator(f"#rejected #face-{face_id} button.restore").click()
        page.wait_for_selector(f"#accepted #face-{face_id}")
        restored = server.face(face_id)
        assert restored.state == "accepted" and restored.gallery_path == before.gallery_path
        assert layout.absolute(before.gallery_path).is_file()
        assert face_id in server.index_face_ids()
        assert stem in server.identities(photo)

        # a person whose candidates were rejected for many reasons, with web provenance
        page.goto(f"{server.url}/ui/collections/usa")
        page.click(f"a.person-card:has-text('{MIXED}')")
        for reason in ("not_this_person", "duplicate", "not_an_image"):
            assert page.locator(f"#reason-{reason}").count() == 1, reason
        source = page.locator("#accepted .prov a[href^='https://news.example.com/']").first
        assert source.get_attribute("rel") == "noopener noreferrer nofollow"
        assert page.locator(f"text=“{MIXED} politician”").count() > 0
        page.evaluate("document.querySelectorAll('details.group').forEach(d => d.open = true)")
        shot(page, "05b-person-candidates")
        assert page.evaluate(f"{VISIBLE_IMAGES}.every(i => i.naturalWidth > 0)")

        # phone-sized
        phone = browser.new_context(viewport={"width": 390, "height": 844},
                                    device_scale_factor=2, is_mobile=True)
        phone.add_cookies(context.cookies())
        mobile = phone.new_page()
        mobile.goto(f"{server.url}/ui/people/{pid}")
        width = mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the person page scrolls sideways on a phone ({width} px)"
        shot(mobile, "06-person-phone")
        phone.close()

        # jobs, with live progress: a change in the database shows without a reload
        page.click("nav >> text=Jobs")
        page.wait_for_url("**/ui/jobs")
        assert page.locator("text=no photo could be downloaded (http_404 5").is_visible()
        assert page.locator("text=downloading 3 of 10").is_visible()
        assert page.locator("text=12 faces accepted of 30 photos").is_visible()
        assert page.locator("text=waiting for a worker").is_visible()  # the queued job
        assert page.locator("tr.job-done:has-text('curating')").count() == 0
        with session_scope(server.settings) as s:
            job = s.scalar(select(Job).where(Job.state == "running"))
            assert job is not None
            job.progress, job.message = 0.8, "analysing faces 8 of 10"
        page.wait_for_selector("text=analysing faces 8 of 10", timeout=10_000)
        shot(page, "07-jobs")

        # recognise a group photo: one box per face, with names
        photo = faces_root / "group" / "obama_and_biden.jpg"
        page.click("nav >> text=Recognise")
        page.wait_for_url("**/ui/recognize")
        shot(page, "08-recognize-form")
        page.set_input_files("input[name=image]", str(photo))
        page.click("form.recognize-form button[type=submit]")
        page.wait_for_selector("svg .face-box", timeout=60_000)
        boxes = page.locator("svg .face-box")
        assert boxes.count() == len(_api_faces(server, photo)) >= 3
        names = {boxes.nth(i).get_attribute("data-person") for i in range(boxes.count())}
        assert {"barack obama", "joe biden"} <= names
        shot(page, "09-recognize-result")
        assert not errors, errors  # no CSP refusal, no failed request, no script error
    finally:
        context.close()


def _raw_path(server: Server, face_id: int) -> str:
    with session_scope(server.settings) as s:
        face = s.get(Face, face_id)
        assert face is not None and face.image.path
        return face.image.path


def _api_faces(server: Server, photo: Path) -> list[dict[str, Any]]:
    got = httpx.post(f"{server.url}/api/v1/recognize", timeout=120,
                     headers={"Authorization": f"Bearer {TOKEN}"},
                     files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert got.status_code == 200
    return list(got.json()["faces"])
