"""The person page for real use, end to end in Debian chromium: a person with 65
near-identical copies of one photo (real faces, re-encoded, shifted and brightened a little,
so curation marks them ``duplicate``) stays short because the copies fold under the face they
duplicate; the keyboard flow (j/k, x, r, ?) rejects and restores a face; several faces are
rejected with one confirmation; banners have the right kind; "Collect now" refuses clearly
when no image source has a key.

Screenshots land in artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from PIL import ImageChops, ImageEnhance
from sqlalchemy import select

from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Image, Job, Person, PersonState
from tests.gallery_fixtures import gallery_settings
from tests.simweb_fixtures import person, simweb_server
from tests.ui_fixtures import (  # noqa: F401
    browser,
    browser_login,
    client_for,
    login,
    serve,
    shot,
)

COLLECTION = "review"
NAME = "Barack Obama"
OTHER = "Joe Biden"
VARIANTS = 65


def variants(photo: Path, count: int) -> Iterator[tuple[str, bytes]]:
    """Near-identical copies: JPEG quality 70–95, shifted ±1 px sideways, brightness
    ±3 % (a 1 px vertical shift moves the face hash by ~20 bits: curation keeps those apart)."""
    base = PILImage.open(photo).convert("RGB")
    for i in range(count):
        pic = ImageChops.offset(base, i % 3 - 1, 0)
        pic = ImageEnhance.Brightness(pic).enhance(1 + (i % 7 - 3) / 100)
        buf = io.BytesIO()
        pic.save(buf, "JPEG", quality=70 + i % 26)
        yield f"copy_{i:02d}.jpg", buf.getvalue()


def build_home(root: Path, faces_root: Path) -> tuple[Settings, int]:
    """Two people imported and curated: Barack Obama (his photos, 65 near-duplicates of one
    of them, two byte copies of another) and Joe Biden. Returns settings and Obama's id."""
    incoming = root / "incoming"
    mine = incoming / NAME
    mine.mkdir(parents=True)
    photos = sorted((faces_root / "people" / "barack_obama").iterdir())
    for src in photos:
        shutil.copyfile(src, mine / src.name)
    for name, data in variants(photos[0], VARIANTS):
        (mine / name).write_bytes(data)
    for i in range(2):  # same bytes: marked at image level, never analysed
        shutil.copyfile(photos[1], mine / f"same_bytes_{i}.jpg")
    theirs = incoming / OTHER
    theirs.mkdir()
    for src in sorted((faces_root / "people" / "joe_biden").iterdir()):
        shutil.copyfile(src, theirs / src.name)
    settings = gallery_settings(root / "home", default_collection=COLLECTION)
    list(import_folder(incoming, COLLECTION, settings))
    with session_scope(settings) as s:
        pid = s.scalar(select(Person.id).where(Person.name == NAME))
        assert pid is not None
    return settings, pid


@dataclass
class Server:
    url: str
    settings: Settings
    person_id: int

    def face(self, face_id: int) -> tuple[str, str]:
        with session_scope(self.settings) as s:
            f = s.get(Face, face_id)
            assert f is not None
            return f.state, f.reason

    def accepted(self) -> list[int]:
        with session_scope(self.settings) as s:
            return list(s.scalars(select(Face.id).where(
                Face.person_id == self.person_id, Face.state == "accepted").order_by(Face.id)))

    def other_id(self) -> int:
        with session_scope(self.settings) as s:
            pid = s.scalar(select(Person.id).where(Person.name == OTHER))
            assert pid is not None
            return pid


@pytest.fixture(scope="module")
def server(faces_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("review")
    settings, pid = build_home(root, faces_root)
    biden = [f"people/joe_biden/{p.name}"
             for p in sorted((faces_root / "people" / "joe_biden").iterdir())]
    # image search on the simulated web, so "Collect now" really collects (Joe Biden)
    with simweb_server([person(OTHER, biden, country="USA")], faces_root) as web, serve(
            settings, root, FACEATLAS_DEFAULT_COLLECTION=COLLECTION,
            FACEATLAS_MIN_FACES_TO_PROMOTE="6", FACEATLAS_IMAGE_SOURCES="rapidapi",
            RAPIDAPI_KEY="test-key", FACEATLAS_IMAGE_SEARCH_URL=f"{web.url}/search",
            FACEATLAS_ALLOW_PRIVATE_NETWORKS="1", FACEATLAS_DOWNLOAD_TIMEOUT="5") as url:
        yield Server(url, settings, pid)


def _duplicates(settings: Settings, person_id: int) -> int:
    """Faces and byte copies curation marked ``duplicate`` (the page must show them all)."""
    with session_scope(settings) as s:
        faces = s.scalars(select(Face.id).where(Face.person_id == person_id,
                                                Face.reason == "duplicate")).all()
        copies = s.scalars(select(Image.id).where(
            Image.person_id == person_id, Image.reason == "duplicate",
            ~Image.faces.any())).all()
        return len(faces) + len(copies)


def _open(chromium: Any, server: Server) -> Any:
    """A logged-in page on the person; ``page.js_errors``: uncaught script errors."""
    page = browser_login(chromium, server.url)
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.goto(f"{server.url}/ui/people/{server.person_id}")
    return page


def _clean(page: Any) -> None:
    assert not page.errors and not page.js_errors, (page.errors, page.js_errors)


def _focused(page: Any, expected: str | None = None) -> str:
    """The id of the focused element (``expected``: wait up to 5 s for it: after a redirect
    ui.js focuses the anchored card once the page has loaded)."""
    deadline = time.monotonic() + 5
    while True:
        got = str(page.evaluate("document.activeElement && document.activeElement.id"))
        if expected is None or got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.slow
def test_duplicates_fold_under_the_face_they_copy(server: Server, browser: Any) -> None:  # noqa: F811
    total = _duplicates(server.settings, server.person_id)
    assert total >= VARIANTS  # curation did mark the near-identical copies
    page = _open(browser, server)
    height = page.evaluate("document.body.scrollHeight")
    assert height < 1500, f"the page is {height} px tall"
    cards = page.locator("#accepted li.face")
    assert cards.count() == len(server.accepted())
    folds = page.locator("#accepted details.dups")
    counts = [int(re.findall(r"\d+", folds.nth(i).locator("summary").inner_text())[0])
              for i in range(folds.count())]
    assert sum(counts) == total and max(counts) >= VARIANTS - 1
    assert page.locator("#reason-duplicate").inner_text().startswith("duplicate")
    assert page.locator("#rejected li.face").count() == 0  # none left over
    # closed: no duplicate thumbnail is fetched
    big = folds.nth(counts.index(max(counts)))
    assert page.evaluate("Array.from(document.querySelectorAll('.dup img'))"
                         ".every(i => i.naturalWidth === 0)")
    shot(page, "review-01-duplicates-folded")
    big.locator("summary").click()
    thumbs = big.locator(".dup img")
    assert thumbs.count() == max(counts) and thumbs.first.is_visible()
    deadline = time.monotonic() + 15
    while not page.evaluate("Array.from(document.querySelectorAll('details.dups[open] img'))"
                            ".every(i => i.complete && i.naturalWidth > 0)"):
        assert time.monotonic() < deadline, "duplicate thumbnails did not load"
        time.sleep(0.05)
    shot(page, "review-02-duplicates-open")
    # each face card is one tab stop: nothing inside it takes Tab
    inner = page.evaluate("Array.from(document.querySelectorAll('.face[tabindex] a, "
                          ".face[tabindex] button, .face[tabindex] input:not([type=hidden]), "
                          ".face[tabindex] summary')).filter(e => e.tabIndex >= 0).length")
    assert inner == 0
    _clean(page)
    page.context.close()


@pytest.mark.slow
def test_keyboard_review_rejects_and_restores(server: Server, browser: Any) -> None:  # noqa: F811
    page = _open(browser, server)
    ids = [int(x) for x in page.locator("#accepted li.face").evaluate_all(
        "cards => cards.map(c => c.dataset.faceId)")]
    page.keyboard.press("j")
    assert _focused(page) == f"face-{ids[0]}"
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert _focused(page) == f"face-{ids[1]}"
    outline = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert outline and outline != "none"
    page.keyboard.press("j")
    target = ids[2]
    assert _focused(page) == f"face-{target}"

    page.keyboard.press("x")
    page.wait_for_selector(f"#rejected #face-{target}")
    assert page.url.endswith(f"#face-{target}")
    assert server.face(target) == ("rejected", "rejected_by_user")
    assert _focused(page, f"face-{target}") == f"face-{target}"  # back on the same face
    assert page.locator(".flash.ok").first.inner_text().startswith(f"Face {target} rejected")
    shot(page, "review-03-keyboard-rejected")

    page.keyboard.press("r")
    page.wait_for_selector(f"#accepted #face-{target}")
    assert server.face(target)[0] == "accepted"
    assert _focused(page, f"face-{target}") == f"face-{target}"

    help_box = page.locator("#kbd-help .kbd-panel")
    assert not help_box.is_visible()
    page.keyboard.press("?")
    assert help_box.is_visible() and "reject the face" in help_box.inner_text()
    shot(page, "review-04-keyboard-help")
    page.keyboard.press("Escape")
    assert not help_box.is_visible()
    page.click("#kbd-help summary")  # the visible hint opens it without the keyboard
    assert help_box.is_visible()
    _clean(page)
    page.context.close()


@pytest.mark.slow
def test_reject_and_restore_several_with_one_confirmation(server: Server, browser: Any  # noqa: F811
                                                         ) -> None:
    page = _open(browser, server)
    chosen = server.accepted()[-2:]
    for face_id in chosen:
        page.check(f"#face-{face_id} input[name=face]")
    page.click("#bulk-reject summary")
    shot(page, "review-05-reject-several-confirm")
    assert all(server.face(f)[0] == "accepted" for f in chosen)  # not before the confirmation
    page.click("#bulk-reject button[name=confirm]")
    page.wait_for_selector(f"#rejected #face-{chosen[0]}")
    assert [server.face(f) for f in chosen] == [("rejected", "rejected_by_user")] * 2
    assert page.locator(".flash.ok").first.inner_text().startswith("2 faces rejected")
    for face_id in chosen:
        page.check(f"#face-{face_id} input[name=face]")
    page.click("#bulk-restore summary")
    page.click("#bulk-restore button[name=confirm]")
    page.wait_for_selector(f"#accepted #face-{chosen[1]}")
    assert all(server.face(f)[0] == "accepted" for f in chosen)
    _clean(page)
    page.context.close()

    with client_for(server) as c:
        csrf = login(c)
        url = f"/ui/people/{server.person_id}/faces/reject"
        unconfirmed = c.post(url, data={"csrf": csrf, "face": chosen})
        assert unconfirmed.status_code == 400 and "Confirm" in unconfirmed.text
        with session_scope(server.settings) as s:
            foreign = s.scalar(select(Face.id).where(Face.person_id == server.other_id()))
        refused = c.post(url, data={"csrf": csrf, "face": [chosen[0], foreign],
                                    "confirm": "yes"})
        assert refused.status_code == 404
        assert server.face(chosen[0])[0] == "accepted" and server.face(foreign)[0] == "accepted"


@pytest.mark.slow
def test_banners_and_collect_now(server: Server, browser: Any) -> None:  # noqa: F811
    page = _open(browser, server)
    person_url = f"{server.url}/ui/people/{server.person_id}"
    page.goto(person_url)
    page.click("button:has-text('Promote')")  # 4 faces, promotion needs 6
    page.wait_for_url("**done=too_few_faces")
    banner = page.locator(".flash").first
    assert "warn" in (banner.get_attribute("class") or "")
    assert banner.inner_text().startswith("Not promoted")
    assert page.locator(".flash.ok").count() == 0

    # a blocked promotion as promote_person stores it (a row from before names were kept)
    other = server.other_id()
    with session_scope(server.settings) as s:
        p = s.get(Person, server.person_id)
        assert p is not None
        p.state = PersonState.CURATED
        p.selftest = {"passed": False, "face_id": server.accepted()[0],
                      "predicted_person_id": other, "predicted_name": None,
                      "detail": f"face recognised as person {other}"}
    page.goto(f"{person_url}?done=blocked")
    banner = page.locator(".flash").first
    assert "error" in (banner.get_attribute("class") or "")
    assert OTHER in banner.inner_text()
    assert page.locator(f".selftest-who[href='/ui/people/{other}']").inner_text() == OTHER
    assert f"person {other}" not in page.locator("main").inner_text()
    shot(page, "review-06-blocked-banner")

    # Collect now: a job row at once, work on the server's background thread, Jobs shows it
    page.goto(f"{server.url}/ui/people/{other}")
    page.click("button.collect-now")
    page.wait_for_url("**done=collecting**")
    banner = page.locator(".flash").first
    assert "info" in (banner.get_attribute("class") or "")
    assert "Collecting now on the server" in banner.inner_text()
    with session_scope(server.settings) as s:
        job = s.scalar(select(Job).where(Job.person_id == other).order_by(Job.id.desc()))
        assert job is not None and job.state in ("queued", "running", "done")
    banner.locator("a[href='/ui/jobs']").click()
    page.wait_for_url("**/ui/jobs")
    assert page.locator(f"text={OTHER}").first.is_visible()
    shot(page, "review-07-collect-now-jobs")
    # the old button's address still queues
    with client_for(server) as c:
        csrf = login(c)
        old = c.post(f"/ui/people/{server.person_id}/recollect", data={"csrf": csrf})
        assert old.status_code == 303 and "done=recollect" in old.headers["location"]
    _clean(page)
    page.context.close()
