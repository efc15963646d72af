"""Online commands: names (LLM and sheets), collect, run, simweb."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from faceatlas.cli.base import (
    REJECT_ORDER,
    app,
    console,
    err,
    exit_for,
    friendly,
    progress_bar,
    progress_line,
)
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.domain.states import PersonState
from faceatlas.jobs import runner
from faceatlas.jobs.collect import Collected, collect_people, pending_people
from faceatlas.settings import Settings, get_settings

if TYPE_CHECKING:
    from faceatlas.jobs.worker import PersonResult

FOLLOW_EVERY = 0.5  # seconds between looks at the job rows

names_app = typer.Typer(help="Who: people from Wikidata, an LLM (two passes) or spreadsheets.",
                        no_args_is_help=True)
app.add_typer(names_app, name="names")

Occupations = Annotated[
    list[str] | None, typer.Option("--occupation", "-o", help="Occupation (repeatable).")
]
OccupationsFile = Annotated[
    Path | None, typer.Option(help="occupation.xlsx or .csv with an Occupation column.")
]


def _occupations(occupation: list[str] | None, occupations_file: Path | None,
                 settings: Settings | None = None) -> list[str]:
    from faceatlas.jobs.background import file_occupations
    from faceatlas.names.tables import read_occupations

    found = list(occupation or [])
    if occupations_file:
        found += read_occupations(occupations_file)
    if not found:
        # as the old system: excel/occupation.xlsx in the home, or FACEATLAS_OCCUPATIONS_FILE
        found = file_occupations(settings or get_settings())
    if not found:
        raise FaceAtlasError("give at least one --occupation or an --occupations-file (or put "
                             "occupation.xlsx in the home's excel/ folder)")
    return found


def _occupation_note(before: dict[int, tuple[str, str, tuple[str, ...]]],
                     settings: Settings, collection: str) -> None:
    """People already collected who gained an occupation: say so (never silently)."""
    from faceatlas.gallery.stats import gained_occupations, occupation_snapshot

    gained = gained_occupations(before, occupation_snapshot(settings, collection))
    if not gained:
        return
    console.print(f"  {len(gained)} already collected {'person' if len(gained) == 1 else 'people'}"
                  " gained an occupation: it is recorded, their photos are kept and not "
                  "searched again for it (remove and re-add a person to search anew)")
    for name, state, new in gained[:20]:
        console.print(f"  [cyan]occupation added[/] {escape(name)} ({state}): "
                      f"{escape(', '.join(new))}")
    if len(gained) > 20:
        console.print(f"  … {len(gained) - 20} more")


def _generate(settings: Settings, country: str, occupations: list[str]) -> None:
    from faceatlas.gallery.stats import occupation_snapshot
    from faceatlas.names.source import generate

    before = occupation_snapshot(settings, country)
    with progress_bar() as bar:
        task = bar.add_task(f"names for {country}", total=len(occupations))
        sourced = generate(
            settings, country, occupations,
            progress=lambda done, total, occ: bar.update(task, completed=done,
                                                          description=f"names: {occ}"),
        )
    report = sourced.report
    verb = "not verified" if sourced.source == "llm" else "skipped"
    console.print(
        f"[bold]{report.collection}[/] (from {sourced.source}): {report.created} new, "
        f"{report.existing} already known, {report.rejected} {verb}"
    )
    if sourced.resolved:
        found, checked = sourced.resolved
        console.print(f"  Wikidata check: {found} of {checked} names resolve to a Q-id with "
                      f"this country and occupation ({100 * found / max(checked, 1):.0f}%)")
    elif sourced.check_error:
        console.print(f"  [yellow]Wikidata check skipped[/]: {sourced.check_error}")
    for name, reason in report.rejections[:20]:
        console.print(f"  [yellow]{verb}[/] {escape(name)}: {escape(reason)}")
    _occupation_note(before, settings, country)
    _warnings(report.warnings)


def _warnings(warnings: list[str], shown: int = 20) -> None:
    """Limits hit and suspected duplicates, the first ``shown`` of them, then how many more."""
    for warning in warnings[:shown]:
        console.print(f"  [yellow]warning[/] {escape(warning)}")
    if len(warnings) > shown:
        console.print(f"  [yellow]… {len(warnings) - shown} more warnings[/]")


@names_app.command("generate")
@friendly
def names_generate(
    country: Annotated[str, typer.Option(help="Country; names the collection (Serbia → serbia).")],
    occupation: Occupations = None,
    occupations_file: OccupationsFile = None,
) -> None:
    """The most famous people per occupation: from Wikidata (keyless) or an LLM (two passes).

    FACEATLAS_NAMES_SOURCE=wikidata|llm; default: the LLM when OPENAI_API_KEY is set.
    An occupation or country may be a word or a Wikidata Q-id (e.g. Q33999).
    """
    settings = get_settings()
    _generate(settings, country, _occupations(occupation, occupations_file, settings))


def _collection_option(collection: str | None, country: str | None,
                       required: bool = False) -> str:
    """``--collection``, or the deprecated ``--country`` alias (with a warning)."""
    if country is not None:
        if collection is not None and collection != country:
            raise FaceAtlasError("give --collection only (--country is its deprecated alias)")
        err.print("[yellow]warning:[/] --country is deprecated here: use --collection")
        collection = country
    if required and not collection:
        raise FaceAtlasError("give --collection (the collection the people join)")
    return collection  # type: ignore[return-value]


@names_app.command("import")
@friendly
def names_import(
    sheet: Annotated[Path, typer.Argument(
        help="data.xlsx or .csv: name, last_name, occupation (and references: photo URLs or "
             "paths separated by spaces, | or ;).")],
    collection: Annotated[str | None, typer.Option(help="Collection the people join.")] = None,
    country: Annotated[str | None, typer.Option(
        hidden=True, help="Deprecated: use --collection.")] = None,
    references_dir: Annotated[Path | None, typer.Option(
        help="Reference photo files are read only inside this folder (default: "
             "FACEATLAS_REFERENCES_DIR, else the sheet's folder).")] = None,
) -> None:
    """Queue people from a spreadsheet (the old system's data.xlsx works as it is)."""
    from faceatlas.gallery.stats import occupation_snapshot
    from faceatlas.names.service import import_people

    country = _collection_option(collection, country, required=True)
    settings = get_settings()
    before = occupation_snapshot(settings, country)
    report = import_people(settings, sheet, country, references_dir=references_dir)
    console.print(f"[bold]{report.collection}[/]: {report.created} new, "
                  f"{report.existing} already known, {len(report.skipped)} skipped"
                  + (f", {report.references} reference photos" if report.references else ""))
    for skipped in report.skipped[:20]:
        console.print(f"  [yellow]skipped[/] row {skipped.row} {escape(repr(skipped.text))}: "
                      f"{escape(skipped.why)}")
    if len(report.skipped) > 20:
        console.print(f"  [yellow]… {len(report.skipped) - 20} more rows skipped[/]")
    _occupation_note(before, settings, country)
    _warnings(report.warnings)


@names_app.command("resolve")
@friendly
def names_resolve(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    again: Annotated[bool, typer.Option(
        "--again", help="Ask again for names already settled (ambiguous, not found).")] = False,
) -> None:
    """Look names without a Q-id up on Wikidata now (collection does it anyway): one fitting
    item gives the Q-id whose portrait anchors the gallery; several are listed to choose."""
    from faceatlas.names.resolve import resolve_people

    report = resolve_people(get_settings(), collection, force=again)
    found = ", ".join(f"{k} {v}" for k, v in sorted(report.by_state.items())) or "nothing new"
    console.print(f"{report.checked} names looked up: {found}")
    for name, candidates in report.ambiguous[:20]:
        listing = "; ".join(f"{c['qid']} {c['description'] or c['label']}" for c in candidates)
        console.print(f"  [yellow]ambiguous[/] {escape(name)}: {escape(listing)}")


@names_app.command("export")
@friendly
def names_export(
    sheet: Annotated[Path, typer.Argument(help="Where to write: .xlsx or .csv.")],
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    country: Annotated[str | None, typer.Option(
        hidden=True, help="Deprecated: use --collection.")] = None,
) -> None:
    """Write people to a spreadsheet (name, last_name, occupation, original_name, …)."""
    from faceatlas.names.service import export_people

    rows = export_people(get_settings(), sheet, _collection_option(collection, country))
    console.print(f"wrote {rows} people to {sheet}")


Distributed = Annotated[
    bool | None,
    typer.Option("--distributed/--local",
                 help="Queue people for `faceatlas worker`s instead of working in-process "
                      "(default: distributed when FACEATLAS_BROKER_URL is set)."),
]


def _collect(settings: Settings, collection: str | None, limit: int | None,
             retry_failed: bool, distributed: bool | None = None) -> None:
    from faceatlas.sources.chain import image_search_from_settings

    ids = pending_people(settings, collection, retry_failed=retry_failed, limit=limit)
    if not ids:
        console.print("nothing to collect: every person is curated "
                      "(add people with [bold]faceatlas names[/], retry with --retry-failed)")
        return
    if distributed is None:
        distributed = runner.distributed(settings)
    if distributed:
        _collect_distributed(settings, ids)
        return
    provider = image_search_from_settings(settings)  # fails fast on a missing key
    table = Table(title="collected")
    for col in ("person", "state", "candidates", "accepted", "rejected (by reason)"):
        table.add_column(col)
    with provider, progress_bar() as bar:
        people_task = bar.add_task("people", total=len(ids))
        images_task = bar.add_task("images", total=None)

        def on_images(done: int, total: int, stage: str) -> None:
            bar.update(images_task, completed=done, total=total, description=stage)

        done = [0]

        def on_person(result: Collected) -> None:
            bar.advance(people_task)
            done[0] += 1
            name, report = result.name, result.report
            if report is None:
                progress_line(f"collect: {done[0]}/{len(ids)} people, {name} failed "
                              f"({result.error or 'no reason recorded'})")
                table.add_row(name, "[red]failed[/]", "", "", result.error or "")
                return
            progress_line(f"collect: {done[0]}/{len(ids)} people, {name} curated "
                          f"({report.accepted} faces)")
            rejected = ", ".join(f"{r} {report.reasons[r]}" for r in REJECT_ORDER
                                 if report.reasons.get(r))
            table.add_row(name, "[green]curated[/]", str(report.candidates),
                          str(report.accepted), rejected or "-")

        summary = collect_people(settings, ids, provider, on_person=on_person,
                                 on_images=on_images)
    console.print(table)
    console.print(f"{len(summary.curated)} curated, {len(summary.failed)} failed")
    exit_for(len(summary.curated), len(summary.failed))


def _result_row(table: Table, r: PersonResult) -> None:
    if r.state != PersonState.CURATED:
        table.add_row(r.name, "[red]failed[/]", "", "",
                      r.error or r.job_state)
        return
    rejected = ", ".join(f"{k} {r.reasons[k]}" for k in REJECT_ORDER if r.reasons.get(k))
    table.add_row(r.name, "[green]curated[/]", str(r.candidates), str(r.accepted),
                  rejected or "-")


def _collect_distributed(settings: Settings, ids: list[int]) -> None:
    """Queue every person for the workers, then follow their job rows until all finish."""
    from faceatlas.jobs.worker import enqueue_people, jobs_progress

    jobs = enqueue_people(settings, ids)
    console.print(f"queued {len(jobs)} people for the workers "
                  "(start some with [bold]faceatlas worker[/]; Ctrl-C stops watching, "
                  "not the work)")
    table = Table(title="collected")
    for col in ("person", "state", "candidates", "accepted", "rejected (by reason)"):
        table.add_column(col)
    results: dict[int, PersonResult] = {}
    try:
        with progress_bar() as bar:
            people_task = bar.add_task("people", total=len(jobs))
            images_task = bar.add_task("images", total=None)
            while True:
                progress = jobs_progress(settings, jobs, seen=results.keys())
                for r in progress.new:
                    results[r.person_id] = r
                    _result_row(table, r)
                    outcome = (f"curated ({r.accepted} faces)" if r.state == PersonState.CURATED
                               else f"failed ({r.error or r.job_state})")
                    progress_line(f"collect: {len(results)}/{len(jobs)} people, "
                                  f"{r.name} {outcome}")
                bar.update(people_task, completed=progress.finished,
                           description=f"people ({progress.running} running)")
                bar.update(images_task, completed=progress.images_done,
                           total=progress.images_total or None)
                if progress.complete:
                    break
                time.sleep(FOLLOW_EVERY)
    except KeyboardInterrupt:
        console.print("stopped watching; the workers go on (see [bold]faceatlas status[/])")
        raise typer.Exit(130) from None
    console.print(table)
    curated = sum(1 for r in results.values() if r.state == PersonState.CURATED)
    console.print(f"{curated} curated, {len(results) - curated} failed")
    exit_for(curated, len(results) - curated)


@app.command("collect")
@friendly
def collect_cmd(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many people.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Also retry people that failed.")] = False,
    distributed: Distributed = None,
) -> None:
    """Search, download and curate every queued person (resumes after a crash)."""
    _collect(get_settings(), collection, limit, retry_failed, distributed)


@app.command("run")
@friendly
def run_cmd(
    country: Annotated[str, typer.Option(help="Country; names the collection.")],
    occupation: Occupations = None,
    occupations_file: OccupationsFile = None,
    limit: Annotated[int | None, typer.Option(help="Collect at most this many people.")] = None,
    distributed: Distributed = None,
) -> None:
    """Names and collection in one go: from "Serbia, Actor" to curated faces per person."""
    from faceatlas.domain.names import collection_key

    settings = get_settings()
    _generate(settings, country, _occupations(occupation, occupations_file, settings))
    _collect(settings, collection_key(country), limit, retry_failed=False,
             distributed=distributed)


@app.command("simweb")
def simweb_cmd(
    people: Annotated[Path, typer.Option(help="People JSON file (see devtools/simweb.py).")],
    photos: Annotated[Path, typer.Option(help="Folder the image paths are relative to.")],
    port: Annotated[int, typer.Option(help="Loopback port (0 = any free one).")] = 8765,
    latency_ms: Annotated[float, typer.Option(help="Delay added to every image.")] = 0.0,
) -> None:
    """Serve a simulated web (LLM, image search, image hosts, faults) on 127.0.0.1."""
    from faceatlas.devtools.simweb import main as simweb_main

    raise typer.Exit(simweb_main(["--people", str(people), "--photos", str(photos),
                                  "--port", str(port), "--latency-ms", str(latency_ms)]))
