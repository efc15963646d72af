"""Reading video with PyAV (FFmpeg's demuxers and decoders, shipped in the ``av`` wheel).

``VideoReader`` yields frames sampled at ``fps`` (1–8 a second). Sparse sampling does not
decode the whole file: when the next wanted time is further ahead than both ``seek_gap`` and
the keyframe spacing seen so far, the reader seeks to the keyframe before it and decodes
forward from there; otherwise it decodes straight on (a seek re-decodes from the keyframe).
A file that breaks part-way (truncated, corrupt packets) keeps the frames read before the
fault: the reader stops, sets ``error`` and ``partial``, and the caller reports what it has.

Hostile files (issue 22): the next sample time is computed from the frame's time, never
counted up to it, so a timestamp jump costs one seek; a frame past the declared duration ends
the clip (the duration is what passed the length limit); ``VideoLimits`` bound the frames
decoded (from the declared length and frame rate), the wall time and the CPU time of the
clip; frame size and decoder memory are checked against the photo limits before decoding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceatlas.domain.errors import ImageError
from faceatlas.settings import Settings

MIN_FPS, MAX_FPS = 1.0, 8.0
#: never seek for less than this (seconds); the reader also waits to have seen the keyframe
#: spacing (GOP) and seeks only past it. Measured (benchmarks/bench_video.py): with 2 s GOPs
#: at 1–2 fps seeking every sample decoded *more* frames than decoding on (5,320–7,656 vs
#: 5,500 for 184 s), so there it decodes on; with 1/6 s GOPs at 1 fps it decodes 365 of 1,800.
SEEK_GAP = 0.25


class VideoError(ImageError):
    """A video that cannot be used. Codes: ``not_a_video`` (not a video container, or no video
    stream), ``video_decode_error`` (corrupt, truncated without index), ``video_too_large``,
    ``video_too_long``. A subclass of ImageError so the API answers 415/422 like for photos."""

    code = "video_decode_error"


#: decoder threads per clip: frames in flight, hence memory, grow with them
DECODE_THREADS = 2
#: bytes a pixel of the frame size may cost while decoding: the decoder's frame (up to 3 B/px
#: for 4:4:4), one more per decoder thread, and the RGB copy handed on
FRAME_BYTES_PER_PIXEL = 3 * (DECODE_THREADS + 2)


@dataclass(frozen=True)
class VideoLimits:
    """What one clip may cost. ``None``: no limit of that kind."""

    max_bytes: int | None = None
    max_seconds: float | None = None  # declared duration
    max_pixels: int | None = None  # of one frame, as for photos
    max_frame_bytes: int | None = None  # decoder memory, as the photo decode budget
    max_frames: int | None = None  # frames decoded, whatever the clip declares
    max_wall_seconds: float | None = None
    max_cpu_seconds: float | None = None  # of the thread reading (and recognising) the clip

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoLimits:
        return cls(settings.video_max_bytes, settings.video_max_seconds, settings.max_pixels,
                   settings.decode_max_bytes, settings.video_max_frames or None,
                   settings.video_max_wall_seconds or None,
                   settings.video_max_cpu_seconds or None)


@dataclass(frozen=True)
class VideoInfo:
    container: str
    codec: str
    width: int
    height: int
    duration: float  # seconds
    frame_rate: float
    frames: int  # as the container says; 0 if unknown


@dataclass
class Frame:
    index: int  # sample number
    time: float  # seconds from the start of the video
    rgb: np.ndarray


def _open(path: Path):  # type: ignore[no-untyped-def]
    import av

    try:
        container = av.open(str(path), mode="r")
    except av.error.InvalidDataError:
        if _container_magic(path):
            # an MP4 cut short loses its index (the moov box is often written last)
            raise VideoError(f"{path.name} is a video container but cannot be read: truncated "
                             "or corrupt (no usable index)", code="video_decode_error") from None
        raise VideoError(f"{path.name} is not a video file (format not recognised)",
                         code="not_a_video") from None
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path.name} cannot be opened as a video: {exc.strerror or exc}",
                         code="video_decode_error") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name} has no video stream", code="not_a_video")
    return container


def probe(path: Path, *, max_bytes: int | None = None,
          max_seconds: float | None = None, limits: VideoLimits | None = None) -> VideoInfo:
    """Container facts, after the size, duration and frame-size limits; raises VideoError."""
    path = Path(path)
    limits = limits or VideoLimits()
    max_bytes = max_bytes if max_bytes is not None else limits.max_bytes
    max_seconds = max_seconds if max_seconds is not None else limits.max_seconds
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{path.name} is empty (0 bytes)", code="not_a_video")
    if max_bytes is not None and size > max_bytes:
        raise VideoError(f"{path.name} is {size / 1e6:.0f} MB, over the "
                         f"{max_bytes / 1e6:.0f} MB video limit", code="video_too_large")
    container = _open(path)
    try:
        info = _info(container)
    finally:
        container.close()
    if max_seconds is not None and info.duration > max_seconds:
        raise VideoError(f"{path.name} lasts {info.duration:.0f} s, over the "
                         f"{max_seconds:.0f} s video limit", code="video_too_long")
    check_frame_size(path.name, info.width, info.height, limits)
    return info


def check_frame_size(name: str, width: int, height: int, limits: VideoLimits) -> None:
    """Frames under the photo limits: pixels (``max_pixels``) and decoder memory
    (``FRAME_BYTES_PER_PIXEL`` against the decode budget). VideoError ``video_too_large``."""
    pixels = width * height
    if limits.max_pixels is not None and pixels > limits.max_pixels:
        raise VideoError(f"{name} has frames of {width}×{height} = {pixels / 1e6:.0f} MP, over "
                         f"the {limits.max_pixels / 1e6:.0f} MP limit", code="video_too_large")
    need = pixels * FRAME_BYTES_PER_PIXEL
    if limits.max_frame_bytes is not None and need > limits.max_frame_bytes:
        raise VideoError(f"{name} has frames of {width}×{height} that need {need / 1e6:.0f} MB "
                         f"to decode, over the {limits.max_frame_bytes / 1e6:.0f} MB decode "
                         "budget", code="video_too_large")


def _info(container) -> VideoInfo:  # type: ignore[no-untyped-def]
    s = container.streams.video[0]
    if s.duration is not None and s.time_base is not None:
        duration = float(s.duration * s.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    rate = float(s.average_rate or s.guessed_rate or 0.0)
    return VideoInfo(
        container=container.format.name, codec=s.codec_context.name,
        width=s.codec_context.width, height=s.codec_context.height,
        duration=duration, frame_rate=rate, frames=int(s.frames or 0),
    )


def _end_time(info: VideoInfo, fps: float, limits: VideoLimits) -> float:
    """Frames after this time are not part of the clip that passed the length limit."""
    if info.duration > 0:
        return info.duration + max(1.0, 2.0 / fps)
    return limits.max_seconds if limits.max_seconds is not None else math.inf


def _frame_budget(info: VideoInfo, limits: VideoLimits) -> int:
    """Frames the decoder may produce: what the clip declares (frames, or duration × rate)
    with room for rounding and seeks, at most ``max_frames``."""
    declared = info.frames or math.ceil(info.duration * info.frame_rate)
    own = int(declared * 1.5) + 100 if declared > 0 else None
    caps = [c for c in (own, limits.max_frames) if c is not None]
    return min(caps) if caps else 2**62


def check_timestamps(path: Path, info: VideoInfo, *, limits: VideoLimits | None = None) -> None:
    """Read the packet headers (no frame is decoded: about as fast as reading the file) and
    raise VideoError when their times leave the declared duration or there are more frames
    than the clip declares: such a clip is refused before a job starts."""
    import av

    path = Path(path)
    limits = limits or VideoLimits()
    end, budget = _end_time(info, MAX_FPS, limits), _frame_budget(info, limits)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        tb = float(stream.time_base or 0)
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        packets = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if packet.pts is not None and packet.pts * tb - start > end:
                raise VideoError(f"{path.name}: frame timestamps jump to "
                                 f"{packet.pts * tb - start:.0f} s, past the declared "
                                 f"{info.duration:.1f} s", code="video_decode_error")
            if packets > budget:
                raise VideoError(f"{path.name} holds over {budget} frames, more than its "
                                 f"declared {info.duration:.1f} s at {info.frame_rate:g} fps",
                                 code="video_decode_error")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path.name} is corrupt ({exc.strerror or exc})",
                         code="video_decode_error") from None
    finally:
        container.close()


class VideoReader:
    """Sampled frames of one video. Iterate once; afterwards ``decoded`` (frames the decoder
    produced), ``seeks``, ``error`` and ``partial`` tell how it went."""

    def __init__(self, path: Path, fps: float = 2.0, *, seek_gap: float = SEEK_GAP,
                 limits: VideoLimits | None = None) -> None:
        if not MIN_FPS <= fps <= MAX_FPS:
            raise VideoError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, not {fps:g}",
                             code="bad_request")
        self.path = Path(path)
        self.fps = fps
        self.seek_gap = seek_gap
        self.limits = limits or VideoLimits()
        self.info = probe(self.path, limits=self.limits)
        self.decoded = 0
        self.seeks = 0
        self.sampled = 0
        self.last_time = 0.0
        self.error: VideoError | None = None

    @property
    def partial(self) -> bool:
        return self.error is not None

    @property
    def expected_samples(self) -> int:
        return max(1, math.ceil(self.info.duration * self.fps - 1e-6))

    @property
    def end_time(self) -> float:
        return _end_time(self.info, self.fps, self.limits)

    @property
    def frame_budget(self) -> int:
        return _frame_budget(self.info, self.limits)

    def _stop(self, why: str, code: str = "video_limit") -> None:
        self.error = VideoError(f"{self.path.name}: {why}; frames up to "
                                f"{self.last_time:.1f} s are kept", code=code)

    def __iter__(self) -> Iterator[Frame]:
        import av

        container = _open(self.path)
        wall0, cpu0 = time.monotonic(), time.thread_time()
        budget, end = self.frame_budget, self.end_time
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = DECODE_THREADS
            tb = float(stream.time_base)
            start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            step = 1.0 / self.fps
            half_frame = 0.5 / max(self.info.frame_rate, 1.0)
            target = 0.0
            frames: Iterator[av.VideoFrame] | None = None
            position = -math.inf  # time of the last decoded frame
            sought = -1.0  # the target of the last seek: one seek per target at most
            last_key, gop = -math.inf, math.inf  # keyframe spacing as seen so far
            while True:
                # a seek restarts at the keyframe before the target: worth it only when that
                # skips more frames than it decodes again, i.e. the gap exceeds a GOP
                if frames is None or (target - position > max(self.seek_gap, gop)
                                      and sought != target):
                    if frames is not None:
                        sought = target
                        # backward=True lands on the keyframe at or before the target
                        container.seek(int((start + target) / tb), stream=stream, backward=True)
                        self.seeks += 1
                        last_key = -math.inf  # keyframes either side of a jump are no GOP
                    frames = container.decode(stream)
                frame = self._next(frames)
                if frame is None:
                    break
                self.decoded += 1
                pts = frame.pts if frame.pts is not None else 0
                position = pts * tb - start
                if self._over_limits(frame, position, end, budget, wall0, cpu0):
                    break
                if frame.key_frame:
                    if position > last_key:
                        gop = position - last_key if gop == math.inf else max(
                            gop, position - last_key)
                    last_key = position
                if position + half_frame < target:
                    continue
                self.last_time = position
                yield Frame(self.sampled, round(max(position, 0.0), 3),
                            frame.to_ndarray(format="rgb24"))
                self.sampled += 1
                # the first sample time after this frame, computed: a jump of 10¹¹ s is one
                # step here (and one seek next), never a loop up to it
                target = max(target, (math.floor((position + half_frame) / step) + 1) * step)
            self._check_complete()
        finally:
            container.close()

    def _over_limits(self, frame: object, position: float, end: float, budget: int,
                     wall0: float, cpu0: float) -> bool:
        """True (with ``error`` set) when this frame must end the clip."""
        if position > end:
            self._stop(f"frame timestamps jump to {position:.0f} s, past the declared "
                       f"{self.info.duration:.1f} s", code="video_decode_error")
        elif self.decoded > budget:
            self._stop(f"over {budget} decoded frames (declared: {self.info.duration:.1f} s "
                       f"at {self.info.frame_rate:g} fps)")
        elif (self.limits.max_wall_seconds is not None
              and time.monotonic() - wall0 > self.limits.max_wall_seconds):
            self._stop(f"over the {self.limits.max_wall_seconds:g} s time limit of a clip")
        elif (self.limits.max_cpu_seconds is not None
              and time.thread_time() - cpu0 > self.limits.max_cpu_seconds):
            self._stop(f"over the {self.limits.max_cpu_seconds:g} s CPU limit of a clip")
        else:
            w, h = getattr(frame, "width", 0), getattr(frame, "height", 0)
            if (w, h) != (self.info.width, self.info.height):
                try:  # a frame larger than the header said is held to the same limits
                    check_frame_size(self.path.name, w, h, self.limits)
                except VideoError as exc:
                    self.error = exc
        return self.error is not None

    def _next(self, frames: Iterator[object]):  # type: ignore[no-untyped-def]
        import av

        try:
            return next(frames)  # type: ignore[call-overload]
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            self.error = VideoError(
                f"{self.path.name} is corrupt after {self.last_time:.1f} s "
                f"({exc.strerror or exc}); frames up to there are kept",
                code="video_decode_error",
            )
            return None

    def _check_complete(self) -> None:
        """A file cut short may end cleanly for the demuxer: compare with the duration."""
        if self.error is not None or self.info.duration <= 0:
            return
        missing = self.info.duration - self.last_time
        if missing > max(1.0, 2.0 / self.fps):
            self.error = VideoError(
                f"{self.path.name} ends at {self.last_time:.1f} s of {self.info.duration:.1f} s "
                "(truncated?); frames up to there are kept", code="video_decode_error",
            )


VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg",
                              ".ts", ".3gp"})


def _container_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return (head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def looks_like_video(path: Path) -> bool:
    """By name (a video extension) or by content (ISO-BMFF ``ftyp``, Matroska/WebM EBML,
    AVI): the CLI sends such files to video recognition, everything else to photos."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    if head[4:8] == b"ftyp":
        # HEIF/AVIF photos are ISO-BMFF too: their brands say so
        return head[8:12] not in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")
    return head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
