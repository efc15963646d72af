"""Video commands: ``import-video`` and the video branch of ``recognize``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from faceatlas.cli.base import app, console, err, friendly, progress_bar
from faceatlas.domain.states import Reason, reason_sort_key
from faceatlas.settings import get_settings

if TYPE_CHECKING:
    from faceatlas.gallery.sightings import Where

Fps = Annotated[float | None, typer.Option(
    min=1.0, max=8.0, help="Frames sampled per second, 1–8 (default: FACEATLAS_VIDEO_FPS, 2).")]


def _bar_progress(bar, task):  # type: ignore[no-untyped-def]
    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update


@app.command("import-video")
@friendly
def import_video(
    clip: Annotated[Path, typer.Argument(help="Video file (MP4, MOV, WebM, MKV …).",
                                         exists=True, dir_okay=False, readable=True)],
    person: Annotated[str, typer.Option(help="Whose faces to collect from the clip.")],
    collection: Annotated[str | None, typer.Option(help="Collection (default: the default "
                                                   "collection).")] = None,
    fps: Fps = None,
    strategy: Annotated[str | None, typer.Option(help="consensus (default) or seed.")] = None,
) -> None:
    """Collect a person's faces from a clip: every face track's best frames become candidates
    (with the clip and time range), curated with the same rules as photos."""
    from faceatlas.video.collect import import_video as run

    settings = get_settings()
    with progress_bar() as bar:
        task = bar.add_task(f"{clip.name}: frames", total=None)
        result = run(clip, person, settings, collection=collection, fps=fps, strategy=strategy,
                     progress=_bar_progress(bar, task),
                     on_curate=lambda: bar.update(task, description="curating"))
    a = result.analysis
    if a.partial:
        err.print(f"[yellow]warning:[/] {a.error}")
    table = Table(title=f"{result.curation.person} from {clip.name}: "
                        f"{result.curation.accepted} accepted faces in all")
    for col in ("track", "from–to (s)", "frames", "accepted", "rejected (why)"):
        table.add_column(col)
    for t in result.tracks:
        why = ", ".join(f"{r} {t.reasons[r]}" for r in sorted(t.reasons, key=reason_sort_key)
                       if r != Reason.ACCEPTED)
        table.add_row(str(t.track), f"{t.start:.1f}–{t.end:.1f}", str(t.frames),
                      f"[green]{t.accepted}[/]" if t.accepted else "0", why)
    console.print(table)


def recognize_clip(clip: Path, collection: str | None, as_json: bool, fps: float | None,
                   where: Where | None = None) -> None:
    """``faceatlas recognize CLIP``: a timeline of who appears when."""
    from faceatlas.video.recognize import answer, recognize_video

    settings = get_settings()
    with progress_bar(data=as_json) as bar:
        task = bar.add_task(f"{clip.name}: frames", total=None)
        result = recognize_video(clip, settings, collection=collection, fps=fps,
                                 progress=_bar_progress(bar, task), where=where)
    if as_json:
        typer.echo(json.dumps(answer(result), ensure_ascii=False, indent=2))
        return
    a = result.analysis
    if a.partial:
        err.print(f"[yellow]warning:[/] {a.error}")
    if not result.timeline:
        console.print(f"no face found in {a.samples} frames")
        return
    table = Table(title=f"{clip.name} in {result.collection}: {a.info.duration:.1f} s, "
                        f"{a.samples} frames at {a.fps:g} fps")
    for col in ("person", "from–to (s)", "confidence", "tracks"):
        table.add_column(col)
    for s in result.timeline:
        who = f"[green]{s.name}[/]" if s.person_id is not None else "[yellow]unknown[/]"
        conf = "" if s.confidence is None else f"{s.confidence:.1f}%"
        table.add_row(who, f"{s.start:.1f}–{s.end:.1f}", conf,
                      ", ".join(map(str, s.tracks)))
    console.print(table)
