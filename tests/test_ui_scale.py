"""The collection page at scale, end to end: a generated collection of 2,000 people
(devtools.bigcollection, real crops from the shared photos), a real `faceatlas serve`, Debian
chromium through Playwright — search, filters, paging, a bulk action with its one
confirmation — and httpx for the bulk POST a browser would never send (no CSRF token, a token
bound to another collection). Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from faceatlas.devtools.bigcollection import ACCENTED, generate
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Face, FaceState, Image, Person, PersonState, Reason
from tests.ui_fixtures import (  # noqa: F401  (browser is a fixture)
    OTHER_TOKEN,
    TOKEN,
    browser,
    browser_login,
    client_for,
    login,
    serve,
    shot,
)

PEOPLE = 2000
KEY = "big"

pytestmark = pytest.mark.slow


@dataclass
class Big:
    url: str
    settings: Settings

    def states(self) -> dict[int, str]:
        with session_scope(self.settings) as s:
            return dict(s.execute(select(Person.id, Person.state)).all())

    def count(self, *where: Any) -> int:
        with session_scope(self.settings) as s:
            return int(s.scalar(select(func.count()).select_from(Person).where(*where)) or 0)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Big]:
    root = tmp_path_factory.mktemp("scale")
    settings = Settings(home=root / "home")
    generate(settings, people=PEOPLE, faces=10, crops=60)
    # the second token may only use another collection
    with serve(settings, root, FACEATLAS_TOKEN_COLLECTIONS=f'{{"{OTHER_TOKEN}": ["elsewhere"]}}'
               ) as url:
        yield Big(url, settings)
    reset_caches()


def _total(page: Any) -> int:
    return int(page.text_content("#total"))


def _names(page: Any) -> list[str]:
    return page.locator(".person-card .name").all_text_contents()


def test_search_filters_paging_and_a_bulk_promotion(big: Big, browser: Any) -> None:  # noqa: F811
    page = browser_login(browser, big.url)
    errors: list[str] = []  # console errors: none at all
    page.on("console", lambda m: errors.append(f"{m.text} {m.location.get('url')}")
            if m.type == "error" else None)
    page.goto(f"{big.url}/ui/collections/{KEY}")
    assert _total(page) == PEOPLE
    assert page.locator(".person-card").count() == 100
    shot(page, "scale-collection")

    # search: part of a name, and the accent-less spelling of an accented name
    page.fill("input[name=q]", "okovi")
    page.click(".finder button[type=submit]")
    assert ACCENTED in _names(page)
    page.fill("input[name=q]", "DJOKOVIC")
    page.click(".finder button[type=submit]")
    assert _names(page) == [ACCENTED] and _total(page) == 1
    shot(page, "scale-search")

    # a state filter, then a reason filter on top: counts agree with the database
    page.goto(f"{big.url}/ui/collections/{KEY}")
    failed = big.count(Person.state == PersonState.FAILED)
    badge = page.locator("a[data-state=failed] .count")
    assert int(badge.text_content()) == failed
    page.click("a[data-state=failed]")
    assert _total(page) == failed and "state=failed" in page.url
    assert set(page.locator(".person-card .badge[class*=state-]").all_text_contents()) == {"failed"}
    with session_scope(big.settings) as s:
        failed_dl = int(s.scalar(
            select(func.count(func.distinct(Image.person_id))).join(Person)
            .where(Person.state == PersonState.FAILED,
                   Image.reason == Reason.DOWNLOAD_FAILED)) or 0)
    assert int(page.text_content("a[data-reason=download_failed] .count")) == failed_dl
    page.click("a[data-reason=download_failed]")
    assert _total(page) == failed_dl
    assert "state=failed" in page.url and "reason=download_failed" in page.url
    shot(page, "scale-filtered")

    # paging: the last page of a filter keeps the filter
    page.goto(f"{big.url}/ui/collections/{KEY}?reason=other_person&sort=faces")
    total = _total(page)
    assert total > 100
    page.click("nav.pages a[rel=last]")
    pages = -(-total // 100)
    assert f"page={pages}" in page.url and "reason=other_person" in page.url
    assert "sort=faces" in page.url
    assert page.locator(".person-card").count() == total - 100 * (pages - 1)
    assert page.text_content("nav.pages [aria-current=page]").strip() == str(pages)
    page.click("nav.pages a[rel=prev]")
    assert f"page={pages - 1}" in page.url and "reason=other_person" in page.url

    # a bulk action: tick 3 eligible people, Cancel changes nothing, Confirm promotes them
    page.goto(f"{big.url}/ui/collections/{KEY}?state=curated&sort=faces")
    before = big.states()
    boxes = page.locator(".pick input[type=checkbox]")
    chosen = [int(boxes.nth(i).get_attribute("value")) for i in range(3)]
    for i in range(3):
        boxes.nth(i).check()
    page.click("button[name=action][value=promote]")
    assert int(page.text_content("#confirm-count").split()[0]) == 3
    with session_scope(big.settings) as s:
        names = set(s.scalars(select(Person.name).where(Person.id.in_(chosen))))
    assert set(page.locator(".names li").all_text_contents()) == names
    shot(page, "scale-confirm")
    page.click("text=Cancel")
    assert big.states() == before and "state=curated" in page.url
    for i in range(3):
        page.locator(".pick input[type=checkbox]").nth(i).check()
    page.click("button[name=action][value=promote]")
    page.click("button[name=confirm][value=yes]")
    page.wait_for_url(re.compile(r".*done=bulk_promoted.*"))
    after = big.states()
    assert {pid for pid in after if after[pid] != before[pid]} == set(chosen)
    assert all(after[pid] == PersonState.PROMOTED for pid in chosen)
    banner = page.locator(".flash.ok")
    assert "People promoted: 3" in banner.text_content()
    assert "state=curated" in page.url and "sort=faces" in page.url
    with session_scope(big.settings) as s:
        in_gallery = s.scalar(select(func.count()).select_from(Face).where(
            Face.person_id.in_(chosen), Face.state == FaceState.ACCEPTED,
            Face.gallery_path.is_not(None)))
    assert in_gallery and in_gallery >= 3 * big.settings.min_faces_to_promote
    shot(page, "scale-promoted")
    assert errors == []


def test_bulk_post_needs_csrf_and_the_collection(big: Big) -> None:
    before = big.states()
    eligible = [pid for pid, st in before.items() if st == PersonState.CURATED][:2]
    with client_for(big) as client:
        csrf = login(client)
        form = {"action": "promote", "person": [str(i) for i in eligible], "confirm": "yes",
                "ids": ",".join(map(str, eligible))}
        refused = client.post(f"/ui/collections/{KEY}/bulk", data=form)
        assert refused.status_code == 403 and "Form expired" in refused.text
        wrong = client.post(f"/ui/collections/{KEY}/bulk", data={**form, "csrf": "x" * 43})
        assert wrong.status_code == 403
        asked = client.post(f"/ui/collections/{KEY}/bulk",
                            data={"action": "retry_failed", "csrf": csrf})
        assert asked.status_code == 200 and "Retry all failed?" in asked.text
        odd = client.get(f"/ui/collections/{KEY}?state=nonsense")
        assert odd.status_code == 422
    with client_for(big) as other:
        csrf = login(other, OTHER_TOKEN)
        hidden = other.post(f"/ui/collections/{KEY}/bulk", data={**form, "csrf": csrf})
        assert hidden.status_code == 404
        assert other.get(f"/ui/collections/{KEY}").status_code == 404
    with client_for(big) as nobody:
        assert nobody.post(f"/ui/collections/{KEY}/bulk", data=form).status_code == 401
    assert big.states() == before
