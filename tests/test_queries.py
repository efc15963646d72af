"""store.queries: the one place catalogue reads live; the API, the CLI and the review pages
show the same counts from it. Rows are written directly (no face models needed)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from faceatlas.cli import app
from faceatlas.curation import duplicates
from faceatlas.domain.errors import NotFoundError
from faceatlas.settings import Settings
from faceatlas.store import queries
from faceatlas.store.db import session_scope
from faceatlas.store.models import (
    Collection,
    Face,
    FaceState,
    Image,
    ImageState,
    Job,
    JobState,
    Person,
    PersonState,
    Reason,
)


def _face(image: Image, idx: int, state: FaceState, reason: Reason, *, gallery: bool = False,
          quality: float = 0.5) -> Face:
    return Face(image=image, person=image.person, person_id=image.person.id, idx=idx, x=1, y=2,
                w=30, h=40, state=state, reason=reason, quality=quality,
                gallery_path=f"gallery/x/{image.id}_{idx}.jpg" if gallery else None)


@pytest.fixture()
def catalogue(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as s:
        coll = Collection(key="test", name="Test")
        ana = Person(collection=coll, key="ana", name="Ana\u200b Anić", ascii_name="Ana Anic",
                     folder="Ana_Anic", occupations=["Singer"], state=PersonState.PROMOTED)
        bo = Person(collection=coll, key="bo", name="Bo", ascii_name="Bo", folder="Bo",
                    state=PersonState.QUEUED)
        s.add_all([coll, ana, bo])
        s.flush()
        first = Image(person=ana, origin="u1", rank=2, title="first", state=ImageState.ANALYSED,
                      reason=Reason.ACCEPTED)
        second = Image(person=ana, origin="u2", rank=1, title="second",
                       state=ImageState.ANALYSED, reason=Reason.NOT_THIS_PERSON)
        unranked = Image(person=ana, origin="u3", rank=None, state=ImageState.PENDING)
        s.add_all([first, second, unranked])
        s.flush()
        s.add_all([
            _face(first, 1, FaceState.ACCEPTED, Reason.ACCEPTED, gallery=True, quality=0.9),
            _face(first, 0, FaceState.ACCEPTED, Reason.ACCEPTED),
            _face(second, 0, FaceState.REJECTED, Reason.NOT_THIS_PERSON),
        ])
        s.add_all([Job(kind="collect", person_id=ana.id, state=JobState.DONE),
                   Job(kind="collect", person_id=bo.id, state=JobState.RUNNING)])
        s.flush()
        return {"ana": ana.id, "bo": bo.id}


def test_counts_agree_across_views(settings: Settings, catalogue: dict[str, int]) -> None:
    (coll,) = queries.list_collections(settings)
    assert (coll.people, coll.promoted, coll.accepted_faces, coll.gallery_faces) == (2, 1, 2, 1)
    (overview,) = queries.collections_overview(settings)
    assert (overview.accepted_faces, overview.gallery_faces) == (2, 1)
    people = {p.id: p for p in queries.list_people(settings, limit=None)}
    ana = people[catalogue["ana"]]
    assert (ana.images, ana.accepted_faces, ana.gallery_faces) == (3, 2, 1)
    assert ana.name == "Ana Anić" and ana.occupations == ["Singer"]  # one_line'd
    assert (people[catalogue["bo"]].images, people[catalogue["bo"]].accepted_faces) == (0, 0)
    page = queries.collection_people(settings, "test")
    row = next(r for r in page.people if r.id == catalogue["ana"])
    assert (row.accepted_faces, row.gallery_faces) == (2, 1)
    with session_scope(settings) as s:
        assert queries.accepted_faces(s, catalogue["ana"]) == 2
    assert [p.id for p in queries.list_people(settings, limit=1)] == [catalogue["ana"]]
    assert [p.id for p in queries.list_people(settings, state=PersonState.QUEUED)] == [
        catalogue["bo"]]


def test_person_detail_and_images(settings: Settings, catalogue: dict[str, int]) -> None:
    detail = queries.person_detail(settings, catalogue["ana"])
    assert (detail.accepted_faces, detail.folder, detail.state) == (2, "Ana_Anic", "promoted")
    images = queries.person_images(settings, catalogue["ana"])
    assert [i.title for i in images] == ["second", "first", None]  # by rank, unranked last
    assert [f.idx for f in images[1].faces] == [0, 1]
    assert images[1].faces[1].box.w == 30 and images[1].faces[1].gallery_path
    with pytest.raises(NotFoundError):
        queries.person_detail(settings, 999)
    with pytest.raises(NotFoundError):
        queries.person_images(settings, 999)


def test_jobs(settings: Settings, catalogue: dict[str, int]) -> None:
    assert [j.state for j in queries.list_jobs(settings)] == ["running", "done"]  # newest 1st
    (running,) = queries.list_jobs(settings, state=JobState.RUNNING)
    assert running.person_id == catalogue["bo"]
    assert queries.get_job(settings, running.id).kind == "collect"
    with pytest.raises(NotFoundError):
        queries.get_job(settings, 999)
    assert queries.recent_jobs(settings)[0].state == JobState.RUNNING  # running on top


def test_cli_people_and_show_read_the_same(settings: Settings,
                                           catalogue: dict[str, int]) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["people"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    head = [c.strip() for c in next(line for line in lines if "faces" in line).split("┃")]
    ana = [c.strip() for c in next(line for line in lines if "Ana" in line).split("│")]
    row = dict(zip(head, ana, strict=True))
    assert (row["images"], row["faces"]) == ("3", "2")
    shown = runner.invoke(app, ["show", str(catalogue["ana"])], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    body = shown.output
    assert body.index("second") < body.index("first")
    assert "not_this_person" in body and "accepted" in body


# --------------------------------------------------------------------------- duplicates


def _unit(*values: float) -> bytes:
    v = np.array(values, dtype=np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32).tobytes()


def test_person_review_puts_duplicates_under_the_face_they_copy(settings: Settings) -> None:
    """Near-duplicate faces go under the nearest accepted face by embedding; byte copies of
    a photo under that photo's face (or where its own duplicate face went); the rest stay in
    the ``duplicate`` group, which counts those shown elsewhere."""
    with session_scope(settings) as s:
        coll = Collection(key="dups", name="Dups")
        ana = Person(collection=coll, key="ana", name="Ana", ascii_name="Ana", folder="Ana",
                     state=PersonState.CURATED)
        other = Person(collection=coll, key="bo", name="Bo Other", ascii_name="Bo",
                       folder="Bo", state=PersonState.PROMOTED)
        s.add_all([coll, ana, other])
        s.flush()

        def image(sha: str, reason: Reason | None = Reason.ACCEPTED, origin: str = "") -> Image:
            img = Image(person=ana, origin=origin or f"file:{sha}", sha256=sha,
                        state=ImageState.ANALYSED, reason=reason, path=f"raw/{sha}.jpg")
            s.add(img)
            s.flush()
            return img

        def face(img: Image, state: FaceState, reason: Reason, vec: bytes | None,
                 quality: float = 0.5) -> int:
            f = _face(img, 0, state, reason, quality=quality)
            f.embedding = vec
            s.add(f)
            s.flush()
            return f.id

        a1 = face(image("a1"), FaceState.ACCEPTED, Reason.ACCEPTED, _unit(1, 0, 0), 0.9)
        a2 = face(image("a2"), FaceState.ACCEPTED, Reason.ACCEPTED, _unit(0, 1, 0), 0.8)
        near_a2 = [face(image(f"d{i}", Reason.DUPLICATE), FaceState.REJECTED, Reason.DUPLICATE,
                        _unit(0.05 * i, 1, 0)) for i in range(1, 4)]
        near_a1 = face(image("d9", Reason.DUPLICATE), FaceState.REJECTED, Reason.DUPLICATE,
                       _unit(1, 0.1, 0))
        # an ensemble-length vector: nothing accepted to measure it against
        odd = face(image("odd", Reason.DUPLICATE), FaceState.REJECTED, Reason.DUPLICATE,
                   _unit(1, 0, 0, 0))
        # its original was rejected since: the nearest accepted face is far (another photo)
        far = face(image("far", Reason.DUPLICATE), FaceState.REJECTED, Reason.DUPLICATE,
                   _unit(0.6, 0.6, 1))
        blur = face(image("blur", Reason.BLURRY), FaceState.REJECTED, Reason.BLURRY, None)
        # byte copies (never analysed): of a1's photo, of a duplicate's photo, of nothing
        for sha in ("a1", "d2", "gone"):
            image(sha, Reason.DUPLICATE, f"file:copy-{sha}")
        ana.selftest = {"passed": False, "predicted_person_id": other.id,
                        "predicted_name": None, "detail": f"recognised as person {other.id}"}
        pid = ana.id
        other_id = other.id

    p = duplicates.person_review(settings, pid)
    by_id = {c.id: c for c in p.accepted}
    assert [c.id for c in p.accepted] == [a1, a2]
    assert [d.id for d in by_id[a2].duplicates] == near_a2
    assert [d.id for d in by_id[a1].duplicates] == [near_a1]
    assert [c.source.origin for c in by_id[a1].copies] == ["file:copy-a1"]
    assert [c.source.origin for c in by_id[a2].copies] == ["file:copy-d2"]  # followed its face
    assert (by_id[a1].duplicate_count, by_id[a2].duplicate_count) == (2, 4)
    groups = {g.reason: g for g in p.rejected}
    dup = groups[Reason.DUPLICATE]
    assert [f.id for f in dup.faces] == [odd, far]
    assert [i.source.origin for i in dup.images] == ["file:copy-gone"]
    assert dup.attached == 6 and dup.count == 3
    assert [f.id for f in groups[Reason.BLURRY].faces] == [blur]
    # the failed self-test names who, even from a row that stored only the id
    assert p.selftest_person == (other_id, "Bo Other")


def test_attach_duplicates_without_accepted_faces_leaves_them_all() -> None:
    src = queries.Provenance(1, None, None, None, None, "folder", "file:x", None, None, True)
    dup = queries.FaceCard(5, "rejected", "duplicate", None, 0.1, 30, False, True, src)
    copy = queries.ImageCard("duplicate", None, src)
    faces, images = duplicates.attach_duplicates(
        [], [dup], {5: np.ones(3, np.float32)}, [("abc", copy)], {"abc": [5]},
        engines={5: "sface"}, limits={"sface": 0.5})
    assert faces == [dup] and images == [copy]


def test_attach_duplicates_within_each_engines_own_distance(settings: Settings) -> None:
    """A duplicate goes under the nearest accepted face of its own engine, only within that
    engine's duplicate distance (the settings' thresholds; the ensemble by its SFace half)."""
    src = queries.Provenance(1, None, None, None, None, "folder", "file:x", None, None, True)

    def card(face_id: int, state: str = "rejected") -> queries.FaceCard:
        return queries.FaceCard(face_id, state, "accepted" if state == "accepted"
                                else "duplicate", None, 0.5, 30, False, True, src)

    def unit(*values: float) -> np.ndarray:
        v = np.array(values, dtype=np.float32)
        return v / np.linalg.norm(v)

    limits = duplicates.duplicate_distances(settings, ["sface", "dlib", "ensemble", "odd"])
    assert limits == {"sface": settings.sface_duplicate_distance,
                      "dlib": settings.duplicate_distance,
                      "ensemble": settings.sface_duplicate_distance}
    assert settings.duplicate_distance < 0.4 < settings.sface_duplicate_distance
    apart = unit(1, 0.42, 0)  # 0.4 from (1, 0, 0)

    def ensemble(sface: np.ndarray, dlib: float) -> np.ndarray:  # [SFace 128 | dlib 128]
        return np.concatenate([sface, np.zeros(125), np.full(128, dlib)]).astype(np.float32)

    accepted = [card(1, "accepted"), card(2, "accepted"), card(3, "accepted")]
    dups = [card(10), card(11), card(12), card(13)]
    vectors = {1: unit(1, 0, 0), 2: unit(1, 0, 0), 3: ensemble(unit(1, 0, 0), 0.0),
               10: apart, 11: apart, 12: unit(-1, 0, 0),
               13: ensemble(apart, 1.0)}  # whole vectors 11 apart, SFace halves 0.4
    engines = {1: "sface", 2: "dlib", 3: "ensemble", 10: "sface", 11: "dlib", 12: "sface",
               13: "ensemble"}
    left, _ = duplicates.attach_duplicates(accepted, dups, vectors, [], {}, engines=engines,
                                        limits=limits)
    assert [d.id for d in accepted[0].duplicates] == [10]  # sface: 0.4 is a duplicate
    assert accepted[1].duplicates == []  # dlib: 0.4 is another photo
    assert [d.id for d in accepted[2].duplicates] == [13]  # ensemble: by the SFace half
    assert [d.id for d in left] == [11, 12]
