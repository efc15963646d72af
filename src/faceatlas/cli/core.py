"""Core commands: import, people, show."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from faceatlas.cli.base import (
    REJECT_ORDER,
    anchor_label,
    app,
    console,
    friendly,
    lookup_lines,
    progress_bar,
    state_label,
)
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.settings import get_settings


@app.command("import")
@friendly
def import_(
    folder: Annotated[
        Path, typer.Argument(help="Folder with one sub-folder of photos per person.")
    ],
    collection: Annotated[str, typer.Option(help="Collection (e.g. a country) to add them to.")],
    strategy: Annotated[
        str, typer.Option(help="consensus (densest identity) or seed (the old system's rule).")
    ] = "consensus",
) -> None:
    """Curate local photos: keep each person's own faces, say why every other photo was dropped."""
    from faceatlas.jobs.importer import PersonFolder, import_folder

    if strategy not in ("consensus", "seed"):
        raise FaceAtlasError(f"unknown strategy {strategy!r}: use consensus or seed")
    settings = get_settings()
    with progress_bar() as bar:

        def on_person(folder: PersonFolder) -> Callable[[int, int], None]:
            task = bar.add_task(folder.name, total=len(folder.files))
            return lambda done, total: bar.update(task, completed=done, total=total)

        def on_refused(path: Path, why: str) -> None:
            console.print(f"[yellow]refused[/] {escape(str(path))}: {escape(why)}")

        reports = list(import_folder(folder, collection, settings, strategy=strategy,
                                     on_person=on_person, on_refused=on_refused))
    table = Table(title=f"import into {collection} ({strategy})")
    table.add_column("person")
    table.add_column("candidates", justify="right")
    table.add_column("accepted", justify="right", style="green")
    table.add_column("rejected (by reason)")
    for r in reports:
        rejected = ", ".join(
            f"{reason} {r.reasons[reason]}" for reason in REJECT_ORDER if r.reasons.get(reason)
        )
        table.add_row(r.person, str(r.candidates), str(r.accepted), rejected or "-")
    console.print(table)


@app.command()
@friendly
def people(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List people with their state and counts of candidates and accepted faces."""
    from faceatlas.domain.names import one_line
    from faceatlas.domain.states import Anchor
    from faceatlas.store.queries import list_people

    rows = list_people(get_settings(), collection=collection, limit=None)
    if as_json:
        typer.echo(json.dumps([
            {"id": p.id, "collection": p.collection, "name": p.name,
             "occupations": p.occupations, "state": p.state, "images": p.images,
             "faces": p.accepted_faces, "anchor": p.anchor} for p in rows
        ], ensure_ascii=False, indent=1))
        return
    if not rows:
        console.print("no people yet: start with [bold]faceatlas import[/] or "
                      "[bold]faceatlas run[/]")
        return
    table = Table(title="people")
    for col in ("id", "collection", "name", "occupations", "state", "images", "faces", "anchor"):
        table.add_column(col, justify="right" if col in ("id", "images", "faces") else "left")
    for p in rows:
        table.add_row(str(p.id), p.collection, escape(p.name),
                      escape(one_line(", ".join(p.occupations))),
                      state_label(p.state), str(p.images), str(p.accepted_faces),
                      anchor_label(p.anchor))
    console.print(table)
    unanchored = sum(p.anchor == Anchor.NONE for p in rows)
    if unanchored:
        console.print(f"[yellow]{unanchored} of {len(rows)} without an anchor[/]: their "
                      "galleries rest on the majority vote of the search results alone")


@app.command()
@friendly
def show(
    person: Annotated[str, typer.Argument(help="Person name (any spelling) or id.")],
    collection: Annotated[str | None, typer.Option(help="Collection, if the name is ambiguous.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the images as JSON.")] = False,
) -> None:
    """Each candidate image of a person, with its decision, reason and stored detail."""
    from faceatlas.domain.names import one_line
    from faceatlas.domain.states import FaceState, Reason
    from faceatlas.store.anchors import anchor_of
    from faceatlas.store.db import session_scope
    from faceatlas.store.people import find_person

    settings = get_settings()
    with session_scope(settings) as session:
        p = find_person(session, person, collection)
        if as_json:
            typer.echo(json.dumps(_person_json(p), ensure_ascii=False, indent=1, default=str))
            return
        known = "".join(f" · {escape(one_line(x))}" for x in (p.native_name, p.wikidata_qid) if x)
        console.print(f"[bold]{escape(one_line(p.name))}[/] ({p.ascii_name}){known} · "
                      f"{p.collection.key} · {state_label(p.state)} · anchor "
                      f"{anchor_label(anchor_of(session, p.id))}"
                      + (f" · [red]{escape(p.error)}[/]" if p.error else ""))
        for line in lookup_lines(p.wikidata_lookup):
            console.print(escape(line))
        # fixed widths: rich's own shrinking crops the last column when a cell has a long
        # unbreakable word (URLs, crop names); below 100 columns the counts join the decision
        # cell so the provenance keeps half the width, and nothing is ever cut (it folds)
        wide = console.width >= 100
        decision_w = 34 if wide else 26
        # 3 per column (padding, border) + 1; the faces and dist columns are 5 wide
        source_w = max(20, console.width - 3 - decision_w - (10 + 16 if wide else 10))
        table = Table(show_lines=True, expand=False)
        table.add_column("#", justify="right", no_wrap=True, width=3)
        table.add_column("image · source · licence", overflow="fold", width=source_w)
        table.add_column("decision · detail", overflow="fold", width=decision_w)
        if wide:
            table.add_column("faces", justify="right", no_wrap=True, width=5)
            table.add_column("dist", justify="right", no_wrap=True, width=5)
        for img in sorted(p.images, key=lambda i: (i.rank is None, i.rank or 0, i.id)):
            accepted = [f for f in img.faces if f.state == FaceState.ACCEPTED]
            best = accepted[0] if accepted else min(
                img.faces, key=lambda f: f.distance if f.distance is not None else 9, default=None
            )
            distance = f"{best.distance:.3f}" if best and best.distance is not None else ""
            decision = img.reason or img.state
            style = "green" if decision == Reason.ACCEPTED else "red"
            where = [escape(one_line(img.title or img.origin))]
            if img.url and img.url != img.title:
                where.append(f"[dim]{escape(one_line(img.url))}[/]")
            credit = " · ".join(one_line(x) for x in (img.licence, img.author) if x)
            if credit:
                where.append(f"[dim]{escape(credit)}[/]")
            if accepted and accepted[0].crop_path:
                where.append(f"[dim]crop {escape(Path(accepted[0].crop_path).name)}[/]")
            why = f"[{style}]{escape(decision)}[/]"
            for note in dict.fromkeys([img.detail, *(f.detail for f in img.faces)]):
                if note:
                    why += f"\n{escape(one_line(note))}"
            n = len(img.faces)
            if wide:
                table.add_row("" if img.rank is None else str(img.rank), "\n".join(where), why,
                              str(n), distance)
            else:
                why += f"\n[dim]{n} face{'' if n == 1 else 's'}" + (
                    f" · d {distance}" if distance else "") + "[/]"
                table.add_row("" if img.rank is None else str(img.rank), "\n".join(where), why)
        console.print(table)


def _person_json(p: Any) -> dict[str, Any]:
    """``show --json``: the person and every candidate image with its faces' decisions."""
    from sqlalchemy.orm import object_session

    from faceatlas.store.anchors import anchor_of

    return {
        "id": p.id, "name": p.name, "collection": p.collection.key, "state": p.state,
        "error": p.error, "wikidata_qid": p.wikidata_qid, "wikidata_lookup": p.wikidata_lookup,
        "anchor": anchor_of(object_session(p), p.id), "images": [
            {"rank": img.rank, "title": img.title, "origin": img.origin, "url": img.url,
             "page_url": img.page_url, "licence": img.licence, "author": img.author,
             "state": img.state, "reason": img.reason, "detail": img.detail,
             "faces": [{"idx": f.idx, "state": f.state, "reason": f.reason,
                        "distance": f.distance, "crop": f.crop_path, "detail": f.detail}
                       for f in sorted(img.faces, key=lambda f: f.idx)]}
            for img in sorted(p.images, key=lambda i: (i.rank is None, i.rank or 0, i.id))
        ],
    }
