"""Sightings (issue 24): recording on/off per collection, appearances (newest first, paged,
CSV), candidates from repeated unknown faces, retention purge, erasure by source and cluster.

Real faces on the shared test gallery (a private copy per test that writes)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from faceatlas.gallery import candidates as cands
from faceatlas.gallery import sightings
from faceatlas.gallery.recognize import recognize_file
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Face, Person, Sighting, SightingCluster
from tests.gallery_fixtures import COLLECTION, Gallery, copy_home, gallery  # noqa: F401


@pytest.fixture()
def home(gallery: Gallery, tmp_path: Path) -> Settings:  # noqa: F811
    settings = copy_home(gallery.settings, tmp_path / "home")
    yield settings
    sightings.flush()
    reset_caches()


def _count(settings: Settings, *where: object) -> int:
    with session_scope(settings) as s:
        return s.scalar(select(func.count()).select_from(Sighting).where(*where)) or 0


def _see(settings: Settings, photo: Path, source: str, **kw: object) -> None:
    recognize_file(photo, settings, where=sightings.Where(source, **kw))  # type: ignore[arg-type]
    sightings.flush()


def test_off_by_default_then_recorded_when_switched_on(home: Settings,
                                                       gallery: Gallery) -> None:  # noqa: F811
    identity, photo = gallery.queries[0]
    _see(home, photo, "daily-news")
    assert _count(home) == 0  # off by default: nothing kept
    assert not sightings.policy(home, COLLECTION).enabled
    sightings.set_policy(home, COLLECTION, enabled=True)
    recognize_file(photo, home)  # no ``where``: a caller that does not record (verify, UI)
    sightings.flush()
    assert _count(home) == 0
    _see(home, photo, "daily-news", token_fingerprint="f" * 64)
    with session_scope(home) as s:
        row = s.scalars(select(Sighting)).one()
        name = s.scalar(select(Person.name).where(Person.id == row.person_id))
    assert name == Gallery.person_name(identity)
    assert row.source == "daily-news" and row.token_fingerprint == "f" * 64
    assert row.confidence is not None and row.w > 0 and row.h > 0
    assert len(np.frombuffer(row.embedding, dtype=np.float32)) == 128
    crop = Layout(home.home).absolute(row.crop_path or "")
    with PILImage.open(crop) as pic:  # a small face crop, never the photo
        assert max(pic.size) <= home.sightings_crop_px
    with PILImage.open(photo) as full:
        assert max(full.size) > home.sightings_crop_px
    sightings.set_policy(home, COLLECTION, enabled=False)
    _see(home, photo, "daily-news")
    assert _count(home) == 1  # off again: nothing new


def test_appearances_newest_first_paged_and_csv(home: Settings, gallery: Gallery) -> None:  # noqa: F811
    sightings.set_policy(home, COLLECTION, enabled=True)
    identity, photo = gallery.queries[0]
    for i in range(5):
        _see(home, photo, f"=source-{i}", clip="news.mp4" if i == 4 else None)
    with session_scope(home) as s:
        pid = s.scalar(select(Person.id).where(Person.name == Gallery.person_name(identity)))
    assert pid is not None
    first = sightings.appearances(home, pid, limit=2)
    assert first.total == 5 and [a.source for a in first.items] == ["=source-4", "=source-3"]
    assert first.items[0].clip == "news.mp4"
    rest = sightings.appearances(home, pid, limit=2, offset=4)
    assert [a.source for a in rest.items] == ["=source-0"]
    every = sightings.all_appearances(home, pid)
    assert [a.seen_at for a in every] == sorted((a.seen_at for a in every), reverse=True)
    rows = list(csv.DictReader(io.StringIO(sightings.appearances_csv(every))))
    assert len(rows) == 5 and rows[0]["source"] == "'=source-4"  # no formula in a sheet
    assert rows[0]["person"] == Gallery.person_name(identity) and rows[0]["clip"] == "news.mp4"


def test_candidates_from_repeated_unknowns_not_single(home: Settings,
                                                      gallery: Gallery) -> None:  # noqa: F811
    sightings.set_policy(home, COLLECTION, enabled=True)
    by_person: dict[str, list[Path]] = {}
    for p in gallery.strangers:
        by_person.setdefault(p.parent.name, []).append(p)
    repeated = max(by_person, key=lambda k: len(by_person[k]))
    once = next(k for k in by_person if k != repeated)
    photos = by_person[repeated]
    assert len(photos) >= 2
    for i in range(6):  # seen 6 times in 3 sources
        _see(home, photos[i % len(photos)], f"channel-{i % 3}")
    _see(home, by_person[once][0], "channel-0")  # a single unknown
    _see(home, gallery.queries[0][1], "channel-1")  # a known person
    found = cands.candidates(home, COLLECTION)
    assert len(found) == 1, [c.as_dict() for c in found]
    c = found[0]
    assert c.sightings == 6 and c.sources == 3 and c.faces
    assert {w["source"] for w in c.where} == {"channel-0", "channel-1", "channel-2"}
    with session_scope(home) as s:
        members = s.scalars(select(Sighting.person_id).where(
            Sighting.cluster_id == c.cluster_id)).all()
    assert members and all(m is None for m in members)  # no known face in a candidate
    # fewer sources than asked: not a candidate
    assert cands.candidates(home, COLLECTION, min_sources=4) == []
    # the same groups when clustered from scratch (average linkage over everything)
    cands.recluster(home, COLLECTION)
    again = cands.candidates(home, COLLECTION)
    assert len(again) == 1 and again[0].sightings == 6


def test_retention_purge_removes_only_old_sightings(home: Settings,
                                                    gallery: Gallery) -> None:  # noqa: F811
    sightings.set_policy(home, COLLECTION, enabled=True, retention_days=7)
    _see(home, gallery.queries[0][1], "old")
    _see(home, gallery.strangers[0], "old")
    _see(home, gallery.queries[1][1], "new")
    old = datetime.now(timezone.utc) - timedelta(days=8)
    with session_scope(home) as s:
        for row in s.scalars(select(Sighting).where(Sighting.source == "old")):
            row.seen_at = old
        faces_before = s.scalar(select(func.count()).select_from(Face))
        crops = {r.source: r.crop_path for r in s.scalars(select(Sighting))}
    assert _count(home) == 3
    gone = sightings.purge(home)
    assert gone[COLLECTION].sightings == 2 and gone[COLLECTION].files == 2
    with session_scope(home) as s:
        assert [r.source for r in s.scalars(select(Sighting))] == ["new"]
        assert s.scalar(select(func.count()).select_from(Face)) == faces_before
        assert s.scalar(select(func.count()).select_from(SightingCluster)) == 0
    layout = Layout(home.home)
    assert layout.absolute(crops["new"] or "").is_file()
    assert sightings.purge(home) == {}  # nothing more to do


def test_erase_by_source_and_cluster(home: Settings, gallery: Gallery) -> None:  # noqa: F811
    sightings.set_policy(home, COLLECTION, enabled=True)
    _see(home, gallery.queries[0][1], "tabloid")
    _see(home, gallery.strangers[0], "tabloid")
    _see(home, gallery.strangers[0], "broadsheet")
    gone = sightings.erase_source(home, COLLECTION, "tabloid")
    assert gone.sightings == 2 and gone.files == 2
    with session_scope(home) as s:
        left = s.scalars(select(Sighting)).all()
    assert [r.source for r in left] == ["broadsheet"] and left[0].cluster_id is not None
    # "not a public figure": the cluster goes and faces like it are not kept again
    sightings.erase_cluster(home, left[0].cluster_id, block=True)
    assert _count(home) == 0
    _see(home, gallery.strangers[0], "broadsheet")
    assert _count(home) == 0
    _see(home, gallery.queries[0][1], "broadsheet")  # others are still recorded
    assert _count(home) == 1


def test_name_and_merge_a_candidate(home: Settings, gallery: Gallery) -> None:  # noqa: F811
    from faceatlas.domain.states import PersonState, ReferenceState
    from faceatlas.store.models import Reference

    sightings.set_policy(home, COLLECTION, enabled=True)
    by_person: dict[str, list[Path]] = {}
    for p in gallery.strangers:
        by_person.setdefault(p.parent.name, []).append(p)
    first, second = sorted(by_person)[:2]
    for who in (first, second):
        for i in range(5):
            _see(home, by_person[who][i % len(by_person[who])], f"feed-{i % 2}")
    found = cands.candidates(home, COLLECTION)
    assert len(found) == 2
    named = cands.name_candidate(home, found[0].cluster_id, "Nova Osoba",
                                 wikidata_qid="Q123")
    assert named.created and named.sightings == 5 and named.references == 5
    with session_scope(home) as s:
        person = s.get(Person, named.person_id)
        assert person is not None and person.state == PersonState.QUEUED  # to be collected
        assert person.wikidata_qid == "Q123"
        refs = s.scalars(select(Reference).where(Reference.person_id == person.id)).all()
        assert len(refs) == 5 and all(r.state == ReferenceState.READY and r.embedding
                                      for r in refs)
        assert s.get(SightingCluster, found[0].cluster_id) is None
    assert sightings.appearances(home, named.person_id).total == 5
    # the other one is an existing person: merged, its sightings become their appearances
    with session_scope(home) as s:
        known = s.scalar(select(Person.id).where(Person.id != named.person_id).limit(1))
    assert known is not None
    before = sightings.appearances(home, known).total
    merged = cands.merge_candidate(home, found[1].cluster_id, known)
    assert merged.sightings == 5 and sightings.appearances(home, known).total == before + 5
    assert cands.candidates(home, COLLECTION) == []


def test_cli_switch_recognize_appearances_purge_erase(
        home: Settings, gallery: Gallery, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.settings import get_settings

    monkeypatch.setenv("FACEATLAS_HOME", str(home.home))
    get_settings.cache_clear()
    try:
        run = CliRunner().invoke
        assert "not recording" in run(app, ["sightings", "status", COLLECTION]).output
        out = run(app, ["sightings", "enable", COLLECTION, "--retention-days", "3"])
        assert out.exit_code == 0 and "kept 3 days" in out.output
        identity, photo = gallery.queries[0]
        folder = tmp_path / "batch"
        folder.mkdir()
        for i in range(2):
            (folder / f"{i}.jpg").write_bytes(photo.read_bytes())
        out = run(app, ["recognize", str(folder), "--collection", COLLECTION, "--format",
                        "csv", "--source", "wire"])
        assert out.exit_code == 0, out.output
        name = Gallery.person_name(identity)
        out = run(app, ["appearances", name, "--collection", COLLECTION])
        assert out.exit_code == 0 and "2 appearances" in out.output and "wire" in out.output
        target = tmp_path / "seen.csv"
        out = run(app, ["appearances", name, "--csv", str(target)])
        assert out.exit_code == 0 and target.read_text().count("wire") == 2
        assert "nothing older" in run(app, ["sightings", "purge"]).output
        out = run(app, ["sightings", "erase", COLLECTION, "--source", "wire"])
        assert out.exit_code == 0 and out.output.startswith("2 sightings")
        out = run(app, ["sightings", "erase", COLLECTION])
        assert out.exit_code == 1 and "a source or a cluster" in out.output
    finally:
        get_settings.cache_clear()


def test_erasing_a_person_erases_their_sightings(home: Settings, gallery: Gallery) -> None:  # noqa: F811
    from faceatlas.gallery.erase import remove_person

    sightings.set_policy(home, COLLECTION, enabled=True)
    _see(home, gallery.queries[0][1], "wire")
    with session_scope(home) as s:
        row = s.scalars(select(Sighting)).one()
    assert row.person_id is not None and row.crop_path
    report = remove_person(home, row.person_id)
    assert report.rows["sightings"] == 1
    assert _count(home) == 0 and not Layout(home.home).absolute(row.crop_path).exists()
