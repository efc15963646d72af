"""Hostile clips (issue 22, findings 1 and 3): a timestamp jump costs one step, not a loop; per
clip limits on frames decoded, wall time and CPU; frames under the photo decode budget; the
video queue bounded (503 + Retry-After); zero-byte, random and garbage uploads are 4xx."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.people import get_or_create_collection
from tests.gallery_fixtures import running
from tests.video_fixtures import huge_mjpeg, synthetic, timestamp_jump_mkv

TOKEN = "video-hostile-token-3b1f0c9e2d"


def test_a_timestamp_jump_costs_one_step_not_a_loop(tmp_path: Path) -> None:
    from faceatlas.video.reader import VideoError, VideoReader, check_timestamps

    path = timestamp_jump_mkv(tmp_path / "jump.mkv", jump=1e8)  # before: ~3 s of counting
    reader = VideoReader(path, fps=2)
    assert [f.time for f in reader] == [0.0, 0.5]  # nothing past the declared 2 s
    assert reader.partial and reader.error is not None
    assert "jump to 100000001 s, past the declared 2.0 s" in reader.error.message
    assert reader.decoded <= 12
    # at upload such a clip is refused before a job starts (packet headers only)
    with pytest.raises(VideoError, match=r"past the declared 2\.0 s"):
        check_timestamps(path, reader.info)
    # a jump of 10¹¹ s (before: ~2 h of CPU) is the same one step
    far = VideoReader(timestamp_jump_mkv(tmp_path / "far.mkv", jump=1e11), fps=8)
    assert [f.time for f in far][-1] < 2.5 and far.partial


def test_per_clip_limits_on_frames_time_and_cpu(tmp_path: Path) -> None:
    from faceatlas.video.reader import VideoLimits, VideoReader

    path = synthetic(tmp_path / "s.mp4", 3.0, rate=10, gop=10)
    for limits, words in [(VideoLimits(max_frames=5), "over 5 decoded frames"),
                          (VideoLimits(max_cpu_seconds=1e-9), "CPU limit of a clip"),
                          (VideoLimits(max_wall_seconds=1e-9), "time limit of a clip")]:
        reader = VideoReader(path, fps=8, limits=limits)
        list(reader)
        assert reader.error is not None and reader.error.code == "video_limit", limits
        assert words in reader.error.message and reader.decoded <= 6
    # without settings, the clip's own declaration bounds the frames decoded
    reader = VideoReader(path, fps=8)
    assert len(list(reader)) == 24 and not reader.partial
    assert reader.frame_budget == 30 * 3 // 2 + 100


def test_video_frames_are_held_to_the_photo_budget(tmp_path: Path) -> None:
    from faceatlas.video.reader import VideoError, VideoLimits, probe

    big = huge_mjpeg(tmp_path / "big.avi", side=5000, frames=1)  # 25 MP: under 50 MP
    assert big.stat().st_size < 1_000_000
    with pytest.raises(VideoError, match="need 300 MB to decode, over the 256 MB") as caught:
        probe(big, limits=VideoLimits.from_settings(Settings()))
    assert caught.value.code == "video_too_large"
    with pytest.raises(VideoError, match="25 MP, over the 20 MP limit"):
        probe(big, limits=VideoLimits(max_pixels=20_000_000))


@pytest.fixture
def api_home(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home", api_tokens=[TOKEN], default_collection="clips",
                        video_queue=0, busy_retry_after=9)
    with session_scope(settings) as s:
        get_or_create_collection(s, "clips")
    return settings


def test_hostile_uploads_are_4xx_and_the_queue_is_bounded(api_home: Settings,
                                                          tmp_path: Path) -> None:
    from faceatlas.api import create_app
    from faceatlas.video import jobs

    auth = {"Authorization": f"Bearer {TOKEN}"}
    hostile = {
        "empty.mp4": b"",
        "random.mp4": os.urandom(200_000),
        "garbage.mp4": b"\x00\x00\x00\x18ftypisom" + os.urandom(50_000),
        "jump.mkv": timestamp_jump_mkv(tmp_path / "jump.mkv").read_bytes(),
        "big.avi": huge_mjpeg(tmp_path / "big.avi", side=5000, frames=1).read_bytes(),
    }
    ok = synthetic(tmp_path / "ok.mp4", 1.0, rate=10, gop=10).read_bytes()
    with running(create_app(api_home, engines=1)) as url, httpx.Client(
            base_url=url, timeout=60, headers=auth) as c:
        for name, data in hostile.items():
            r = c.post("/api/v1/recognize/video", files={"video": (name, data, "video/mp4")})
            assert r.status_code in (413, 415, 422), (name, r.status_code, r.text)
            assert name in r.json()["detail"] or "empty" in r.json()["detail"], r.text
        # one job may wait behind the running one: video_queue=0 and the worker held busy
        gate = threading.Event()
        jobs._executor.submit(gate.wait, 120)
        try:
            first = c.post("/api/v1/recognize/video", files={"video": ("a.mp4", ok)})
            assert first.status_code == 202, first.text
            busy = c.post("/api/v1/recognize/video", files={"video": ("b.mp4", ok)})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "9", busy.text
            assert busy.json()["code"] == "busy"
        finally:
            gate.set()
        job = first.json()["job_id"]
        deadline = time.monotonic() + 120
        while c.get(f"/api/v1/recognize/video/{job}").json()["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        again = c.post("/api/v1/recognize/video", files={"video": ("c.mp4", ok)})
        assert again.status_code == 202, again.text
