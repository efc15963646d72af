"""Sightings commands (issue 24): ``appearances``, and ``sightings`` enable, disable, status,
candidates, purge, erase. Thin shells over ``gallery.sightings`` and
``gallery.candidates``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceatlas.cli.base import app, console, friendly
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.settings import get_settings

sightings_app = typer.Typer(
    help="What recognition saw, per collection (off by default): switch, candidates, "
         "retention purge, erasure. See docs/security.md.", no_args_is_help=True)
app.add_typer(sightings_app, name="sightings")

Collection = Annotated[str | None, typer.Option(help="Collection (default: the default).")]


@app.command()
@friendly
def appearances(
    person: Annotated[str, typer.Argument(help="Name or id of the person.")],
    collection: Collection = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 50,
    page: Annotated[int, typer.Option(min=1, help="Page (1: the newest).")] = 1,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="Write every appearance to this CSV file instead.")] = None,
) -> None:
    """Where a person was seen, newest first: when, source, clip and time range, confidence."""
    from faceatlas.gallery.sightings import all_appearances, appearances_csv
    from faceatlas.gallery.sightings import appearances as read
    from faceatlas.store.db import session_scope
    from faceatlas.store.people import find_person

    settings = get_settings()
    with session_scope(settings) as s:
        p = find_person(s, person, collection)
        pid, name = p.id, p.name
    if csv_out is not None:
        items = all_appearances(settings, pid)
        csv_out.write_text(appearances_csv(items), encoding="utf-8")
        console.print(f"{len(items)} appearances of {name} written to {csv_out}")
        return
    found = read(settings, pid, limit=limit, offset=(page - 1) * limit)
    table = Table(title=f"{name}: {found.total} appearances (page {page})")
    for col in ("seen at (UTC)", "source", "clip", "from–to (s)", "confidence"):
        table.add_column(col)
    for a in found.items:
        span = "" if a.t_start is None else f"{a.t_start:.1f}–{a.t_end or a.t_start:.1f}"
        table.add_row(f"{a.seen_at:%Y-%m-%d %H:%M:%S}", a.source or "—", a.clip or "", span,
                      "" if a.confidence is None else f"{a.confidence:.1f}%")
    console.print(table)


@sightings_app.command("enable")
@friendly
def enable(
    collection: Annotated[str, typer.Argument(help="The collection.")],
    retention_days: Annotated[int | None, typer.Option(
        min=1, max=3650, help="Days sightings are kept (default 30).")] = None,
) -> None:
    """Record what recognition sees in this collection (faces, crops, sources)."""
    from faceatlas.gallery.sightings import set_policy

    p = set_policy(get_settings(), collection, enabled=True, retention_days=retention_days)
    console.print(f"{p.collection}: recording sightings, kept {p.retention_days} days")


@sightings_app.command("disable")
@friendly
def disable(collection: Annotated[str, typer.Argument(help="The collection.")]) -> None:
    """Stop recording (what is recorded stays until purged or erased)."""
    from faceatlas.gallery.sightings import set_policy

    p = set_policy(get_settings(), collection, enabled=False)
    console.print(f"{p.collection}: not recording; {p.retention_days}-day retention still "
                  "applies to what was recorded")


@sightings_app.command("status")
@friendly
def status(collection: Annotated[str, typer.Argument(help="The collection.")]) -> None:
    """Whether the collection records sightings, and for how long it keeps them."""
    from faceatlas.gallery.sightings import policy

    p = policy(get_settings(), collection)
    console.print(f"{p.collection}: {'recording' if p.enabled else 'not recording'}, "
                  f"kept {p.retention_days} days")


@sightings_app.command("candidates")
@friendly
def candidates(
    collection: Annotated[str, typer.Argument(help="The collection.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Unknown faces seen often enough in enough sources: people nobody has named yet."""
    from faceatlas.gallery.candidates import candidates as find

    found = find(get_settings(), collection)
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in found], ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{collection}: {len(found)} candidates")
    for col in ("cluster", "seen", "sources", "first", "last", "where"):
        table.add_column(col)
    for c in found:
        table.add_row(str(c.cluster_id), str(c.sightings), str(c.sources),
                      f"{c.first_seen:%Y-%m-%d}", f"{c.last_seen:%Y-%m-%d}",
                      ", ".join(f"{w['source'] or '—'} ×{w['count']}" for w in c.where[:3]))
    console.print(table)


@sightings_app.command("purge")
@friendly
def purge(collection: Collection = None) -> None:
    """Delete sightings older than their collection's retention (the server also does it
    on its own, every FACEATLAS_SIGHTINGS_PURGE_SECONDS)."""
    from faceatlas.gallery.sightings import purge as run

    gone = run(get_settings(), collection=collection)
    if not gone:
        console.print("nothing older than the retention")
    for key, e in gone.items():
        console.print(f"{key}: {e.sightings} sightings, {e.files} crops, {e.clusters} "
                      "clusters deleted")


@sightings_app.command("erase")
@friendly
def erase(
    collection: Annotated[str, typer.Argument(help="The collection.")],
    source: Annotated[str | None, typer.Option(
        help="Erase everything seen from this source.")] = None,
    cluster: Annotated[int | None, typer.Option(
        min=1, help="Erase this cluster of unknown faces.")] = None,
    block: Annotated[bool, typer.Option(
        help="With --cluster: not a public figure, faces like it are not kept again.")
    ] = False,
) -> None:
    """Erase sightings: all from one source, or one cluster (rows and crops)."""
    from faceatlas.gallery import sightings

    settings = get_settings()
    if (source is None) == (cluster is None):
        raise FaceAtlasError("say what to erase: a source or a cluster (one of them)")
    if cluster is not None:
        if sightings.cluster_collection(settings, cluster) != sightings.policy(
                settings, collection).collection:
            raise FaceAtlasError(f"no cluster with id {cluster} in {collection!r}")
        gone = sightings.erase_cluster(settings, cluster, block=block)
    else:
        gone = sightings.erase_source(settings, collection, source or "")
    console.print(f"{gone.sightings} sightings, {gone.files} crops, {gone.clusters} clusters "
                  "erased")


@sightings_app.command("name")
@friendly
def name(
    cluster: Annotated[int, typer.Argument(min=1, help="The candidate's cluster id.")],
    person: Annotated[str, typer.Argument(help="The person's full name.")],
    qid: Annotated[str | None, typer.Option(help="Their Wikidata Q-id, if known.")] = None,
) -> None:
    """Confirm a candidate: a new person (queued for collection) with its best faces as
    trusted references and its sightings as their appearances."""
    from faceatlas.gallery.candidates import name_candidate

    done = name_candidate(get_settings(), cluster, person, wikidata_qid=qid)
    what = "new person" if done.created else "existing person"
    console.print(f"{done.person} ({what}, id {done.person_id}): {done.references} "
                  f"references, {done.sightings} appearances; queued for collection")


@sightings_app.command("merge")
@friendly
def merge(
    cluster: Annotated[int, typer.Argument(min=1, help="The candidate's cluster id.")],
    person: Annotated[str, typer.Argument(help="Name or id of a person of its collection.")],
) -> None:
    """The candidate is an existing person: its sightings become their appearances."""
    from faceatlas.gallery.candidates import merge_candidate
    from faceatlas.gallery.sightings import cluster_collection
    from faceatlas.store.db import session_scope
    from faceatlas.store.people import find_person

    settings = get_settings()
    key = cluster_collection(settings, cluster)
    with session_scope(settings) as s:
        person_id = find_person(s, person, key).id
    done = merge_candidate(settings, cluster, person_id)
    console.print(f"{done.sightings} sightings are now appearances of {done.person}")
