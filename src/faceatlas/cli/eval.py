"""``faceatlas eval``: compare face engines on a labelled folder (`gallery.evaluate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceatlas.cli.base import app, console, friendly, progress_bar
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.faces.engines import ENGINES
from faceatlas.settings import get_settings


@app.command("eval")
@friendly
def eval_(
    folder: Annotated[Path, typer.Argument(help="One sub-folder of photos per identity.")],
    engine: Annotated[
        list[str] | None, typer.Option(help="Engine to evaluate (repeat): dlib, sface, ensemble.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md and the PNG plots.")] = Path(
        "eval-report"),
    per_identity: Annotated[
        int | None, typer.Option(help="Sample: at most this many photos per identity.")
    ] = None,
    identities: Annotated[
        int | None, typer.Option(help="Sample: at most this many identities (random, seeded).")
    ] = None,
    target_far: Annotated[float, typer.Option(help="FAR the chosen threshold must meet.")] = 1e-3,
    calibrate: Annotated[
        bool, typer.Option(help="Write the chosen thresholds where settings read them.")
    ] = False,
) -> None:
    """Detection rate, pair accuracy, ROC, open-set identification and CPU time per engine."""
    from faceatlas.gallery.evaluate import (
        calibrated_thresholds,
        evaluate_engine,
        load_folder,
        write_calibration,
        write_report,
    )

    # by default every engine with distances of its own (a composite's are its parts')
    engines = engine or [name for name, spec in ENGINES.items() if not spec.parts]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise FaceAtlasError(f"unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    settings = get_settings()
    samples = load_folder(folder, per_identity=per_identity, identities=identities)
    results = []
    with progress_bar() as bar:
        for name in engines:
            task = bar.add_task(name, total=len(samples))
            results.append(evaluate_engine(
                samples, name, settings, target_far=target_far,
                progress=lambda done, total, task=task: bar.update(task, completed=done)))
    report = write_report(results, out, folder, samples)
    table = Table(title=f"{len(samples)} photos, {len({s.identity for s in samples})} identities")
    table.add_column("metric")
    for r in results:
        table.add_column(r.engine, justify="right")
    rows = [r.summary() for r in results]
    for key in ("detection_rate", "accuracy_configured", "best_accuracy", "tar_at_far_1e-3",
                "tar_at_far_1e-4", "threshold_at_target_far", "top1", "identified_configured",
                "stranger_false_accepts_configured", "cpu_ms_per_image"):
        table.add_row(key, *(_cell(row[key]) for row in rows))
    console.print(table)
    console.print(f"report: {report}")
    if calibrate:
        # the ensemble's pair score is no engine's distance: calibrate its engines alone
        chosen = {r.engine: calibrated_thresholds(r, settings) for r in results
                  if not ENGINES[r.engine].parts}
        path = write_calibration(settings.calibration_path, chosen, str(folder))
        for name, values in chosen.items():
            console.print(f"calibrated {name}: " + ", ".join(f"{k} {v}" for k, v in
                                                              values.items()))
        console.print(f"written to {path}")


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command()
@friendly
def reembed(
    engine: Annotated[str, typer.Option(help="Engine to analyse with: dlib, sface, ensemble.")],
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
) -> None:
    """Re-analyse stored photos with another engine and rebuild the indexes (resumable)."""
    from faceatlas.gallery.reembed import reembed as run

    settings = get_settings()
    with progress_bar() as bar:
        task = bar.add_task(f"reembed ({engine})", total=None)

        def on_person(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total,
                       description=f"reembed ({engine}) {name}".rstrip())

        report = run(settings, engine, collection=collection, on_person=on_person)
    if report.indexes_reset:
        console.print(f"indexes emptied for {engine}: {', '.join(report.indexes_reset)}")
    console.print(f"{report.people} people: {report.done} re-embedded, {report.skipped} already "
                  f"on {engine}, {report.promoted} promoted again")
    if engine != settings.engine:
        console.print(f"[yellow]set FACEATLAS_ENGINE={engine} so curation and recognition "
                      "use it[/]")
