"""Stage 3: which faces are this person. The heart of faceatlas.

``decide`` is pure: analysed images in, a decision with a reason code for every image and face
out. ``curate_person`` runs it for one stored person: analyses new images in the face pool,
stores faces and decisions, writes accepted crops and removes crops no longer accepted.

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

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from faceatlas.curation.identity import by_reference, by_vote, groups_of
from faceatlas.domain.errors import NotFoundError
from faceatlas.domain.faces import LEGACY_ENGINE, LEGACY_MODEL_HASH
from faceatlas.faces.analyse import FaceAnalysis, FacePool, ImageAnalysis
from faceatlas.faces.engines import ENGINES
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop, encode_jpeg, hamming
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import (
    Face,
    FaceState,
    Image,
    ImageState,
    Person,
    PersonState,
    Reason,
)

#: dlib: the same photo re-encoded or resized embeds within ~0.15; different photos of one
#: person rarely come closer than 0.3, so both tests together avoid merging distinct photos.
#: (The default of dlib's ``duplicate_distance``; each engine has its own, see Settings.)
DUPLICATE_DISTANCE = 0.3


@dataclass(frozen=True)
class CurateParams:
    strategy: str = "consensus"
    link_distance: float = 0.5
    accept_distance: float = 0.6
    seed_threshold: float = 0.6
    seed_references: int = 3
    phash_distance: int = 10
    max_faces: int = 40
    duplicate_distance: float = DUPLICATE_DISTANCE
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
            from dataclasses import replace

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

    def accepted(self) -> list[tuple[int, int]]:
        return [k for k, d in self.faces.items() if d.accepted]


def decide(
    analyses: Sequence[ImageAnalysis],
    p: CurateParams,
    *,
    references: Sequence[np.ndarray] = (),
    exclude: Collection[tuple[int, int]] = (),
) -> Decisions:
    """Decide every image and face. ``analyses`` are in candidate order (search rank).

    ``references``: embeddings of trusted photos of the person (consensus only): the identity
    is the face group nearest to them, or nothing (``failure``) if none comes near.
    ``exclude``: (image key, face idx) of faces another person of the collection owns
    (``other_person``): they take no part, so the next identity candidate can win.
    """
    if p.check is not None:
        return _decide_both(analyses, p, references=references, exclude=exclude)
    # the seed rule is the old system's, for comparison: it knows nothing of the collection
    out = Decisions(excluded=set(exclude) if p.strategy == "consensus" else set())
    for a in analyses:
        for f in a.faces:
            reason = f.reason or Reason.NOT_THIS_PERSON
            if (a.key, f.idx) in out.excluded and f.reason is None:
                reason = Reason.OTHER_PERSON
            out.faces[(a.key, f.idx)] = FaceDecision(False, reason)
    if p.strategy == "consensus":
        refs = np.stack(references).astype(np.float64) if len(references) else None
        chosen = _consensus(analyses, p, out, refs)
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
    references: np.ndarray | None = None,
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
                       p.trim)
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
) -> Decisions:
    """Ensemble: decide on each engine's half of the vectors; accept only what both accept."""
    from dataclasses import replace

    assert p.check is not None

    def half(part: slice) -> list[ImageAnalysis]:
        return [replace(a, faces=[
            replace(f, embedding=None if f.embedding is None else f.embedding[part])
            for f in a.faces]) for a in analyses]

    head, tail = slice(0, p.split), slice(p.split, None)
    first = decide(half(head), replace(p, check=None),
                   references=[r[head] for r in references], exclude=exclude)
    second = decide(half(tail), p.check,
                    references=[r[tail] for r in references], exclude=exclude)
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


# --------------------------------------------------------------------------- stored people


@dataclass
class CurationReport:
    person: str
    collection: str
    candidates: int
    accepted: int
    reasons: Counter[str]
    new_images: int = 0
    timings: Counter[str] = field(default_factory=Counter)  # seconds in decode/detect/embed/…
    peak_rss_kb: int = 0  # largest face worker
    failure: str | None = None  # no_face_matches_reference: the person is failed
    failure_detail: str = ""


Progress = Callable[[int, int], None]


def curate_person(
    settings: Settings,
    person_id: int,
    *,
    pool: FacePool,
    strategy: str | None = None,
    progress: Progress | None = None,
) -> CurationReport:
    """Analyse the person's new images, decide all of them, and sync crops on disk."""
    jobs = plan_curation(settings, person_id)
    return finish_curation(settings, person_id, collect(pool.submit(jobs), progress),
                           strategy=strategy)


def plan_curation(settings: Settings, person_id: int) -> list[tuple[int, str]]:
    """Mark the person curating; the (image id, file) pairs that still need analysis.

    Reference photos waiting for their embedding ride along with negative keys (-reference
    id), so the same face workers measure them."""
    from faceatlas.curation.references import pending_reference_jobs, remeasure_references

    layout = Layout(settings.home)
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"person {person_id} does not exist (deleted meanwhile?)")
        person.state = PersonState.CURATING
        # embeddings of another engine cannot be compared with new ones: analyse all again
        stale = person.engine != settings.engine or bool(
            session.scalar(select(Face.id).where(Face.person_id == person.id,
                                                 Face.engine != settings.engine).limit(1)))
        if stale:  # reference photos are measured again by the new engine too
            remeasure_references(session, person_id)
        todo = _mark_exact_duplicates(session, person, reanalyse=stale)
        jobs = [(img.id, str(layout.absolute(img.path or ""))) for img in todo]
        return jobs + pending_reference_jobs(session, person_id, layout)


def collect(
    futures: Sequence[Future[ImageAnalysis]], progress: Progress | None = None
) -> dict[int, ImageAnalysis]:
    """Wait for analyses, reporting progress as each one lands."""
    fresh: dict[int, ImageAnalysis] = {}
    if progress:
        progress(0, len(futures))
    for done, fut in enumerate(as_completed(futures), start=1):
        analysis = fut.result()
        fresh[analysis.key] = analysis
        if progress:
            progress(done, len(futures))
    return fresh


def finish_curation(
    settings: Settings,
    person_id: int,
    fresh: dict[int, ImageAnalysis],
    *,
    strategy: str | None = None,
) -> CurationReport:
    """Store new analyses, decide every image of the person, write and remove crops; then
    arbitrate with the rest of the collection (which may re-decide this or other people)."""
    from faceatlas.curation.references import store_reference_analyses

    params = CurateParams.from_settings(settings, strategy)
    references = {k: a for k, a in fresh.items() if k < 0}
    fresh = {k: a for k, a in fresh.items() if k >= 0}
    with session_scope(settings) as session:
        _store_analyses(session, fresh)
        store_reference_analyses(session, references)
    report = redecide(person_id, settings, params, fresh)
    if params.strategy == "consensus" and params.arbitrate and report.failure is None:
        from faceatlas.curation.arbitrate import arbitrate_person

        if arbitrate_person(settings, person_id, params).changed(person_id):
            report = redecide(person_id, settings, params)
    report.new_images = len(fresh)
    for analysis in [*fresh.values(), *references.values()]:
        report.timings.update(analysis.timings)
        report.peak_rss_kb = max(report.peak_rss_kb, analysis.peak_rss_kb)
    return report


def redecide(
    person_id: int,
    settings: Settings,
    params: CurateParams | None = None,
    fresh: dict[int, ImageAnalysis] | None = None,
) -> CurationReport:
    """Decide the person's stored analyses again (no model needed) and sync crops.

    The person ends ``curated``, or ``failed`` when their references match no face."""
    layout = Layout(settings.home)
    params = params or CurateParams.from_settings(settings)
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"person {person_id} does not exist (deleted meanwhile?)")
        report = _apply(session, person, params, layout, fresh or {}, settings.crop_margin)
        if report.failure:
            person.state = PersonState.FAILED
            person.error = f"{report.failure}: {report.failure_detail}"
        else:
            person.state = PersonState.CURATED
            person.error = None
        if fresh or person.engine is None:
            person.engine = settings.engine
    return report


def _mark_exact_duplicates(
    session: Session, person: Person, reanalyse: bool = False
) -> list[Image]:
    """Same bytes twice for one person: analyse the first (by rank), mark the others."""
    images = session.scalars(
        select(Image).where(Image.person_id == person.id, Image.path.is_not(None))
        .order_by(Image.rank.nulls_last(), Image.id)
    ).all()
    seen: set[str] = set()
    todo = []
    for img in images:
        if img.sha256 in seen:
            img.state, img.reason = ImageState.ANALYSED, Reason.DUPLICATE
            continue
        seen.add(img.sha256 or "")
        if img.state != ImageState.ANALYSED or reanalyse:
            todo.append(img)
    return todo


def _store_analyses(session: Session, fresh: dict[int, ImageAnalysis]) -> None:
    for key, a in fresh.items():
        img = session.get(Image, key)
        if img is None:  # deleted meanwhile
            continue
        # a reviewer's verdict on a face survives its re-analysis (another engine: reembed)
        verdicts = [((o.x, o.y, o.w, o.h), o.reason) for o in img.faces
                    if o.reason in (Reason.REJECTED_BY_USER, Reason.ACCEPTED_BY_USER)]
        for old in list(img.faces):  # re-analysis replaces, never duplicates
            session.delete(old)
        session.flush()
        img.state = ImageState.ANALYSED
        img.width, img.height = a.width or img.width, a.height or img.height
        img.reason = a.error
        if a.error:
            img.detail = a.detail
        for f in a.faces:
            x, y, w, h = f.box
            session.add(Face(
                image_id=key, person_id=img.person_id, idx=f.idx, x=x, y=y, w=w, h=h,
                landmarks=f.landmarks, det_score=f.score, blur=f.blur,
                embedding=None if f.embedding is None else f.embedding.astype(np.float32).tobytes(),
                phash=None if f.phash is None else f"{f.phash}:{f.phash_mirror}",
                reason=_verdict(f.box, verdicts) or f.reason or Reason.NOT_THIS_PERSON,
                state=FaceState.REJECTED, engine=a.engine or LEGACY_ENGINE,
                model_hash=a.model_hash or LEGACY_MODEL_HASH,
            ))
        # the loaded collection still lists the deleted rows: read it again when next used
        session.expire(img, ["faces"])
    session.flush()


def _verdict(box: tuple[int, int, int, int], verdicts: list[tuple[tuple[int, int, int, int], str]]
             ) -> str | None:
    """The reviewer's reason of the old face this box is (overlap over half), if any."""
    x, y, w, h = box
    for (ox, oy, ow, oh), reason in verdicts:
        ix = max(0, min(x + w, ox + ow) - max(x, ox))
        iy = max(0, min(y + h, oy + oh) - max(y, oy))
        inter = ix * iy
        if inter and inter / float(w * h + ow * oh - inter) > 0.5:
            return reason
    return None


def analysis_from_rows(img: Image) -> ImageAnalysis:
    """Rebuild an analysis from stored rows, so re-curation needs no model."""
    faces = []
    for row in sorted(img.faces, key=lambda r: r.idx):
        quality = row.reason if row.reason in (Reason.FACE_TOO_SMALL, Reason.BLURRY) else None
        ph, mirror = row.phash.split(":") if row.phash else (None, None)
        faces.append(FaceAnalysis(
            idx=row.idx, box=(row.x, row.y, row.w, row.h), score=row.det_score,
            landmarks=row.landmarks, blur=row.blur, reason=quality,
            embedding=None if row.embedding is None else np.frombuffer(row.embedding, np.float32),
            phash=ph, phash_mirror=mirror,
        ))
    error = img.reason if img.reason in (Reason.DECODE_ERROR, Reason.NOT_AN_IMAGE) else None
    return ImageAnalysis(key=img.id, width=img.width or 0, height=img.height or 0,
                         error=error, detail=img.detail, faces=faces)


def _apply(
    session: Session,
    person: Person,
    params: CurateParams,
    layout: Layout,
    fresh: dict[int, ImageAnalysis],
    crop_margin: float,
) -> CurationReport:
    images = session.scalars(
        select(Image).where(Image.person_id == person.id, Image.state == ImageState.ANALYSED)
        .order_by(Image.rank.nulls_last(), Image.id).options(selectinload(Image.faces))
    ).all()
    candidates, seen = [], set()
    for img in images:  # same bytes as an earlier image: never analysed, always a duplicate
        if img.sha256 not in seen:
            seen.add(img.sha256)
            candidates.append(img)
        else:
            img.reason = Reason.DUPLICATE
    from faceatlas.curation.references import reference_vectors

    analyses = [analysis_from_rows(img) for img in candidates]
    excluded = {(img.id, row.idx) for img in candidates for row in img.faces
                if row.reason == Reason.OTHER_PERSON}
    decisions = decide(analyses, params, references=reference_vectors(session, person.id),
                       exclude=excluded)
    collection = person.collection.key
    now = datetime.now(timezone.utc)
    for img in candidates:
        img.reason = decisions.images[img.id]
        for row in img.faces:
            d = decisions.faces[(img.id, row.idx)]
            if row.reason in (Reason.REJECTED_BY_USER, Reason.ACCEPTED_BY_USER):
                # a reviewer's decision outlives re-curation
                d.accepted, d.reason = row.reason == Reason.ACCEPTED_BY_USER, row.reason
            if d.reason != Reason.OTHER_PERSON:  # arbitration's note goes with its decision
                row.other_person_id, row.detail = None, None
            row.reason, row.distance, row.quality = d.reason, d.distance, d.quality
            row.state = FaceState.ACCEPTED if d.accepted else FaceState.REJECTED
            if d.accepted and not row.crop_path:
                crop = _crop_bytes(img, row, fresh, layout, crop_margin)
                path = layout.crop_file(collection, person.folder, now, row.id)
                atomic_write(path, crop)
                row.crop_path = layout.relative(path)
            elif not d.accepted and row.crop_path:
                layout.absolute(row.crop_path).unlink(missing_ok=True)
                row.crop_path = None
    session.flush()
    sweep_orphan_crops(session, person, layout)
    reasons: Counter[str] = Counter(img.reason or "?" for img in images)
    return CurationReport(
        person=person.name, collection=collection, candidates=len(images),
        accepted=sum(1 for img in candidates for row in img.faces
                     if row.state == FaceState.ACCEPTED),
        reasons=reasons, failure=decisions.failure, failure_detail=decisions.failure_detail,
    )


def _crop_bytes(
    img: Image, row: Face, fresh: dict[int, ImageAnalysis], layout: Layout, margin: float
) -> bytes:
    analysis = fresh.get(img.id)
    if analysis is not None:
        for f in analysis.faces:
            if f.idx == row.idx and f.crop_jpeg:
                return f.crop_jpeg
    # re-curation of an image analysed in an earlier run: crop again from the stored original
    rgb = decode(layout.absolute(img.path or "").read_bytes()).rgb
    return encode_jpeg(box_crop(rgb, (row.x, row.y, row.w, row.h), margin))


def sweep_orphan_crops(session: Session, person: Person, layout: Layout) -> int:
    """Remove crop files of this person that no row points at (left by a crash)."""
    folder = layout.faces_dir(person.collection.key, person.folder)
    if not folder.is_dir():
        return 0
    known = {
        Path(p).name for p in session.scalars(
            select(Face.crop_path).where(Face.person_id == person.id, Face.crop_path.is_not(None))
        )
    }
    removed = 0
    for path in folder.iterdir():
        if path.is_file() and path.name not in known:
            path.unlink()
            removed += 1
    return removed

