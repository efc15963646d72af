"""Core commands: import, people, show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from faceatlas.cli.base import REJECT_ORDER, app, console, friendly, progress_bar, state_label
from faceatlas.errors import FaceAtlasError
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
    from faceatlas.importer import PersonFolder, import_folder

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
) -> None:
    """List people with their state and counts of candidates and accepted faces."""
    from faceatlas.names.normalize import one_line
    from faceatlas.store.queries import list_people

    rows = list_people(get_settings(), collection=collection, limit=None)
    if not rows:
        console.print("no people yet: start with [bold]faceatlas import[/] or "
                      "[bold]faceatlas run[/]")
        return
    table = Table(title="people")
    for col in ("id", "collection", "name", "occupations", "state", "images", "faces"):
        table.add_column(col, justify="right" if col in ("id", "images", "faces") else "left")
    for p in rows:
        table.add_row(str(p.id), p.collection, escape(p.name),
                      escape(one_line(", ".join(p.occupations))),
                      state_label(p.state), str(p.images), str(p.accepted_faces))
    console.print(table)


@app.command()
@friendly
def show(
    person: Annotated[str, typer.Argument(help="Person name (any spelling) or id.")],
    collection: Annotated[str | None, typer.Option(help="Collection, if the name is ambiguous.")]
    = None,
) -> None:
    """Each candidate image of a person, with its decision and reason."""
    from faceatlas.names.normalize import one_line
    from faceatlas.store.db import session_scope
    from faceatlas.store.models import FaceState, Reason
    from faceatlas.store.people import find_person
    from faceatlas.store.queries import person_images

    settings = get_settings()
    with session_scope(settings) as session:
        p = find_person(session, person, collection)
        known = "".join(f" · {escape(one_line(x))}" for x in (p.native_name, p.wikidata_qid) if x)
        console.print(f"[bold]{escape(one_line(p.name))}[/] ({p.ascii_name}){known} · "
                      f"{p.collection.key} · {state_label(p.state)}"
                      + (f" · [red]{escape(p.error)}[/]" if p.error else ""))
        person_id = p.id
    table = Table()
    for col in ("image", "source", "licence", "faces", "decision", "distance", "crop"):
        table.add_column(col)
    for img in person_images(settings, person_id):
        accepted = [f for f in img.faces if f.state == FaceState.ACCEPTED]
        best = accepted[0] if accepted else min(
            img.faces, key=lambda f: f.distance if f.distance is not None else 9, default=None
        )
        distance = f"{best.distance:.3f}" if best and best.distance is not None else ""
        decision = img.reason or img.state
        style = "green" if decision == Reason.ACCEPTED else "red"
        table.add_row(
            img.title or img.origin, (img.url or img.origin)[:60],
            " · ".join(x[:40] for x in (img.licence, img.author) if x),
            str(len(img.faces)),
            f"[{style}]{decision}[/]", distance,
            Path(accepted[0].crop_path).name if accepted and accepted[0].crop_path else "",
        )
    console.print(table)
