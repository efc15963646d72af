"""Where work runs, decided here and nowhere else.

With a broker configured (``FACEATLAS_BROKER_URL``) people are collected by Celery workers
(``worker/``), on any machine; without one, by this process: the CLI in the foreground, the
server on its one background thread (one thread, so one copy of the face models). This module
holds that thread and the bookkeeping of who this process is collecting or about to collect,
so a second click never collects anyone twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from faceatlas.domain.errors import FaceAtlasError
from faceatlas.settings import Settings

Runner = Literal["celery", "server"]

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceatlas-background")


def distributed(settings: Settings) -> bool:
    """Work goes to the Celery workers (a broker is configured), not to this process."""
    return bool(settings.broker_url)


def runner(settings: Settings) -> Runner:
    return "celery" if distributed(settings) else "server"


def submit(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``fn(*args)`` on this process's background thread, after what is already there."""
    return _executor.submit(fn, *args)


def short_error(exc: BaseException) -> str:
    """What a job row says of a background failure: our own message, else the type alone."""
    text = exc.message if isinstance(exc, FaceAtlasError) else type(exc).__name__
    return text[:500]


class Claims:
    """The people this process is collecting (``busy``) or has handed to its thread and not
    yet started (``scheduled``); every change happens under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy: set[int] = set()
        self.scheduled: set[int] = set()

    def taken(self) -> set[int]:
        """Call with ``lock`` held."""
        return self.busy | self.scheduled

    def start(self, person_id: int) -> bool:
        """The thread reaches a scheduled person: False when they are collected already."""
        with self.lock:
            self.scheduled.discard(person_id)
            if person_id in self.busy:
                return False
            self.busy.add(person_id)
            return True

    def finish(self, person_id: int) -> None:
        with self.lock:
            self.busy.discard(person_id)

    def drop(self, person_ids: Iterable[int]) -> None:
        """Scheduled people that will not be started (the batch stopped)."""
        with self.lock:
            self.scheduled.difference_update(person_ids)


#: this process's claims (the server's background thread)
claims = Claims()
