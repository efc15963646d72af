"""Decisions written down: faces and reasons on the rows, accepted crops on disk.

``redecide`` decides a stored person again from their stored analyses (no model needed) and
syncs their crop files; curation, arbitration and a reviewer's corrections all end in it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from faceatlas.curation.decide import CurateParams, decide
from faceatlas.curation.evidence import text_evidence
from faceatlas.curation.references import (
    reference_vectors,
)
from faceatlas.domain.errors import NotFoundError
from faceatlas.domain.faces import LEGACY_ENGINE, LEGACY_MODEL_HASH
from faceatlas.faces.analyse import FaceAnalysis, ImageAnalysis
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop, encode_jpeg, iou
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
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
from faceatlas.store.queries import image_rows


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


def redecide(
    settings: Settings,
    person_id: int,
    params: CurateParams | None = None,
    fresh: dict[int, ImageAnalysis] | None = None,
) -> CurationReport:
    """Decide the person's stored analyses again (no model needed) and sync crops.

    The person ends ``curated``, or ``failed`` when their references match no face."""
    params = params or CurateParams.from_settings(settings)
    with session_scope(settings) as session:
        return redecide_in(session, settings, person_id, params, fresh)


def redecide_in(
    session: Session,
    settings: Settings,
    person_id: int,
    params: CurateParams,
    fresh: dict[int, ImageAnalysis] | None = None,
    images: Sequence[Image] | None = None,
) -> CurationReport:
    """:func:`redecide` inside the caller's transaction (curation stores, decides and
    arbitrates in one); ``images``: :func:`image_rows`, if read already."""
    person = session.get(Person, person_id, options=[joinedload(Person.collection)])
    if person is None:
        raise NotFoundError(f"person {person_id} does not exist (deleted meanwhile?)")
    report = apply_decisions(session, person, params, Layout(settings.home), fresh or {},
                             settings.crop_margin, images)
    if report.failure:
        person.state = PersonState.FAILED
        person.error = f"{report.failure}: {report.failure_detail}"
    else:
        person.state = PersonState.CURATED
        person.error = None
    if fresh or person.engine is None:
        person.engine = settings.engine
    return report


def store_analyses(session: Session, fresh: dict[int, ImageAnalysis],
                   images: Sequence[Image] = ()) -> None:
    """Store new analyses: the image's faces are replaced. ``images``: those already read
    with their faces (:func:`image_rows`); the others are read here, in two queries per
    500, not two per image. Their face collections stay true in memory."""
    if not fresh:
        return
    loaded = {img.id: img for img in images if img.id in fresh}
    keys = [key for key in fresh if key not in loaded]
    for chunk in chunked(keys):
        loaded.update((img.id, img) for img in session.scalars(
            select(Image).where(Image.id.in_(chunk))
            .options(selectinload(Image.faces))))
    # a reviewer's verdict on a face survives its re-analysis (another engine: reembed)
    verdicts = {key: [((o.x, o.y, o.w, o.h), o.reason) for o in img.faces
                      if o.reason in (Reason.REJECTED_BY_USER, Reason.ACCEPTED_BY_USER)]
                for key, img in loaded.items()}
    replaced = [img for img in loaded.values() if img.faces]
    for img in replaced:  # re-analysis replaces, never duplicates: the orphans are deleted
        img.faces.clear()
    if replaced:  # before the new rows take their (image, idx)
        session.flush()
    for key, a in fresh.items():
        img = loaded.get(key)
        if img is None:  # deleted meanwhile
            continue
        img.state = ImageState.ANALYSED
        img.width, img.height = a.width or img.width, a.height or img.height
        img.reason = a.error
        if a.error:
            img.detail = a.detail
        for f in a.faces:
            x, y, w, h = f.box
            img.faces.append(Face(
                image_id=key, person_id=img.person_id, idx=f.idx, x=x, y=y, w=w, h=h,
                landmarks=f.landmarks, det_score=f.score, blur=f.blur,
                embedding=None if f.embedding is None else f.embedding.astype(np.float32).tobytes(),
                phash=None if f.phash is None else f"{f.phash}:{f.phash_mirror}",
                reason=_verdict(f.box, verdicts[key]) or f.reason or Reason.NOT_THIS_PERSON,
                state=FaceState.REJECTED, engine=a.engine or LEGACY_ENGINE,
                model_hash=a.model_hash or LEGACY_MODEL_HASH,
            ))
    session.flush()


def _verdict(box: tuple[int, int, int, int], verdicts: list[tuple[tuple[int, int, int, int], str]]
             ) -> str | None:
    """The reviewer's reason of the old face this box is (overlap over half), if any."""
    return next((reason for old, reason in verdicts if iou(box, old) > 0.5), None)


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


def apply_decisions(
    session: Session,
    person: Person,
    params: CurateParams,
    layout: Layout,
    fresh: dict[int, ImageAnalysis],
    crop_margin: float,
    images: Sequence[Image] | None = None,
) -> CurationReport:
    """Decide the person's analysed images (``images``: :func:`image_rows`, if read
    already) and write the decisions and crops."""
    if images is None:
        images = image_rows(session, person.id)
    images = [img for img in images if img.state == ImageState.ANALYSED]
    candidates, seen = [], set()
    for img in images:  # same bytes as an earlier image: never analysed, always a duplicate
        if img.sha256 not in seen:
            seen.add(img.sha256)
            candidates.append(img)
        else:
            img.reason = Reason.DUPLICATE
    analyses = [analysis_from_rows(img) for img in candidates]
    excluded = {(img.id, row.idx) for img in candidates for row in img.faces
                if row.reason == Reason.OTHER_PERSON}
    evidence = text_evidence(session, person, [(img.id, img.title, img.page_url)
                                               for img in candidates])
    decisions = decide(analyses, params, references=reference_vectors(session, person.id),
                       exclude=excluded, against=evidence)
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
                row.other_person_id = None
                row.detail = decisions.notes.get((img.id, row.idx))  # the text's evidence
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
