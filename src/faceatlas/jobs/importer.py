"""``faceatlas import``: curate local folders of photos, one sub-folder per person."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from faceatlas.curation.apply import CurationReport
from faceatlas.curation.curate import (
    collect,
    finish_curation,
    plan_curation,
    plan_people,
    plan_person,
)
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.domain.names import InvalidNameError
from faceatlas.faces.analyse import FacePool, ImageAnalysis, face_pool
from faceatlas.jobs.collect import anchor_person
from faceatlas.jobs.migrate_seed import explain_old_layout
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.files import Layout, atomic_write, ext_of
from faceatlas.store.models import Image, ImageState, Person
from faceatlas.store.people import (
    PreparedPerson,
    get_or_create_collection,
    prepare_person,
    suspected_duplicates,
    upsert_people,
    upsert_person,
)

log = logging.getLogger(__name__)


@dataclass
class PersonFolder:
    name: str
    path: Path
    files: list[Path]


#: ``on_refused(path, reason)``: a file or folder ``scan`` would not read
Refused = Callable[[Path, str], None]


def _inside(path: Path, root: Path) -> Path | None:
    """Where ``path`` really is, if that is inside ``root`` (resolved); else ``None``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # broken link, loop
        return None
    return real if real == root or root in real.parents else None


def scan(root: Path, on_refused: Refused | None = None) -> list[PersonFolder]:
    """Person folders under ``root`` (folder name = person name), with their files.

    Symbolic links are followed only when they lead to somewhere inside ``root``: a link in a
    folder handed to us must not make us copy ``/etc/shadow`` or another user's photos into
    the store. Each refused link is passed to ``on_refused`` with the reason (and logged).
    """
    if not root.is_dir():
        raise FaceAtlasError(
            f"{root} is not a folder; give a folder with one sub-folder per person"
        )
    old = explain_old_layout(root)
    if old:  # not silently one person named after the country
        raise FaceAtlasError(old)

    real_root = root.resolve()

    def refuse(path: Path, why: str) -> None:
        log.warning("import: %s refused: %s", path, why)
        if on_refused is not None:
            on_refused(path, why)

    def allowed(path: Path) -> Path | None:
        if not path.is_symlink():
            return path
        real = _inside(path, real_root)
        if real is None:
            refuse(path, "symbolic link to outside the imported folder (or broken)")
        return real

    people = []
    for sub in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not sub.is_dir() or (real_sub := allowed(sub)) is None:
            continue
        files = []
        for f in sorted(real_sub.iterdir()):
            if f.name.startswith(".") or not f.is_file():
                continue
            real = allowed(f)
            if real is not None:
                files.append(real)
        people.append(PersonFolder(person_name(sub.name), real_sub, files))
    if not people:
        raise FaceAtlasError(f"{root} has no sub-folders: put each person's photos in a folder "
                             "named after the person")
    return people


def person_name(folder: str) -> str:
    """Folder ``Novak_Djokovic`` or ``Novak Đoković`` → the person's name."""
    return " ".join(folder.replace("_", " ").split())


def add_files(settings: Settings, person_id: int, files: list[Path]) -> int:
    """Copy new files into the person's raw folder and register them. Returns how many."""
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        assert person is not None
        return register_files(session, Layout(settings.home), person, files)


def register_files(session: Session, layout: Layout, person: Person, files: list[Path],
                   known: dict[str, str | None] | None = None) -> int:
    """:func:`add_files` inside the caller's transaction. ``known``: the person's stored
    files (origin → sha256) if the caller read them already; kept up to date."""
    rows: list[dict[str, object]] = []
    if known is None:
        known = known_files(session, [person.id])[person.id]
    for rank, path in enumerate(files):
        origin = f"file:{path.name}"
        data = read_no_follow(path)
        sha = hashlib.sha256(data).hexdigest()
        if known.get(origin) == sha:
            continue
        if origin in known:  # the file changed since the last import: start it over
            old = session.scalar(
                select(Image).where(Image.person_id == person.id, Image.origin == origin)
            )
            session.delete(old)
            session.flush()
            _drop_unreferenced_raw(session, layout, old.path)
        dest = layout.raw_file(person.collection.key, person.folder, sha, ext_of(path))
        if not dest.exists():
            atomic_write(dest, data)
        rows.append({
            "person_id": person.id, "origin": origin, "provider": "folder", "rank": rank,
            "title": path.name, "sha256": sha, "path": layout.relative(dest),
            "bytes": len(data), "state": ImageState.FETCHED,
        })
        known[origin] = sha
    if rows:  # one executemany (Core: no ORM round trip per row); plans read them back
        session.execute(insert(Image.__table__), rows)
    return len(rows)


def known_files(session: Session, person_ids: list[int]) -> dict[int, dict[str, str | None]]:
    """person id → origin → sha256 of their stored files, one query per 500 people."""
    out: dict[int, dict[str, str | None]] = {pid: {} for pid in person_ids}
    for chunk in chunked(person_ids):
        for pid, origin, sha in session.execute(
                select(Image.person_id, Image.origin, Image.sha256)
                .where(Image.person_id.in_(chunk))):
            out[pid][origin] = sha
    return out


@dataclass
class Enrolment:
    """A person registered with new photos: :meth:`submit` queues their analysis in a face
    pool, :meth:`finish` waits for it and curates."""

    person_id: int
    name: str
    collection: str
    collection_id: int
    created: bool
    #: other people of the collection whose names look like this one (reported, not merged)
    suspects: list[str]
    jobs: list[tuple[int, str]]  # (image id, file) pairs to analyse
    settings: Settings
    strategy: str | None = None
    futures: list[Future[ImageAnalysis]] = field(default_factory=list)

    def submit(self, pool: FacePool) -> Enrolment:
        self.futures = pool.submit(self.jobs)
        return self

    def finish(self, progress: Callable[[int, int], None] | None = None) -> CurationReport:
        """Wait for the analyses, decide every photo of the person, write the crops."""
        fresh = collect(self.futures, progress)
        return finish_curation(self.settings, self.person_id, fresh, strategy=self.strategy)


def register_person(settings: Settings, collection: str, name: str, files: list[Path], *,
                    source: str, strategy: str | None = None, check_duplicates: bool = False,
                    anchor: bool = False) -> Enrolment:
    """Register ``name`` in ``collection`` (the same person again if known), copy the photos
    in and plan their analysis (no face engine needed). :func:`enrol_person` is this and
    :meth:`Enrolment.submit`; API enrolment does the two apart, so the look-up of an
    ``anchor`` (network) holds no engine.

    ``anchor``: look the name up on Wikidata first, so its portrait is measured with the
    photos and anchors the decision (API enrolment; a folder's photos are the user's own).

    Raises :class:`InvalidNameError` for a name that cannot be a person's.
    """
    # one transaction for the person, their photos and the plan (a crash loses the three
    # together); with an anchor, the Wikidata look-up commits between them
    with session_scope(settings) as session:
        coll = get_or_create_collection(session, collection)
        suspects = suspected_duplicates(session, coll, name) if check_duplicates else []
        person, created = upsert_person(session, coll, name, source=source)
        found = (person.id, person.name, coll.key, coll.id)
        register_files(session, Layout(settings.home), person, files)
        jobs = None if anchor else plan_person(session, person, settings)
    if jobs is None:
        anchor_person(settings, found[0])
        jobs = plan_curation(settings, found[0])
    return Enrolment(*found, created, suspects if created else [], jobs, settings, strategy)


def enrol_person(settings: Settings, collection: str, name: str, files: list[Path], *,
                 source: str, pool: FacePool, strategy: str | None = None,
                 check_duplicates: bool = False, anchor: bool = False) -> Enrolment:
    """Register ``name`` in ``collection`` (the same person again if known), copy the photos
    in and queue their analysis; :meth:`Enrolment.finish` curates. Folder import and API
    enrolment both come through here (:func:`register_person`), so a photo is stored and
    decided the same way."""
    return register_person(settings, collection, name, files, source=source, strategy=strategy,
                           check_duplicates=check_duplicates, anchor=anchor).submit(pool)


def import_folder(
    root: Path,
    collection: str,
    settings: Settings,
    *,
    strategy: str | None = None,
    on_person: Callable[[PersonFolder], Callable[[int, int], None] | None] | None = None,
    pool: FacePool | None = None,
    on_refused: Refused | None = None,
) -> Iterator[CurationReport]:
    """Import and curate every person folder; yields one report per person as it finishes.

    Every person's new photos go to the face pool at once, so both cores stay busy across
    people; each person is decided as soon as their own photos are analysed.
    """
    folders = scan(root, on_refused)
    own = pool is None
    if pool is None:
        pool = face_pool(settings).start()
    try:
        queued = enrol_folders(settings, collection, folders, pool=pool, strategy=strategy,
                               on_refused=on_refused)
        for folder, enrolment in queued:
            yield enrolment.finish(on_person(folder) if on_person else None)
    finally:
        if own:
            pool.close()


#: folders enrolled per transaction: one first, so the face workers start at once, then twice
#: as many each time while they work (up to the 500 of a batched read)
FIRST_BATCH, LARGEST_BATCH = 1, 500


def enrol_folders(settings: Settings, collection: str, folders: list[PersonFolder], *,
                  pool: FacePool, strategy: str | None = None, on_refused: Refused | None = None
                  ) -> list[tuple[PersonFolder, Enrolment]]:
    """:func:`enrol_person` for every folder: the people, their photos and plans registered
    in batches of folders, one transaction and a few statements per batch (not a transaction
    and a dozen statements per person; a crash loses a batch's registration, never a
    decision), each batch's photos to the face pool as soon as it is committed."""

    def refuse(folder: PersonFolder, exc: InvalidNameError) -> None:
        # e.g. a 300-character folder name: skip it
        log.warning("import: %s refused: %s", folder.path, exc)
        if on_refused is not None:
            on_refused(folder.path, f"folder name: {exc}")

    named = []
    for folder in folders:
        try:
            named.append((folder, prepare_person(folder.name, source="folder")))
        except InvalidNameError as exc:
            refuse(folder, exc)
    out: list[tuple[PersonFolder, Enrolment]] = []
    start, size = 0, FIRST_BATCH
    while start < len(named):
        batch = named[start:start + size]
        try:
            planned = _enrol_batch(settings, collection, batch)
        except InvalidNameError as exc:  # the collection's name: no folder can go in
            for folder, _ in named:
                refuse(folder, exc)
            return []
        out += [(folder, Enrolment(*found, [], jobs, settings, strategy).submit(pool))
                for folder, found, jobs in planned]
        start, size = start + size, min(2 * size, LARGEST_BATCH)
    return out


_Found = tuple[int, str, str, int, bool]  # person id, name, collection key and id, created


def _enrol_batch(settings: Settings, collection: str,
                 named: list[tuple[PersonFolder, PreparedPerson]]
                 ) -> list[tuple[PersonFolder, _Found, list[tuple[int, str]]]]:
    """One transaction: the batch's people, photos and plans (the jobs for the face pool)."""
    layout = Layout(settings.home)
    planned = []
    with session_scope(settings) as session:
        coll = get_or_create_collection(session, collection)
        # per folder: (person id, created by this folder); two folders of one person
        # (``A_B``, ``A B``) are one person, named as first spelled, created by the first
        ids = upsert_people(session, coll, [prepared for _, prepared in named])
        distinct = list(dict.fromkeys(pid for pid, _ in ids))
        people = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(distinct)))}
        known = known_files(session, distinct)
        for (folder, _), (pid, _) in zip(named, ids, strict=True):
            register_files(session, layout, people[pid], folder.files, known[pid])
        # two folders of one person in a batch: the first one's enrolment analyses every
        # photo, the other's only decides again
        plans = dict(zip(distinct, plan_people(session, [people[pid] for pid in distinct],
                                               settings), strict=True))
        for (folder, _), (pid, created) in zip(named, ids, strict=True):
            person = people[pid]
            planned.append((folder, (pid, person.name, coll.key, coll.id, created),
                            plans.pop(pid, [])))
    return planned


def read_no_follow(path: Path) -> bytes:
    """The file's bytes; a link swapped in after :func:`scan` checked the folder is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise FaceAtlasError(f"{path.name} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _drop_unreferenced_raw(session: Session, layout: Layout, path: str | None) -> None:
    if path and session.scalar(select(Image.id).where(Image.path == path).limit(1)) is None:
        layout.absolute(path).unlink(missing_ok=True)
