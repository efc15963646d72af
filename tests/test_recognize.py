"""Recognition on real photos against a gallery promoted from the other half of each identity."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from faceatlas.domain.errors import ImageError, NotFoundError
from faceatlas.gallery.recognize import recognize_bytes, recognize_file, seed_answer
from tests.gallery_fixtures import Gallery, gallery  # noqa: F401  (fixture)
from tests.photos import expected_faces


@pytest.mark.slow
def test_top1_accuracy_on_held_back_photos(gallery: Gallery) -> None:  # noqa: F811
    misses = []
    for identity, photo in gallery.queries:
        result = recognize_file(photo, gallery.settings)
        best = result.best
        got = best.name if best else result.status
        if got != Gallery.person_name(identity):
            misses.append((identity, photo.name, got))
    total = len(gallery.queries)
    accuracy = 1 - len(misses) / total
    print(f"top-1 accuracy {accuracy:.1%} ({total - len(misses)}/{total}); misses: {misses}")
    assert total >= 25
    assert accuracy >= 0.95, misses


def test_strangers_answer_unknown(gallery: Gallery) -> None:  # noqa: F811
    accepted = []
    for photo in gallery.strangers:
        result = recognize_file(photo, gallery.settings)
        assert result.faces, photo
        if result.status != "unknown":
            accepted.append((photo.name, [f.name for f in result.faces]))
    rate = len(accepted) / len(gallery.strangers)
    print(f"false-accept rate {rate:.1%} ({len(accepted)}/{len(gallery.strangers)}): {accepted}")
    assert not accepted


def test_group_photos_one_entry_per_face(gallery: Gallery, faces_root: Path) -> None:  # noqa: F811
    with open(faces_root / "manifest.csv", newline="") as fh:
        groups = [r for r in csv.DictReader(fh) if r["path"].startswith("group/")]
    assert len(groups) >= 5
    for row in groups:
        result = recognize_file(faces_root / row["path"], gallery.settings)
        assert len(result.faces) == expected_faces(row, gallery.settings.engine), row["path"]
        answer = seed_answer(result)
        assert answer["status"] in ("success", "error")
        boxes = {(f.box.x, f.box.y) for f in result.faces}
        assert len(boxes) == len(result.faces)  # distinct faces, not one face repeated
        if row["path"].endswith("obama_and_biden.jpg"):
            names = {p["name"] for p in answer["recognized_persons"]}  # type: ignore[attr-defined]
            assert names == {"barack obama", "joe biden"}
            for p in answer["recognized_persons"]:  # type: ignore[attr-defined]
                c = p["face_coordinates"]
                assert 0 <= c["x_percent"] < 100 and 0 < c["width_percent"] < 100


def test_seed_answer_shape(gallery: Gallery) -> None:  # noqa: F811
    _identity, photo = next(q for q in gallery.queries if q[0] == "barack_obama")
    answer = seed_answer(recognize_file(photo, gallery.settings))
    assert answer["status"] == "success" and answer["person"] == "barack obama"
    best = answer["best_match"]
    assert best["identity"].startswith("barack_obama_20")  # type: ignore[index]
    assert best["identity"].endswith(".jpg")  # type: ignore[index]
    assert best["person_name"] == "barack_obama"  # type: ignore[index]
    assert 0 <= best["distance"] < gallery.settings.thresholds().recognize  # type: ignore[index]
    # the old formula, from the distance the engine returned
    metrics = best["confidence_metrics"]  # type: ignore[index]
    assert metrics["confidence_percentage"] == round((1 - best["distance"]) * 100, 2)  # type: ignore[index]
    assert answer["confidence"] == metrics["confidence_percentage"]


def test_no_face_and_bad_images(gallery: Gallery) -> None:  # noqa: F811
    buf = io.BytesIO()
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(buf, "JPEG")
    result = recognize_bytes(buf.getvalue(), gallery.settings)
    assert result.status == "no_face" and seed_answer(result)["status"] == "no_faces"
    with pytest.raises(ImageError) as bad:
        recognize_bytes(b"<html>hello</html>", gallery.settings)
    assert bad.value.code == "not_an_image"
    bomb = io.BytesIO()
    Image.new("1", (8000, 7000)).save(bomb, "PNG")
    with pytest.raises(ImageError, match="MP limit"):
        recognize_bytes(bomb.getvalue(), gallery.settings)
    with pytest.raises(NotFoundError):
        recognize_bytes(buf.getvalue(), gallery.settings, collection="atlantis")


def test_cli_recognize_json(
    gallery: Gallery, monkeypatch: pytest.MonkeyPatch, faces_root: Path  # noqa: F811
) -> None:
    from faceatlas.cli import serve  # noqa: F401  (registers the commands)
    from faceatlas.cli.base import app
    from faceatlas.settings import get_settings

    monkeypatch.setenv("FACEATLAS_HOME", str(gallery.settings.home))
    get_settings.cache_clear()
    try:
        photo = faces_root / "group" / "obama_and_biden.jpg"
        out = CliRunner().invoke(app, ["recognize", str(photo), "--collection", "test",
                                       "--json"])
        assert out.exit_code == 0, out.output
        answer = json.loads(out.output)
        assert answer["status"] == "success" and len(answer["recognized_persons"]) == 2
        table = CliRunner().invoke(app, ["recognize", str(photo), "--collection", "test"])
        assert table.exit_code == 0 and "joe biden" in table.output
        missing = CliRunner().invoke(app, ["recognize", str(photo), "--collection", "nowhere"])
        assert missing.exit_code == 1 and "no collection" in missing.output
    finally:
        get_settings.cache_clear()
