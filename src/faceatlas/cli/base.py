"""The ``faceatlas`` Typer app and what every command shares: errors, progress, colours,
exit codes.

Exit codes (also in ``faceatlas --help`` and the README):

    0  done: everything asked for worked (or there was nothing to do)
    1  error: bad input, a missing setting, something not found (one red line says what)
    2  usage: the command line itself is wrong (unknown option, missing argument)
    3  partial: some items failed (people not collected, photos not readable), others worked
    4  failed: every item failed, nothing was done
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faceatlas.domain.errors import (
    AMBIGUOUS_WORD,
    AmbiguousError,
    EngineMismatchError,
    FaceAtlasError,
)
from faceatlas.domain.states import REASON_ORDER, PersonState

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2, 3, 4
EXIT_CODES_HELP = ("Exit codes: 0 done (or nothing to do) · 1 error (bad input, missing "
                   "setting, not found) · 2 usage (wrong command line) · 3 partial (some items "
                   "failed) · 4 failed (every item failed).")

app = typer.Typer(
    help="Build, keep and serve face-recognition galleries of public figures.\n\n"
         + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals can hold API keys
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line: grep-able in logs
F = TypeVar("F", bound=Callable[..., Any])

#: rejection reasons in summaries: the one order every view uses (domain.states.REASON_ORDER)
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
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def cli_hint(exc: FaceAtlasError) -> str | None:
    """The flag or command that helps, in the CLI's words (the library names no flags)."""
    if isinstance(exc, EngineMismatchError) and exc.collection and exc.engine:
        return f"run `faceatlas reembed --collection {exc.collection} --engine {exc.engine}`"
    if isinstance(exc, AmbiguousError) and exc.code != AMBIGUOUS_WORD:
        return "add --collection"
    return None


class _Options:
    quiet = False  # no progress at all (set by ``faceatlas --quiet``)


options = _Options()


@app.callback()
def _global(
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No progress output (results and errors only)."),
) -> None:
    options.quiet = quiet
    if not any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        check_settings()


def check_settings() -> None:
    """Every command starts with valid settings: an invalid ``FACEATLAS_*`` value is one red
    line naming it (secrets hidden) and exit 1, before the command runs."""
    from faceatlas.settings import get_settings

    try:
        get_settings()
    except FaceAtlasError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None


def exit_for(done: int, failed: int) -> None:
    """Raise the exit code of a batch: partial (3) or failed (4) when items failed."""
    if failed and done:
        raise typer.Exit(EXIT_PARTIAL)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def interactive() -> bool:
    """Rich progress bars only on a terminal; plain lines otherwise (pipes, logs, CI)."""
    return console.is_terminal


def progress_line(text: str) -> None:
    """One plain progress line, only when stdout is not a terminal (and not ``--quiet``):
    on a terminal the bars say it. Lines go to stdout so ``| tee log`` keeps them."""
    if not options.quiet and not interactive():
        print(text, flush=True)


class PlainProgress:
    """What ``progress_bar`` is off a terminal: the same calls, a line per step (at most one
    a second per task, and always the last), or nothing at all with ``--quiet``."""

    EVERY = 1.0

    def __init__(self, quiet: bool, stream: Any = None) -> None:
        self.quiet = quiet
        self.stream = stream  # None: stdout
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        task = len(self.tasks)
        self.tasks[task] = {"description": description, "total": total, "completed": 0,
                            "shown": 0.0}
        return task

    def update(self, task: int, *, completed: float | None = None, total: float | None = None,
               description: str | None = None, advance: float | None = None, **_: Any) -> None:
        t = self.tasks[task]
        before = t["completed"]
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        if completed is not None:
            t["completed"] = completed
        if advance is not None:
            t["completed"] += advance
        now = time.monotonic()
        finished = t["total"] is not None and t["completed"] >= t["total"]
        if t["completed"] != before and (finished or now - t["shown"] >= self.EVERY):
            t["shown"] = now
            self._line(t)

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def _line(self, t: dict[str, Any]) -> None:
        if self.quiet:
            return
        total = "?" if t["total"] is None else int(t["total"])
        print(f"{t['description']}: {int(t['completed'])}/{total}", flush=True,
              file=self.stream or sys.stdout)


def progress_bar(data: bool = False) -> Progress | PlainProgress:
    """Bars on a terminal, else plain lines: on stdout, or on stderr when stdout carries
    ``data`` (JSON, CSV) that a pipe must receive clean."""
    if options.quiet or not interactive():
        return PlainProgress(options.quiet, sys.stderr if data else None)
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    )


def anchor_label(anchor: str) -> str:
    """An anchor, coloured: none (the majority vote alone) stands out."""
    colour = {"portrait": "green", "reference": "green"}.get(anchor, "yellow")
    return f"[{colour}]{anchor}[/]"


def anchor_summary(results: Any) -> list[str]:
    """The promotion summary's anchor lines: how many galleries rest on what, and who has
    no anchor (held with FACEATLAS_REQUIRE_ANCHOR, else promoted on the vote alone)."""
    from collections import Counter

    counts = Counter(str(r.anchor) for r in results)
    lines = ["anchors: " + ", ".join(f"{k} {counts.get(k, 0)}"
                                     for k in ("portrait", "reference", "none"))]
    bare = [r for r in results if str(r.anchor) == "none"]
    if bare:
        held = sum(str(r.state) == "unanchored" for r in bare)
        names = ", ".join(escape(r.person) for r in bare[:20]) + (" …" if len(bare) > 20 else "")
        lines.append(f"[yellow]unanchored {len(bare)}[/] ({held} held): {names}")
        if not held:
            lines.append("[dim]their galleries rest on the majority vote alone; "
                         "FACEATLAS_REQUIRE_ANCHOR=1 holds them until anchored[/]")
    return lines


def lookup_lines(lookup: dict[str, Any] | None) -> list[str]:
    """How looking the name up on Wikidata ended, and the candidates a reviewer chooses from."""
    if not lookup:
        return []
    lines = [f"Wikidata lookup: {lookup.get('state')}: {lookup.get('detail') or ''}".rstrip()]
    if lookup.get("state") != "matched":
        lines += [f"  candidate {c.get('qid')} {c.get('label')} — {c.get('description') or '?'}"
                  for c in lookup.get("candidates") or []]
    return lines


def state_label(state: str) -> str:
    colour = {PersonState.CURATED: "green", PersonState.PROMOTED: "bold green",
              PersonState.FAILED: "red", PersonState.TOO_FEW_FACES: "yellow"}.get(state, "cyan")
    return f"[{colour}]{state}[/]"
