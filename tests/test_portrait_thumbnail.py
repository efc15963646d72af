"""A Wikidata portrait through our own server (issue 24), against the Commons replica: a
small fresh JPEG, cached on disk; nothing asked for a name that is not a photo's, nothing
fetched from a host that is not the Commons file host."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from faceatlas.devtools.simweb import SimWeb
from faceatlas.settings import Settings
from faceatlas.sources.portrait_thumbnail import SIDE, portrait_thumbnail
from tests.simweb_fixtures import simweb_server

FILE = "Vesna Wiki 1.jpg"  # the replica names the P18 file after the person's label


@pytest.fixture()
def web(faces_root: Path) -> Iterator[SimWeb]:
    photo = sorted((faces_root / "people" / "person_03").iterdir())[0]
    with simweb_server([{"name": "Vesna Wiki", "country": "Serbia", "occupations": ["Actor"],
                         "images": [f"people/person_03/{photo.name}"], "qid": "Q9001"}],
                       faces_root) as web:
        yield web


def _settings(home: Path, web: SimWeb, host: str = "127.0.0.1") -> Settings:
    return Settings(home=home, commons_api_url=f"http://{host}:{web.port}/commons/w/api.php",
                    allow_private_networks=True, wikimedia_min_interval=0)


def test_a_small_fresh_jpeg_then_from_the_disk(tmp_path: Path, web: SimWeb) -> None:
    settings = _settings(tmp_path / "home", web)
    data = portrait_thumbnail(settings, FILE)
    assert data is not None and data[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(data)) as pic:
        assert 0 < max(pic.size) <= SIDE and not pic.info.get("exif")
    asked = web.count("/upload/")
    assert asked == 1
    assert portrait_thumbnail(settings, FILE) == data and web.count("/upload/") == asked


@pytest.mark.parametrize("name", ["../../etc/passwd", "Vesna Wiki 1.svg", "a/b.jpg",
                                  "[[x]].jpg", "x\n.jpg", ""])
def test_names_that_are_no_photo_ask_nothing(tmp_path: Path, web: SimWeb, name: str) -> None:
    assert portrait_thumbnail(_settings(tmp_path / "home", web), name) is None
    assert web.count("/commons/") == 0 and web.count("/upload/") == 0


def test_a_thumbnail_on_another_host_is_not_fetched(tmp_path: Path, web: SimWeb) -> None:
    # Commons is asked at "localhost", its answer points at 127.0.0.1: not the file host
    settings = _settings(tmp_path / "home", web, host="localhost")
    assert portrait_thumbnail(settings, FILE) is None
    assert web.count("/commons/") == 1 and web.count("/upload/") == 0


def test_a_picture_over_the_pixel_limit_is_refused_from_its_header() -> None:
    """Pillow's own bomb guard is off in a process that decodes faces: the thumbnail checks
    the pixel count itself, before any pixel is decoded."""
    from faceatlas.sources.portrait_thumbnail import _jpeg

    out = io.BytesIO()
    Image.new("RGB", (2000, 1500), (90, 120, 150)).save(out, "PNG")
    assert _jpeg(out.getvalue(), max_pixels=2_000_000) is None
    small = _jpeg(out.getvalue(), max_pixels=3_000_000)
    assert small is not None and max(Image.open(io.BytesIO(small)).size) <= SIDE
