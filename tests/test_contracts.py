"""The old system's documented requests replayed against faceatlas, every answer compared
field by field with the JSON Schema of the old shapes (tests/contracts/)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from faceatlas.api import create_app
from tests.contracts import assert_fits, mismatches
from tests.gallery_fixtures import Gallery, copy_home, gallery, running  # noqa: F401

TOKEN = "old-client-token-0123456789"


@pytest.fixture(scope="module")
def url(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
        ) -> Iterator[str]:
    settings = copy_home(gallery.settings, tmp_path_factory.mktemp("contracts") / "home",
                         api_tokens=f'{{"{TOKEN}": "test"}}')
    with running(create_app(settings, engines=1)) as base:
        yield base


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buf, "PNG")
    return buf.getvalue()


def old_request(url: str, path: str, data: bytes, name: str = "photo.jpg",
                bearer: bool = False) -> dict[str, object]:
    """As the old clients sent it: multipart field ``image``, the token as it is."""
    auth = f"Bearer {TOKEN}" if bearer else TOKEN
    got = httpx.post(f"{url}{path}", headers={"Authorization": auth},
                     files={"image": (name, data)}, timeout=120)
    assert got.status_code == 200, got.text  # the old system answered 200 in every case
    return got.json()  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize("path,bearer", [("/recognize", False), ("/api/recognize", True)])
def test_old_recognition_requests_get_old_answers(url: str, gallery: Gallery,  # noqa: F811
                                                  faces_root: Path, path: str,
                                                  bearer: bool) -> None:
    known = next(p for who, p in gallery.queries if who == "barack_obama")
    answer = old_request(url, path, known.read_bytes(), bearer=bearer)
    assert_fits("seed_recognize", answer)
    assert answer["status"] == "success" and answer["person"] == "barack obama"
    best = answer["best_match"]
    assert isinstance(best, dict) and best["person_name"] == "barack_obama"
    metrics = best["confidence_metrics"]
    # the old formula, from the distance the engine returned
    assert metrics["confidence_percentage"] == round((1 - metrics["min_distance"]) * 100, 2)
    assert answer["confidence"] == metrics["confidence_percentage"]
    assert metrics["weighted_score"] == round(
        metrics["average_distance"] * 0.4 + metrics["min_distance"] * 0.3
        - metrics["occurrences"] * 0.1, 4)

    group = old_request(url, path, (faces_root / "group/obama_and_biden.jpg").read_bytes())
    assert_fits("seed_recognize", group)
    assert {p["name"] for p in group["recognized_persons"]} == {  # type: ignore[union-attr]
        "barack obama", "joe biden"}

    stranger = old_request(url, path, gallery.strangers[0].read_bytes())
    assert_fits("seed_recognize", stranger)
    assert stranger["status"] == "error"
    assert stranger["message"] == "No matches within threshold"

    nobody = old_request(url, path, blank_png(), "blank.png")
    assert_fits("seed_recognize", nobody)
    assert nobody["status"] == "no_faces"


def test_the_checker_reports_field_by_field() -> None:
    """Today's-API words in an old answer are caught, each at its field."""
    wrong = {"status": "no_face", "message": "x", "faces": []}
    problems = mismatches("seed_recognize", wrong)
    assert any(p.startswith("status:") for p in problems)
    assert any("faces" in p for p in problems)
    unknown = {"status": "unknown", "message": "No matches within threshold", "person": None}
    assert mismatches("seed_recognize", unknown)
    no_jpg = {"status": "success", "message": "Face recognized as: A", "person": "A",
              "recognized_persons": [{"name": "A", "face_coordinates": {
                  "x_percent": 1, "y_percent": 1, "width_percent": 1, "height_percent": 1}}],
              "best_match": {"person_name": "A", "display_name": "A", "identity": "A_2025-05-24_1",
                             "confidence_metrics": {}},
              "all_detected_matches": [{"person_name": "A", "metrics": {
                  "occurrences": 1, "average_distance": 0.3, "min_distance": 0.3,
                  "confidence_percentage": 70.0, "distances": [0.3]}}]}
    problems = mismatches("seed_recognize", no_jpg)
    assert any(p.startswith("best_match/identity") for p in problems)
    assert any(p.startswith("best_match/confidence_metrics") for p in problems)
