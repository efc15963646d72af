"""Hostile inputs for tests and ``benchmarks/bench_load.py`` (issue 22), built with PyAV and
Pillow, a few kB to a few MB each: a clip whose timestamps jump past its declared length, a
huge-frame MJPEG clip, a 7000×7000 CMYK progressive JPEG."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
from PIL import Image


def timestamp_jump_mkv(dest: Path, jump: float = 1e11) -> Path:
    """An MKV that declares 2 s, whose frames after the first second jump ``jump`` s ahead."""
    with av.open(str(dest), "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        packets = []
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10, np.uint8),
                                               format="rgb24")
            frame.pts = i
            packets += list(stream.encode(frame))
        packets += list(stream.encode())
        for i, packet in enumerate(packets):
            if i >= 10:
                shift = int(jump / packet.time_base)
                packet.pts += shift
                packet.dts += shift
            out.mux(packet)
    data = bytearray(dest.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info › Duration, an 8-byte float (ms)
    assert at > 0, "no Duration element"
    data[at + 3:at + 11] = struct.pack(">d", 2000.0)
    dest.write_bytes(bytes(data))
    return dest


def huge_mjpeg(dest: Path, side: int = 10_000, frames: int = 2) -> Path:
    """An MJPEG clip of ``side``² px frames: flat grey, so a few hundred kB."""
    with av.open(str(dest), "w", format="avi") as out:
        stream = out.add_stream("mjpeg", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuvj420p"
        grey = av.VideoFrame.from_ndarray(np.full((side, side, 3), 128, np.uint8),
                                          format="rgb24").reformat(format="yuvj420p")
        for i in range(frames):
            grey.pts = i
            for packet in stream.encode(grey):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def cmyk_progressive_jpeg(side: int = 7000) -> bytes:
    """A ``side``² CMYK progressive JPEG of about 1 MB: libjpeg keeps its coefficients at
    full size (2 bytes each) whatever the draft scale."""
    img = Image.new("CMYK", (side, side), (0, 0, 0, 0))
    img.paste((200, 40, 0, 10), (side // 3, side // 3, side // 2, side // 2))
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True, quality=75)
    return buf.getvalue()
