"""Video: reading (formats, sampling, seeks, limits, broken files), tracks and their names in
the shared Hamilton clip, import-video with provenance, the CLI, and the API job."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from faceatlas.cli import app
from faceatlas.settings import Settings, get_settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Image, Person
from faceatlas.video.reader import VideoError, VideoReader, looks_like_video, probe
from faceatlas.video.tracks import Observation, Track, Tracker, TrackerParams, frontal_score, vote
from tests.gallery_fixtures import copy_home, running
from tests.video_fixtures import (
    VIDEO_COLLECTION,
    VideoGallery,
    build_gallery,
    clip_path,
    remux,
    slideshow,
    synthetic,
    truncated,
)

LIN = "lin manuel miranda"
OBAMA = "barack obama"  # in the audience after the cut (~7.5 s): turned and dim
#: Lin-Manuel Miranda faces the camera from the cut at ~2.7 s to ~7.0 s (seen at 640×360)
LIN_CLOSE_UP = (3.0, 7.0)

_built: dict[str, VideoGallery] = {}


@pytest.fixture(scope="module")
def vgallery(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> VideoGallery:
    if "g" not in _built:
        _built["g"] = build_gallery(tmp_path_factory.mktemp("vgallery"), faces_root)
    return _built["g"]


@pytest.fixture(scope="module")
def clip() -> Path:
    return clip_path()


# --------------------------------------------------------------------------- reading


def test_samples_the_clip_at_the_asked_rate(clip: Path) -> None:
    info = probe(clip)
    assert (info.width, info.height, info.codec) == (640, 360, "h264")
    assert 9.0 < info.duration < 9.3 and info.frames == 275
    for fps in (1, 2, 8):
        reader = VideoReader(clip, fps)
        times = [f.time for f in reader]
        assert not reader.partial
        assert abs(len(times) - info.duration * fps) <= 1.5, (fps, len(times))
        gaps = np.diff(times)
        # sampled frames are the first at or after each multiple of 1/fps (frames are 1/30 s)
        assert times[0] == 0.0 and gaps.min() > 1 / fps - 0.04 and gaps.max() < 1 / fps + 0.04


@pytest.mark.parametrize(("codec", "fmt", "suffix"), [
    ("libx264", "mp4", ".mp4"), ("libvpx", "webm", ".webm"), ("libx264", "mov", ".mov"),
])
def test_reads_mp4_webm_and_mov(tmp_path: Path, codec: str, fmt: str, suffix: str) -> None:
    path = synthetic(tmp_path / f"clip{suffix}", 3, codec=codec, fmt=fmt)
    reader = VideoReader(path, 2)
    frames = list(reader)
    assert [f.time for f in frames] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=0.04)
    assert frames[0].rgb.shape == (96, 160, 3) and not reader.partial
    assert looks_like_video(path)


def test_sparse_sampling_seeks_instead_of_decoding_everything(tmp_path: Path) -> None:
    # keyframes every 5 frames (1/6 s): at 1 fps a seek skips most of each second
    short_gop = synthetic(tmp_path / "short_gop.mp4", 20, gop=5)
    sparse = VideoReader(short_gop, 1)
    assert len(list(sparse)) == 20
    assert sparse.seeks >= 15 and sparse.decoded < 200  # of 600 frames
    # keyframes every 2 s (the shared clip): a seek would decode more, so it decodes on
    dense = VideoReader(clip_path(), 1)
    assert len(list(dense)) == 10 and dense.seeks == 0 and dense.decoded == 275


def test_a_text_file_renamed_mp4_is_refused_clearly(tmp_path: Path, home: Path) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_text("these are my holiday notes, not a video\n" * 20)
    with pytest.raises(VideoError) as err:
        VideoReader(fake, 2)
    assert err.value.code == "not_a_video" and "not a video file" in str(err.value)
    out = CliRunner().invoke(app, ["recognize", str(fake)])
    assert out.exit_code == 1 and "holiday.mp4 is not a video file" in out.output
    assert "Traceback" not in out.output


def test_a_truncated_clip_gives_a_clear_error(tmp_path: Path, clip: Path, home: Path) -> None:
    # the shared clip keeps its index (moov) at the end: a cut copy has none
    cut = truncated(clip, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(VideoError) as err:
        VideoReader(cut, 2)
    assert err.value.code == "video_decode_error" and "truncated" in str(err.value)
    out = CliRunner().invoke(app, ["recognize", str(cut)])
    assert out.exit_code == 1 and "truncated or corrupt" in out.output


def test_a_truncated_faststart_clip_keeps_the_frames_before_the_cut(
    tmp_path: Path, clip: Path
) -> None:
    whole = remux(clip, tmp_path / "fast.mp4", faststart=True)
    cut = truncated(whole, tmp_path / "fast_cut.mp4", 0.6)
    reader = VideoReader(cut, 2)
    times = [f.time for f in reader]
    assert reader.partial and reader.error is not None
    assert "frames up to there are kept" in reader.error.message
    assert 8 <= len(times) < 18 and times[-1] < 7.0  # the full clip gives 19 up to 9.0 s
    assert times == pytest.approx([i * 0.5 for i in range(len(times))], abs=0.04)


def test_size_and_duration_limits(clip: Path) -> None:
    with pytest.raises(VideoError) as err:
        probe(clip, max_bytes=100_000)
    assert err.value.code == "video_too_large"
    with pytest.raises(VideoError) as err:
        probe(clip, max_seconds=5)
    assert err.value.code == "video_too_long"
    with pytest.raises(VideoError):
        VideoReader(clip, 9)  # fps outside 1–8


# --------------------------------------------------------------------------- tracks (pure)


def _obs(t: float, box: tuple[int, int, int, int], vec: np.ndarray, q: float = 100.0
         ) -> Observation:
    lm = np.array([[30, 40], [40, 40], [60, 40], [70, 40], [50, 60]], np.float32)
    return Observation(sample=int(t * 2), time=t, box=box, score=1.0, landmarks=lm, blur=q,
                       frontal=1.0, embedding=vec)


def test_tracker_links_by_overlap_and_embedding_and_splits_people() -> None:
    a, b = np.zeros(128, np.float32), np.zeros(128, np.float32)
    b[0] = 1.0  # 1.0 apart: different people
    tracker = Tracker(TrackerParams(max_gap=1.0, best_frames=2))
    for i in range(4):
        t = i * 0.5
        tracker.add([_obs(t, (100 + 5 * i, 50, 90, 90), a + 0.01 * i, q=100 + i),
                     _obs(t, (400, 60, 90, 90), b)])
    # a camera cut: person a jumps across the frame (no overlap) but stays close in embedding
    tracker.add([_obs(2.0, (420, 60, 90, 90), a + 0.02)])
    # person b is back after 3 s unseen: a new track
    tracker.add([_obs(5.0, (400, 60, 90, 90), b)])
    starts = sorted((t.start, t.end, len(t.observations)) for t in tracker.tracks)
    assert starts == [(0.0, 1.5, 4), (0.0, 2.0, 5), (5.0, 5.0, 1)]


def test_best_frames_skip_near_copies_and_keep_the_best() -> None:
    tracker = Tracker(TrackerParams(best_frames=2, min_spread=0.15))
    track = Track(1)
    base = np.zeros(128, np.float32)
    still = [_obs(0.5 * i, (10, 10, 90, 90), base, q=100 + i) for i in range(3)]
    kept = [tracker.keeps(track, o) for o in still]
    assert kept == [True, True, True] and len(track.best) == 1  # each copy replaced the last
    other = base.copy()
    other[0] = 0.5
    assert tracker.keeps(track, _obs(2.0, (10, 10, 120, 120), other, q=300))
    assert [o.time for o in track.best] == [2.0, 1.0]


def test_frontal_score_from_landmarks() -> None:
    frontal = np.array([[30, 40], [40, 40], [60, 40], [70, 40], [50, 60]], np.float32)
    turned = np.array([[30, 40], [40, 40], [60, 40], [70, 40], [66, 60]], np.float32)
    assert frontal_score(frontal, "dlib") == 1.0
    assert frontal_score(turned, "dlib") < 0.6
    # the eyes-nose-mouth layout of other engines
    common = np.array([[35, 40], [65, 40], [50, 55], [40, 70], [60, 70]])
    assert frontal_score(common, "sface") == 1.0


def test_vote_takes_the_majority_and_unknown_can_win() -> None:
    track = Track(1, observations=[_obs(i * 0.5, (0, 0, 90, 90), np.zeros(128)) for i in range(5)])
    for o, (pid, d) in zip(track.observations, [(7, 0.4), (7, 0.45), (9, 0.5), (None, None),
                                                 (7, 0.5)], strict=True):
        o.person_id, o.distance = pid, d
    vote(track, {7: "seven", 9: "nine"})
    assert track.person_id == 7 and track.distance == 0.45
    assert track.votes == {"seven": 3, "nine": 1, "unknown": 1}
    for o in track.observations[1:3]:
        o.person_id = None
    vote(track)
    assert track.person_id is None  # 3 unknown against 2


# --------------------------------------------------------------------------- the Hamilton clip


@pytest.mark.slow
def test_recognize_clip_tracks_times_and_names(vgallery: VideoGallery, clip: Path) -> None:
    from faceatlas.video.recognize import answer, recognize_video

    result = recognize_video(clip, vgallery.settings, fps=2)
    tracks = result.tracks
    named = {t.name for t in tracks if t.person_id is not None}
    seen = [(t.start, t.end, t.name, t.votes) for t in tracks]
    # HOG misses the Obamas in the dim audience shot; YuNet finds him and SFace names him
    expected = {LIN, OBAMA} if vgallery.settings.engine != "dlib" else {LIN}
    assert named == expected, seen
    # the close-up: one track, right times, right name, every frame voting for him
    close = max(tracks, key=lambda t: len(t.observations))
    assert close.name == LIN
    assert close.start == pytest.approx(LIN_CLOSE_UP[0], abs=0.6)
    assert close.end == pytest.approx(LIN_CLOSE_UP[1], abs=0.6)
    embedded = [o for o in close.observations if o.embedding is not None]
    assert close.votes.get(LIN, 0) >= 0.8 * len(embedded) >= 5
    assert 50 < (close.confidence or 0) <= 100
    # after the cut to the audience: Barack Obama (when found) and people not in the gallery
    late = [t for t in tracks if t.start > 7.2]
    assert late and all(t.name in (None, OBAMA) for t in late), seen
    assert all(t.start > 7.2 for t in tracks if t.name == OBAMA), seen
    # the timeline: Lin's segments, the unknown, in time order
    segments = [(s.name, s.start, s.end) for s in result.timeline]
    assert segments == sorted(segments, key=lambda s: s[1])
    assert any(n == LIN and s <= 3.5 and e >= 6.5 for n, s, e in segments)
    # the JSON answer: boxes per sampled frame inside the 640×360 frame
    data = answer(result)
    assert data["width"] == 640 and not data["partial"]
    frames = next(t for t in data["tracks"] if t["id"] == close.id)["frames"]
    assert len(frames) == len(close.observations)
    for f in frames:
        box = f["box"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 640 and box["w"] >= 60


@pytest.mark.slow
def test_recognize_cli_prints_a_timeline(vgallery: VideoGallery, clip: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = copy_home(vgallery.settings, tmp_path / "home")
    monkeypatch.setenv("FACEATLAS_HOME", str(settings.home))
    monkeypatch.setenv("FACEATLAS_DEFAULT_COLLECTION", VIDEO_COLLECTION)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["recognize", str(clip)], env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        assert "lin manuel miranda" in out.output and "unknown" in out.output
        assert "3.0–7.0" in out.output
        as_json = CliRunner().invoke(app, ["recognize", str(clip), "--json", "--fps", "1"])
        data = json.loads(as_json.stdout)  # progress lines go to stderr off a terminal
        assert data["fps"] == 1 and data["samples"] == 10
        assert any(s["person"] == LIN for s in data["timeline"])
    finally:
        get_settings.cache_clear()


# --------------------------------------------------------------------------- import-video


@pytest.mark.slow
def test_import_video_accepts_the_persons_track_with_provenance(
    settings: Settings, clip: Path
) -> None:
    from faceatlas.video.collect import import_video

    result = import_video(clip, "Lin-Manuel Miranda", settings, collection="hamilton", fps=2)
    assert result.curation.accepted >= 3
    by_track = {t.track: t for t in result.tracks}
    close = max(result.tracks, key=lambda t: t.accepted)
    assert close.start == pytest.approx(LIN_CLOSE_UP[0], abs=0.6)
    assert all(t.accepted == 0 for t in result.tracks if t is not close)
    # the other tracks' frames are candidates too, rejected with a reason
    others = [t for t in by_track.values() if t is not close]
    assert others and all(t.frames > 0 and t.reasons for t in others)
    with session_scope(settings) as session:
        rows = session.execute(
            select(Image, Face).join(Face, Face.image_id == Image.id)
            .join(Person, Person.id == Image.person_id).where(Face.state == "accepted")
        ).all()
        assert len(rows) == result.curation.accepted
        for img, face in rows:
            assert img.provider == "video" and img.video_source == clip.name
            assert img.video_track == close.track
            assert img.video_start == close.start and img.video_end == close.end
            assert close.start <= img.video_time <= close.end
            assert face.crop_path and (settings.home / face.crop_path).is_file()
            assert (settings.home / (img.path or "")).is_file()
    # again: nothing is added twice
    again = import_video(clip, "Lin-Manuel Miranda", settings, collection="hamilton", fps=2)
    assert again.curation.accepted == result.curation.accepted
    assert again.curation.candidates == result.curation.candidates


@pytest.mark.slow
def test_import_video_rejects_other_peoples_tracks(
    settings: Settings, faces_root: Path, tmp_path: Path
) -> None:
    """A person known from photos; a clip that cuts between someone else and them: only their
    own track is accepted, the other person's are ``not_this_person``."""
    from faceatlas.jobs.importer import import_folder
    from faceatlas.video.collect import import_video

    people = faces_root / "people"
    folder = tmp_path / "photos" / "Kit Harington"
    folder.mkdir(parents=True)
    for name in ("john1.jpeg", "johnsnow_test1.jpg"):
        (folder / name).write_bytes((people / "kit_harington" / name).read_bytes())
    list(import_folder(folder.parent, "tv", settings))
    # shots whose faces stay over the 70 px minimum at 640×360
    show = slideshow(tmp_path / "show.mp4", [(people / "barack_obama" / "obama1.jpg", 2.0),
                                             (people / "kit_harington" / "john2.jpeg", 2.0),
                                             (people / "barack_obama" / "obama2.jpg", 2.0)])
    result = import_video(show, "Kit Harington", settings, collection="tv", fps=2)
    spans = sorted((round(t.start, 1), round(t.end, 1), t.accepted, dict(t.reasons))
                   for t in result.tracks)
    assert [s[:2] for s in spans] == [(0.0, 1.5), (2.0, 3.5), (4.0, 5.5)], spans
    assert spans[1][2] == 1  # Kit's still: one best frame (copies of a still are dropped)
    assert spans[0][3] == {"not_this_person": 1} and spans[2][3] == {"not_this_person": 1}
    assert result.curation.accepted == 3  # two photos and the frame


def test_import_video_cli_refuses_a_broken_clip(tmp_path: Path, home: Path) -> None:
    fake = tmp_path / "notes.mov"
    fake.write_bytes(b"\x00" * 64)
    out = CliRunner().invoke(app, ["import-video", str(fake), "--person", "Somebody"])
    assert out.exit_code == 1 and "not a video file" in out.output


# --------------------------------------------------------------------------- the HTTP API


@pytest.mark.slow
def test_api_video_job(vgallery: VideoGallery, clip: Path, tmp_path: Path) -> None:
    from faceatlas.api import create_app

    settings = copy_home(vgallery.settings, tmp_path / "home", api_tokens=["tok-video-0123456789"],
                         default_collection=VIDEO_COLLECTION)
    auth = {"Authorization": "Bearer tok-video-0123456789"}
    with running(create_app(settings, engines=1)) as url, httpx.Client(
        base_url=url, timeout=60
    ) as c:
        assert c.post("/api/v1/recognize/video",
                      files={"video": ("c.mp4", clip.read_bytes(), "video/mp4")}
                      ).status_code == 401
        bad = c.post("/api/v1/recognize/video", headers=auth,
                     files={"video": ("notes.mp4", b"just text\n" * 10, "video/mp4")})
        assert bad.status_code == 415 and "notes.mp4" in bad.json()["detail"]
        started = c.post("/api/v1/recognize/video", headers=auth, data={"fps": "2"},
                         files={"video": ("hamilton.mp4", clip.read_bytes(), "video/mp4")})
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        seen = set()
        deadline = time.monotonic() + 180
        while True:
            job = c.get(f"/api/v1/recognize/video/{job_id}", headers=auth).json()
            seen.add(round(job["progress"], 2))
            if job["state"] != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert job["state"] == "done", job
        result = job["result"]
        assert result["clip"] == "hamilton.mp4" and result["samples"] == 19
        lin = [t for t in result["tracks"] if t["person"] == LIN]
        assert lin and max(len(t["frames"]) for t in lin) >= 6
        assert all("box" in f and "time" in f for t in result["tracks"] for f in t["frames"])
        # the clip is not kept; one thumbnail per track is
        folder = settings.home / "video" / str(job_id)
        assert not list(folder.glob("clip.*"))
        assert len(list((folder / "thumbs").glob("*.jpg"))) == len(result["tracks"])
        # the review UI shows the timeline with the thumbnails
        with httpx.Client(base_url=url, timeout=60) as ui:
            _login(ui, "tok-video-0123456789")
            page = ui.get(f"/ui/video/{job_id}")
            assert page.status_code == 200 and LIN in page.text
            thumb = page.text.split(f"/ui/video/{job_id}/tracks/")[1].split('"')[0]
            pic = ui.get(f"/ui/video/{job_id}/tracks/{thumb}")
            assert pic.status_code == 200 and pic.content[:2] == b"\xff\xd8"


def _login(client: httpx.Client, token: str) -> None:
    """Log in like the form does (nonce cookie + field)."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text
    done = client.post("/ui/login", data={"token": token, "nonce": nonce[1], "next": "/ui/"})
    assert done.status_code == 303, done.text


def test_faces_that_plainly_continue_a_track_are_embedded_about_once_a_second() -> None:
    tracker = Tracker(TrackerParams(embed_every=1.0))
    vec = np.zeros(128, np.float32)
    embedded = []
    for i in range(8):  # 8 fps, a face that barely moves
        t, box = i / 8, (100 + i, 50, 90, 90)
        need = tracker.needs_embedding(box, t)
        embedded.append(need)
        obs = _obs(t, box, vec if need else None)  # type: ignore[arg-type]
        tracker.add([obs])
    assert embedded == [True] + [False] * 7
    assert len(tracker.tracks) == 1 and len(tracker.tracks[0].observations) == 8
    # somebody new elsewhere in the frame is embedded at once
    assert tracker.needs_embedding((400, 50, 90, 90), 1.0)
    assert tracker.needs_embedding((108, 50, 90, 90), 1.0)  # a second since the last embedding
