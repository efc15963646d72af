"""``faceatlas import-video``: a person's faces from a clip, curated like photos.

Every track's best frames become candidate images of the person (the region around the face,
stored under ``raw/`` like any photo) with their provenance: the clip, the track's time range
and the frame's time. Their analyses come straight from the tracking pass (same engine, same
quality rules), and the person's usual curation then decides every candidate, photos and
frames together: the track that is the person contributes its best frames, the others are
rejected with a reason (``not_this_person``, ``face_too_small``, ``duplicate`` …).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from faceatlas.curation.apply import CurationReport
from faceatlas.curation.curate import collect, finish_curation, plan_curation
from faceatlas.faces.analyse import FaceAnalysis, ImageAnalysis, face_pool
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Image, ImageState, Person, Reason
from faceatlas.store.people import get_or_create_collection, upsert_person
from faceatlas.video.analyse import Progress, VideoAnalysis, analyse_video
from faceatlas.video.tracks import Observation, Track


@dataclass
class TrackOutcome:
    track: int
    start: float
    end: float
    frames: int  # candidate images added from it
    accepted: int
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class VideoImport:
    clip: str
    analysis: VideoAnalysis
    curation: CurationReport
    tracks: list[TrackOutcome] = field(default_factory=list)


def import_video(
    path: Path,
    person: str,
    settings: Settings,
    *,
    collection: str | None = None,
    fps: float | None = None,
    strategy: str | None = None,
    progress: Progress | None = None,
    on_curate: Callable[[], None] | None = None,
) -> VideoImport:
    """Track the clip's faces, add every track's best frames as candidates of ``person`` and
    curate the person. Raises VideoError when nothing could be read from the clip."""
    path = Path(path)
    analysis = analyse_video(path, settings, fps=fps, progress=progress)
    clip_sha = _sha256_file(path)
    with session_scope(settings) as session:
        coll = get_or_create_collection(session, collection or settings.default_collection)
        row, _ = upsert_person(session, coll, person, source="video")
        person_id = row.id
    mine = _add_frames(person_id, path.name, clip_sha, analysis.tracks, settings)
    if on_curate:
        on_curate()
    todo = plan_curation(settings, person_id)
    others = [(key, p) for key, p in todo if key not in mine]
    fresh = {key: a for key, a in mine.items() if key in {k for k, _ in todo}}
    if others:  # the person's photos not analysed yet: the usual face pool
        with face_pool(settings, background=True) as pool:  # models already loaded here
            fresh.update(collect(pool.submit(others)))
    report = finish_curation(settings, person_id, fresh, strategy=strategy)
    return VideoImport(path.name, analysis, report,
                       _outcomes(settings, person_id, clip_sha, analysis.tracks))


def _origin(clip_sha: str, track: int, time: float) -> str:
    return f"video:{clip_sha[:16]}:track{track}:{time:.3f}"


def _add_frames(person_id: int, clip: str, clip_sha: str, tracks: list[Track],
                settings: Settings) -> dict[int, ImageAnalysis]:
    """Store each track's best frames as images of the person; their analyses by image id.
    Frames already imported from the same clip (same origin) are not added twice."""
    layout = Layout(settings.home)
    out: dict[int, ImageAnalysis] = {}
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        assert person is not None
        known = set(session.scalars(select(Image.origin).where(Image.person_id == person_id)))
        for track in tracks:
            for obs in sorted(track.best, key=lambda o: o.time):
                origin = _origin(clip_sha, track.id, obs.time)
                if origin in known or obs.frame_jpeg is None or obs.region is None:
                    continue
                data = obs.frame_jpeg
                sha = hashlib.sha256(data).hexdigest()
                dest = layout.raw_file(person.collection.key, person.folder, sha, "jpg")
                if not dest.exists():
                    atomic_write(dest, data)
                img = Image(
                    person_id=person_id, origin=origin, provider="video",
                    title=(f"{clip} at {obs.time:.1f} s (track {track.id}, "
                           f"{track.start:.1f}–{track.end:.1f} s)"),
                    sha256=sha, path=layout.relative(dest), bytes=len(data),
                    state=ImageState.FETCHED,
                    width=obs.region[2], height=obs.region[3], video_source=clip,
                    video_track=track.id, video_start=track.start, video_end=track.end,
                    video_time=obs.time,
                )
                session.add(img)
                session.flush()
                out[img.id] = _analysis(img.id, obs)
    return out


def _analysis(key: int, obs: Observation) -> ImageAnalysis:
    """The tracked face as curation's analysis of the stored region (coordinates moved)."""
    assert obs.region is not None
    rx, ry, rw, rh = obs.region
    x, y, w, h = obs.box
    landmarks = [[round(float(px) - rx, 1), round(float(py) - ry, 1)] for px, py in obs.landmarks]
    ph, mirror = obs.phash if obs.phash else (None, None)
    face = FaceAnalysis(
        idx=0, box=(x - rx, y - ry, w, h), score=obs.score, landmarks=landmarks,
        blur=obs.blur, reason=obs.reason,
        embedding=obs.embedding if obs.reason is None else None,
        phash=ph, phash_mirror=mirror, crop_jpeg=obs.crop_jpeg,
    )
    return ImageAnalysis(key=key, width=rw, height=rh, faces=[face])


def _outcomes(settings: Settings, person_id: int, clip_sha: str,
              tracks: list[Track]) -> list[TrackOutcome]:
    prefix = f"video:{clip_sha[:16]}:track"
    with session_scope(settings) as session:
        rows = session.execute(
            select(Image.video_track, Image.reason).where(
                Image.person_id == person_id, Image.origin.startswith(prefix))
        ).all()
    out = []
    for t in tracks:
        reasons = Counter(reason or "?" for track, reason in rows if track == t.id)
        out.append(TrackOutcome(t.id, t.start, t.end, sum(reasons.values()),
                                reasons.get(Reason.ACCEPTED, 0), reasons))
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
