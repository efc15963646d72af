"""The ``faceatlas`` Typer app and what every command shares: errors, progress, colours."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faceatlas.errors import AmbiguousError, EngineMismatchError, FaceAtlasError

app = typer.Typer(
    help="Build, keep and serve face-recognition galleries of public figures.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals can hold API keys
)
console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

REJECT_ORDER = ["not_this_person", "duplicate", "over_limit", "multiple_faces", "blurry",
                "face_too_small", "no_face", "decode_error", "not_an_image", "download_failed"]


def friendly(fn: F) -> F:
    """FaceAtlasError → one red line and exit code 1; anything else is a bug and shows fully."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FaceAtlasError as exc:
            hint = cli_hint(exc)
            err.print(f"[bold red]error:[/] {exc}" + (f"; {hint}" if hint else ""))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def cli_hint(exc: FaceAtlasError) -> str | None:
    """The flag or command that helps, in the CLI's words (the library names no flags)."""
    if isinstance(exc, EngineMismatchError) and exc.collection and exc.engine:
        return f"run `faceatlas reembed --collection {exc.collection} --engine {exc.engine}`"
    if isinstance(exc, AmbiguousError):
        return "add --collection"
    return None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    )


def state_label(state: str) -> str:
    colour = {"curated": "green", "promoted": "bold green", "failed": "red",
              "too_few_faces": "yellow"}.get(state, "cyan")
    return f"[{colour}]{state}[/]"
