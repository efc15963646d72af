"""Export a collection as one archive and import it into another home, exactly.

The archive is an uncompressed tar (crops are JPEGs already), written as a stream so a server
can send it while it is being made:

- ``manifest.json``: format, the engines (name and model hash: embeddings are only
  comparable between identical models; every face carries its own tag), the collection, and
  every person with their images (provenance:
  URL, page, provider, query, rank; licence, licence URL, author; decision and detail),
  faces (box, landmarks, scores, decision, crop and gallery file names, embedding row) and
  trusted references (source, URL or face, state, embedding row; a local file path is not
  carried over: its measurement is);
- ``embeddings.npy``: float32, one row per face and per reference that has an embedding;
- ``crops/<name>`` and ``gallery/<name>``: the face crops and the promoted gallery files.

Import refuses an archive of another engine/model, a collection that already has people, and
any file name that is not a plain name; it rebuilds the collection's index from the gallery
faces, so recognition answers the same as in the exporting home. Raw downloads are not
shipped (they are large and re-fetchable from the recorded URLs).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.faces.engines import ENGINES
from faceatlas.gallery.index import DIM, index_store
from faceatlas.gallery.promote import search_vectors
from faceatlas.settings import Settings
from faceatlas.store.db import prepare_database, session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import Collection, Face, Image, Person, Reference, ReferenceState
from faceatlas.store.people import get_or_create_collection

FORMAT = "faceatlas-gallery/1"
_PERSON_FIELDS = ("key", "name", "ascii_name", "first_name", "last_name", "folder", "occupations",
                  "country", "source", "verdict", "state", "error", "attempts", "selftest",
                  "wikidata_qid", "native_name", "engine")
_IMAGE_FIELDS = ("origin", "provider", "query", "rank", "url", "thumbnail_url", "page_url",
                 "title", "sha256", "width", "height", "bytes", "state", "reason", "detail",
                 "licence", "licence_url", "author", "video_source", "video_track",
                 "video_start", "video_end", "video_time")
_FACE_FIELDS = ("idx", "x", "y", "w", "h", "landmarks", "det_score", "blur", "phash",
                "distance", "quality", "state", "reason", "engine", "model_hash", "detail")
_REFERENCE_FIELDS = ("source", "url", "state", "error")


class ArchiveError(FaceAtlasError):
    code = "bad_archive"


@dataclass
class ImportReport:
    collection: str
    people: int
    images: int
    faces: int
    index_faces: int


# --------------------------------------------------------------------------- export


def _plain(name: str) -> str:
    """A file name with no folder part (archives name files, never paths)."""
    if not name or PurePosixPath(name).name != name or name in (".", "..") or "\\" in name:
        raise ArchiveError(f"unsafe file name in the archive: {name!r}")
    return name


def collect_manifest(settings: Settings, collection: str) -> tuple[dict[str, Any], np.ndarray,
                                                                   list[tuple[str, Path]]]:
    """The manifest, the embeddings and the files (archive name, path) of a collection."""
    layout = Layout(settings.home)
    key = collection_key(collection)
    vectors: list[np.ndarray] = []
    files: list[tuple[str, Path]] = []
    with session_scope(settings) as session:
        coll = session.scalar(select(Collection).where(Collection.key == key))
        if coll is None:
            raise NotFoundError(f"no collection {collection!r}")
        people = session.scalars(
            select(Person).where(Person.collection_id == coll.id).order_by(Person.id)
            .options(selectinload(Person.images).selectinload(Image.faces))
        ).all()
        out_people = []
        for p in people:
            images = []
            for img in sorted(p.images, key=lambda i: i.id):
                faces = []
                for f in sorted(img.faces, key=lambda f: f.idx):
                    entry: dict[str, Any] = {k: getattr(f, k) for k in _FACE_FIELDS}
                    entry["id"] = f.id  # what references and nothing else point at
                    # arbitration's "this face is that other person": by archive person id
                    entry["other_person"] = f.other_person_id
                    entry["embedding"] = None
                    if f.embedding is not None:
                        entry["embedding"] = len(vectors)
                        vectors.append(np.frombuffer(f.embedding, dtype=np.float32))
                    for kind, rel in (("crop", f.crop_path), ("gallery", f.gallery_path)):
                        entry[kind] = None
                        if rel:
                            name = PurePosixPath(rel).name
                            entry[kind] = name
                            files.append((f"{kind}s/{name}" if kind == "crop"
                                          else f"gallery/{name}", layout.absolute(rel)))
                    faces.append(entry)
                images.append({**{k: getattr(img, k) for k in _IMAGE_FIELDS}, "faces": faces})
            out_people.append({**{k: getattr(p, k) for k in _PERSON_FIELDS}, "id": p.id,
                               "images": images,
                               "references": _references(session, p.id, vectors)})
        tags = sorted({(f["engine"], f["model_hash"]) for p in out_people
                       for i in p["images"] for f in i["faces"] if f["embedding"] is not None})
        manifest = {
            "format": FORMAT,
            "engines": [{"engine": e, "model_hash": h} for e, h in tags],
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "collection": {"key": coll.key, "name": coll.name}, "people": out_people,
        }
    if len({len(v) for v in vectors}) > 1:
        raise ArchiveError(f"{key}'s faces have embeddings of different sizes: run "
                           "`faceatlas reembed` first so one engine made them all")
    # no face: an empty matrix of the index's default width
    matrix = (np.stack(vectors) if vectors else np.zeros((0, DIM), np.float32))
    manifest["embedding_dim"] = int(matrix.shape[1])
    return manifest, matrix.astype(np.float32), files


def _references(session: Session, person_id: int, vectors: list[np.ndarray]
                ) -> list[dict[str, Any]]:
    """The person's trusted references; one whose only source is a file on this machine and
    that was never measured is left out (the other home could not read that file)."""
    out = []
    for ref in session.scalars(select(Reference).where(Reference.person_id == person_id)
                               .order_by(Reference.id)):
        if ref.embedding is None and ref.url is None and ref.face_id is None:
            continue
        entry: dict[str, Any] = {k: getattr(ref, k) for k in _REFERENCE_FIELDS}
        entry["face"], entry["embedding"] = ref.face_id, None
        if ref.embedding is not None:
            entry["embedding"] = len(vectors)
            vectors.append(np.frombuffer(ref.embedding, dtype=np.float32))
        out.append(entry)
    return out


class _Chunks(io.RawIOBase):
    """A write-only file whose bytes are handed out in chunks (tarfile's stream mode)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def iter_archive(settings: Settings, collection: str) -> Iterator[bytes]:
    """The archive of a collection, chunk by chunk (at most one file in memory at a time).
    The catalogue is read before the first chunk: NotFoundError is raised by the call to
    ``next``, before anything was sent."""
    manifest, matrix, files = collect_manifest(settings, collection)
    return stream_archive(manifest, matrix, files)


def stream_archive(manifest: dict[str, Any], matrix: np.ndarray,
            files: list[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _Chunks()
    now = time.time()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        npy = io.BytesIO()
        np.save(npy, matrix, allow_pickle=False)
        meta = json.dumps(manifest, ensure_ascii=False, indent=1, default=str).encode()
        for name, data in (("manifest.json", meta), ("embeddings.npy", npy.getvalue())):
            _add(tar, name, data, now)
            yield sink.take()
        seen: set[str] = set()
        for name, path in files:
            if name in seen:
                continue
            seen.add(name)
            _add(tar, name, path.read_bytes(), now)
            yield sink.take()
    yield sink.take()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def export_gallery(settings: Settings, collection: str, dest: Path) -> int:
    """Write the archive to ``dest`` (atomically); returns its size in bytes."""
    tmp = dest.with_name(dest.name + ".part")
    size = 0
    with open(tmp, "wb") as fh:
        for chunk in iter_archive(settings, collection):
            fh.write(chunk)
            size += len(chunk)
    tmp.replace(dest)
    return size


# --------------------------------------------------------------------------- import


def import_gallery(settings: Settings, archive: Path | IO[bytes],
                   collection: str | None = None) -> ImportReport:
    """Load an archive into this home as collection ``collection`` (default: its own)."""

    prepare_database(settings)
    layout = Layout(settings.home)
    try:
        tar = (tarfile.open(archive, "r:*") if isinstance(archive, Path)  # noqa: SIM115
               else tarfile.open(fileobj=archive, mode="r:*"))  # noqa: SIM115
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"not a gallery archive: {exc}") from None
    with tar:
        manifest = json.loads(_member(tar, "manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ArchiveError(f"unknown archive format {manifest.get('format')!r}")
        matrix = np.load(io.BytesIO(_member(tar, "embeddings.npy")), allow_pickle=False)
        for tag in manifest.get("engines", []):  # only models this installation has
            engine, model = tag.get("engine"), tag.get("model_hash")
            spec = ENGINES.get(engine) if isinstance(engine, str) else None  # JSON: any type
            if spec is None or spec.model_hash != model:
                raise ArchiveError(
                    f"the archive's embeddings come from engine {engine!r} (model "
                    f"{str(model)[:12]}), which this installation does not have: they are not "
                    "comparable with its own")
            if matrix.dtype != np.float32 or matrix.ndim != 2 or (
                    len(matrix) and matrix.shape[1] != spec.dim):
                raise ArchiveError(f"embeddings.npy has shape {matrix.shape} {matrix.dtype}, "
                                   f"not {engine}'s")
        _check_names(tar, manifest, len(matrix))  # every name and row before any write
        target = collection or manifest["collection"]["name"]
        key = collection_key(target)
        with session_scope(settings) as session:
            coll = get_or_create_collection(session, target)
            if session.scalar(select(func.count()).select_from(Person)
                              .where(Person.collection_id == coll.id)):
                raise FaceAtlasError(f"collection {coll.key!r} already has people: import "
                                     "into a new one (--collection NEW)")
        n_images = n_faces = 0
        gallery_rows: list[tuple[int, int, np.ndarray, tuple[str, str]]] = []
        new_ids: dict[int, int] = {}  # archive person id -> this home's
        new_faces: dict[int, int] = {}  # archive face id -> this home's
        others: list[tuple[Face, int]] = []
        with session_scope(settings) as session:
            coll = get_or_create_collection(session, target)
            for pm in manifest["people"]:
                folder = _plain(pm["folder"])
                person = Person(collection_id=coll.id, **{k: pm[k] for k in _PERSON_FIELDS})
                person.folder = folder
                session.add(person)
                session.flush()
                new_ids[int(pm["id"])] = person.id
                for im in pm["images"]:
                    img = Image(person_id=person.id, **{k: im[k] for k in _IMAGE_FIELDS})
                    session.add(img)
                    session.flush()
                    n_images += 1
                    for fm in im["faces"]:
                        face = Face(image_id=img.id, person_id=person.id,
                                    **{k: fm[k] for k in _FACE_FIELDS})
                        row = fm["embedding"]
                        if row is not None:
                            face.embedding = np.ascontiguousarray(matrix[int(row)]).tobytes()
                        if fm["crop"]:
                            dest = layout.faces_dir(key, folder) / _plain(fm["crop"])
                            atomic_write(dest, _member(tar, f"crops/{fm['crop']}"))
                            face.crop_path = layout.relative(dest)
                        if fm["gallery"]:
                            dest = layout.gallery_dir(key) / _plain(fm["gallery"])
                            atomic_write(dest, _member(tar, f"gallery/{fm['gallery']}"))
                            face.gallery_path = layout.relative(dest)
                        session.add(face)
                        session.flush()
                        n_faces += 1
                        if fm.get("id") is not None:
                            new_faces[int(fm["id"])] = face.id
                        if fm.get("other_person") is not None:
                            others.append((face, int(fm["other_person"])))
                        if face.gallery_path and row is not None:
                            gallery_rows.append((face.id, person.id, matrix[int(row)],
                                                 (face.engine, face.model_hash)))
                for rm in pm.get("references", []):
                    row = rm["embedding"]
                    face_id = (new_faces.get(int(rm["face"])) if rm["face"] is not None
                               else None)
                    if rm["url"] is None and face_id is None and row is None:
                        continue  # its face is not in the archive: nothing left to trust
                    ref = Reference(person_id=person.id, **{k: rm[k] for k in _REFERENCE_FIELDS},
                                    face_id=face_id)
                    if row is not None:
                        ref.embedding = np.ascontiguousarray(matrix[int(row)]).tobytes()
                    elif ref.state == ReferenceState.READY:
                        ref.state = ReferenceState.PENDING  # measured again when collected
                    session.add(ref)
            for face, other in others:  # people of another collection stay unnamed
                face.other_person_id = new_ids.get(other)
    # the index: exactly the gallery faces, as promotion left it in the exporting home
    if gallery_rows:
        ids = np.array([r[0] for r in gallery_rows], dtype=np.int64)
        people = np.array([r[1] for r in gallery_rows], dtype=np.int64)
        tag, vectors = search_vectors({r[3] for r in gallery_rows},
                                      np.stack([r[2] for r in gallery_rows]).astype(np.float32),
                                      key)
        index_store(settings).update(key, lambda index: index.add(ids, people, vectors),
                                     engine=tag)
    return ImportReport(key, len(manifest["people"]), n_images, n_faces, len(gallery_rows))


def _check_names(tar: tarfile.TarFile, manifest: dict[str, Any], rows: int) -> None:
    """Plain file names that the archive holds and embedding rows it has: a bad archive is
    refused before anything is written."""
    try:
        for p in manifest["people"]:
            _plain(p["folder"])
            int(p["id"])
            for i in p["images"]:
                for f in i["faces"]:
                    for kind, prefix in (("crop", "crops/"), ("gallery", "gallery/")):
                        if f[kind]:
                            _member_info(tar, prefix + _plain(f[kind]))
                    if f["embedding"] is not None and not 0 <= int(f["embedding"]) < rows:
                        raise ArchiveError(f"embedding row {f['embedding']} out of range")
            for r in p.get("references", []):
                _check_reference(r, rows)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArchiveError(f"the manifest is not as export-gallery writes it: {exc!r}") from None


#: ``Reference.source``'s column width
_SOURCE_CHARS = 30
_REFERENCE_STATES = frozenset(s.value for s in ReferenceState)


def _check_reference(r: dict[str, Any], rows: int) -> None:
    """A reference entry as export writes it (KeyError, TypeError, ValueError: the caller
    says the manifest is not as export writes it)."""
    missing = [k for k in (*_REFERENCE_FIELDS, "face", "embedding") if k not in r]
    if missing:
        raise KeyError(f"a reference has no {', '.join(missing)}")
    source, state = r["source"], r["state"]
    if not isinstance(source, str) or not 0 < len(source) <= _SOURCE_CHARS:
        raise ArchiveError(f"a reference's source must be a name of at most {_SOURCE_CHARS} "
                           f"characters, not {str(source)[:40]!r}")
    if state not in _REFERENCE_STATES:
        raise ArchiveError(f"a reference's state must be one of "
                           f"{', '.join(sorted(_REFERENCE_STATES))}, not {str(state)[:40]!r}")
    for key in ("url", "error"):
        if r[key] is not None and not isinstance(r[key], str):
            raise ArchiveError(f"a reference's {key} must be text")
    if r["embedding"] is not None and not 0 <= int(r["embedding"]) < rows:
        raise ArchiveError(f"embedding row {r['embedding']} out of range")
    if r["face"] is not None:
        int(r["face"])


def _member_info(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    members = getattr(tar, "_by_name", None)
    if members is None:  # getmember scans the whole list each call: O(n²) for big archives
        members = {m.name: m for m in tar.getmembers()}
        tar._by_name = members  # type: ignore[attr-defined]
    member = members.get(name)
    if member is None or not member.isfile():
        raise ArchiveError(f"the archive has no file {name}")
    return member


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    fh = tar.extractfile(_member_info(tar, name))
    if fh is None:
        raise ArchiveError(f"{name} in the archive is not a file")
    return fh.read()
