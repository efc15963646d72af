"""``faceatlas migrate-seed``: move over from the old system (facerecWeb) in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceatlas.cli.base import REJECT_ORDER, app, console, friendly
from faceatlas.settings import get_settings


def _plan_table(plan: object, title: str) -> Table:
    from faceatlas.jobs.migrate_seed import SeedPlan

    assert isinstance(plan, SeedPlan)
    table = Table(title=title)
    for col in ("collection", "person", "old file name", "gallery", "training pass", "raw",
                "queued", "new photos", "status"):
        table.add_column(col, justify="right" if col in ("gallery", "training pass", "raw",
                                                         "new photos") else "left")
    for p in plan.people:
        status = "known" if p.exists else "[green]new[/]"
        if p.exists and p.new_files:
            status = "[green]known, new photos[/]"
        table.add_row(p.collection, p.name, p.stem, str(p.count("gallery")),
                      str(p.count("training_pass")), str(p.count("raw")),
                      "yes" if p.queued else "", str(p.new_files), status)
    return table


def _skipped_table(plan: object) -> Table:
    table = Table(title="not taken (with the reason)")
    table.add_column("path")
    table.add_column("reason", style="yellow")
    for s in plan.skipped:  # type: ignore[attr-defined]
        table.add_row(s.path, s.reason)
    return table


@app.command("migrate-seed")
@friendly
def migrate_seed_cmd(
    storage: Annotated[Path, typer.Argument(help="The old system's storage folder.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be done.")
                       ] = False,
    collection: Annotated[
        str | None, typer.Option(help="Collection of the data.xlsx queue and loose downloads "
                                      "(default: the only production country, else the "
                                      "default collection).")
    ] = None,
) -> None:
    """Import an old facerecWeb storage folder as it lies: production galleries, training
    passes, raw downloads, data.xlsx, occupation.xlsx, name_mapping.json. Re-running it changes
    nothing; then run [bold]faceatlas promote[/]."""
    from faceatlas.jobs.migrate_seed import migrate_seed, plan_migration

    settings = get_settings()
    if dry_run:
        plan = plan_migration(storage, settings, collection=collection)
        console.print(_plan_table(plan, f"migrate-seed {plan.root} (dry run: nothing written)"))
        _footer(plan)
        new = sum(p.new_files for p in plan.people)
        fresh = sum(1 for p in plan.people if not p.exists)
        console.print(f"would add {fresh} people and {new} photos, then curate "
                      f"{sum(1 for p in plan.people if p.new_files)} people")
        return
    with console.status("importing and curating…"):
        report = migrate_seed(storage, settings, collection=collection)
    plan = report.plan
    console.print(_plan_table(plan, f"migrate-seed {plan.root}"))
    if report.curated:
        table = Table(title="curated again (today's rules)")
        for col in ("person", "candidates", "accepted", "rejected (by reason)"):
            table.add_column(col)
        for r in report.curated:
            rejected = ", ".join(f"{k} {r.reasons[k]}" for k in REJECT_ORDER if r.reasons.get(k))
            table.add_row(r.person, str(r.candidates), str(r.accepted), rejected or "-")
        console.print(table)
    _footer(plan)
    if not report.changed:
        console.print("nothing changed: everything here was imported before")
        return
    console.print(f"{report.people_created} people and {report.images_added} photos added"
                  + (", occupation list copied" if report.occupations_copied else ""))
    few = [r.person for r in report.curated if r.accepted < settings.min_faces_to_promote]
    console.print("next: [bold]faceatlas promote[/]" + (
        f" ({len(few)} people have fewer than {settings.min_faces_to_promote} faces; the old "
        "gallery served them anyway: FACEATLAS_MIN_FACES_TO_PROMOTE=1 keeps them)"
        if few else ""))


def _footer(plan: object) -> None:
    from faceatlas.jobs.migrate_seed import SeedPlan

    assert isinstance(plan, SeedPlan)
    if plan.skipped:
        console.print(_skipped_table(plan))
    source = plan.mapping_source or "none found"
    console.print(f"name mapping: {source}; occupations: {len(plan.occupations)}"
                  + (f" from {plan.occupations_source.name}" if plan.occupations_source
                     else "") + f"; queue collection: {plan.queue_collection}")
