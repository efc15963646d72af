"""One pass over a video: sampled frames → faces (detect, quality, embed) → tracks.

The engine is used only through the ``FaceEngine`` protocol (detect / embed / chip), so any
engine behind ``faces.engines.get_engine`` works. Distances are Euclidean between stored
embeddings; the thresholds come from the settings (curation's link/accept distances).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceatlas.domain.faces import DetectedFace
from faceatlas.domain.states import Reason
from faceatlas.faces.engines import EngineConfig, FaceEngine, get_engine, search_config
from faceatlas.faces.quality import box_crop, encode_jpeg, phash, sharpness
from faceatlas.settings import Settings
from faceatlas.video.reader import VideoError, VideoInfo, VideoLimits, VideoReader
from faceatlas.video.tracks import Observation, Track, Tracker, TrackerParams, frontal_score

#: the picture kept of a best frame: the face box grown by this much of its size each side,
#: enough context for a person to see the scene and for curation to crop with its margin
REGION_MARGIN = 1.0

#: progress callback: (samples done, samples expected)
Progress = Callable[[int, int], None]


@dataclass
class VideoAnalysis:
    path: Path
    info: VideoInfo
    fps: float
    tracks: list[Track] = field(default_factory=list)
    samples: int = 0  # frames analysed
    decoded: int = 0  # frames the decoder produced (≥ samples)
    seeks: int = 0
    faces: int = 0
    error: VideoError | None = None  # set when the file broke part-way: the result is partial
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, detect, embed

    @property
    def partial(self) -> bool:
        return self.error is not None


def video_upsample(settings: Settings) -> int:
    if settings.video_upsample is not None:
        return settings.video_upsample
    if settings.recognize_upsample is not None:
        return settings.recognize_upsample
    return settings.upsample


def video_engine(settings: Settings, *, for_search: bool = False) -> FaceEngine:
    """The process-wide engine for video work (one copy of the models per configuration).
    ``for_search``: the engine whose vectors the index holds (the ensemble's holds SFace's),
    so recognition tracks with SFace alone (as photo recognition does)."""
    cfg = EngineConfig.from_settings(settings, video_upsample(settings))
    return get_engine(search_config(cfg) if for_search else cfg)


def tracker_params(settings: Settings) -> TrackerParams:
    t = settings.thresholds()  # the configured engine's own units
    return TrackerParams(max_gap=settings.video_track_gap, link_distance=t.link,
                         follow_distance=t.accept,
                         best_frames=settings.video_best_frames,
                         # near-identical in the engine's own units: 0.15 for dlib's 0.5
                         min_spread=0.3 * t.link,
                         embed_every=settings.video_embed_every)


def analyse_video(
    path: Path,
    settings: Settings,
    *,
    fps: float | None = None,
    engine: FaceEngine | None = None,
    progress: Progress | None = None,
) -> VideoAnalysis:
    """Sample, detect, embed and track. Raises VideoError when nothing could be read; a file
    that breaks part-way returns what was read with ``error`` set."""
    fps = fps or settings.video_fps
    reader = VideoReader(Path(path), fps, limits=VideoLimits.from_settings(settings))
    engine = engine or video_engine(settings)
    engine_name = getattr(engine, "name", "")
    tracker = Tracker(tracker_params(settings))
    out = VideoAnalysis(Path(path), reader.info, fps)
    expected = reader.expected_samples
    t_decode = t_detect = t_embed = 0.0
    mark = time.perf_counter()
    if progress:
        progress(0, expected)
    for frame in reader:
        now = time.perf_counter()
        t_decode += now - mark
        rgb = frame.rgb
        detected = engine.detect(rgb)
        t1 = time.perf_counter()
        need = [tracker.needs_embedding(f.box, frame.time) for f in detected]
        computed = iter(engine.embed(rgb, [f for f, n in zip(detected, need, strict=True) if n]))
        vectors = [next(computed) if n else None for n in need]
        t2 = time.perf_counter()
        t_detect += t1 - now
        t_embed += t2 - t1
        observations = []
        faces_of: dict[int, DetectedFace] = {}
        for face, vec in zip(detected, vectors, strict=True):
            size = face.size
            blur = sharpness(rgb, face.box) if size >= 8 else 0.0
            reason = None
            if size < settings.min_face_px:
                reason = Reason.FACE_TOO_SMALL
            elif blur < settings.blur_threshold:
                reason = Reason.BLURRY
            observations.append(Observation(
                sample=frame.index, time=frame.time, box=face.box, score=face.score,
                landmarks=face.landmarks, blur=round(blur, 2),
                frontal=frontal_score(face.landmarks, engine_name), embedding=vec,
                reason=reason,
            ))
            faces_of[id(observations[-1])] = face
        for track, obs in tracker.add(observations):
            face = faces_of[id(obs)]
            if tracker.keeps(track, obs, lambda f=face, img=rgb: engine.embed(img, [f])[0]):
                _keep_picture(rgb, obs, face, engine, settings)
        out.faces += len(observations)
        out.samples += 1
        if progress:
            progress(out.samples, max(expected, out.samples))
        mark = time.perf_counter()
    out.tracks = tracker.tracks
    out.decoded, out.seeks, out.error = reader.decoded, reader.seeks, reader.error
    if out.samples == 0:
        raise reader.error or VideoError(f"{Path(path).name} has no decodable frame",
                                         code="video_decode_error")
    out.timings = {"decode": t_decode, "detect": t_detect, "embed": t_embed}
    return out


def _keep_picture(rgb: np.ndarray, obs: Observation, face: DetectedFace, engine: FaceEngine,
                  settings: Settings) -> None:
    """Keep what curation needs of a best frame: the region around the face (stored as the
    candidate image), the crop with the curation margin and the perceptual hash of the chip."""
    x, y, w, h = obs.box
    dx, dy = round(w * REGION_MARGIN), round(h * REGION_MARGIN)
    height, width = rgb.shape[:2]
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    obs.region = (x0, y0, x1 - x0, y1 - y0)
    obs.frame_jpeg = encode_jpeg(box_crop(rgb, obs.region), 95)
    if obs.reason is None:
        obs.crop_jpeg = encode_jpeg(box_crop(rgb, obs.box, settings.crop_margin),
                                    settings.crop_quality)
        obs.phash = phash(engine.chip(rgb, face, 64))
