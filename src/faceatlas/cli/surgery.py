"""People surgery commands (issue 24): ``merge``, ``split``, ``move-faces``. Thin shells over
``gallery.surgery``; the audit records them as ``cli`` (no token on the command line)."""

from __future__ import annotations

from typing import Annotated

import typer

from faceatlas.cli.base import app, console, friendly
from faceatlas.settings import get_settings

Collection = Annotated[str | None, typer.Option(help="Collection (default: the default).")]
#: the audit's "who" for the command line
BY = "cli"


def _person_id(person: str, collection: str | None) -> tuple[int, str]:
    from faceatlas.store.db import session_scope
    from faceatlas.store.people import find_person

    with session_scope(get_settings()) as s:
        p = find_person(s, person, collection)
        return p.id, p.name


def _states(states: dict[int, str]) -> str:
    return ", ".join(f"person {pid} {state}" for pid, state in sorted(states.items()))


@app.command()
@friendly
def merge(
    keep: Annotated[str, typer.Argument(help="Name or id of the person kept.")],
    gone: Annotated[str, typer.Argument(help="Name or id of the same person under another "
                                              "name: merged in, then deleted.")],
    collection: Collection = None,
) -> None:
    """Merge two people (the same person under two names): photos, faces, references and
    sightings become KEEP's; both re-decided and promoted again if in the gallery."""
    from faceatlas.gallery.surgery import merge_people

    (keep_id, keep_name), (gone_id, gone_name) = (_person_id(keep, collection),
                                                   _person_id(gone, collection))
    r = merge_people(get_settings(), keep_id, gone_id, by=BY)
    console.print(f"{gone_name} merged into {keep_name}: {r.images} photos, "
                  f"{len(r.faces)} accepted faces; {_states(r.states)}")


@app.command()
@friendly
def split(
    person: Annotated[str, typer.Argument(help="Name or id of the person split.")],
    new_name: Annotated[str, typer.Argument(help="The new person's name.")],
    faces: Annotated[list[int], typer.Option("--face", help="A face id to split off "
                                                            "(repeat).")],
    collection: Collection = None,
) -> None:
    """Split a person: the given faces (with their photos) become a new person."""
    from faceatlas.gallery.surgery import split_person

    pid, _ = _person_id(person, collection)
    r = split_person(get_settings(), pid, faces, new_name, by=BY)
    console.print(f"{new_name} (person {r.person_id}) made of {len(r.faces)} faces; "
                  f"{_states(r.states)}")


@app.command("move-faces")
@friendly
def move_faces(
    to: Annotated[str, typer.Argument(help="Name or id of the person the faces belong to.")],
    faces: Annotated[list[int], typer.Option("--face", help="A face id to move (repeat).")],
    collection: Collection = None,
) -> None:
    """Move faces (each with its photo) to another person of the same collection."""
    from faceatlas.gallery.surgery import move_faces as move

    pid, name = _person_id(to, collection)
    r = move(get_settings(), faces, pid, by=BY)
    console.print(f"{len(r.faces)} faces moved to {name}; {_states(r.states)}")
