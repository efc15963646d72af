"""Everyday verbs: recognise many photos in one run, verify two photos, statistics, and
gallery export/import. Thin shells over ``recognize``, ``verify``, ``stats`` and
``gallery_archive``."""

from __future__ import annotations

import csv
import glob
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from faceatlas.cli.base import (
    app,
    console,
    err,
    exit_for,
    friendly,
    options,
    state_label,
)
from faceatlas.domain.errors import FaceAtlasError, ImageError
from faceatlas.settings import get_settings

if TYPE_CHECKING:
    from faceatlas.gallery.sightings import Where

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
FORMATS = ("table", "json", "csv")


# --------------------------------------------------------------------------- recognize


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders walked (image suffixes, sorted), globs expanded (``**`` too).
    FaceAtlasError for an input that matches nothing."""
    found: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(raw, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise FaceAtlasError(f"no file matches {raw!r}")
            found += files
        else:
            raise FaceAtlasError(f"{raw}: no such file or folder")
    return list(dict.fromkeys(found))


@dataclass
class FileResult:
    path: Path
    answer: dict[str, Any] | None = None  # the API's answer shape
    error: str | None = None


def recognize_paths(paths: list[Path], *, collection: str | None, top: int,
                    threshold: float | None, jobs: int = 1,
                    where: Where | None = None) -> Iterator[FileResult]:
    """Each photo's recognition, in input order; the models load once (one engine pool per
    process) and ``jobs`` photos are worked on at a time. An unreadable photo is a result
    with ``error``; a missing collection raises NotFoundError at the first photo."""
    from faceatlas.gallery.recognize import engine_pool, face_dict, recognize_bytes

    settings = get_settings()
    engines = engine_pool(settings, max(1, jobs))

    def one(path: Path) -> FileResult:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return FileResult(path, error=f"unreadable: {exc.strerror or exc}")
        try:
            r = recognize_bytes(data, settings, collection=collection, engines=engines,
                                threshold=threshold, top_k=top, where=where)
        except ImageError as exc:
            return FileResult(path, error=f"{exc.code}: {exc}")
        return FileResult(path, {
            "status": r.status, "collection": r.collection, "width": r.width,
            "height": r.height, "threshold": r.threshold,
            "faces": [face_dict(f, r) for f in r.faces]})

    if jobs <= 1:
        yield from map(one, paths)
        return
    with ThreadPoolExecutor(jobs) as pool:
        yield from pool.map(one, paths)


def _stderr_progress(done: int, total: int, last: list[float]) -> None:
    """Batch progress on stderr (stdout carries the data): a line a second, and the last."""
    if options.quiet or total < 2:
        return
    now = time.monotonic()
    if done == total or now - last[0] >= 1.0:
        last[0] = now
        print(f"recognize: {done}/{total} photos", file=sys.stderr, flush=True)


def run_recognize(inputs: list[str], *, collection: str | None, top: int,
                  threshold: float | None, fmt: str, jobs: int,
                  where: Where | None = None) -> None:
    """``faceatlas recognize`` over many inputs: table, JSON (one array) or CSV (a row per
    face; a photo with no face or an error gets one row); exit 3/4 when photos failed."""
    if fmt not in FORMATS:
        raise FaceAtlasError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    paths = expand_inputs(inputs)
    if not paths:
        raise FaceAtlasError("no photos found in " + ", ".join(inputs))
    results: list[FileResult] = []
    last = [0.0]
    for i, res in enumerate(recognize_paths(paths, collection=collection, top=top,
                                            threshold=threshold, jobs=jobs, where=where),
                           start=1):
        results.append(res)
        _stderr_progress(i, len(paths), last)
    from faceatlas.gallery.sightings import flush

    flush()  # what was seen is written before the process ends
    if fmt == "json":
        typer.echo(json.dumps([{"file": str(r.path), **(r.answer or {}), "error": r.error}
                               for r in results], ensure_ascii=False, indent=1))
    elif fmt == "csv":
        _write_csv(results)
    else:
        _print_table(results, top)
    failed = sum(1 for r in results if r.error)
    for r in results:
        if r.error:
            err.print(f"[yellow]skipped[/] {escape(str(r.path))}: {escape(r.error)}")
    exit_for(len(results) - failed, failed)


def _candidates_text(face: dict[str, Any]) -> str:
    return "; ".join(f"{c['person']} {c['distance']:.3f}" for c in face.get("candidates") or [])


def _write_csv(results: list[FileResult]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["file", "status", "face", "x", "y", "w", "h", "person", "person_id",
                  "distance", "confidence", "candidates", "error"])
    for r in results:
        if r.answer is None or not r.answer["faces"]:
            out.writerow([r.path, "error" if r.error else r.answer["status"] if r.answer
                          else "", "", "", "", "", "", "", "", "", "", "", r.error or ""])
            continue
        for i, f in enumerate(r.answer["faces"], start=1):
            b = f["box"]
            out.writerow([r.path, f["status"], i, b["x"], b["y"], b["w"], b["h"],
                          f["person"] or "", f["person_id"] or "",
                          "" if f["distance"] is None else f["distance"],
                          "" if f["confidence"] is None else f["confidence"],
                          _candidates_text(f), ""])


def _print_table(results: list[FileResult], top: int) -> None:
    table = Table(title=f"{len(results)} photos")
    for col in ("file", "face", "person", "distance", *(["candidates"] if top else [])):
        table.add_column(col, overflow="fold")
    for r in results:
        if r.error:
            table.add_row(escape(r.path.name), "", f"[red]{escape(r.error)}[/]", "")
            continue
        assert r.answer is not None
        if not r.answer["faces"]:
            table.add_row(escape(r.path.name), "", "[yellow]no face[/]", "")
        for i, f in enumerate(r.answer["faces"], start=1):
            who = (f"[green]{escape(f['person'])}[/]" if f["status"] == "known"
                   else "[yellow]unknown[/]")
            dist = f["distance"] if f["status"] == "known" else f["nearest_distance"]
            table.add_row(escape(r.path.name), str(i), who,
                          "" if dist is None else f"{dist:.3f}",
                          *([escape(_candidates_text(f))] if top else []))
    console.print(table)


# --------------------------------------------------------------------------- verify


@app.command()
@friendly
def verify(
    first: Annotated[Path, typer.Argument(help="First photo.", exists=True, dir_okay=False)],
    second: Annotated[Path, typer.Argument(help="Second photo.", exists=True, dir_okay=False)],
    threshold: Annotated[float | None, typer.Option(
        min=0.01, max=2.0, help="Same person at or below this distance (default: "
        "FACEATLAS_RECOGNIZE_THRESHOLD).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Do two photos show the same person? Compares the largest face of each: distance,
    threshold and the answer. Exit 0 either way (the answer is in the output); 1 when a photo
    has no face or cannot be read."""
    from faceatlas.gallery.verify import verify_bytes

    v = verify_bytes(first.read_bytes(), second.read_bytes(), get_settings(),
                     threshold=threshold)
    if as_json:
        typer.echo(json.dumps(v.as_dict(), indent=1))
        return
    answer = "[green]same person[/]" if v.same else "[yellow]different people[/]"
    console.print(f"{answer}: distance {v.distance:.3f} (threshold {v.threshold:.2f}; "
                  f"faces found {len(v.a.faces)} and {len(v.b.faces)}, the largest compared)")


# --------------------------------------------------------------------------- stats


@app.command()
@friendly
def stats(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Per collection: people by state, images by reason, faces, gallery and index size."""
    from faceatlas.gallery.stats import collection_stats

    found = collection_stats(get_settings(), collection)
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in found], indent=1, ensure_ascii=False))
        return
    if not found:
        console.print("no collections yet: start with [bold]faceatlas import[/] or "
                      "[bold]faceatlas run[/]")
        return
    for s in found:
        states = ", ".join(f"{state_label(k)} {v}" for k, v in s.people_by_state.items())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.images_by_reason.items(),
                                                        key=lambda kv: -kv[1]))
        console.print(f"[bold]{escape(s.key)}[/] ({escape(s.name)})")
        console.print(f"  people   {s.people}: {states or '-'}")
        console.print(f"  images   {s.images}: {escape(reasons) or '-'}")
        console.print(f"  faces    {s.faces} ({s.faces_accepted} accepted)")
        console.print(f"  gallery  {s.gallery_faces} files; index {s.index_faces} faces of "
                      f"{s.index_people} people")


# --------------------------------------------------------------------------- gallery archive


@app.command("export-gallery")
@friendly
def export_gallery_cmd(
    archive: Annotated[Path, typer.Argument(help="Where to write the archive (.tar).")],
    collection: Annotated[str, typer.Option(help="The collection to export.")],
) -> None:
    """Write a collection as one archive: crops, gallery files, embeddings (with the engine
    name and model hash) and a manifest with provenance and licences."""
    from faceatlas.gallery.archive import export_gallery

    size = export_gallery(get_settings(), collection, archive)
    console.print(f"wrote {archive} ({size / 1e6:.1f} MB)")


@app.command("import-gallery")
@friendly
def import_gallery_cmd(
    archive: Annotated[Path, typer.Argument(help="An archive from export-gallery.",
                                            exists=True, dir_okay=False)],
    collection: Annotated[str | None, typer.Option(
        help="Collection to create (default: the archive's own).")] = None,
) -> None:
    """Load an exported collection into this home (refuses another engine's embeddings and a
    collection that already has people); recognition answers as in the exporting home."""
    from faceatlas.gallery.archive import import_gallery

    r = import_gallery(get_settings(), archive, collection)
    console.print(f"imported into [bold]{r.collection}[/]: {r.people} people, {r.images} "
                  f"images, {r.faces} faces, {r.index_faces} in the index")


