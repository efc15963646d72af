"""verify, detect, top_k, stats and the streamed gallery export over real HTTP, with tokens
bound to collections (A: ``alpha``, T: ``test``) and real faces."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from faceatlas.api import create_app
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.people import get_or_create_collection, upsert_person
from tests.gallery_fixtures import Gallery, copy_home, gallery, running  # noqa: F401

pytestmark = pytest.mark.slow  # one gallery copy and server for the module

A = "alpha-token-0123456789"
T = "test-token-0123456789"
ADMIN = "admin-token-0123456789"


@dataclass
class World:
    url: str
    settings: Settings
    gallery: Gallery


@pytest.fixture(scope="module")
def world(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
          ) -> Iterator[World]:
    tokens = json.dumps({A: "Alpha", T: "test", ADMIN: None})
    settings = copy_home(gallery.settings, tmp_path_factory.mktemp("tools") / "home",
                         api_tokens=tokens, max_upload_bytes=2_000_000)
    with session_scope(settings) as s:
        alpha = get_or_create_collection(s, "Alpha")
        upsert_person(s, alpha, "Alpha Person")
    with running(create_app(settings, engines=1)) as url:
        yield World(url, settings, gallery)


def client(world: World, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=world.url, timeout=120, headers=headers)


def photos(world: World, who: str) -> list[Path]:
    return [p for w, p in world.gallery.queries + world.gallery.promoted if w == who]


def upload(path: Path, field: str = "image") -> tuple[str, tuple[str, bytes, str]]:
    return field, (path.name, path.read_bytes(), "image/jpeg")


def test_verify(world: World, tmp_path: Path) -> None:
    obama, biden = photos(world, "barack_obama"), photos(world, "joe_biden")
    with client(world, A) as a:
        same = a.post("/api/v1/verify", files=[upload(obama[0], "first"),
                                               upload(obama[1], "second")])
        assert same.status_code == 200, same.text
        assert same.json()["verified"] is True
        assert same.json()["distance"] <= same.json()["threshold"]
        other = a.post("/api/v1/verify", files=[upload(obama[0], "first"),
                                                upload(biden[0], "second")]).json()
        assert other["verified"] is False and other["distance"] > other["threshold"]
        strict = a.post("/api/v1/verify", data={"threshold": "0.05"},
                        files=[upload(obama[0], "first"), upload(obama[1], "second")]).json()
        assert strict["verified"] is False and strict["threshold"] == 0.05
        blank = io.BytesIO()
        PILImage.new("RGB", (160, 160), "white").save(blank, "PNG")
        no_face = a.post("/api/v1/verify", files=[
            upload(obama[0], "first"), ("second", ("blank.png", blank.getvalue(), "image/png"))])
        assert no_face.status_code == 422 and no_face.json()["code"] == "no_face"
        assert "second photo" in no_face.json()["detail"]
        text = a.post("/api/v1/verify", files=[upload(obama[0], "first"),
                                               ("second", ("a.txt", b"hello", "text/plain"))])
        assert text.status_code == 415
        big = tmp_path / "big.jpg"
        big.write_bytes(b"\xff\xd8" + b"0" * 2_100_000)
        assert a.post("/api/v1/verify", files=[upload(obama[0], "first"),
                                               upload(big, "second")]).status_code == 413
    with client(world, None) as anonymous:
        assert anonymous.post("/api/v1/verify", files=[
            upload(obama[0], "first"), upload(obama[1], "second")]).status_code == 401


def test_detect(world: World, faces_root: Path) -> None:
    group = faces_root / "group" / "obama_and_biden.jpg"
    width, height = PILImage.open(group).size
    with client(world, T) as t:
        got = t.post("/api/v1/detect", files=[upload(group)])
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["width"], body["height"]) == (width, height)
    assert len(body["faces"]) == 3  # the manifest's count for this photo
    for f in body["faces"]:
        b = f["box"]
        assert 0 <= b["x"] < width and 0 <= b["y"] < height and b["w"] > 20
        assert len(f["landmarks"]) == 5
        # the landmarks (eyes, nose) lie in or near the face's box
        for x, y in f["landmarks"]:
            assert b["x"] - b["w"] / 2 <= x <= b["x"] + 1.5 * b["w"]
            assert b["y"] - b["h"] / 2 <= y <= b["y"] + 1.5 * b["h"]


def test_recognize_top_k(world: World) -> None:
    obama = photos(world, "barack_obama")[0]
    with client(world, T) as t:
        plain = t.post("/api/v1/recognize", files=[upload(obama)]).json()
        assert "candidates" not in plain["faces"][0] or plain["faces"][0]["candidates"] is None
        got = t.post("/api/v1/recognize", data={"top_k": "3"}, files=[upload(obama)])
        assert got.status_code == 200, got.text
        (face,) = got.json()["faces"]
        cands = face["candidates"]
        assert len(cands) == 3 and cands[0]["person"] == "barack obama"
        assert cands[0]["distance"] == face["distance"]
        # the answer itself does not change with top_k
        assert {k: v for k, v in face.items() if k != "candidates"} == {
            k: v for k, v in plain["faces"][0].items() if k != "candidates"}
        distances = [c["distance"] for c in cands]
        assert distances == sorted(distances) and len({c["person_id"] for c in cands}) == 3
        assert cands[0]["within_threshold"] and not cands[-1]["within_threshold"]
        assert t.post("/api/v1/recognize", data={"top_k": "99"},
                      files=[upload(obama)]).status_code == 422
    schema = httpx.get(f"{world.url}/openapi.json").json()
    for path in ("/api/v1/verify", "/api/v1/detect", "/api/v1/collections/{key}/export",
                 "/api/v1/stats"):
        assert path in schema["paths"], path


def _words(r: httpx.Response) -> str:
    return re.sub(r"'[^']*'", "'X'", r.json()["detail"])


def test_stats_and_export_keep_to_the_tokens_collections(world: World, tmp_path: Path) -> None:
    with client(world, A) as a, client(world, T) as t, client(world, ADMIN) as admin:
        assert [s["key"] for s in a.get("/api/v1/stats").json()] == ["alpha"]
        assert {s["key"] for s in admin.get("/api/v1/stats").json()} == {"alpha", "test"}
        refused = a.get("/api/v1/stats", params={"collection": "test"})
        assert refused.status_code == 404
        # A can't export test: the same 404, same words, as a collection that doesn't exist
        theirs = a.get("/api/v1/collections/test/export")
        nowhere = a.get("/api/v1/collections/atlantis/export")
        assert theirs.status_code == nowhere.status_code == 404
        assert _words(theirs) == _words(nowhere)
        assert admin.get("/api/v1/collections/atlantis/export").status_code == 404
        with t.stream("GET", "/api/v1/collections/test/export") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "application/x-tar"
            assert "content-length" not in resp.headers  # streamed, not buffered
            chunks = list(resp.iter_bytes())
    archive = tmp_path / "test.tar"
    archive.write_bytes(b"".join(chunks))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["collection"]["key"] == "test"
    engine = world.settings.engine
    assert [t["engine"] for t in manifest["engines"]] == [engine]  # every vector's tag
    gallery_files = [n for n in names if n.startswith("gallery/")]
    assert gallery_files and any(n.startswith("crops/") for n in names)
    faces = [f for p in manifest["people"] for i in p["images"] for f in i["faces"]]
    assert len(gallery_files) == sum(1 for f in faces if f["gallery"])
    assert all("licence" in i and "url" in i for p in manifest["people"] for i in p["images"])
