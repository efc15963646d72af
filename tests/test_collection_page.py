"""The collection page's reads (search, filters, sorts, paging, counts) and the bulk actions'
library, on a small generated collection (devtools.bigcollection: 60 people)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import case, func, select

from faceatlas.devtools.bigcollection import ACCENTED, generate
from faceatlas.domain.errors import ConfigError, FaceAtlasError, NotFoundError
from faceatlas.jobs import bulk
from faceatlas.settings import Settings
from faceatlas.store import queries
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Face, FaceState, Image, Job, Person, PersonState, Reason

KEY = "big"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Settings]:
    """60 people × 8 faces, generated once for the module (read-only tests share it)."""
    settings = Settings(home=tmp_path_factory.mktemp("small") / "home")
    generate(settings, people=60, faces=8, crops=6)
    yield settings
    reset_caches()


def _ids(settings: Settings, *where: object) -> set[int]:
    with session_scope(settings) as s:
        return set(s.scalars(select(Person.id).where(*where)))  # type: ignore[arg-type]


def test_generator_writes_what_it_says(small: Settings) -> None:
    with session_scope(small) as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 60
        assert s.scalar(select(func.count()).select_from(Face)) == 60 * 8
        engines = set(s.execute(select(Face.engine, Face.model_hash)).all())
        crops = set(s.scalars(select(Face.crop_path)))
        queued_faces = s.scalar(select(func.count()).select_from(Face).join(Person)
                                .where(Person.state == PersonState.QUEUED))
    assert len(engines) == 1 and next(iter(engines))[0] == "sface"
    assert len(crops) <= 6 and all((small.home / c).is_file() for c in crops)
    assert queued_faces == 0


def test_generator_with_fewer_faces_than_promotion_needs(tmp_path: Path,
                                                       faces_root: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    made = generate(settings, people=40, faces=1, crops=1)
    assert made.faces == 40 and settings.min_faces_to_promote > 1
    with session_scope(settings) as s:
        per_person = s.execute(select(Face.person_id, func.count(), func.sum(
            case((Face.state == FaceState.ACCEPTED, 1), else_=0))).group_by(Face.person_id))
        assert all(accepted <= faces for _, faces, accepted in per_person)


def test_search_is_case_and_accent_insensitive(small: Settings) -> None:
    for q in ("djokovic", "ĐOKOVIĆ", "okovi", "novak dj"):
        page = queries.collection_people(small, KEY, q=q)
        assert ACCENTED in [p.name for p in page.people], q
    assert queries.collection_people(small, KEY, q="%").total == 0  # a literal %, not "all"
    assert queries.collection_people(small, KEY, q="_").total == 0
    assert queries.collection_people(small, KEY, q="").total == 60


def test_state_and_reason_filters_agree_with_the_database(small: Settings) -> None:
    page = queries.collection_people(small, KEY, state=PersonState.FAILED, limit=1000)
    assert {p.id for p in page.people} == _ids(small, Person.state == PersonState.FAILED)
    assert page.total == len(page.people)
    states = {s.state: s.people for s in queries.collection_people(small, KEY).states}
    with session_scope(small) as s:
        assert states == dict(s.execute(select(Person.state, func.count())
                                        .group_by(Person.state)).all())
        other = set(s.scalars(select(Face.person_id).where(Face.reason == Reason.OTHER_PERSON)))
        failed_dl = set(s.scalars(select(Image.person_id)
                                  .where(Image.reason == Reason.DOWNLOAD_FAILED)))
    got = queries.collection_people(small, KEY, reason=Reason.OTHER_PERSON, limit=1000)
    assert {p.id for p in got.people} == other and other
    got = queries.collection_people(small, KEY, reason=Reason.DOWNLOAD_FAILED, limit=1000)
    assert {p.id for p in got.people} == failed_dl and failed_dl
    reasons = {r.reason: r.people for r in queries.collection_people(small, KEY).reasons}
    assert reasons[Reason.OTHER_PERSON] == len(other)
    assert reasons[Reason.DOWNLOAD_FAILED] == len(failed_dl)
    both = queries.collection_people(small, KEY, state=PersonState.FAILED,
                                     reason=Reason.DOWNLOAD_FAILED, limit=1000)
    assert {p.id for p in both.people} == failed_dl & _ids(small,
                                                           Person.state == PersonState.FAILED)


def test_sorts_and_paging(small: Settings) -> None:
    by_faces = queries.collection_people(small, KEY, sort="faces", limit=1000).people
    assert [p.accepted_faces for p in by_faces] == sorted(
        (p.accepted_faces for p in by_faces), reverse=True)
    by_flags = queries.collection_people(small, KEY, sort="flags", limit=1000).people
    assert [p.flags for p in by_flags] == sorted((p.flags for p in by_flags), reverse=True)
    assert by_flags[0].flags > 0
    with session_scope(small) as s:  # the documented definition, counted another way
        pid = by_flags[0].id
        faces = s.execute(select(Face.reason, Face.detail).where(Face.person_id == pid)).all()
        selftest = s.scalar(select(Person.selftest).where(Person.id == pid))
    expected = sum(1 for r, d in faces if r == Reason.OTHER_PERSON or d is not None)
    expected += 1 if selftest and selftest.get("passed") is False else 0
    assert by_flags[0].flags == expected
    updated = queries.collection_people(small, KEY, sort="updated", limit=1000).people
    assert [p.updated_at for p in updated] == sorted((p.updated_at for p in updated),
                                                     reverse=True)
    pages = [queries.collection_people(small, KEY, limit=25, offset=o).people
             for o in (0, 25, 50)]
    ids = [p.id for page in pages for p in page]
    assert len(ids) == 60 == len(set(ids)) and len(pages[2]) == 10
    with pytest.raises(queries.QueryError, match="sort must be one of"):
        queries.collection_people(small, KEY, sort="nonsense")
    with pytest.raises(NotFoundError):
        queries.collection_people(small, "nowhere")


def test_bulk_plan_for_ticked_people_and_for_the_filter(small: Settings) -> None:
    eligible = queries.collection_people(small, KEY, state=PersonState.CURATED, limit=1000)
    good = [p for p in eligible.people if p.accepted_faces >= small.min_faces_to_promote]
    failed = _ids(small, Person.state == PersonState.FAILED)
    ticked = [good[0].id, next(iter(failed))]
    planned = bulk.plan(small, KEY, "promote", ids=ticked)
    assert [p.id for p in planned.people] == [good[0].id]
    (who, why), = planned.skipped
    assert who.id == ticked[1] and "only curated" in why
    everyone = bulk.plan(small, KEY, "promote_eligible", state=PersonState.CURATED)
    assert {p.id for p in everyone.people} == {p.id for p in good}
    retry = bulk.plan(small, KEY, "retry_failed")
    assert {p.id for p in retry.people} == failed and not retry.skipped
    with pytest.raises(FaceAtlasError):
        bulk.plan(small, KEY, "erase_everyone")
    with pytest.raises(NotFoundError):
        bulk.plan(small, "nowhere", "promote", ids=ticked)


def test_bulk_promote_changes_exactly_the_planned_people(tmp_path: Path,
                                                         faces_root: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    generate(settings, people=12, faces=8, crops=4, seed=3)
    try:
        planned = bulk.plan(settings, KEY, "promote_eligible")
        assert planned.people
        before = {pid: st for pid, st in _states(settings).items()}
        outcome = bulk.run(settings, planned)
        after = _states(settings)
        changed = {pid for pid in after if after[pid] != before[pid]}
        assert {p.id for p in outcome.done} == changed == {p.id for p in planned.people}
        assert outcome.complete and all(after[p.id] == PersonState.PROMOTED
                                        for p in outcome.done)
        with session_scope(settings) as s:
            gallery = s.scalar(select(func.count()).select_from(Face).where(
                Face.person_id.in_([p.id for p in outcome.done]),
                Face.state == FaceState.ACCEPTED, Face.gallery_path.is_not(None)))
        assert gallery and gallery >= settings.min_faces_to_promote * len(outcome.done)
        again = bulk.run(settings, planned)  # promoted now: no longer eligible, not changed
        assert not again.done and {p.id for p, _ in again.failed} == changed
        assert not again.complete
    finally:
        reset_caches()


def test_a_long_bulk_promotion_goes_on_as_one_background_job(
        tmp_path: Path, faces_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promoting more than fits in a request: the first person in the request, the others in
    one background job whose closing message says how it went; everyone ends promoted."""
    settings = Settings(home=tmp_path / "home")
    generate(settings, people=12, faces=8, crops=4, seed=3)
    monkeypatch.setattr(bulk, "INLINE_SECONDS", 0.0)
    try:
        planned = bulk.plan(settings, KEY, "promote_eligible")
        assert len(planned.people) >= 2
        outcome = bulk.run(settings, planned)
        assert [p.id for p in outcome.done] == [planned.people[0].id]  # one, then the clock
        assert outcome.later == planned.people[1:] and not outcome.complete
        assert outcome.job_id is not None
        deadline = time.monotonic() + 60
        while True:
            with session_scope(settings) as s:
                job = s.get(Job, outcome.job_id)
                assert job is not None and job.kind == "promote"
                if job.state in ("done", "failed"):
                    break
            assert time.monotonic() < deadline, "the promotion job did not finish"
            time.sleep(0.05)
        assert job.state == "done" and job.progress == 1.0
        assert job.message == f"{len(outcome.later)} promoted", job.message
        states = _states(settings)
        assert all(states[p.id] == PersonState.PROMOTED for p in planned.people)
    finally:
        reset_caches()


def test_bulk_never_reaches_another_collection(tmp_path: Path, faces_root: Path) -> None:
    """Ids of another collection posted under this collection's page: not planned, not
    skipped (not even named), and a forged plan that names them changes nothing of theirs."""
    from faceatlas.store.people import get_or_create_collection, upsert_person

    settings = Settings(home=tmp_path / "home")
    generate(settings, people=8, faces=8, crops=4, seed=5)
    try:
        with session_scope(settings) as s:
            other, _ = upsert_person(s, get_or_create_collection(s, "Elsewhere"), "Eve Other")
            other.state = PersonState.FAILED
            foreign = other.id
        own = bulk.plan(settings, KEY, "retry_failed").people
        planned = bulk.plan(settings, KEY, "collect", ids=[foreign, *(p.id for p in own)])
        assert foreign not in {p.id for p in planned.people}
        assert foreign not in {p.id for p, _ in planned.skipped}
        forged = bulk.BulkPlan(bulk.ACTIONS["promote"], KEY, [bulk.Named(foreign, "Eve")])
        outcome = bulk.run(settings, forged)
        assert not outcome.done and not outcome.failed  # re-planned: nobody of this page
        assert _states(settings)[foreign] == PersonState.FAILED
    finally:
        reset_caches()


def _states(settings: Settings) -> dict[int, str]:
    with session_scope(settings) as s:
        return dict(s.execute(select(Person.id, Person.state)).all())


def test_collect_refused_without_an_image_source_changes_nothing(small: Settings) -> None:
    broken = small.model_copy(update={"image_sources": ["nowhere"]})
    planned = bulk.plan(broken, KEY, "retry_failed")
    before = _states(broken)
    with pytest.raises(ConfigError):
        bulk.run(broken, planned)
    assert _states(broken) == before
    with session_scope(broken) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_a_partial_outcome_reads_as_a_warning_naming_people(small: Settings) -> None:
    from faceatlas.api.ui import collection as page
    from faceatlas.api.ui.pages import flash

    a, b = bulk.Named(1, "Ana"), bulk.Named(2, "Bo")
    whole = page._after(KEY, page._filter("x", "curated", "", "faces", 2),
                        bulk.BulkOutcome(bulk.ACTIONS["promote"], done=[a, b]))
    assert "done=bulk_promoted&" in whole and "q=x" in whole and "state=curated" in whole
    assert "sort=faces" in whole and "page=2" in whole
    part = page._after(KEY, page._filter(None, None, None, None, 1),
                       bulk.BulkOutcome(bulk.ACTIONS["promote"], done=[a], blocked=[b]))
    assert "done=bulk_promoted_some" in part and "blocked=2" in part
    (banner,) = flash("bulk_promoted_some", 1, page._FLASH)
    assert banner.kind == "warn"
    (ok,) = flash("bulk_promoted", 2, page._FLASH)
    assert ok.kind == "ok"
    with session_scope(small) as s:
        someone = s.execute(select(Person.id, Person.name)).first()
    (named,) = page._named_flash(small, KEY, {"blocked": str(someone.id), "few": None})
    assert named.kind == "error" and someone.name in named.text and str(someone.id) not in \
        named.text.replace(someone.name, "")
    assert page._named_flash(small, "elsewhere", {"blocked": str(someone.id)}) == []
