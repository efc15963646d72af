"""Curation on real faces: a noisy person folder, the seed failure, idempotent re-import."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, FaceState, Image, Person
from tests.photos import bad_files, blurred, colour_variants, copy

OBAMA = ["obama.jpg", "obama1.jpg", "obama2.jpg", "obama3.jpg", "obama_small.jpg"]
RESOLUTIONS = ["obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg", "obama-1080p.jpg"]
# obama.jpg and obama_small.jpg are the same photo as the resolution variants
SAME_PHOTO = {*RESOLUTIONS, "obama.jpg", "obama_small.jpg"}


def decisions(settings: Settings, person: str) -> dict[str, str]:
    with session_scope(settings) as s:
        rows = s.execute(
            select(Image.title, Image.reason).join(Person).where(Person.name == person)
        ).all()
    return {title: reason for title, reason in rows}


@pytest.fixture()
def noisy(tmp_path: Path, faces_root: Path) -> tuple[Path, dict[str, str]]:
    """Barack Obama's folder: his photos, 15 photos of two other people (≥ 35%), a group photo
    with him, the resolution variants, blurred copies, colour-mode copies and bad files."""
    folder = tmp_path / "in" / "Barack Obama"
    people = faces_root / "people"
    for name in OBAMA:
        copy(people / "barack_obama" / name, folder)
    for name in [*RESOLUTIONS, "obama_partial_face.jpg"]:
        copy(faces_root / "variants" / name, folder)
    copy(faces_root / "group" / "obama_and_biden.jpg", folder)
    copy(faces_root / "group" / "kit_with_rose.jpg", folder)
    others = {}
    for who in ("person_02", "person_03"):
        for src in sorted((people / who).iterdir()):
            others[copy(src, folder, f"{who}_{src.name}").name] = who
    blurred(people / "barack_obama" / "obama3.jpg", folder / "blur_obama3.jpg", 10)
    blurred(people / "barack_obama" / "obama2.jpg", folder / "blur_obama2.jpg", 10)
    bad = bad_files(folder, people / "barack_obama" / "obama.jpg")
    colour_variants(folder / "modes", people / "barack_obama" / "obama2.jpg")
    for path in sorted((folder / "modes").iterdir()):
        path.rename(folder / f"mode_{path.name}")
    (folder / "modes").rmdir()
    total = len(list(folder.iterdir()))
    assert len(others) / total >= 0.35
    return tmp_path / "in", {**bad, **others}


@pytest.mark.slow
def test_noisy_folder_keeps_only_that_persons_faces(
    noisy: tuple[Path, dict[str, str]], settings: Settings
) -> None:
    root, expected = noisy
    (report,) = import_folder(root, "usa", settings)
    got = decisions(settings, "Barack Obama")
    accepted = {name for name, reason in got.items() if reason == "accepted"}
    # nobody else's photo is kept; every bad file has its exact reason
    for name, who in expected.items():
        if who.startswith("person_"):
            assert got[name] in ("not_this_person", "blurry", "face_too_small"), name
        else:
            assert got[name] == who, name
    assert got["kit_with_rose.jpg"] in ("not_this_person", "blurry")
    assert got["blur_obama3.jpg"] == "blurry" and got["blur_obama2.jpg"] == "blurry"
    # the same photo at 240p/480p/720p/1080p (and two more copies of it) collapses to one
    assert len(accepted & SAME_PHOTO) == 1
    assert {got[n] for n in SAME_PHOTO - accepted} <= {"duplicate", "face_too_small"}
    # the group photo contributes Obama's face, and only that one
    assert got["obama_and_biden.jpg"] == "accepted"
    assert {"obama1.jpg", "obama3.jpg", "obama_partial_face.jpg"} <= accepted
    # colour-mode copies of obama2 are decoded, and with obama2 collapse to one
    copies = {n: r for n, r in got.items() if n.startswith("mode_") or n == "obama2.jpg"}
    assert len(copies) == 7 and sorted(copies.values()).count("accepted") == 1
    assert set(copies.values()) == {"duplicate", "accepted"}
    with session_scope(settings) as s:
        group = s.scalar(select(Image).where(Image.title == "obama_and_biden.jpg"))
        assert group is not None
        assert sorted(f.state for f in group.faces) == ["accepted", "rejected", "rejected"]
        crops = s.scalars(select(Face.crop_path).where(Face.state == "accepted")).all()
    assert len(crops) == report.accepted == len(accepted)
    for crop in crops:
        assert crop.startswith("faces/usa/Barack_Obama/Barack_Obama_")
        assert (settings.home / crop).is_file()
    print(f"accepted {len(accepted)} of {report.candidates}: {sorted(report.reasons.items())}")


@pytest.mark.slow
def test_seed_strategy_keeps_the_wrong_person_consensus_does_not(
    tmp_path: Path, faces_root: Path, settings: Settings
) -> None:
    """The old system's failure: the first three valid photos show someone else."""
    people = faces_root / "people"
    folder = tmp_path / "in" / "Target Person"
    intruder = sorted((people / "person_03").iterdir())[:3]
    for i, src in enumerate(intruder):
        copy(src, folder, f"a{i}_{src.name}")  # sorted first: the seed's references
    target = sorted((people / "person_01").iterdir())
    for src in target:
        copy(src, folder, f"b_{src.name}")
    seed_home = Settings(home=tmp_path / "seed", workers=2)
    list(import_folder(tmp_path / "in", "x", seed_home, strategy="seed"))
    seed = decisions(seed_home, "Target Person")
    list(import_folder(tmp_path / "in", "x", settings, strategy="consensus"))
    consensus = decisions(settings, "Target Person")

    def kept(d: dict[str, str], prefix: str) -> int:
        return sum(1 for n, r in d.items() if n.startswith(prefix) and r == "accepted")

    assert kept(seed, "a") == 3 and kept(seed, "b") == 0  # gallery of the wrong person
    assert kept(consensus, "a") == 0 and kept(consensus, "b") >= len(target) - 1


@pytest.mark.slow
def test_reimport_is_idempotent(tmp_path: Path, faces_root: Path, settings: Settings) -> None:
    root = tmp_path / "in"
    for who in ("person_04", "person_05"):
        for src in sorted((faces_root / "people" / who).iterdir()):
            copy(src, root / who.replace("_", " ").title())
    copy(faces_root / "people/person_06/img16.jpg", root / "Person 04")

    def snapshot() -> tuple[object, ...]:
        with session_scope(settings) as s:
            counts = tuple(
                s.scalar(select(func.count()).select_from(t)) for t in (Person, Image, Face)
            )
            faces = sorted(s.execute(select(Face.id, Face.state, Face.crop_path)).all())
        files = sorted(p.relative_to(settings.home).as_posix()
                       for p in settings.home.rglob("*") if p.is_file() and ".db" not in p.name)
        return counts, faces, files

    first = [r.accepted for r in import_folder(root, "serbia", settings)]
    before = snapshot()
    second = [r for r in import_folder(root, "serbia", settings)]
    assert snapshot() == before
    assert [r.accepted for r in second] == first and all(r.new_images == 0 for r in second)
    assert before[0][0] == 2 and all(n > 0 for n in first)


@pytest.mark.slow
def test_recuration_keeps_a_reviewers_decision(
    tmp_path: Path, faces_root: Path, settings: Settings
) -> None:
    from faceatlas.gallery.review import reject_face

    root = tmp_path / "in"
    for src in sorted((faces_root / "people" / "person_04").iterdir()):
        copy(src, root / "Person 04")
    list(import_folder(root, "serbia", settings))
    with session_scope(settings) as s:
        face_id = s.scalars(select(Face.id).where(Face.state == "accepted")).first()
    assert face_id is not None
    reject_face(settings, face_id)
    list(import_folder(root, "serbia", settings, strategy="seed"))  # re-decides everything
    with session_scope(settings) as s:
        face = s.get(Face, face_id)
        assert face is not None
        assert (face.state, face.reason, face.crop_path) == ("rejected", "rejected_by_user", None)


@pytest.mark.slow
def test_folders_enrol_in_batches(tmp_path: Path, faces_root: Path, settings: Settings) -> None:
    """Folders are registered in batches of 1, 2, 4, … folders (issue 23): one transaction
    and one read of the photos, the stored files and the references per batch, not per
    person; a person named by two folders is one person, filed under the first spelling,
    every photo of both decided."""
    from sqlalchemy import event

    from faceatlas.faces.analyse import face_pool
    from faceatlas.jobs.importer import enrol_folders, scan
    from faceatlas.store.db import get_engine

    people = sorted(p for p in (faces_root / "people").iterdir() if p.is_dir())[:6]
    root = tmp_path / "in"
    for who in people:
        copy(sorted(who.iterdir())[0], root / who.name)
    copy(sorted(people[0].iterdir())[1], root / people[0].name.upper())  # the same name
    engine = get_engine(settings)
    commits, reads = [0], [0]
    event.listen(engine, "commit", lambda *_: commits.__setitem__(0, commits[0] + 1))
    event.listen(engine, "before_cursor_execute", lambda *args: reads.__setitem__(
        0, reads[0] + any(f"FROM {t}" in args[2] for t in ("images", "person_references"))))
    with face_pool(settings).start() as pool:
        enrolled = enrol_folders(settings, "serbia", scan(root), pool=pool)
        assert (commits[0], reads[0]) == (3, 3 * 3)  # 7 folders: batches of 1, 2 and 4
        for _, enrolment in enrolled:
            enrolment.finish()
    with session_scope(settings) as s:
        rows = s.execute(select(Person.folder, func.count(Face.id)).join(Face)
                         .where(Face.state == FaceState.ACCEPTED).group_by(Person.id)
                         .order_by(Person.folder)).all()
    assert len(rows) == 6
    assert tuple(rows[0]) == (people[0].name.upper(), 2)  # both folders' photo, one person
