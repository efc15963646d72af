"""Who appears in a clip, and when.

Every observation of every track is searched in the collection's index and named by the
same rule as a photo (``index.best_person`` within the engine's recognise threshold); each
track then takes one identity by vote over its observations (``tracks.vote``). The timeline
joins a person's tracks that touch or are less than ``video_track_gap`` apart.

Times are seconds from the start of the clip: a track runs from the first to the last
sampled frame it was seen in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from faceatlas.faces.engines import FaceEngine
from faceatlas.gallery.index import IndexStore, best_person, confidence, index_store
from faceatlas.gallery.promote import SEARCH_K
from faceatlas.gallery.recognize import existing_collection
from faceatlas.gallery.sightings import Batch, Draft, Where, cached_policy, submit
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Person
from faceatlas.video.analyse import Progress, VideoAnalysis, analyse_video, video_engine
from faceatlas.video.reader import VideoLimits, probe
from faceatlas.video.tracks import Track, vote


@dataclass
class Segment:
    person_id: int | None
    name: str  # "unknown" for nobody
    start: float
    end: float
    confidence: float | None
    tracks: list[int] = field(default_factory=list)


@dataclass
class VideoRecognition:
    collection: str
    analysis: VideoAnalysis
    threshold: float
    timeline: list[Segment] = field(default_factory=list)

    @property
    def tracks(self) -> list[Track]:
        return self.analysis.tracks


def recognize_video(
    path: Path,
    settings: Settings,
    *,
    collection: str | None = None,
    fps: float | None = None,
    engine: FaceEngine | None = None,
    store: IndexStore | None = None,
    progress: Progress | None = None,
    where: Where | None = None,
) -> VideoRecognition:
    """Track every face of the clip and name each track. Raises VideoError for an unusable
    file and NotFoundError for a collection that does not exist. With ``where``, each track
    is recorded as a sighting (with its time range) if the collection records them."""
    # a bad file is the first thing to tell
    probe(Path(path), limits=VideoLimits.from_settings(settings))
    coll = existing_collection(settings, collection or settings.default_collection)
    threshold = settings.thresholds().recognize
    engine = engine or video_engine(settings, for_search=True)
    analysis = analyse_video(Path(path), settings, fps=fps, engine=engine, progress=progress)
    identify(analysis.tracks, (store or index_store(settings)).get(coll), threshold)
    names = _names(settings, {o.person_id for t in analysis.tracks for o in t.observations
                              if o.person_id is not None})
    for t in analysis.tracks:
        vote(t, names)
        if t.person_id is not None and t.person_id not in names:  # deleted meanwhile
            t.person_id = t.distance = None
        if t.person_id is not None and t.distance is not None:
            t.name = names[t.person_id]
            t.confidence = confidence(t.distance, threshold)
    out = VideoRecognition(coll, analysis, threshold)
    out.timeline = timeline(analysis.tracks, settings.video_track_gap)
    if where is not None:
        record_tracks(settings, out, where, engine.name)
    return out


def record_tracks(settings: Settings, result: VideoRecognition, where: Where,
                  engine: str) -> int:
    """One sighting per track (who, its best face's crop and embedding, from–to seconds),
    if the collection records them; returns the sightings queued."""
    if not cached_policy(settings, result.collection).enabled:
        return 0
    drafts = []
    for t in result.tracks:
        best = next((o for o in t.best if o.embedding is not None), None)
        best = best or next((o for o in t.observations if o.embedding is not None), None)
        if best is None:
            continue
        drafts.append(Draft(
            box=tuple(int(v) for v in best.box),  # type: ignore[arg-type]
            embedding=np.asarray(best.embedding, dtype=np.float32),
            crop=best.crop_jpeg or best.frame_jpeg, person_id=t.person_id,
            distance=t.distance, confidence=t.confidence,
            t_start=round(t.start, 3), t_end=round(t.end, 3)))
    clip = where.clip or result.analysis.path.name
    return submit(Batch(settings, result.collection, engine,
                        replace(where, clip=clip).cleaned(),
                        datetime.now(timezone.utc), drafts))


def identify(tracks: list[Track], index: Any, threshold: float) -> None:
    """Name every observation with an embedding (person_id, distance), or leave it unknown."""
    observations = [o for t in tracks for o in t.observations if o.embedding is not None]
    if not observations or not len(index):
        return
    vectors = np.stack([o.embedding for o in observations]).astype(np.float32)
    results = index.search(vectors, SEARCH_K, near=threshold)
    for obs, neighbours in zip(observations, results, strict=True):
        best = best_person(neighbours, threshold)
        if best is not None:
            obs.person_id, obs.distance = best[0], round(float(best[1]), 4)


def _names(settings: Settings, person_ids: set[int]) -> dict[int | None, str]:
    if not person_ids:
        return {}
    with session_scope(settings) as session:
        rows = session.execute(
            select(Person.id, Person.name).where(Person.id.in_(person_ids))
        ).all()
    return {pid: name for pid, name in rows}


def timeline(tracks: list[Track], gap: float) -> list[Segment]:
    """Per person, their tracks joined where less than ``gap`` seconds apart; unknown tracks
    stay separate. Sorted by start time."""
    segments: list[Segment] = []
    by_person: dict[int, list[Track]] = {}
    for t in tracks:
        if t.person_id is None:
            segments.append(Segment(None, "unknown", t.start, t.end, None, [t.id]))
        else:
            by_person.setdefault(t.person_id, []).append(t)
    for person_id, own in by_person.items():
        own.sort(key=lambda t: t.start)
        current: Segment | None = None
        for t in own:
            if current is not None and t.start - current.end <= gap:
                current.end = max(current.end, t.end)
                current.tracks.append(t.id)
                current.confidence = max(current.confidence or 0.0, t.confidence or 0.0)
                continue
            current = Segment(person_id, t.name or "?", t.start, t.end, t.confidence, [t.id])
            segments.append(current)
    return sorted(segments, key=lambda s: (s.start, s.name))


# --------------------------------------------------------------------------- answer shapes


def answer(result: VideoRecognition, *, thumbnails: bool = False) -> dict[str, Any]:
    """The JSON answer: the clip, the timeline, and every track with its boxes per sampled
    frame (``thumbnails``: each track's best picture as a base64 JPEG)."""
    a = result.analysis
    tracks = []
    for t in a.tracks:
        item: dict[str, Any] = {
            "id": t.id, "start": t.start, "end": t.end, "person_id": t.person_id,
            "person": t.name, "status": "known" if t.person_id is not None else "unknown",
            "distance": t.distance, "confidence": t.confidence, "votes": t.votes,
            "frames": [
                {"time": o.time, "box": dict(zip("xywh", map(int, o.box), strict=True)),
                 "identified": o.embedding is not None,  # else followed by its box only
                 "person_id": o.person_id, "distance": o.distance,
                 "quality": round(o.quality, 3)}
                for o in t.observations
            ],
            "best_frames": [o.time for o in t.best],
        }
        if thumbnails:
            pic = next((o.frame_jpeg for o in t.best if o.frame_jpeg), None)
            item["thumbnail"] = base64.b64encode(pic).decode() if pic else None
        tracks.append(item)
    return {
        "collection": result.collection,
        "clip": a.path.name,
        "duration": round(a.info.duration, 3),
        "width": a.info.width,
        "height": a.info.height,
        "fps": a.fps,
        "samples": a.samples,
        "partial": a.partial,
        "error": None if a.error is None else a.error.message,
        "threshold": result.threshold,
        "timeline": [
            {"person_id": s.person_id, "person": s.name, "start": s.start, "end": s.end,
             "confidence": s.confidence, "tracks": s.tracks}
            for s in result.timeline
        ],
        "tracks": tracks,
    }
