"""Stage 3 for one stored person: analyse their new photos, decide, store, arbitrate.

``plan_curation`` says which files still need the face workers, ``collect`` gathers their
analyses, ``finish_curation`` stores them, decides every image (``decide.py``, pure), writes
the decisions and crops (``apply.py``), then compares the person with the rest of their
collection (``arbitrate.py``) and decides again if that moved faces.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.curation.apply import CurationReport, redecide_in, store_analyses
from faceatlas.curation.arbitrate import arbitrate_in
from faceatlas.curation.decide import CurateParams
from faceatlas.curation.references import reference_jobs, store_reference_analyses
from faceatlas.domain.errors import NotFoundError
from faceatlas.faces.analyse import FacePool, ImageAnalysis
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import (
    Face,
    Image,
    ImageState,
    Person,
    PersonState,
    Reason,
    Reference,
)
from faceatlas.store.queries import image_rows

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
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"person {person_id} does not exist (deleted meanwhile?)")
        return plan_person(session, person, settings)


def plan_person(session: Session, person: Person, settings: Settings) -> list[tuple[int, str]]:
    """:func:`plan_curation` inside the caller's transaction."""
    return plan_people(session, [person], settings)[0]


def plan_people(session: Session, people: Sequence[Person], settings: Settings
                ) -> list[list[tuple[int, str]]]:
    """:func:`plan_person` for each of ``people`` (distinct), their photos, references and
    whether they hold another engine's faces read with one query each (per 500 people), not
    one each per person."""
    layout = Layout(settings.home)
    images: dict[int, list[Image]] = defaultdict(list)
    refs: dict[int, list[Reference]] = defaultdict(list)
    other_engine: set[int] = set()  # people with faces another engine measured
    ids = [person.id for person in people]
    for chunk in chunked(ids):
        other_engine.update(session.scalars(
            select(Face.person_id).where(Face.person_id.in_(chunk),
                                         Face.engine != settings.engine).distinct()))
        for img in session.scalars(
                select(Image).where(Image.person_id.in_(chunk), Image.path.is_not(None))
                .order_by(Image.person_id, Image.rank.nulls_last(), Image.id)):
            images[img.person_id].append(img)
        for ref in session.scalars(select(Reference).where(Reference.person_id.in_(chunk))
                                   .order_by(Reference.person_id, Reference.id)):
            refs[ref.person_id].append(ref)
    plans = []
    for person in people:
        person.state = PersonState.CURATING
        # embeddings of another engine cannot be compared with new ones: analyse all again
        stale = person.engine != settings.engine or person.id in other_engine
        todo = _mark_exact_duplicates(images[person.id], reanalyse=stale)
        jobs = [(img.id, str(layout.absolute(img.path or ""))) for img in todo]
        # reference photos are measured again by a new engine too
        plans.append(jobs + reference_jobs(refs[person.id], remeasure=stale))
    return plans


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
    params = CurateParams.from_settings(settings, strategy)
    references = {k: a for k, a in fresh.items() if k < 0}
    fresh = {k: a for k, a in fresh.items() if k >= 0}
    # one transaction: the analyses are stored with their decisions (a crash loses both,
    # and the photos are analysed again), arbitration's moves with what they move
    with session_scope(settings) as session:
        images = image_rows(session, person_id)  # read once for storing and deciding
        store_analyses(session, fresh, images)
        store_reference_analyses(session, references)
        report = redecide_in(session, settings, person_id, params, fresh, images)
        if params.strategy == "consensus" and params.arbitrate and report.failure is None:
            # losing faces re-decided this person already: that is the answer
            report = arbitrate_in(session, settings, person_id,
                                  params).redecided.get(person_id, report)
    report.new_images = len(fresh)
    for analysis in [*fresh.values(), *references.values()]:
        report.timings.update(analysis.timings)
        report.peak_rss_kb = max(report.peak_rss_kb, analysis.peak_rss_kb)
    return report


def _mark_exact_duplicates(images: Sequence[Image], reanalyse: bool = False) -> list[Image]:
    """Same bytes twice for one person (``images`` in rank order): analyse the first, mark
    the others."""
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
