"""Video test material: the shared clip, copies of it (fast-start, truncated, concatenated),
clips encoded here with PyAV (synthetic or a slideshow of the shared photos), and a tiny
promoted gallery of the people who may appear in the clip."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image as PILImage

from faceatlas.devtools.hostile import huge_mjpeg, timestamp_jump_mkv  # noqa: F401
from faceatlas.devtools.testdata import testdata_dir
from faceatlas.gallery.promote import promote
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings

VIDEO_COLLECTION = "video"
#: who may appear in the Hamilton clip (Lin-Manuel Miranda on stage, Alex Lacamoire at the
#: piano, the Obamas in the audience) and two people who surely do not
CLIP_PEOPLE = ("lin_manuel_miranda", "alex_lacamoire", "barack_obama", "joe_biden",
               "kit_harington", "rose_leslie")


def clip_path() -> Path:
    path = testdata_dir() / "video" / "short_hamilton_clip.mp4"
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test clip missing: {path}")
        pytest.skip(f"test clip missing at {path}: set FACEATLAS_TESTDATA")
    return path


def remux(src: Path, dest: Path, *, copies: int = 1, faststart: bool = False) -> Path:
    """The video stream of ``src`` copied without re-encoding, ``copies`` times end to end
    (a long clip from a short one), optionally with the index (moov) first."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(dest), "w", format="mp4", options=options) as out:
            ostream = out.add_stream_from_template(stream)
            span = stream.duration
            for k in range(copies):
                inp.seek(0)
                for packet in inp.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.pts += k * span
                    packet.dts += k * span
                    packet.stream = ostream
                    out.mux(packet)
    return dest


def truncated(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def encode(dest: Path, frames: list[np.ndarray], *, rate: int = 10, codec: str = "libx264",
           gop: int = 20, fmt: str | None = None) -> Path:
    """Encode RGB frames (all the same even size) into a clip."""
    h, w = frames[0].shape[:2]
    with av.open(str(dest), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def synthetic(dest: Path, seconds: float, *, rate: int = 30, gop: int = 30,
              codec: str = "libx264", fmt: str | None = None) -> Path:
    """A moving white square on a changing grey, 160×96."""
    frames = []
    for i in range(round(seconds * rate)):
        img = np.full((96, 160, 3), (i * 3) % 255, np.uint8)
        img[10:40, i % 120: i % 120 + 30] = 255
        frames.append(img)
    return encode(dest, frames, rate=rate, codec=codec, gop=gop, fmt=fmt)


def slideshow(dest: Path, shots: list[tuple[Path, float]], *, rate: int = 10) -> Path:
    """Each photo shown for its seconds, letterboxed into 640×360."""
    frames = []
    for photo, seconds in shots:
        pic = PILImage.open(photo).convert("RGB")
        pic.thumbnail((640, 360))
        canvas = PILImage.new("RGB", (640, 360))
        canvas.paste(pic, ((640 - pic.width) // 2, (360 - pic.height) // 2))
        rgb = np.asarray(canvas)
        frames += [rgb] * round(seconds * rate)
    return encode(dest, frames, rate=rate)


@dataclass(frozen=True)
class VideoGallery:
    settings: Settings


def build_gallery(root: Path, faces_root: Path) -> VideoGallery:
    incoming = root / "incoming"
    for name in CLIP_PEOPLE:
        shutil.copytree(faces_root / "people" / name, incoming / name)
    settings = Settings(home=root / "home", workers=1, min_faces_to_promote=1,
                        default_collection=VIDEO_COLLECTION)  # type: ignore[call-arg]
    list(import_folder(incoming, VIDEO_COLLECTION, settings))
    promote(settings, collection=VIDEO_COLLECTION)
    return VideoGallery(settings)

