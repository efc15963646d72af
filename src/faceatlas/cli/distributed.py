"""Scale-out commands: ``worker`` (a Celery worker) and ``status`` (the job rows, any mode)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from faceatlas.cli.base import app, console, friendly, state_label
from faceatlas.domain.errors import ConfigError
from faceatlas.domain.states import PersonState
from faceatlas.settings import get_settings

STATE_ORDER = [PersonState.QUEUED, PersonState.SEARCHING, PersonState.DOWNLOADING,
               PersonState.CURATING, PersonState.CURATED, PersonState.TOO_FEW_FACES,
               PersonState.PROMOTED, PersonState.FAILED]


@app.command()
@friendly
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c",
                                 help="People worked on at once (processes); default: cores.")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a worker: takes people from the broker queue and runs their whole pipeline."""
    from faceatlas.jobs.worker import prepare_database
    from faceatlas.jobs.worker.tasks import app as celery_app
    from faceatlas.jobs.worker.tasks import configure
    from faceatlas.store import db

    settings = get_settings()
    if not settings.broker_url:
        raise ConfigError("no broker: set FACEATLAS_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    prepare_database(settings)  # fail fast on a bad URL; migrate once, not per process
    db.reset_caches()  # no database connection may cross the fork into the pool processes
    configure(celery_app, settings)
    celery_app.worker_main([
        "worker", "--pool", "prefork", "--concurrency", str(concurrency or settings.worker_count),
        "--queues", settings.queue, "--loglevel", loglevel, "--without-gossip", "--without-mingle",
        "--hostname", f"faceatlas-{os.getpid()}@%h",
    ])


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}min ago"


@app.command()
@friendly
def status(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
) -> None:
    """People by state, running jobs (worker, heartbeat) and failures, per collection."""
    from faceatlas.domain.names import collection_key
    from faceatlas.jobs.worker import collection_status

    shown = [c for c in collection_status(get_settings())
             if collection is None or c.key == collection_key(collection)]
    if not shown:
        console.print(f"no collection {collection!r}" if collection else
                      "no collections yet (add people with [bold]faceatlas names[/])")
        return
    for coll in shown:
        states = [s for s in STATE_ORDER if coll.counts.get(s)] + sorted(
            s for s in coll.counts if s not in STATE_ORDER)
        table = Table(title=f"{coll.name} ({coll.key})", title_justify="left")
        for state in [*states, "total"]:
            table.add_column(state_label(state) if state != "total" else "total",
                             justify="right")
        table.add_row(*[str(coll.counts[s]) for s in states], str(sum(coll.counts.values())))
        console.print(table)
        if coll.queued_jobs:
            console.print(f"  {coll.queued_jobs} job(s) waiting for a worker")
        if coll.running:
            running = Table(title="running", title_justify="left")
            for col in ("job", "person", "stage", "worker", "heartbeat", "attempts"):
                running.add_column(col)
            for r in coll.running:
                beat = _age(r.heartbeat_age)
                running.add_row(str(r.job_id), r.person, r.stage, r.worker or "?",
                                f"[red]{beat} (stale)[/]" if r.stale else beat, str(r.attempts))
            console.print(running)
        if coll.failures:
            failed = Table(title="failures", title_justify="left")
            failed.add_column("person")
            failed.add_column("reason")
            for name, reason in coll.failures[:50]:
                failed.add_row(name, reason)
            console.print(failed)
