"""Video recognition records one sighting per track (issue 24): who, the clip, from–to
seconds, a small crop; nothing when the collection does not record."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from faceatlas.gallery import sightings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Person, Sighting
from faceatlas.video.recognize import recognize_video
from tests.video_fixtures import VIDEO_COLLECTION, build_gallery, clip_path

pytestmark = pytest.mark.slow  # a gallery and a clip's recognition

LIN = "lin manuel miranda"


def test_clip_tracks_become_sightings_with_time_ranges(
        tmp_path: Path, faces_root: Path) -> None:
    settings = build_gallery(tmp_path, faces_root).settings
    clip = clip_path()
    where = sightings.Where("evening news", token_fingerprint="a" * 64)
    try:
        recognize_video(clip, settings, fps=2, where=where)  # off by default
        sightings.flush()
        with session_scope(settings) as s:
            assert s.scalars(select(Sighting)).all() == []
        sightings.set_policy(settings, VIDEO_COLLECTION, enabled=True)
        result = recognize_video(clip, settings, fps=2, where=where)
        sightings.flush()
        with session_scope(settings) as s:
            rows = s.scalars(select(Sighting).order_by(Sighting.t_start)).all()
            lin = s.scalar(select(Person.id).where(Person.name == LIN))
        embedded = [t for t in result.tracks if any(o.embedding is not None
                                                     for o in t.observations)]
        assert len(rows) == len(embedded) >= 2
        assert {r.clip for r in rows} == {clip.name} and {r.source for r in rows} == {
            "evening news"}
        close = max(result.tracks, key=lambda t: len(t.observations))
        mine = [r for r in rows if r.person_id == lin]
        assert any(r.t_start == pytest.approx(close.start, abs=0.01)
                   and r.t_end == pytest.approx(close.end, abs=0.01) for r in mine)
        for r in rows:
            with PILImage.open(Layout(settings.home).absolute(r.crop_path or "")) as pic:
                assert max(pic.size) <= settings.sightings_crop_px
        page = sightings.appearances(settings, lin)
        assert page.total == len(mine) and page.items[0].clip == clip.name
    finally:
        reset_caches()
