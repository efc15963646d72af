"""One person's way from name to curated faces, and the queue that runs it.

A person moves ``queued → searching → downloading → curating → curated`` (or ``failed`` with
the reason and the attempt count). Every step reads its input from the database and commits
its result, so killing the process at any moment loses nothing: the next run resumes each
unfinished person at the step it had reached. Raw files are named by content hash and written
atomically before their rows commit; a file a crash left without a row is swept away.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceatlas.curation.apply import CurationReport
from faceatlas.curation.curate import curate_person
from faceatlas.curation.references import add_reference, download_references
from faceatlas.domain.errors import AuthError, ConfigError, FaceAtlasError, ProviderError
from faceatlas.domain.names import collection_key
from faceatlas.faces.analyse import FacePool, face_pool
from faceatlas.names.resolve import resolve_person
from faceatlas.settings import Settings
from faceatlas.sources.base import ImageSearchProvider, PersonQuery, person_hits
from faceatlas.sources.commons import portrait_path, portrait_url
from faceatlas.sources.download import DownloadItem, DownloadResult, download_all_sync
from faceatlas.store.anchors import PORTRAIT_SOURCE
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.jobs import finish_job, start_job, update_job
from faceatlas.store.models import Attempt, Image, ImageState, JobKind, Person, PersonState, Reason
from faceatlas.store.models import Collection as CollectionRow

log = logging.getLogger(__name__)

UNFINISHED = (PersonState.QUEUED, PersonState.SEARCHING, PersonState.DOWNLOADING,
              PersonState.CURATING)

#: ``on_images(done, total, stage)`` while one person's images are downloaded or analysed
ImageProgress = Callable[[int, int, str], None]


@dataclass
class Fetched:
    """The first half of the step, searched and downloaded (``error``: the person failed)."""

    person_id: int
    name: str
    error: str | None = None


@dataclass
class Collected:
    """What collecting one person came to: curated (``report``), or failed (``error``, and no
    report when the person failed before or during curation)."""

    person_id: int
    name: str
    report: CurationReport | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def pending_people(settings: Settings, collection: str | None = None, *,
                   retry_failed: bool = False, limit: int | None = None) -> list[int]:
    """People with work left, oldest first (resumed ones included)."""
    states = (*UNFINISHED, PersonState.FAILED) if retry_failed else UNFINISHED
    with session_scope(settings) as s:
        query = select(Person.id).where(Person.state.in_(states)).order_by(Person.id)
        if collection:  # by id: people(collection_id, state) answers it (100k people)
            cid = s.scalar(select(CollectionRow.id).where(
                CollectionRow.key == collection_key(collection)))
            if cid is None:
                return []
            query = query.where(Person.collection_id == cid)
        if limit:
            query = query.limit(limit)
        return list(s.scalars(query))


def search_person(settings: Settings, person_id: int, provider: ImageSearchProvider) -> int:
    """Store the search hits of a person once (one query per occupation, capped)."""
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        assert person is not None
        person.state = PersonState.SEARCHING
        if s.scalar(select(Image.id).where(Image.person_id == person_id).limit(1)):
            return 0  # searched before a crash: the hits are stored
        who = PersonQuery(person.name, tuple(person.occupations), person.wikidata_qid, person_id)
    name = who.name
    hits = person_hits(provider, who, settings.max_downloads_per_person, settings.search_limit)
    with session_scope(settings) as s:
        for rank, hit in enumerate(hits):
            s.add(Image(
                person_id=person_id, origin=hit.url[:2000], provider=hit.provider or "rapidapi",
                query=hit.query, rank=rank, url=hit.url, thumbnail_url=hit.thumbnail_url,
                page_url=hit.source_url, title=hit.title, width=hit.width, height=hit.height,
                state=ImageState.PENDING, detail=hit.detail, licence=hit.licence,
                licence_url=hit.licence_url, author=hit.author,
            ))
    if not hits:
        raise FaceAtlasError(f"the image search found nothing for {name!r}")
    return len(hits)


def download_person(settings: Settings, person_id: int, *, trusted: Collection[str] = (),
                    progress: ImageProgress | None = None) -> int:
    """Download the person's pending hits; every attempt is recorded, each file stored once."""
    layout = Layout(settings.home)
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        assert person is not None
        person.state = PersonState.DOWNLOADING
        collection, folder = person.collection.key, person.folder
        pending = s.scalars(select(Image).where(Image.person_id == person_id,
                                                Image.state == ImageState.PENDING)).all()
        items = [DownloadItem(img.id, img.url or img.origin, img.thumbnail_url) for img in pending]
    done = 0

    def tick(_: DownloadResult) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(items), "download")

    results = download_all_sync(items, settings=settings, trusted=trusted, progress=tick)
    with session_scope(settings) as s:
        stored = {sha: path for sha, path in s.execute(
            select(Image.sha256, Image.path).where(Image.person_id == person_id,
                                                   Image.path.is_not(None)))}
        for result in results:
            _store_download(s, layout, collection, folder, result, stored)
    return sum(r.ok for r in results)


def _store_download(s: Session, layout: Layout, collection: str, folder: str,
                    result: DownloadResult, stored: dict[str | None, str | None]) -> None:
    img = s.get(Image, result.key)
    if img is None:
        return
    for a in result.attempts:
        s.add(Attempt(image_id=img.id, url=a.url[:4000], status=a.status, bytes=a.bytes,
                      sha256=a.sha256, error=a.error, elapsed_ms=a.elapsed_ms))
    if not result.ok or result.content is None:
        img.state, img.reason = ImageState.FAILED, Reason.DOWNLOAD_FAILED
        img.detail = result.reason
        return
    sha = result.sha256 or hashlib.sha256(result.content).hexdigest()
    path = stored.get(sha)
    if path is None:  # the same bytes from two URLs are stored once
        ext = {"image/png": "png", "image/gif": "gif", "image/webp": "webp"}.get(
            (result.content_type or "").split(";")[0].strip(), "jpg")
        dest = layout.raw_file(collection, folder, sha, ext)
        atomic_write(dest, result.content)
        path = stored[sha] = layout.relative(dest)
    img.sha256, img.path, img.bytes = sha, path, len(result.content)
    img.width, img.height = result.width or img.width, result.height or img.height
    img.state = ImageState.FETCHED
    if result.url_reason:
        img.detail = f"{result.url_reason}; the thumbnail was used"


def sweep_orphan_raw(settings: Settings, person_id: int) -> int:
    """Delete raw files of the person that no image row points at (a crash's leftovers)."""
    layout = Layout(settings.home)
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        if person is None:
            return 0
        folder = layout.raw_dir(person.collection.key, person.folder)
        known = set(s.scalars(select(Image.path).where(Image.person_id == person_id)))
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if path.is_file() and layout.relative(path) not in known:
            path.unlink()
            removed += 1
    return removed


def _portrait_reference(settings: Settings, person_id: int) -> None:
    """The person's Wikidata portrait (P18) is their trusted reference, whatever source found
    the other photos: curation then takes the identity nearest to it (issue 9's references)."""

    path = portrait_path(settings, person_id)
    if path is not None:
        add_reference(settings, person_id, path=path, root=settings.home, source=PORTRAIT_SOURCE)
        return
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        qid = person.wikidata_qid if person else None
    if not qid:
        return
    try:  # e.g. photos from RapidAPI, names from Wikidata: ask Commons for the portrait
        url = portrait_url(qid, settings)
    except (ProviderError, ValueError) as exc:
        log.info("no portrait reference for person %s: %s", person_id, exc)
        return  # Commons being unreachable must not fail the person
    if url:
        add_reference(settings, person_id, url=url, source=PORTRAIT_SOURCE)


def anchor_person(settings: Settings, person_id: int, *,
                  trusted: Collection[str] = ()) -> None:
    """Give the person their anchor before curation: a name without a Q-id is looked up on
    Wikidata (``names/resolve.py``; Wikidata down leaves them unanchored, asked again next
    time), the Q-id's portrait becomes a reference, and reference photos are fetched (they
    are measured with the candidates)."""
    resolve_person(settings, person_id)
    _portrait_reference(settings, person_id)
    download_references(settings, person_id, trusted)


def fetch_person(settings: Settings, person_id: int, provider: ImageSearchProvider, *,
                 trusted: Collection[str] = (), progress: ImageProgress | None = None) -> Fetched:
    """Search and download one person; a failure marks the person failed (not the run).

    A bad or missing API key stops the whole run instead: every later person would fail too.
    """
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        assert person is not None
        name = person.name
        if person.state == PersonState.FAILED:  # a retry gives failed downloads another go
            for img in s.scalars(select(Image).where(Image.person_id == person_id,
                                                     Image.state == ImageState.FAILED)):
                img.state, img.reason, img.detail = ImageState.PENDING, None, None
    try:
        search_person(settings, person_id, provider)
        download_person(settings, person_id, trusted=trusted, progress=progress)
        anchor_person(settings, person_id, trusted=trusted)
        sweep_orphan_raw(settings, person_id)
        with session_scope(settings) as s:
            fetched = s.scalar(select(func.count()).where(Image.person_id == person_id,
                                                          Image.path.is_not(None)))
            if not fetched:
                reasons = Counter(s.scalars(select(Image.detail).where(
                    Image.person_id == person_id)))
                summary = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
                raise FaceAtlasError(f"no photo could be downloaded ({summary})")
        return Fetched(person_id, name)
    except (AuthError, ConfigError):
        raise
    except FaceAtlasError as exc:
        mark_failed(settings, person_id, str(exc))
        return Fetched(person_id, name, error=str(exc))


def mark_failed(settings: Settings, person_id: int, error: str) -> None:
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        if person is not None:
            person.state, person.error = PersonState.FAILED, error[:2000]
            person.attempts += 1


def curate_fetched(settings: Settings, person_id: int, pool: FacePool,
                   progress: ImageProgress | None = None) -> CurationReport:
    """Curate the fetched person (one more attempt counted)."""

    def tick(done: int, total: int) -> None:
        if progress:
            progress(done, total, "faces")

    report = curate_person(settings, person_id, pool=pool, progress=tick)
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        if person is not None:
            person.attempts += 1
    return report


class JobProgress:
    """An :data:`ImageProgress` that also writes the job row (at most once a second, and
    always at the end of a stage), so the Jobs page shows live progress whichever driver
    runs the work: downloads fill the first half of the bar, curation the second."""

    def __init__(self, settings: Settings, job_id: int, then: ImageProgress | None = None,
                 every: float = 1.0) -> None:
        self.settings, self.job_id, self.then, self.every = settings, job_id, then, every
        self._last = float("-inf")  # the first step is always written

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self.then:
            self.then(done, total, stage)
        now = time.monotonic()
        if done < total and now - self._last < self.every:
            return
        self._last = now
        share = done / total if total else 1.0
        if stage == "download":
            update_job(self.settings, self.job_id, progress=round(0.05 + 0.45 * share, 3),
                       message=f"downloading: {done} of {total} photos")
        else:
            update_job(self.settings, self.job_id, progress=round(0.5 + 0.5 * share, 3),
                       message=f"curating: {done} of {total} photos analysed")


def collect_person(settings: Settings, person_id: int, *, provider: ImageSearchProvider,
                   pool: FacePool, trusted: Collection[str] = (), job_id: int | None = None,
                   fetched: Fetched | None = None, on_images: ImageProgress | None = None,
                   fail_on: tuple[type[BaseException], ...] = (),
                   ) -> Collected:
    """The whole pipeline for one person: search → download → curate, under one job row.

    Every driver (the ``collect`` loop, a Celery worker, the server's background thread) runs
    this, so they share one failure policy:
    - a :class:`FaceAtlasError` at any step (no photo found, curation refused) fails the
      *person*: state ``failed`` with the error, attempts counted, job failed; the result
      has ``error`` set, and ``recollect``/``--retry-failed`` take it up;
    - :class:`AuthError`/:class:`ConfigError` stop the caller (every later person would fail
      the same way): the job says why, the person goes back to ``queued`` (see
      :func:`stopped`) and resumes where their stored work ends;
    - anything else (a bug, a lost database) fails the job and propagates (a worker retries
      transient errors, the loop stops and the next run resumes the person) — unless it is
      one of ``fail_on``: a driver that never retries (the server's background thread) or
      that must give up (a worker's time limit) fails the person then, as for a
      ``FaceAtlasError``, so nobody is left ``curating`` with no one at work.

    ``fetched`` is the result of a :func:`fetch_person` the caller ran ahead (the loop
    downloads the next person while this one is curated).
    """
    job = job_id or start_job(settings, JobKind.COLLECT, person_id)
    progress = JobProgress(settings, job, on_images)
    try:
        if fetched is None:
            update_job(settings, job, progress=0.0, message="searching")
            fetched = fetch_person(settings, person_id, provider, trusted=trusted,
                                   progress=progress)
        if fetched.error:
            finish_job(settings, job, error=fetched.error)
            return Collected(person_id, fetched.name, error=fetched.error)
        update_job(settings, job, progress=0.5, message="curating")
        report = curate_fetched(settings, person_id, pool, progress)
    except (AuthError, ConfigError) as exc:
        stopped(settings, person_id, job, exc)
        raise
    except (FaceAtlasError, *fail_on) as exc:  # fetching handled its own FaceAtlasErrors
        error = failure_text(exc)
        mark_failed(settings, person_id, error)  # the person first: the job row is the signal
        finish_job(settings, job, error=error)
        return Collected(person_id, fetched.name if fetched else str(person_id), error=error)
    except BaseException as exc:
        finish_job(settings, job, error=f"{type(exc).__name__}: {exc}")
        raise
    outcome = (f"person failed: {report.failure}" if report.failure else
               f"{report.accepted} faces accepted of {report.candidates} photos")
    finish_job(settings, job, message=outcome)
    return Collected(person_id, fetched.name, report)


def stopped(settings: Settings, person_id: int, job_id: int, exc: BaseException) -> None:
    """A run stopped by a bad key or setting: the job says why, and the person goes back to
    ``queued`` (not left ``searching``/``curating``, which look busy to a reviewer while
    nobody works on them); the next run resumes them where their stored work ends."""
    finish_job(settings, job_id, error=f"{type(exc).__name__}: {exc}")
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        if person is not None and person.state in UNFINISHED:
            person.state = PersonState.QUEUED


def failure_text(exc: BaseException) -> str:
    """What a failed person's ``error`` says: our own message, else the exception's type
    (and its text, which names no secret: ours never carry keys)."""
    if isinstance(exc, FaceAtlasError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class CollectSummary:
    curated: list[CurationReport]
    failed: list[Collected]


def collect_people(
    settings: Settings,
    person_ids: Sequence[int],
    provider: ImageSearchProvider,
    *,
    trusted: Collection[str] = (),
    on_person: Callable[[Collected], None] | None = None,
    on_images: ImageProgress | None = None,
) -> CollectSummary:
    """Collect many people; the next person downloads while the current one is curated."""
    summary = CollectSummary([], [])
    if not person_ids:
        return summary
    with face_pool(settings).start() as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="fetch") as fetcher:
        def fetch(pid: int) -> tuple[int, Fetched]:
            job = start_job(settings, JobKind.COLLECT, pid)
            try:
                update_job(settings, job, progress=0.0, message="searching")
                return job, fetch_person(settings, pid, provider, trusted=trusted,
                                         progress=JobProgress(settings, job, on_images))
            except BaseException as exc:  # the same policy as inside collect_person
                if isinstance(exc, AuthError | ConfigError):
                    stopped(settings, pid, job, exc)
                else:
                    finish_job(settings, job, error=failure_text(exc))
                raise

        upcoming: Future[tuple[int, Fetched]] = fetcher.submit(fetch, person_ids[0])
        for i in range(len(person_ids)):
            job, fetched = upcoming.result()  # AuthError/ConfigError stop the run here
            if i + 1 < len(person_ids):
                upcoming = fetcher.submit(fetch, person_ids[i + 1])
            result = collect_person(settings, fetched.person_id, provider=provider, pool=pool,
                                    job_id=job, fetched=fetched, on_images=on_images)
            if result.report is None:
                summary.failed.append(result)
            else:
                summary.curated.append(result.report)
            if on_person:
                on_person(result)
    return summary
