"""Faces across sampled frames, linked into tracks.

A face in the next sample continues a track when its box overlaps the track's last box
(IoU) and its embedding is near the track's last one; a face that jumped (camera cut, quick
move) still continues it when the embedding alone is very close (``link_distance``, the
curation's "same person" distance). Matching is greedy by distance, one face per track per
sample. A track unseen for longer than ``max_gap`` seconds ends.

Each track keeps its best few observations by quality: size, sharpness and how frontal the
face is (from the 5 landmarks), and ``vote`` makes one identity decision per track from the
identities of all its observations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from faceatlas.faces.engines import ENGINES
from faceatlas.faces.quality import iou


@dataclass(eq=False)
class Observation:
    """One face in one sampled frame."""

    sample: int
    time: float
    box: tuple[int, int, int, int]  # x, y, w, h in the frame
    score: float
    landmarks: np.ndarray = field(repr=False)  # 5×2, frame coordinates
    blur: float
    frontal: float  # 0 (profile) .. 1 (facing the camera)
    embedding: np.ndarray | None = field(default=None, repr=False)
    reason: str | None = None  # None = quality face, else face_too_small / blurry
    # filled for the best observations only (memory stays bounded on long clips)
    frame_jpeg: bytes | None = field(default=None, repr=False)  # the region around the face
    region: tuple[int, int, int, int] | None = None  # that region in the frame: x, y, w, h
    crop_jpeg: bytes | None = field(default=None, repr=False)  # curation's crop (quality faces)
    phash: tuple[str, str] | None = None  # of the aligned chip and its mirror
    # identity of this observation alone (set by recognition)
    person_id: int | None = None
    distance: float | None = None

    @property
    def size(self) -> int:
        return min(self.box[2], self.box[3])

    @property
    def quality(self) -> float:
        """0..1: bigger, sharper and more frontal is better; quality faces first."""
        size = min(1.0, self.size / 200)
        sharp = min(1.0, self.blur / 400)
        q = 0.4 * size + 0.3 * sharp + 0.3 * self.frontal
        return round(q + (1.0 if self.reason is None else 0.0), 4)


@dataclass(eq=False)
class Track:
    id: int
    observations: list[Observation] = field(default_factory=list)
    best: list[Observation] = field(default_factory=list)  # by quality, best first
    person_id: int | None = None
    name: str | None = None
    distance: float | None = None
    confidence: float | None = None
    votes: dict[str, int] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.observations[0].time

    @property
    def end(self) -> float:
        return self.observations[-1].time

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    @property
    def last_embedded(self) -> Observation | None:
        return next((o for o in reversed(self.observations) if o.embedding is not None), None)


def frontal_score(landmarks: np.ndarray, engine: str) -> float:
    """1 when the nose sits midway between the eyes, falling to 0 in profile.

    Point order differs by engine (``EngineSpec.landmarks``): dlib's 5 points are two corners
    of each eye then the nose; the common 5-point layout (YuNet/SFace, RetinaFace) is right
    eye, left eye, nose, mouth.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return 0.5
    spec = ENGINES.get(engine)
    if spec is not None and spec.landmarks == "dlib" and len(pts) == 5:
        eye_a, eye_b, nose = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0), pts[4]
    else:
        eye_a, eye_b, nose = pts[0], pts[1], pts[2]
    half = np.linalg.norm(eye_b - eye_a) / 2
    if half < 1e-6:
        return 0.0
    mid = (eye_a + eye_b) / 2
    axis = (eye_b - eye_a) / (2 * half)
    offset = abs(float(np.dot(nose - mid, axis))) / half  # 0 frontal, ~1 profile
    return round(max(0.0, 1.0 - float(offset)), 4)


@dataclass
class TrackerParams:
    max_gap: float = 1.5  # seconds a track may go unseen
    min_iou: float = 0.2
    link_distance: float = 0.5  # embedding alone continues a track
    follow_distance: float = 0.6  # embedding limit when the boxes overlap
    best_frames: int = 5
    min_spread: float = 0.15  # best frames closer than this to a better one are dropped
    #: a face that plainly continues a track (box overlap ≥ 0.5) is embedded only when the
    #: track's last embedding is this many seconds old: embedding is half the work per face
    #: at 2 fps and most of it at 8 fps; 0 embeds every face
    embed_every: float = 1.0


class Tracker:
    """Feed ``add(observations)`` one sample at a time, in time order; ``tracks`` at the end."""

    def __init__(self, params: TrackerParams) -> None:
        self.p = params
        self.tracks: list[Track] = []
        self._open: list[Track] = []

    def needs_embedding(self, box: tuple[int, int, int, int], now: float) -> bool:
        """Should the face at ``box`` in the sample at ``now`` be embedded?"""
        for t in self._open:
            if now - t.end > self.p.max_gap or iou(t.last.box, box) < 0.5:
                continue
            ref = t.last_embedded
            if ref is not None and now - ref.time < self.p.embed_every - 1e-6:
                return False
        return True

    def add(self, observations: list[Observation]) -> list[tuple[Track, Observation]]:
        """Link one sample's faces; returns (track, observation) pairs, new tracks included."""
        if not observations:
            return []
        now = observations[0].time
        self._open = [t for t in self._open if now - t.end <= self.p.max_gap]
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._open):
            prev = track.last
            ref = track.last_embedded or prev  # identity: the latest embedded face
            for oi, obs in enumerate(observations):
                d = _distance(ref, obs)
                overlap = iou(prev.box, obs.box)
                if d is None:  # no embedding (tiny or blurry face): position alone
                    if overlap >= max(self.p.min_iou, 0.4):
                        pairs.append((1.0 - overlap, ti, oi))
                elif (overlap >= self.p.min_iou and d <= self.p.follow_distance) or (
                        d <= self.p.link_distance):
                    pairs.append((d - 0.1 * overlap, ti, oi))
        taken_t: set[int] = set()
        taken_o: set[int] = set()
        out: list[tuple[Track, Observation]] = []
        for _, ti, oi in sorted(pairs):
            if ti in taken_t or oi in taken_o:
                continue
            taken_t.add(ti)
            taken_o.add(oi)
            self._extend(self._open[ti], observations[oi])
            out.append((self._open[ti], observations[oi]))
        for oi, obs in enumerate(observations):
            if oi not in taken_o:
                track = Track(id=len(self.tracks) + 1)
                self.tracks.append(track)
                self._open.append(track)
                self._extend(track, obs)
                out.append((track, obs))
        return out

    def _extend(self, track: Track, obs: Observation) -> None:
        track.observations.append(obs)

    def keeps(self, track: Track, obs: Observation,
              embed: Callable[[], np.ndarray] | None = None) -> bool:
        """Would ``obs`` be among the track's best frames? (Then the caller stores its
        picture.) Updates ``track.best`` and drops the pictures of observations pushed out.
        ``embed`` gives ``obs`` its embedding when it has none and is a candidate."""
        full = len(track.best) >= self.p.best_frames
        if full and obs.quality <= track.best[-1].quality:
            return False
        if obs.embedding is None and embed is not None:
            obs.embedding = embed()  # best frames need one: for curation, and the check below
        # near-identical frames (a still shot) add nothing but weight: a still would otherwise
        # fill the person's candidates with copies and outvote other photos in curation
        near = [o for o in track.best if (d := _distance(o, obs)) is not None
                and d < self.p.min_spread]
        if any(o.quality >= obs.quality for o in near):
            return False
        rest = [o for o in track.best if not any(o is n for n in near)]
        for o in near:
            o.frame_jpeg = o.crop_jpeg = None
        best = sorted([*rest, obs], key=lambda o: -o.quality)
        kept, dropped = best[: self.p.best_frames], best[self.p.best_frames:]
        for o in dropped:
            o.frame_jpeg = o.crop_jpeg = None
        track.best = kept
        return any(o is obs for o in kept)


def _distance(a: Observation, b: Observation) -> float | None:
    if a.embedding is None or b.embedding is None:
        return None
    return float(np.linalg.norm(a.embedding.astype(np.float64) - b.embedding))


def vote(track: Track, labels: dict[int | None, str] | None = None) -> None:
    """One identity per track: the person most of its observations name wins, if they are at
    least as many as the observations that name nobody; ties go to the closer person."""
    track.person_id = track.distance = None
    counts: Counter[int | None] = Counter(o.person_id for o in track.observations
                                          if o.embedding is not None)
    track.votes = {(labels or {}).get(k, str(k)) if k is not None else "unknown": v
                   for k, v in counts.items()}
    known = [(n, k) for k, n in counts.items() if k is not None]
    if not known:
        return

    def closeness(person: int) -> float:
        return float(np.median([o.distance for o in track.observations
                                if o.person_id == person and o.distance is not None]))

    n, person = max(known, key=lambda nk: (nk[0], -closeness(nk[1])))
    if n < counts.get(None, 0):
        return
    track.person_id = person
    track.distance = round(closeness(person), 4)
