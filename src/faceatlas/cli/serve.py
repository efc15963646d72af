"""Gallery and serving commands: promote, recognize, serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceatlas.cli.base import anchor_label, anchor_summary, app, console, friendly, state_label
from faceatlas.settings import get_settings


@app.command()
@friendly
def promote(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    person: Annotated[str | None, typer.Option(help="Only this person (name or id).")] = None,
    purge: Annotated[
        bool, typer.Option(help="Erase people with too few faces instead of keeping them.")
    ] = False,
) -> None:
    """Copy curated faces into the gallery, index them and self-test recognition."""
    from faceatlas.gallery.promote import promote as run

    settings = get_settings()
    results = run(settings, collection=collection, person=person, purge=purge)
    if not results:
        console.print("nobody to promote: curate people first ([bold]faceatlas import[/])")
        return
    table = Table(title=f"promote (needs ≥ {settings.min_faces_to_promote} faces)")
    for col in ("person", "collection", "faces", "state", "anchor", "self-test"):
        table.add_column(col, justify="right" if col == "faces" else "left")
    for r in results:
        test = r.selftest
        if test is None:
            verdict = ""
        elif test.passed is None:
            verdict = f"[yellow]skipped[/] ({test.detail})"
        elif test.passed:
            verdict = f"[green]passed[/] (distance {test.distance:.3f})"
        else:
            verdict = f"[red]FAILED[/] ({test.detail})"
        state = "[red]purged[/]" if r.purged else state_label(r.state)
        table.add_row(r.person, r.collection, str(r.faces), state, anchor_label(r.anchor),
                      verdict)
    console.print(table)
    for line in anchor_summary(results):
        console.print(line)


@app.command()
@friendly
def recognize(
    images: Annotated[list[str], typer.Argument(
        help="Photos, folders or globs ('photos/**/*.jpg'); or one video clip.")],
    collection: Annotated[str | None, typer.Option(help="Collection to search.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="JSON: the old system's answer for one photo, an array for several.")
    ] = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="table, json (an array, one entry per photo) or csv (a row per "
        "face).")] = None,
    top: Annotated[int, typer.Option("--top", min=0, max=20,
                                     help="Also list the K closest people per face.")] = 0,
    threshold: Annotated[float | None, typer.Option(
        min=0.01, max=2.0, help="Known at or below this distance (default: "
        "FACEATLAS_RECOGNIZE_THRESHOLD).")] = None,
    jobs: Annotated[int, typer.Option(min=1, max=32,
                                      help="Photos worked on at once.")] = 1,
    fps: Annotated[float | None, typer.Option(
        min=1.0, max=8.0, help="Video only: frames sampled per second (default 2).")] = None,
    source: Annotated[str | None, typer.Option(
        help="Where the photos come from (a name or URL), recorded with their sightings "
        "when the collection records them (faceatlas sightings enable).")] = None,
) -> None:
    """Who is in these photos (every face with its best person, or unknown), or in a clip
    (a timeline: person, from–to, confidence). Many photos run in one process: the models
    load once. Exit 3 when some photos could not be read, 4 when none could."""
    from faceatlas.cli.tools import run_recognize
    from faceatlas.gallery.recognize import recognize_file, seed_answer
    from faceatlas.gallery.sightings import Where, flush
    from faceatlas.video.reader import looks_like_video

    where = Where(source or "")

    single = Path(images[0]) if len(images) == 1 else None
    if single is not None and single.is_file() and looks_like_video(single):
        from faceatlas.cli.video import recognize_clip

        recognize_clip(single, collection, as_json, fps, where)
        flush()
        return
    if single is None or not single.is_file() or fmt is not None or top:
        run_recognize(images, collection=collection, top=top, threshold=threshold,
                      fmt=fmt or ("json" if as_json else "table"), jobs=jobs, where=where)
        return
    image = single  # one photo: the old system's answer with --json, errors exit 1
    settings = get_settings()
    result = recognize_file(image, settings, collection=collection, engines=None,
                            threshold=threshold, where=where)
    flush()
    if as_json:
        typer.echo(json.dumps(seed_answer(result), ensure_ascii=False, indent=2))
        return
    if not result.faces:
        console.print("no face found")
        return
    table = Table(title=f"{image.name} in {result.collection}: {result.status}")
    for col in ("face", "box (x, y, w, h)", "person", "distance", "confidence"):
        table.add_column(col)
    for i, f in enumerate(result.faces, start=1):
        who = f"[green]{f.name}[/]" if f.known else "[yellow]unknown[/]"
        dist = f.distance if f.known else f.nearest_distance
        table.add_row(str(i), f"{f.box.x}, {f.box.y}, {f.box.w}, {f.box.h}", who,
                      "" if dist is None else f"{dist:.3f}",
                      "" if f.confidence is None else f"{f.confidence:.1f}%")
    console.print(table)


@app.command()
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="Serve without tokens (local trials only).")
    ] = False,
    engines: Annotated[
        int | None, typer.Option(help="Concurrent recognitions per worker process (default: one "
                                 "per core).")
    ] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Worker processes; they share one memory-mapped copy of each index.")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import json
    import os

    import uvicorn

    from faceatlas.api import create_app
    from faceatlas.api.app import SERVE_OPTIONS_ENV, check_bind

    check_bind(host, insecure_no_auth)
    # the access log has method, path and status only: the Authorization header never
    # reaches a log line
    if workers > 1:  # uvicorn's workers import the app by name: options go by environment
        os.environ[SERVE_OPTIONS_ENV] = json.dumps(
            {"insecure_no_auth": insecure_no_auth, "engines": engines})
        create_app(get_settings(), insecure_no_auth=insecure_no_auth, engines=engines)  # fail early
        uvicorn.run("faceatlas.api.app:worker_app", factory=True, host=host, port=port,
                    workers=workers, log_level="info")
        return
    api = create_app(get_settings(), insecure_no_auth=insecure_no_auth, engines=engines)
    uvicorn.run(api, host=host, port=port, log_level="info")


index_app = typer.Typer(help="The vector index: rebuild from the database, compact, status.",
                        no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("rebuild")
@friendly
def index_rebuild(
    collection: Annotated[str, typer.Option(help="Collection to rebuild.")],
) -> None:
    """Rebuild a collection's index from the database (its promoted gallery faces) and publish
    it at once; serving processes pick it up on their next request."""
    from faceatlas.gallery.reindex import rebuild_index

    report = rebuild_index(get_settings(), collection)
    console.print(f"{collection}: {report['faces']} faces of {report['people']} people, "
                  f"{report['seconds']:.1f} s, version {report['version']}")


@index_app.command("compact")
@friendly
def index_compact(
    collection: Annotated[str, typer.Option(help="Collection to compact.")],
) -> None:
    """Merge a collection's segments and drop removed rows (changes do this gradually)."""
    from faceatlas.gallery.reindex import compact_index

    report = compact_index(get_settings(), collection)
    console.print(f"{collection}: {report['faces']} faces, version {report['version']}")


@index_app.command("status")
@friendly
def index_status(
    collection: Annotated[str, typer.Option(help="Collection to describe.")],
) -> None:
    """The published version, its segments (exact or ANN) and removed rows."""
    from faceatlas.gallery.reindex import index_status as status

    console.print_json(json.dumps(status(get_settings(), collection)))
