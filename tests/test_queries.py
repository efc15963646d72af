"""store.queries: the one place catalogue reads live; the API, the CLI and the review pages
show the same counts from it. Rows are written directly (no face models needed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from faceatlas.cli import app
from faceatlas.errors import NotFoundError
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
    ana_line = next(line for line in listed.output.splitlines() if "Ana" in line)
    assert [c.strip() for c in ana_line.split("│")[-3:-1]] == ["3", "2"]  # images, faces
    shown = runner.invoke(app, ["show", str(catalogue["ana"])], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    body = shown.output
    assert body.index("second") < body.index("first")
    assert "not_this_person" in body and "accepted" in body
