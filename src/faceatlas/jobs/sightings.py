"""The sightings retention purge, on its own: the server submits ``gallery.sightings.purge``
to this process's background thread (``jobs.runner.submit``) every
``sightings_purge_seconds``, the first time at start-up."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from faceatlas.gallery.sightings import purge
from faceatlas.jobs.runner import submit
from faceatlas.settings import Settings

log = logging.getLogger(__name__)


def purge_quietly(settings: Settings) -> None:
    """One purge; a failure is logged (and tried again next time), never raised."""
    try:
        for key, gone in purge(settings).items():
            log.info("sightings purge: %s: %d sightings, %d crops", key, gone.sightings,
                     gone.files)
    except Exception:
        log.exception("sightings purge failed")


def start_purge_timer(settings: Settings) -> Callable[[], None]:
    """Start the timer; returns the function that stops it. 0 seconds: no timer."""
    stop = threading.Event()
    interval = settings.sightings_purge_seconds
    if interval <= 0:
        return stop.set

    def loop() -> None:
        pending: Future[Any] | None = None
        while not stop.is_set():
            if pending is None or pending.done():  # a long batch ahead: one purge waits, not n
                pending = submit(purge_quietly, settings)
            stop.wait(interval)

    threading.Thread(target=loop, name="faceatlas-sightings-purge", daemon=True).start()
    return stop.set
