"""Which faces are this person: the decision, pure. The heart of faceatlas.

``decide`` takes analysed images and parameters (values: no session, no settings, no files)
and returns a decision with a reason code for every image and face. ``apply.py`` stores the
decisions; ``curate.py`` runs the whole step for one stored person.

Strategies:
- ``consensus`` (default): all quality faces are grouped by average linkage, which cannot join
  two people through a chain of look-alikes (``identity.py`` says why); the identity is the
  group nearest the person's reference photos if they have any (none near: the person fails
  with ``no_face_matches_reference``), else the group with most images, the search rank
  breaking near-ties. Its centre is a trimmed mean around the medoid. Each image keeps its
  face closest to the centre if within ``accept_distance`` (members of the group) or a
  tighter share of it (other faces, and only if no rival group is nearer), so a group photo
  can contribute the right face. Faces arbitration gave to another person of the collection
  (``other_person``, see ``arbitrate.py``) take no part.
- ``seed``: the seed system's rule, for comparison — the first ``seed_references`` valid
  single-face images are the references, a later face is accepted if within ``seed_threshold``
  of any reference, multi-face images are dropped. If the first photos show someone else, the
  gallery becomes that someone else: the failure ``consensus`` fixes.

Then, for both: near-duplicates (perceptual hash of the face, or of its mirror image, within
``phash_distance`` bits, and embeddings closer than ``duplicate_distance``) keep only the better
copy; the rest are ranked by quality and capped at ``max_faces``.

Thresholds are the face engine's own (``Settings.thresholds``): distances are Euclidean between
stored embeddings of one engine. The ``ensemble`` engine stores [SFace | dlib] vectors; its
curation decides with each half under that engine's thresholds and accepts a face only when
both agree (``check``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from faceatlas.curation.identity import by_reference, by_vote, groups_of
from faceatlas.faces.analyse import FaceAnalysis, ImageAnalysis
from faceatlas.faces.engines import ENGINES
from faceatlas.faces.quality import hamming
from faceatlas.settings import Settings, default
from faceatlas.store.models import (
    Reason,
)


@dataclass(frozen=True)
class CurateParams:
    """Curation's parameters: ``from_settings`` for an engine's; the bare defaults are the
    settings' own (dlib's distances)."""

    strategy: str = default("strategy")
    link_distance: float = default("link_distance")
    accept_distance: float = default("accept_distance")
    seed_threshold: float = default("seed_threshold")
    seed_references: int = default("seed_references")
    phash_distance: int = default("phash_distance")
    max_faces: int = default("max_faces_per_person")
    duplicate_distance: float = default("duplicate_distance")
    #: a composite engine (the ensemble): parameters for its second part of each vector; a
    #: face must pass both
    check: CurateParams | None = None
    #: a composite engine: length of its first part (the primary engine's embedding)
    split: int = 128
    # -- identity without chaining (fractions, so they carry over to any engine's distances)
    cluster_link: float = 1.1  # groups merge while their average distance is under this many
    #                            link_distances (average linkage tolerates a longer link)
    rank_tie: float = 0.1  # groups within 10% of the largest vote are tied: search rank decides
    outsider_accept: float = 0.85  # faces outside the identity group: this share of accept
    trim: float = 0.2  # the centre ignores this share of the group farthest from its medoid
    same_identity: float = 0.5  # two people whose centres are closer than this share of
    #                             link_distance are one identity (arbitration)
    arbitrate_margin: float = 0.1  # a face moves to another person only if nearer to them
    #                               by this share of accept_distance
    arbitrate: bool = True  # compare with the other people of the collection (consensus)

    @classmethod
    def from_settings(
        cls, s: Settings, strategy: str | None = None, engine: str | None = None
    ) -> CurateParams:
        """The thresholds of ``engine`` (default: the configured one)."""
        engine = engine or s.engine
        spec = ENGINES.get(engine)
        if spec is not None and spec.parts:  # a composite: its first part decides, the next checks
            head, tail = spec.parts
            return replace(cls.from_settings(s, strategy, head.name),
                           check=cls.from_settings(s, strategy, tail.name), split=head.dim)
        t = s.thresholds(engine)
        return cls(strategy or s.strategy, t.link, t.accept, t.seed, s.seed_references,
                   s.phash_distance, s.max_faces_per_person, t.duplicate)


@dataclass
class FaceDecision:
    accepted: bool
    reason: str
    distance: float | None = None
    quality: float = 0.0


@dataclass
class Decisions:
    images: dict[int, str] = field(default_factory=dict)  # image key -> reason
    faces: dict[tuple[int, int], FaceDecision] = field(default_factory=dict)
    centre: np.ndarray | None = None
    excluded: set[tuple[int, int]] = field(default_factory=set)
    groups: int = 0  # face groups the clustering found
    failure: str | None = None  # the person cannot be decided (no_face_matches_reference)
    failure_detail: str = ""
    #: (image key, face idx) → why the vote counted the face's result against the person
    notes: dict[tuple[int, int], str] = field(default_factory=dict)

    def accepted(self) -> list[tuple[int, int]]:
        return [k for k, d in self.faces.items() if d.accepted]


def decide(
    analyses: Sequence[ImageAnalysis],
    p: CurateParams,
    *,
    references: Sequence[np.ndarray] = (),
    exclude: Collection[tuple[int, int]] = (),
    against: Mapping[int, str] | None = None,
) -> Decisions:
    """Decide every image and face. ``analyses`` are in candidate order (search rank).

    ``references``: embeddings of trusted photos of the person (consensus only): the identity
    is the face group nearest to them, or nothing (``failure``) if none comes near.
    ``exclude``: (image key, face idx) of faces another person of the collection owns
    (``other_person``): they take no part, so the next identity candidate can win.
    ``against``: image key → the other person of the collection its result's text (title,
    page URL) names instead of this one: the image counts against its group in the vote
    (consensus without references), and its faces carry the note.
    """
    against = dict(against or {})
    if p.check is not None:
        return _decide_both(analyses, p, references=references, exclude=exclude,
                            against=against)
    # the seed rule is the old system's, for comparison: it knows nothing of the collection
    out = Decisions(excluded=set(exclude) if p.strategy == "consensus" else set())
    for a in analyses:
        for f in a.faces:
            reason = f.reason or Reason.NOT_THIS_PERSON
            if (a.key, f.idx) in out.excluded and f.reason is None:
                reason = Reason.OTHER_PERSON
            out.faces[(a.key, f.idx)] = FaceDecision(False, reason)
            if a.key in against:
                out.notes[(a.key, f.idx)] = f"the result's text names {against[a.key]}"
    if p.strategy == "consensus":
        refs = np.stack(references).astype(np.float64) if len(references) else None
        chosen = _consensus(analyses, p, out, refs, set(against))
    else:
        chosen = _seed(analyses, p, out)
    _dedupe_and_cap(analyses, chosen, p, out)
    for a in analyses:
        out.images[a.key] = _image_reason(a, out)
    return out


def _quality_faces(analyses: Sequence[ImageAnalysis]) -> list[tuple[ImageAnalysis, FaceAnalysis]]:
    return [
        (a, f) for a in analyses for f in a.faces if f.reason is None and f.embedding is not None
    ]


def _consensus(
    analyses: Sequence[ImageAnalysis], p: CurateParams, out: Decisions,
    references: np.ndarray | None = None, against: Collection[int] = (),
) -> list[tuple[ImageAnalysis, FaceAnalysis]]:
    """Cluster without chaining, choose the identity group, accept near its centre.

    The identity group is the one nearest the references when there are any (a trusted
    photo outranks the vote), else the one with most images, the search rank breaking ties.
    Faces of the group are accepted within ``accept_distance`` of its re-estimated centre;
    faces outside the group only within the tighter ``outsider_accept`` share of it, and only
    if no other group's centre is nearer (a look-alike belongs to their own group).
    """
    pool = [(a, f) for a, f in _quality_faces(analyses) if (a.key, f.idx) not in out.excluded]
    if not pool:
        if references is not None and len(references):
            out.failure = Reason.NO_FACE_MATCHES_REFERENCE
            out.failure_detail = "no usable face among the candidates"
        return []
    vectors = np.stack([f.embedding for _, f in pool]).astype(np.float64)
    groups = groups_of(vectors, [a.key for a, _ in pool], p.link_distance * p.cluster_link,
                       p.trim, against)
    if references is not None and len(references):
        chosen_group, gap = by_reference(groups, references)
        if chosen_group is None or gap > p.accept_distance:
            out.failure = Reason.NO_FACE_MATCHES_REFERENCE
            out.failure_detail = (f"no group of faces comes within {p.accept_distance} of the "
                                  f"{len(references)} reference photo(s) (nearest {gap:.3f})")
            return []
    else:
        chosen_group = by_vote(groups, p.rank_tie)
    if chosen_group is None:  # nobody agrees with anybody: no identity can be told apart
        return []
    centre = chosen_group.centre
    out.centre = centre.astype(np.float32)
    out.groups = len(groups)
    rivals = [g.centre for g in groups if g is not chosen_group and g.images >= 2]
    to_centre = np.linalg.norm(vectors - centre, axis=1)
    to_rival = (np.min(np.linalg.norm(vectors[:, None, :] - np.stack(rivals)[None], axis=2),
                       axis=1) if rivals else np.full(len(pool), np.inf))
    inside = set(chosen_group.rows)
    best: dict[int, int] = {}  # image key -> index of its face closest to the centre
    for i, (a, _) in enumerate(pool):
        if a.key not in best or to_centre[i] < to_centre[best[a.key]]:
            best[a.key] = i
    outsider_limit = p.accept_distance * p.outsider_accept
    chosen = []
    for i, (a, f) in enumerate(pool):
        d = out.faces[(a.key, f.idx)]
        d.distance = float(to_centre[i])
        if best[a.key] != i:
            continue
        if i in inside:
            ok = to_centre[i] <= p.accept_distance
        else:
            ok = to_centre[i] <= outsider_limit and to_centre[i] < to_rival[i]
        if ok:
            chosen.append((a, f))
    return chosen


def _seed(
    analyses: Sequence[ImageAnalysis], p: CurateParams, out: Decisions
) -> list[tuple[ImageAnalysis, FaceAnalysis]]:
    refs: list[np.ndarray] = []
    chosen = []
    for a in analyses:
        if len(a.faces) > 1:
            for f in a.faces:
                out.faces[(a.key, f.idx)].reason = Reason.MULTIPLE_FACES
            continue
        if not a.faces or a.faces[0].reason is not None or a.faces[0].embedding is None:
            continue
        f = a.faces[0]
        vec = f.embedding.astype(np.float64)
        if len(refs) < p.seed_references:
            refs.append(vec)
            out.faces[(a.key, f.idx)].distance = 0.0
            chosen.append((a, f))
            continue
        d = float(min(np.linalg.norm(r - vec) for r in refs))
        out.faces[(a.key, f.idx)].distance = d
        if d <= p.seed_threshold:
            chosen.append((a, f))
    if refs:
        out.centre = np.mean(refs, axis=0).astype(np.float32)
    return chosen


def quality_score(f: FaceAnalysis, distance: float | None, p: CurateParams) -> float:
    """0..1: bigger, sharper, surer and closer to the identity is better."""
    size = min(1.0, f.size / 300)
    sharp = min(1.0, f.blur / 100)  # ~7× the default blur threshold
    det = min(1.0, max(0.0, f.score) / 2.5)
    near = 1.0 - min(1.0, (distance or 0.0) / max(p.accept_distance, 1e-6))
    return round(0.35 * size + 0.25 * sharp + 0.15 * det + 0.25 * near, 4)


def _dedupe_and_cap(
    analyses: Sequence[ImageAnalysis],
    chosen: list[tuple[ImageAnalysis, FaceAnalysis]],
    p: CurateParams,
    out: Decisions,
) -> None:
    for a, f in chosen:
        d = out.faces[(a.key, f.idx)]
        d.quality = quality_score(f, d.distance, p)
    ranked = sorted(chosen, key=lambda af: -out.faces[(af[0].key, af[1].idx)].quality)
    kept: list[FaceAnalysis] = []
    for a, f in ranked:
        d = out.faces[(a.key, f.idx)]
        if any(_near_duplicate(f, k, p) for k in kept):
            d.reason = Reason.DUPLICATE
        elif len(kept) >= p.max_faces:
            d.reason = Reason.OVER_LIMIT
        else:
            d.accepted, d.reason = True, Reason.ACCEPTED
            kept.append(f)


def _near_duplicate(f: FaceAnalysis, k: FaceAnalysis, p: CurateParams) -> bool:
    if not (f.phash and k.phash and k.phash_mirror):
        return False
    bits = min(hamming(f.phash, k.phash), hamming(f.phash, k.phash_mirror))
    if bits > p.phash_distance:
        return False
    assert f.embedding is not None and k.embedding is not None
    return float(np.linalg.norm(f.embedding - k.embedding)) < p.duplicate_distance


def _decide_both(
    analyses: Sequence[ImageAnalysis],
    p: CurateParams,
    *,
    references: Sequence[np.ndarray] = (),
    exclude: Collection[tuple[int, int]] = (),
    against: Mapping[int, str] | None = None,
) -> Decisions:
    """Ensemble: decide on each engine's half of the vectors; accept only what both accept."""
    assert p.check is not None

    def half(part: slice) -> list[ImageAnalysis]:
        return [replace(a, faces=[
            replace(f, embedding=None if f.embedding is None else f.embedding[part])
            for f in a.faces]) for a in analyses]

    head, tail = slice(0, p.split), slice(p.split, None)
    first = decide(half(head), replace(p, check=None),
                   references=[r[head] for r in references], exclude=exclude, against=against)
    second = decide(half(tail), p.check,
                    references=[r[tail] for r in references], exclude=exclude, against=against)
    for key, d in first.faces.items():
        if d.accepted and not second.faces[key].accepted:
            d.accepted, d.reason = False, Reason.NOT_THIS_PERSON
    for a in analyses:
        first.images[a.key] = _image_reason(a, first)
    return first


def _image_reason(a: ImageAnalysis, out: Decisions) -> str:
    if a.error:
        return a.error
    if not a.faces:
        return Reason.NO_FACE
    reasons = [out.faces[(a.key, f.idx)].reason for f in a.faces]
    if Reason.ACCEPTED in reasons:
        return Reason.ACCEPTED
    # the most telling reason: a decision about the person beats one about image quality
    for r in (Reason.OTHER_PERSON, Reason.MULTIPLE_FACES, Reason.DUPLICATE, Reason.OVER_LIMIT,
              Reason.NOT_THIS_PERSON, Reason.BLURRY, Reason.FACE_TOO_SMALL):
        if r in reasons:
            return r
    return reasons[0]
