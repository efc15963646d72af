"""Per-image face analysis (decode → detect → quality → embed), run in a pool of processes.

Workers load the models once each (lazily, on their first image). Results are plain,
picklable dataclasses with timings, so the parent never touches the models.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceatlas.domain.errors import ImageError
from faceatlas.domain.faces import DetectedFace
from faceatlas.domain.states import Reason
from faceatlas.faces.engines import EngineConfig, get_engine
from faceatlas.faces.image import Decoded, decode
from faceatlas.faces.quality import box_crop, encode_jpeg, phash, sharpness
from faceatlas.settings import Settings, default

#: images up to this size are searched once more, upsampled, when no face is found
RETRY_MAX_SIDE = 800
#: in a JPEG decoded at a reduced scale every face of a usable size keeps at least this many
#: pixels (its short side), else the photo is decoded again at full size for the faces'
#: quality, embeddings and crops: SFace aligns faces to 112 px, which must not be upsampled
#: from fewer pixels than the full image has
REDUCED_FACE_MIN = 112


@dataclass(frozen=True)
class AnalyseParams:
    """What a face worker needs to analyse a photo; the bare defaults are the settings'."""

    detector: str = default("detector")
    max_side: int = default("detect_max_side")
    upsample: int = default("upsample")
    max_pixels: int = default("max_pixels")
    min_face_px: int = default("min_face_px")
    blur_threshold: float = default("blur_threshold")
    crop_margin: float = default("crop_margin")
    crop_quality: int = default("crop_quality")
    engine: str = default("engine")
    sface_max_side: int = default("sface_detect_max_side")
    sface_score: float = default("sface_score_threshold")
    models: str | None = None
    sface_runtime: str = default("sface_runtime")
    #: large JPEGs decoded at a reduced scale (``decode_floor``); False: always full size
    reduced_decode: bool = True

    @classmethod
    def from_settings(cls, s: Settings) -> AnalyseParams:
        cfg = EngineConfig.from_settings(s)
        return cls(s.detector, s.detect_max_side, s.upsample, s.max_pixels, s.min_face_px,
                   s.blur_threshold, s.crop_margin, s.crop_quality, cfg.name,
                   cfg.sface_max_side, cfg.sface_score, cfg.models, cfg.sface_runtime)

    @property
    def decode_floor(self) -> int | None:
        """Large JPEGs are decoded at a reduced libjpeg scale no smaller than the detector's
        input (``sface`` only: dlib finds its 68-point shapes on the pixels it embeds)."""
        return self.sface_max_side if self.engine == "sface" and self.reduced_decode else None

    def engine_config(self) -> EngineConfig:
        return EngineConfig(self.engine, self.detector, self.max_side, self.upsample,
                            self.sface_max_side, self.sface_score, self.models,
                            self.sface_runtime)


@dataclass
class FaceAnalysis:
    idx: int
    box: tuple[int, int, int, int]
    score: float
    landmarks: list[list[float]]
    blur: float
    reason: str | None  # None = quality face; else face_too_small / blurry
    embedding: np.ndarray | None = field(default=None, repr=False)
    phash: str | None = None
    phash_mirror: str | None = None
    crop_jpeg: bytes | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return min(self.box[2], self.box[3])


@dataclass
class ImageAnalysis:
    key: int
    width: int = 0
    height: int = 0
    error: str | None = None  # decode_error / not_an_image
    detail: str | None = None
    faces: list[FaceAnalysis] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, detect, embed
    peak_rss_kb: int = 0  # of the process that analysed it
    engine: str = ""  # name and model hash of the engine whose embeddings these are
    model_hash: str = ""


def analyse_bytes(key: int, data: bytes, p: AnalyseParams) -> ImageAnalysis:
    """Everything the curation needs to know about one image; boxes and landmarks in the full
    image's pixels whatever scale it was decoded at."""
    out = ImageAnalysis(key=key)
    t0 = time.perf_counter()
    try:
        img = decode(data, max_pixels=p.max_pixels, reduce_to=p.decode_floor)
    except ImageError as exc:
        out.error, out.detail = exc.code, exc.message
        out.timings["decode"] = time.perf_counter() - t0
        return out
    rgb = img.rgb
    out.width, out.height = img.full_size
    t1 = time.perf_counter()
    engine = get_engine(p.engine_config())
    out.engine, out.model_hash = engine.name, engine.model_hash
    detected = engine.detect(rgb)
    if not detected and max(img.width, img.height) <= RETRY_MAX_SIDE:
        # a small web image whose face is under the detector's minimum: one more upsampling
        # pass finds it (LFW: 2 of the 6 photos missed); cheap at this size
        detected = get_engine(p.engine_config().small_image_retry()).detect(rgb)
    t2 = time.perf_counter()
    full = [_to_full(f, img) for f in detected]
    redecode = 0.0
    if img.scale != 1.0 and any(
        d.size < REDUCED_FACE_MIN and f.size >= p.min_face_px
        and sharpness(rgb, d.box) >= p.blur_threshold
        for f, d in zip(full, detected, strict=True)
    ):
        # a face to embed that is too small in the reduced pixels: quality, embeddings and
        # crops from the full ones (the detection stands: it ran at its own size either way)
        t = time.perf_counter()
        rgb, detected = decode(data, max_pixels=p.max_pixels).rgb, full
        redecode = time.perf_counter() - t
    good = []
    for i, (face, seen) in enumerate(zip(full, detected, strict=True)):
        blur = sharpness(rgb, seen.box) if face.size >= p.min_face_px else 0.0
        reason = None
        if face.size < p.min_face_px:
            reason = Reason.FACE_TOO_SMALL
        elif blur < p.blur_threshold:
            reason = Reason.BLURRY
        fa = FaceAnalysis(i, face.box, face.score, face.landmarks.round(1).tolist(), blur, reason)
        if reason is None:
            fa.phash, fa.phash_mirror = phash(engine.chip(rgb, seen, 64))
            fa.crop_jpeg = encode_jpeg(box_crop(rgb, seen.box, p.crop_margin), p.crop_quality)
            good.append((fa, seen))
        out.faces.append(fa)
    t3 = time.perf_counter()
    vectors = engine.embed(rgb, [seen for _, seen in good])
    for (fa, _), vec in zip(good, vectors, strict=True):
        fa.embedding = vec
    t4 = time.perf_counter()
    out.timings = {"decode": t1 - t0 + redecode, "detect": t2 - t1, "embed": t4 - t3,
                   "quality": t3 - t2 - redecode}
    return out


def _to_full(face: DetectedFace, img: Decoded) -> DetectedFace:
    """``face`` found on ``img``'s (maybe reduced) pixels, in the full image's."""
    if img.scale == 1.0:
        return face
    return DetectedFace(img.full_box(face.box), face.score,
                        face.landmarks * np.array(img.full_factors, dtype=np.float32))


def analyse_file(key: int, path: str, p: AnalyseParams) -> ImageAnalysis:
    out = analyse_bytes(key, Path(path).read_bytes(), p)
    out.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def _warm(p: AnalyseParams) -> None:
    get_engine(p.engine_config()).warm()


def _worker_init(p: AnalyseParams, owner: int) -> None:
    """Load the models, and leave when the owning process dies (even by SIGKILL).

    Workers are children of the forkserver, not of the owner, so nothing else would tell
    them; without this a killed CLI leaves model-laden processes behind.
    """

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="owner-watch").start()
    one_opencv_thread()
    _warm(p)


def one_opencv_thread() -> None:
    """One face worker, one core: parallelism comes from the worker processes (or the pool of
    engines), OpenCV's own threads in each of them would only oversubscribe the cores (the
    networks run on ONNX Runtime with one thread already; OpenCV is left with resizing,
    warping and encoding, which its thread pool spreads over every core). Process-wide."""
    import cv2

    cv2.setNumThreads(1)


class FacePool:
    """A process pool sized to the cores, or in-process work for ``workers=1``."""

    def __init__(self, params: AnalyseParams, workers: int) -> None:
        self.params = params
        self.workers = max(1, workers)
        self._executor: Executor | None = None

    def __enter__(self) -> FacePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.workers == 1:
                # one worker: a thread keeps the models in this process, no start-up cost;
                # one core, like each process of a pool (measured with YuNet still on
                # OpenCV: its threads cost 8% more CPU per photo, for wall time taken from
                # the core the parent's curation runs on)
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="faces",
                                                    initializer=one_opencv_thread)
            else:
                # forkserver: safe even when the parent runs threads (HTTP clients, servers)
                ctx = multiprocessing.get_context("forkserver")
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=ctx, initializer=_worker_init,
                    initargs=(self.params, os.getpid()),
                )
        return self._executor

    def start(self, wait: bool = False) -> FacePool:
        """Start the workers now: they load the models while the caller does other work."""
        pool = self._pool()
        warming = [pool.submit(_warm, self.params) for _ in range(self.workers)]
        if wait:
            for fut in warming:
                fut.result()
        return self

    def submit(self, items: Iterable[tuple[int, str]]) -> list[Future[ImageAnalysis]]:
        """Queue (key, path) pairs for analysis; results arrive as futures."""
        pool = self._pool()
        return [pool.submit(analyse_file, key, path, self.params) for key, path in items]

    def analyse(self, items: Iterable[tuple[int, str]]) -> Iterator[ImageAnalysis]:
        """Analyse (key, path) pairs; yields results as they finish (any order)."""
        for fut in as_completed(self.submit(items)):
            yield fut.result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


def face_pool(settings: Settings, *, background: bool = False) -> FacePool:
    """The one sizing rule for face pools.

    A foreground batch (``collect``, ``import``, ``reembed``) owns the machine: one process per
    ``worker_count``. Background work (the server's thread, a Celery worker process, an API
    enrolment, the few photos beside a video import that loaded the models already) shares the
    machine with others, so it analyses in one thread of its own process: one copy of the
    models, no process pool multiplied by server or worker processes.
    """
    return FacePool(AnalyseParams.from_settings(settings), 1 if background else
                    settings.worker_count)
