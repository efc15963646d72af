"""Issue 11, finding 8: IPv6 spellings of local addresses, symlinks out of an imported folder,
and names in POST /api/v1/people (suspected duplicates reported, invisible characters gone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faceatlas.domain.errors import FaceAtlasError, UnsafeURLError
from faceatlas.jobs.importer import read_no_follow, scan
from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.web.guard import check_url, ip_problem


# -- SSRF guard: an IPv4 inside an IPv6 address is judged as that IPv4
@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("2002:7f00:1::", "loopback IPv4 127.0.0.1 inside a 6to4"),
        ("2002:7f00:1:0:0:0:0:1", "loopback IPv4 127.0.0.1 inside a 6to4"),
        ("2002:a9fe:a9fe::1", "link-local IPv4 169.254.169.254 inside a 6to4"),
        ("2002:0a00:0001::", "private IPv4 10.0.0.1 inside a 6to4"),
        ("64:ff9b::7f00:1", "loopback IPv4 127.0.0.1 inside a NAT64"),
        ("64:ff9b::a9fe:a9fe", "link-local IPv4 169.254.169.254 inside a NAT64"),
        ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
        ("::127.0.0.1", "loopback IPv4 127.0.0.1 inside a IPv4-compatible"),
        ("::a9fe:a9fe", "link-local IPv4 169.254.169.254 inside a IPv4-compatible"),
        # Teredo: the client address is stored inverted (here 127.0.0.1)
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback IPv4 127.0.0.1 inside a Teredo"),
        ("::ffff:127.0.0.1", "loopback"),  # as before
        ("2002:808:808::1", None),  # 6to4 of a public address is public
    ],
)
def test_embedded_ipv4_is_judged(ip: str, problem: str | None) -> None:
    assert ip_problem(ip) == problem


@pytest.mark.parametrize(
    "url",
    ["http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]/latest/meta-data/",
     "http://[64:ff9b::7f00:1]:8080/", "http://[::127.0.0.1]/",
     "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"],
)  # fmt: skip
def test_ipv6_spellings_of_local_hosts_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="refused"):
        check_url(url)


# -- faceatlas import: symlinks must not lead out of the folder
def test_symlinks_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "secret.jpg").write_bytes(b"not yours")
    root = tmp_path / "photos"
    (root / "Ana Anić").mkdir(parents=True)
    (root / "Ana Anić" / "own.jpg").write_bytes(b"jpeg")
    (root / "Ana Anić" / "leak.jpg").symlink_to(secret_dir / "secret.jpg")
    (root / "Ana Anić" / "twin.jpg").symlink_to(root / "Ana Anić" / "own.jpg")  # inside: fine
    (root / "Ana Anić" / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (root / "Marko").symlink_to(secret_dir, target_is_directory=True)
    refused: list[tuple[str, str]] = []
    folders = scan(root, lambda path, why: refused.append((path.name, why)))
    assert [(f.name, [p.name for p in f.files]) for f in folders] == [
        ("Ana Anić", ["own.jpg", "own.jpg"])
    ]
    assert all(root.resolve() in p.parents for f in folders for p in f.files)
    assert sorted(name for name, _ in refused) == ["Marko", "leak.jpg"]
    assert all("outside the imported folder" in why for _, why in refused)


def test_a_link_swapped_in_after_the_scan_is_not_read(tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_bytes(b"secret")
    link = tmp_path / "photo.jpg"
    link.symlink_to(target)
    with pytest.raises(FaceAtlasError, match=r"photo\.jpg cannot be read"):
        read_no_follow(link)
    assert read_no_follow(target) == b"secret"


# -- POST /api/v1/people: the name as it enters over HTTP
TOKEN = "tok-names-0123456789"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from faceatlas.api import create_app
    from tests.gallery_fixtures import running

    home = tmp_path_factory.mktemp("names-api") / "home"
    settings = Settings(home=home, api_tokens=[TOKEN], workers=1, default_collection="test")
    try:
        with running(create_app(settings, engines=1)) as url, httpx.Client(
            base_url=url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            yield client
    finally:
        db.reset_caches()


def _photos(faces_root: Path, who: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    folder = faces_root / "people" / who
    return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(folder.iterdir())]


@pytest.mark.slow
def test_enrol_keeps_look_alike_names_apart_and_says_so(api: httpx.Client,
                                                        faces_root: Path) -> None:  # fmt: skip
    first = api.post("/api/v1/people", data={"name": "Jo Ann Smith"},
                     files=_photos(faces_root, "person_12"))
    assert first.status_code == 200, first.text
    assert first.json()["warnings"] == []
    second = api.post("/api/v1/people", data={"name": "Joann\u202e Smith\x00"},
                      files=_photos(faces_root, "person_13"))
    assert second.status_code == 200, second.text
    answer = second.json()
    assert answer["person_id"] != first.json()["person_id"]  # before: person_13 joined 12
    assert answer["person"] == "Joann Smith"  # the override and the NUL never stored
    assert answer["warnings"] == ["'Joann Smith' looks like 'Jo Ann Smith', a different "
                                  "person in test: enrolled as a separate person"]  # fmt: skip
    people = {p["name"]: p for p in api.get("/api/v1/people").json()}
    assert {"Jo Ann Smith", "Joann Smith"} <= set(people)
    again = api.post("/api/v1/people", data={"name": "JO ANN SMITH"},
                     files=_photos(faces_root, "person_12"))
    assert again.json()["person_id"] == first.json()["person_id"]  # one person, any case
    assert again.json()["warnings"] == []


def test_enrol_refuses_a_name_without_letters_before_any_photo(api: httpx.Client) -> None:
    bad = api.post("/api/v1/people", data={"name": "\u202e\u200b\x00"},
                   files=[("files", ("a.jpg", b"not read", "image/jpeg"))])
    assert bad.status_code == 422
    assert "no letters or digits" in bad.text

