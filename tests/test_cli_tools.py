"""The CLI as scripts use it: exit codes, plain progress lines when stdout is a pipe, data
output (CSV/JSON), ``show`` at 80 columns, one ``--collection`` option, ``verify``, ``stats``.

Every command runs as a real process with stdout a pipe (``subprocess``), as in a script or
``| tee log``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Image, Person
from faceatlas.store.people import get_or_create_collection, upsert_person
from tests.gallery_fixtures import Gallery, gallery  # noqa: F401  (fixture)
from tests.simweb_fixtures import person, simweb_server

pytestmark = pytest.mark.slow  # real processes: each loads Python, the CLI and often models


def run(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FACEATLAS_HOME": str(home), "COLUMNS": "80", **env}
    full.pop("FACEATLAS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "faceatlas.cli", *args], env=full,
                          capture_output=True, text=True,  # stdout a pipe, as in scripts
                          timeout=600)


def photo_of(g: Gallery, who: str) -> Path:
    return next(p for identity, p in g.queries if identity == who)


# --------------------------------------------------------------------------- recognize


def test_recognize_many_exit_codes_and_piped_output(gallery: Gallery, tmp_path: Path,  # noqa: F811
                                                    faces_root: Path) -> None:
    home = gallery.settings.home
    obama, biden = photo_of(gallery, "barack_obama"), photo_of(gallery, "joe_biden")
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo at all\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(obama.read_bytes())
    (folder / "notes.txt").write_text("ignored: not an image suffix")

    # 0: everything recognised; CSV on stdout, progress lines on stderr (stdout is data)
    ok = run("recognize", str(folder), str(biden), "--collection", "test", "--top", "2",
             "--format", "csv", home=home)
    assert ok.returncode == 0, ok.stderr
    rows = list(csv.DictReader(io.StringIO(ok.stdout)))
    assert [(Path(r["file"]).name, r["person"]) for r in rows] == [
        ("a.jpg", "barack obama"), (biden.name, "joe biden")]
    assert rows[0]["candidates"].startswith("barack obama ")  # closest first, k of them
    assert len(rows[0]["candidates"].split("; ")) == 2
    assert "recognize: 2/2 photos" in ok.stderr

    # a glob works too, and JSON is one array
    as_json = run("recognize", str(folder / "*.jpg"), "--collection", "test", "--json",
                  "--threshold", "0.3", home=home)
    assert as_json.returncode == 0, as_json.stderr
    (entry,) = json.loads(as_json.stdout)
    assert entry["threshold"] == 0.3 and entry["faces"]

    # 3: partial (one photo unreadable), the answer still lists both
    partial = run("recognize", str(obama), str(broken), "--collection", "test",
                  "--format", "json", home=home)
    assert partial.returncode == 3, partial.stderr
    answers = {Path(a["file"]).name: a for a in json.loads(partial.stdout)}
    assert answers[obama.name]["status"] == "success"
    assert answers["broken.jpg"]["error"] and "broken.jpg" in partial.stderr

    # 4: every photo failed
    failed = run("recognize", str(broken), str(broken.with_name("x.png")), "--collection",
                 "test", "--format", "csv", home=home)
    assert failed.returncode == 1 and "no such file" in failed.stderr  # a missing input: 1
    broken.with_name("x.png").write_bytes(b"\x89PNG broken")
    failed = run("recognize", str(broken), str(broken.with_name("x.png")), "--collection",
                 "test", "--format", "csv", home=home)
    assert failed.returncode == 4, failed.stderr

    # 1: error (no such collection); 2: usage (unknown option)
    missing = run("recognize", str(obama), str(biden), "--collection", "nowhere", home=home)
    assert missing.returncode == 1 and "no collection" in missing.stderr
    usage = run("recognize", str(obama), "--no-such-option", home=home)
    assert usage.returncode == 2


# --------------------------------------------------------------------------- collect


def _sheet(path: Path, *names: tuple[str, str, str]) -> Path:
    path.write_text("name,last_name,occupation\n"
                    + "".join(f"{a},{b},{c}\n" for a, b, c in names), encoding="utf-8")
    return path


def test_collect_exit_codes_and_progress_lines(tmp_path: Path, faces_root: Path) -> None:
    photos = sorted((faces_root / "people" / "person_01").iterdir())[:4]
    people = [person("ServerError Person", []),
              person("Novak Djokovic", [f"people/person_01/{p.name}" for p in photos])]
    with simweb_server(people, faces_root) as web:
        env = {"RAPIDAPI_KEY": "test-key", "FACEATLAS_IMAGE_SEARCH_URL": f"{web.url}/search",
               "FACEATLAS_ALLOW_PRIVATE_NETWORKS": "1", "FACEATLAS_DOWNLOAD_TIMEOUT": "5",
               "FACEATLAS_IMAGE_SEARCH_BACKOFF": "0.05"}  # the retries, without their waits
        home = tmp_path / "home"
        sheet = _sheet(tmp_path / "a.csv", ("ServerError", "Person", "Athlete"))
        assert run("names", "import", str(sheet), "--collection", "Serbia", home=home,
                   **env).returncode == 0
        # every person failed: not 0 but 4, and a plain line per person on the pipe
        every = run("collect", "--local", home=home, **env)
        assert every.returncode == 4, every.stdout + every.stderr
        assert "collect: 1/1 people, ServerError Person failed (" in every.stdout
        assert "\x1b[" not in every.stdout  # no terminal control codes in a pipe
        # some failed, some curated: 3
        _sheet(sheet, ("Novak", "Djokovic", "Athlete"))
        run("names", "import", str(sheet), "--collection", "Serbia", home=home, **env)
        some = run("collect", "--local", "--retry-failed", home=home, **env)
        assert some.returncode == 3, some.stdout + some.stderr
        assert "people, Novak Djokovic curated (4 faces)" in some.stdout
        # nothing left to do: 0; --quiet drops the progress lines, not the result
        again = run("--quiet", "collect", "--local", home=home, **env)
        assert again.returncode == 0 and "nothing to collect" in again.stdout


# --------------------------------------------------------------------------- show, names


def _person_with_detail(settings: Settings) -> None:
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, "Serbia")
        p, _ = upsert_person(s, coll, "Novak Đoković")
        p.state = "curated"
        img = Image(person_id=p.id, origin="https://example.org/" + "very-long-path/" * 8
                    + "novak.jpg", url="https://example.org/" + "x" * 150 + ".jpg",
                    title="Novak Đoković at the Australian Open", rank=3, state="decided",
                    reason="duplicate", detail="http_404; the thumbnail was used",
                    licence="CC BY-SA 4.0", author="Some Photographer With A Long Name")
        s.add(img)
        s.flush()
        s.add(Face(image_id=img.id, person_id=p.id, idx=0, x=1, y=2, w=30, h=30,
                   state="accepted", reason="accepted", distance=0.1234,
                   crop_path="faces/serbia/Novak_Djokovic/Novak_Djokovic_20250101_120000_7.jpg"))


def test_show_has_the_stored_detail_and_fits_80_columns(settings: Settings, home: Path) -> None:
    _person_with_detail(settings)
    out = run("show", "Novak Djokovic", home=home)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, out.stdout
    assert "duplicate" in out.stdout and "0.123" in out.stdout  # distance not cut
    # nothing is cut or ellipsised: details, URLs, credits and crop names fold in their cell
    assert "…" not in out.stdout
    cells = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    source, decision = ("".join("".join(row[i].split()) for row in cells) for i in (1, 2))
    assert "http_404;thethumbnailwasused" in decision
    assert ("https://example.org/" + "x" * 150 + ".jpg") in source, out.stdout
    assert "SomePhotographerWithALongName" in source
    assert "Novak_Djokovic_20250101_120000_7.jpg" in source
    data = json.loads(run("show", "Novak Djokovic", "--json", home=home).stdout)
    assert data["images"][0]["detail"] == "http_404; the thumbnail was used"
    listed = json.loads(run("people", "--json", home=home).stdout)
    assert [(p["name"], p["state"], p["images"]) for p in listed] == [
        ("Novak Đoković", "curated", 1)]
    missing = run("show", "Nobody Here", home=home)
    assert missing.returncode == 1 and "error" in missing.stderr


def test_names_import_and_export_take_collection_country_is_a_hidden_alias(
    settings: Settings, home: Path, tmp_path: Path
) -> None:
    sheet = _sheet(tmp_path / "in.csv", ("Ana", "Ivanovic", "Athlete"))
    assert run("names", "import", str(sheet), "--collection", "Serbia", home=home).returncode == 0
    new = run("names", "export", str(tmp_path / "new.csv"), "--collection", "serbia", home=home)
    old = run("names", "export", str(tmp_path / "old.csv"), "--country", "serbia", home=home)
    assert new.returncode == old.returncode == 0
    assert "deprecated" in old.stderr and "deprecated" not in new.stderr
    assert (tmp_path / "new.csv").read_text() == (tmp_path / "old.csv").read_text()
    assert "Ana" in (tmp_path / "new.csv").read_text()
    clash = run("names", "export", str(tmp_path / "x.csv"), "--collection", "a", "--country",
                "b", home=home)
    assert clash.returncode == 1
    helptext = run("names", "export", "--help", home=home).stdout
    assert "--collection" in helptext and "--country" not in helptext
    assert "Exit codes" in run("--help", home=home).stdout


def test_curated_people_who_gain_an_occupation_are_reported(settings: Settings, home: Path,
                                                            tmp_path: Path) -> None:
    sheet = _sheet(tmp_path / "a.csv", ("Ana", "Ivanovic", "Athlete"))
    run("names", "import", str(sheet), "--collection", "Serbia", home=home)
    with session_scope(settings) as s:
        p = s.query(Person).one()
        p.state = "curated"
    _sheet(sheet, ("Ana", "Ivanovic", "Actor"))
    out = run("names", "import", str(sheet), "--collection", "Serbia", home=home)
    assert out.returncode == 0, out.stderr
    assert "1 already collected person gained an occupation" in out.stdout
    assert "occupation added Ana Ivanovic (curated): Actor" in out.stdout
    with session_scope(settings) as s:
        p = s.query(Person).one()
        assert p.occupations == ["Athlete", "Actor"] and p.state == "curated"


# --------------------------------------------------------------------------- verify, stats


def test_verify_and_stats(gallery: Gallery, tmp_path: Path) -> None:  # noqa: F811
    home = gallery.settings.home
    obama = [p for who, p in gallery.queries + gallery.promoted if who == "barack_obama"]
    biden = photo_of(gallery, "joe_biden")
    same = run("verify", str(obama[0]), str(obama[1]), "--json", home=home)
    assert same.returncode == 0, same.stderr
    answer = json.loads(same.stdout)
    assert answer["verified"] is True and answer["distance"] <= answer["threshold"]
    assert len(answer["face_a"]["landmarks"]) == 5
    other = json.loads(run("verify", str(obama[0]), str(biden), "--json", home=home).stdout)
    assert other["verified"] is False and other["distance"] > other["threshold"]
    blank = tmp_path / "blank.png"
    from PIL import Image as PILImage

    PILImage.new("RGB", (200, 200), "white").save(blank)
    no_face = run("verify", str(obama[0]), str(blank), home=home)
    assert no_face.returncode == 1 and "no face found in the second photo" in no_face.stderr

    stats = run("stats", "--collection", "test", "--json", home=home)
    assert stats.returncode == 0, stats.stderr
    (s,) = json.loads(stats.stdout)
    with session_scope(gallery.settings) as session:
        promoted = session.query(Person).filter(Person.state == "promoted").count()
        gallery_faces = session.query(Face).filter(Face.gallery_path.is_not(None)).count()
    assert s["people_by_state"]["promoted"] == promoted
    assert s["gallery_faces"] == s["index_faces"] == gallery_faces
    assert s["index_people"] == promoted
    assert sum(s["images_by_reason"].values()) == s["images"]
    assert run("stats", "--collection", "nowhere", home=home).returncode == 1

