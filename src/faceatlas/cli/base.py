"""The ``faceatlas`` Typer app and what every command shares: errors, progress, colours."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faceatlas.errors import AmbiguousError, EngineMismatchError, FaceAtlasError
from faceatlas.store.models import REASON_ORDER, PersonState

app = typer.Typer(
    help="Build, keep and serve face-recognition galleries of public figures.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals can hold API keys
)
console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

#: rejection reasons in summaries: the one order every view uses (store.models.REASON_ORDER)
REJECT_ORDER = REASON_ORDER


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
    colour = {PersonState.CURATED: "green", PersonState.PROMOTED: "bold green",
              PersonState.FAILED: "red", PersonState.TOO_FEW_FACES: "yellow"}.get(state, "cyan")
    return f"[{colour}]{state}[/]"
