"""``faceatlas reembed``: analyse a collection's stored photos again with another face engine.

Embeddings of two engines cannot be compared, so switching engines means re-analysing every
stored raw photo and rebuilding the indexes. Per collection: the index is emptied and tagged
for the new engine (once: a resumed run finds it tagged already); then, person by person,
the photos are analysed and decided again with the new engine's thresholds (reviewers'
verdicts carry over by face position), and people who were in the gallery are promoted again.

Resumable: each person's progress is a ``reembed`` job row holding the state they had before
(so a promoted person is promoted again even if the run died between the two steps), and
``people.engine`` marks a person whose faces are all the new engine's. Kill it and run it again:
it continues with the first person not done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from faceatlas.curation.curate import collect, finish_curation, plan_curation
from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.domain.states import JobKind
from faceatlas.faces.analyse import FacePool, face_pool
from faceatlas.faces.engines import ENGINES
from faceatlas.gallery.index import index_store
from faceatlas.gallery.promote import promote_person, unpromote_person
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.jobs import finish_job, start_job, update_job
from faceatlas.store.models import (
    Collection,
    Face,
    Image,
    ImageState,
    Job,
    JobState,
    Person,
    PersonState,
)

KIND = JobKind.REEMBED


@dataclass
class ReembedReport:
    engine: str
    people: int = 0
    done: int = 0  # re-embedded in this run
    skipped: int = 0  # already on the engine (an earlier run)
    promoted: int = 0
    indexes_reset: list[str] = field(default_factory=list)


def reembed(
    settings: Settings,
    engine: str,
    *,
    collection: str | None = None,
    pool: FacePool | None = None,
    on_person: Callable[[int, int, str], None] | None = None,
) -> ReembedReport:
    """Re-analyse every person of ``collection`` (default: all) with ``engine``."""
    if engine not in ENGINES:
        raise FaceAtlasError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    s = settings.model_copy(update={"engine": engine})
    with session_scope(s) as session:
        query = select(Collection)
        if collection is not None:
            query = query.where(Collection.key == collection_key(collection))
        colls = [(c.id, c.key) for c in session.scalars(query)]
        if collection is not None and not colls:
            raise NotFoundError(f"no collection {collection!r}")
        people = [(p.id, p.name, p.collection_id) for p in session.scalars(
            select(Person).where(Person.collection_id.in_([c for c, _ in colls]))
            .order_by(Person.id))]
    report = ReembedReport(engine, people=len(people))
    store = index_store(s)
    search = ENGINES[engine].search  # whose vectors the index holds (the ensemble: SFace's)
    tag = (search.name, search.model_hash)
    for _, key in colls:
        if store.exists(key) and (store.get(key).engine, store.get(key).model_hash) != tag:
            store.update(key, lambda index: index.reset(*tag))
            report.indexes_reset.append(key)
    own_pool = pool is None
    pool = pool or face_pool(s).start()
    try:
        for n, (person_id, name, coll_id) in enumerate(people, start=1):
            if on_person:
                on_person(n - 1, len(people), name)
            if _done(s, person_id, engine):
                report.skipped += 1
                continue
            report.promoted += _reembed_person(s, person_id, coll_id, pool)
            report.done += 1
        if on_person:
            on_person(len(people), len(people), "")
    finally:
        if own_pool:
            pool.close()
    return report


def _done(s: Settings, person_id: int, engine: str) -> bool:
    with session_scope(s) as session:
        person = session.get(Person, person_id)
        if person is None:
            return True
        open_job = session.scalar(select(Job.id).where(
            Job.kind == KIND, Job.person_id == person_id,
            Job.state.in_((JobState.QUEUED, JobState.RUNNING))).limit(1))
        other = session.scalar(select(Face.id).where(
            Face.person_id == person_id, Face.engine != engine).limit(1))
        if open_job is not None or other is not None:
            return False
        # never analysed (queued, downloading…): nothing to re-embed, the pipeline will do it
        analysed = session.scalar(select(Image.id).where(
            Image.person_id == person_id, Image.state == ImageState.ANALYSED).limit(1))
        return person.engine == engine or analysed is None


def _reembed_person(s: Settings, person_id: int, coll_id: int, pool: FacePool) -> int:
    job_id = start_job(s, KIND, person_id, coll_id)
    with session_scope(s) as session:
        job, person = session.get(Job, job_id), session.get(Person, person_id)
        assert job is not None and person is not None
        if not job.message:  # first attempt: remember the state to come back to
            job.message = f"{s.engine}:{person.state}"
        was = job.message.split(":", 1)[1]
    try:
        if was == PersonState.PROMOTED:
            unpromote_person(s, person_id)  # old gallery files and index rows go
        jobs = plan_curation(s, person_id)
        update_job(s, job_id, progress=0.1)
        finish_curation(s, person_id, collect(pool.submit(jobs)))
        promoted = 0
        if was == PersonState.PROMOTED:
            promote_person(s, person_id)
            promoted = 1
        finish_job(s, job_id)
        return promoted
    except FaceAtlasError as exc:
        finish_job(s, job_id, error=str(exc))
        raise
