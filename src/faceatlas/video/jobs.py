"""Video recognition as a background job (``POST /api/v1/recognize/video``).

The upload is copied to ``video/<job>/clip.<ext>`` under the home (size-limited while it is
copied), probed (size, length, frame size under the photo decode budget, and every packet's
time inside the declared length), and the collection checked *before* the job starts, so a
bad file or a missing collection is the caller's error at once. One background thread per
server process runs the jobs in turn; at most ``video_queue`` wait behind it, more get
BusyError (503 + Retry-After) before the upload is even copied. Each job borrows an engine
from the server's engine pool; the job row carries the progress (frames done / expected),
and ``result.json`` with one thumbnail per track lands next to the clip, which is deleted
when the job ends.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import select

from faceatlas.domain.errors import BusyError, FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.faces.engines import FaceEngine
from faceatlas.faces.image import release_memory
from faceatlas.gallery.index import IndexStore
from faceatlas.gallery.sightings import Where
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.jobs import finish_job, update_job, worker_name
from faceatlas.store.models import Collection, Job, JobKind, JobState
from faceatlas.video.reader import VideoError, VideoLimits, check_timestamps, probe
from faceatlas.video.recognize import answer, recognize_video

log = logging.getLogger(__name__)

KIND = JobKind.VIDEO
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceatlas-video")
_lock = threading.Lock()
_active = 0  # jobs submitted and not finished, the running one included


def _reserve(settings: Settings) -> None:
    """A place in the video queue, or BusyError: one job runs, ``video_queue`` may wait."""
    global _active
    with _lock:
        if _active >= 1 + settings.video_queue:
            raise BusyError(f"{_active} video jobs are running or waiting (the limit is "
                            f"{1 + settings.video_queue}): try again later",
                            retry_after=max(1, settings.busy_retry_after))
        _active += 1


def _release() -> None:
    global _active
    with _lock:
        _active = max(0, _active - 1)


class Engines(Protocol):
    def engine(self) -> AbstractContextManager[FaceEngine]: ...


def start_video_job(
    settings: Settings,
    stream: IO[bytes],
    filename: str,
    *,
    collection: str | None = None,
    fps: float | None = None,
    engines: Engines | None = None,
    store: IndexStore | None = None,
    where: Where | None = None,
) -> int:
    """Copy the upload, check it, start the job; returns the job id. ``where``: record the
    clip's tracks as sightings (if the collection records them)."""
    _reserve(settings)
    try:
        job_id, clip, key = _accept(settings, stream, filename, collection)
        update_job(settings, job_id, progress=0.0,
                   message=f"queued: {Path(filename).name[:100]}")
        name = Path(filename or clip.name).name[:200]
        if where is not None:  # the client's clip name, not our staging name
            where = replace(where, clip=where.clip or name)
        _executor.submit(_run, settings, job_id, clip, key, fps, engines, store, name, where)
    except BaseException:
        _release()  # the job never reached the queue
        raise
    return job_id


def _accept(settings: Settings, stream: IO[bytes], filename: str, collection: str | None
            ) -> tuple[int, Path, str]:
    layout = Layout(settings.home)
    staging = layout.home / "video" / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    ext = Path(filename or "").suffix.lower()
    ext = ext if ext[1:].isalnum() and len(ext) <= 6 else ".bin"
    tmp = staging / f"upload-{uuid.uuid4().hex}{ext}"  # the client's name never reaches a path
    try:
        try:
            _copy_limited(stream, tmp, settings.video_max_bytes)
            limits = VideoLimits.from_settings(settings)
            info = probe(tmp, limits=limits)
            check_timestamps(tmp, info, limits=limits)
        except VideoError as exc:  # our own words, with the client's file name in them
            label = repr(Path(filename or "upload").name[:80])
            safe = VideoError(exc.message.replace(tmp.name, label), code=exc.code)
            safe.client_safe = True  # type: ignore[attr-defined]
            raise safe from None
        key = collection_key(collection or settings.default_collection)
        with session_scope(settings) as session:
            coll_id = session.scalar(select(Collection.id).where(Collection.key == key))
        if coll_id is None:
            raise NotFoundError(f"no collection {collection or settings.default_collection!r}")
        job_id = _new_job(settings, coll_id)
        folder = layout.video_job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        clip = folder / f"clip{ext}"
        tmp.replace(clip)
    finally:
        tmp.unlink(missing_ok=True)
    return job_id, clip, key


def _new_job(settings: Settings, collection_id: int) -> int:
    """A fresh job row every time (``start_job`` would resume an open job of the same kind)."""
    with session_scope(settings) as s:
        job = Job(kind=KIND, collection_id=collection_id, attempts=1, state=JobState.RUNNING,
                  worker=worker_name(), heartbeat=datetime.now(timezone.utc))
        s.add(job)
        s.flush()
        return job.id


def _copy_limited(stream: IO[bytes], dest: Path, limit: int) -> None:
    stream.seek(0)
    written = 0
    with open(dest, "wb") as out:
        while chunk := stream.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise VideoError(f"the video is over the {limit} byte limit",
                                 code="video_too_large")
            out.write(chunk)
    if written == 0:
        raise VideoError("the upload is empty (0 bytes)", code="not_a_video")


def _run(settings: Settings, job_id: int, clip: Path, collection: str, fps: float | None,
         engines: Engines | None, store: IndexStore | None, name: str,
         where: Where | None = None) -> None:
    folder = clip.parent

    def progress(done: int, total: int) -> None:
        if done == total or done % 5 == 0:  # a row update every few frames is plenty
            update_job(settings, job_id, progress=min(0.99, done / max(total, 1)),
                       message=f"{name}: {done} of ~{total} frames")

    try:
        if engines is not None:
            with engines.engine() as engine:
                result = recognize_video(clip, settings, collection=collection, fps=fps,
                                         engine=engine, store=store, progress=progress,
                                         where=where)
        else:
            result = recognize_video(clip, settings, collection=collection, fps=fps,
                                     store=store, progress=progress, where=where)
        data = answer(result)
        data["clip"] = name
        for track in result.tracks:
            pic = next((o.frame_jpeg for o in track.best if o.frame_jpeg), None)
            if pic:
                atomic_write(folder / "thumbs" / f"{track.id}.jpg", pic)
        atomic_write(folder / "result.json", json.dumps(data, ensure_ascii=False).encode())
    except FaceAtlasError as exc:
        finish_job(settings, job_id, error=f"{exc.code}: {exc.message}"[:500])
    except Exception as exc:  # the job row is where a background failure is reported
        log.exception("video job %s failed", job_id)
        finish_job(settings, job_id, error=f"internal error: {type(exc).__name__}")
    else:
        update_job(settings, job_id, message=f"{name}: {result.analysis.samples} frames, "
                   f"{len(result.tracks)} tracks" + (" (partial)" if data["partial"] else ""))
        finish_job(settings, job_id)
    finally:
        clip.unlink(missing_ok=True)
        _release()
        release_memory(force=True)  # a clip's frames and decoder buffers: back to the system


def video_job(settings: Settings, job_id: int) -> dict[str, Any]:
    """The job's state and, once done, its result."""
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None or job.kind != KIND:
            raise NotFoundError(f"no video job with id {job_id}")
        out: dict[str, Any] = {"job_id": job.id, "state": job.state, "progress": job.progress,
                               "message": job.message, "error": job.error, "result": None}
    path = Layout(settings.home).video_job_dir(job_id) / "result.json"
    if out["state"] == JobState.DONE and path.is_file():
        out["result"] = json.loads(path.read_text("utf-8"))
    return out


def video_thumbnail(settings: Settings, job_id: int, track: int) -> bytes:
    path = Layout(settings.home).video_job_dir(job_id) / "thumbs" / f"{int(track)}.jpg"
    if not path.is_file():
        raise NotFoundError(f"no thumbnail for track {track} of job {job_id}")
    return path.read_bytes()
