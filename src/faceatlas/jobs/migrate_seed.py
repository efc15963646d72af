"""``faceatlas migrate-seed``: take over an old system's (facerecWeb) storage folder as it lies.

What it reads (everything else is listed as skipped, with the reason)::
    STORAGE/recognized_faces_prod/<country>/<Name_Surname>_<YYYY-MM-DD>_<HHMMSSxx>.jpg
        the production galleries: one flat folder per country (the old "domain"); the person
        is the file name up to the first date-like part, the original spelling comes from
        name_mapping.json
    STORAGE/trainingPass<Country>/<Person>/*.jpg   curated crops of one person
    STORAGE/training/[<country>/][<Person>/]<Name>_<Last>_<YYYYmmdd_HHMMSS>_<i>.jpg
                                                   raw downloads
    STORAGE/excel/data.xlsx                        the queue: name, last_name[, occupation]
    STORAGE/excel/occupation.xlsx                  the occupations (copied to the home)
    STORAGE/name_mapping.json (or excel/, or storage root's parent)
                                                   {"Name_Surname": "Original Name"}

Every photo becomes a candidate image of its person (origin ``seed:<relative path>``) and
each person with new photos is curated again with today's rules, so nothing from the old
gallery is trusted blindly; ``faceatlas promote`` then builds the gallery and the index.

Re-running changes nothing: photos are recognised by content hash (SHA-256) per person, queue
rows by the person's normalised name, the occupation file by its bytes. Nothing in the old
folder is changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.curation.apply import CurationReport
from faceatlas.curation.curate import collect, finish_curation, plan_curation
from faceatlas.domain.errors import FaceAtlasError
from faceatlas.domain.names import collection_key, name_key, split_name
from faceatlas.faces.analyse import face_pool
from faceatlas.jobs.collect import anchor_person
from faceatlas.names.service import write_name_mapping
from faceatlas.names.tables import TableError, read_occupations, read_people
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write, ext_of
from faceatlas.store.models import Collection, Image, ImageState, Person
from faceatlas.store.people import get_or_create_collection, upsert_person

GALLERY_DIR = "recognized_faces_prod"
TRAINING_PASS = "trainingPass"
RAW_DIR = "training"
EXCEL_DIR = "excel"
MAPPING = "name_mapping.json"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
#: folders the old system kept that hold nothing to take over (temporary uploads, caches)
IGNORED_DIRS = {"uploads", "temp", "tmp", "logs", "__pycache__"}
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$")  # a Layout path component

# ``A_B_2025-05-24_04400366.jpg`` (gallery, years 2020-2030) and
# ``A_B_20250524_044003_6.jpg`` (download): the identity is the name up to the date
_GALLERY_NAME = re.compile(r"^(?P<stem>.+?)_(?:20(?:2\d|30))-\d{2}-\d{2}_\d{6,10}\.[A-Za-z]{3,4}$")
_DOWNLOAD_NAME = re.compile(r"^(?P<stem>.+?)_\d{8}_\d{6}(?:_\d+)?\.[A-Za-z]{3,4}$")

Kind = str  # "gallery" | "training_pass" | "raw"
KIND_LABEL = {"gallery": "production gallery", "training_pass": "training pass",
              "raw": "raw download"}


def gallery_stem(file_name: str) -> str | None:
    """``Novak_Djokovic_2025-05-24_04400366.jpg`` → ``Novak_Djokovic`` (else None)."""
    m = _GALLERY_NAME.match(file_name)
    return m["stem"] if m else None


def download_stem(file_name: str) -> str | None:
    """``Novak_Djokovic_20250524_044003_6.jpg`` → ``Novak_Djokovic`` (else None)."""
    m = _DOWNLOAD_NAME.match(file_name)
    return m["stem"] if m else None


def old_stem(file_name: str) -> str | None:
    return gallery_stem(file_name) or download_stem(file_name)


# --------------------------------------------------------------------------- the plan


@dataclass
class SeedFile:
    kind: Kind
    path: Path
    rel: str  # relative to the old storage folder (the image's origin)
    sha256: str = ""
    new: bool = True


@dataclass
class SeedPerson:
    collection: str  # key
    name: str  # original spelling (name_mapping.json), else the stem with spaces
    stem: str  # the old file-name form
    files: list[SeedFile] = field(default_factory=list)
    occupations: list[str] = field(default_factory=list)
    queued: bool = False  # a data.xlsx row
    exists: bool = False  # already in the database

    def count(self, kind: Kind, *, new_only: bool = False) -> int:
        return sum(1 for f in self.files if f.kind == kind and (f.new or not new_only))

    @property
    def new_files(self) -> int:
        return sum(1 for f in self.files if f.new)


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class SeedPlan:
    root: Path
    people: list[SeedPerson]
    skipped: list[Skipped]
    mapping_source: str | None
    occupations: list[str]
    occupations_source: Path | None
    occupations_new: bool
    queue_collection: str

    @property
    def collections(self) -> list[str]:
        return sorted({p.collection for p in self.people})


class _Planner:
    def __init__(self, root: Path, settings: Settings, collection: str | None) -> None:
        self.root = root
        self.settings = settings
        self.people: dict[tuple[str, str], SeedPerson] = {}
        self.skipped: list[Skipped] = []
        self.mapping, self.mapping_source = self._mapping()
        self.folded = {k.casefold(): v for k, v in self.mapping.items()}
        self.collection = collection

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append(Skipped(self.rel(path), reason))

    def original(self, stem: str) -> str:
        found = self.mapping.get(stem) or self.folded.get(stem.casefold())
        return " ".join((found or stem.replace("_", " ")).split())

    def person(self, collection: str, stem: str, name: str | None = None) -> SeedPerson | None:
        name = name or self.original(stem)
        key = name_key(name)
        if not key:
            return None
        coll = collection_key(collection)
        found = self.people.get((coll, key))
        if found is None:
            found = self.people[(coll, key)] = SeedPerson(coll, name, stem)
        return found

    def add(self, kind: Kind, path: Path, collection: str, stem: str | None) -> None:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            self.skip(path, "not an image file")
            return
        if not stem:
            self.skip(path, "the file name has no date part, so whose photo it is is unknown")
            return
        person = self.person(collection, stem)
        if person is None:
            self.skip(path, f"the name {stem!r} has no letters or digits")
            return
        person.files.append(SeedFile(kind, path, self.rel(path)))

    # -- sources
    def _mapping(self) -> tuple[dict[str, str], str | None]:
        for candidate in (self.root / MAPPING, self.root / EXCEL_DIR / MAPPING,
                          self.root.parent / MAPPING):
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise FaceAtlasError(f"{candidate} is not readable JSON ({exc})") from None
                if not isinstance(data, dict):
                    raise FaceAtlasError(f"{candidate} must hold one JSON object "
                                         "{\"Name_Surname\": \"Original Name\"}")
                return ({str(k): str(v) for k, v in data.items() if str(v).strip()},
                        candidate.name if candidate.parent == self.root
                        else str(candidate))
        return {}, None

    def galleries(self) -> None:
        base = self.root / GALLERY_DIR
        if not base.is_dir():
            return
        for country in sorted(base.iterdir()):
            if country.name.startswith("."):
                continue
            if not country.is_dir():
                self.skip(country, "not inside a country folder")
                continue
            for f in sorted(country.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    self.add("gallery", f, country.name, gallery_stem(f.name))

    def training_passes(self) -> None:
        for folder in sorted(self.root.glob(f"{TRAINING_PASS}*")):
            if not folder.is_dir():
                continue
            country = folder.name[len(TRAINING_PASS):].strip("_- ")
            if not name_key(country):
                self.skip(folder, "no country after 'trainingPass' in the folder name")
                continue
            for person_dir in sorted(folder.iterdir()):
                if person_dir.name.startswith("."):
                    continue
                if not person_dir.is_dir():
                    self.skip(person_dir, "not inside a person folder")
                    continue
                for f in sorted(person_dir.rglob("*")):
                    if f.is_file() and not f.name.startswith("."):
                        self.add("training_pass", f, country, person_dir.name)

    def raw(self) -> None:
        base = self.root / RAW_DIR
        if not base.is_dir():
            return
        for f in sorted(base.rglob("*")):
            if not f.is_file() or f.name.startswith("."):
                continue
            stem = download_stem(f.name) or gallery_stem(f.name)
            parts = f.relative_to(base).parts[:-1]
            # training/<country>/[<Person>/]file; a lone folder named like the person is theirs
            if parts and not (len(parts) == 1 and stem and parts[0] == stem):
                country = parts[0]
            else:
                country = self.queue_collection()
            self.add("raw", f, country, stem)

    def queue_collection(self) -> str:
        """data.xlsx has no country: the one asked for, else the only production country,
        else the server's default collection."""
        if self.collection:
            return collection_key(self.collection)
        base = self.root / GALLERY_DIR
        countries = sorted(d.name for d in base.iterdir() if d.is_dir()) if base.is_dir() else []
        return collection_key(countries[0]) if len(countries) == 1 else collection_key(
            self.settings.default_collection)

    def queue(self) -> None:
        sheet = self.root / EXCEL_DIR / "data.xlsx"
        if not sheet.is_file():
            return
        try:
            rows = read_people(sheet)
        except TableError as exc:
            self.skip(sheet, str(exc))
            return
        coll = self.queue_collection()
        for row in rows:
            stem = "_".join(f"{row.name}_{row.last_name}".split())
            mapped = self.mapping.get(stem) or self.folded.get(stem.casefold())
            person = self.person(coll, stem, " ".join((mapped or row.full_name).split()))
            if person is None:
                self.skipped.append(Skipped(f"{self.rel(sheet)}: {row.full_name!r}",
                                            "the name has no letters or digits"))
                continue
            person.queued = True
            for occupation in row.occupation.split(","):
                if occupation.strip() and occupation.strip() not in person.occupations:
                    person.occupations.append(occupation.strip())

    def occupations(self) -> tuple[list[str], Path | None, bool]:
        for name in ("occupation.xlsx", "occupation.csv"):
            path = self.root / EXCEL_DIR / name
            if path.is_file():
                try:
                    found = read_occupations(path)
                except TableError as exc:
                    self.skip(path, str(exc))
                    return [], None, False
                dest = Layout(self.settings.home).excel_dir / name
                new = not dest.is_file() or dest.read_bytes() != path.read_bytes()
                return found, path, new
        return [], None, False

    def others(self) -> None:
        known = {GALLERY_DIR, RAW_DIR, EXCEL_DIR, MAPPING}
        for entry in sorted(self.root.iterdir()):
            if entry.name in known or entry.name.startswith((".", TRAINING_PASS)):
                continue
            if entry.is_dir() and entry.name in IGNORED_DIRS:
                self.skip(entry, "temporary files of the old server")
            else:
                self.skip(entry, "not part of the old storage layout")
        excel = self.root / EXCEL_DIR
        if excel.is_dir():
            for entry in sorted(excel.iterdir()):
                if entry.name not in {"data.xlsx", "occupation.xlsx", "occupation.csv",
                                      MAPPING} and not entry.name.startswith("."):
                    self.skip(entry, "not a spreadsheet the old system used")


def plan_migration(root: Path | str, settings: Settings, *, collection: str | None = None
                   ) -> SeedPlan:
    """What :func:`migrate_seed` would do; reads the old folder, writes nothing."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FaceAtlasError(f"{root} is not a folder: give the old system's storage folder")
    if not ((root / GALLERY_DIR).is_dir() or any(root.glob(f"{TRAINING_PASS}*"))
            or (root / RAW_DIR).is_dir() or (root / EXCEL_DIR).is_dir()):
        raise FaceAtlasError(
            f"{root} does not look like the old system's storage folder: it has none of "
            f"{GALLERY_DIR}/, {TRAINING_PASS}<Country>/, {RAW_DIR}/, {EXCEL_DIR}/"
        )
    planner = _Planner(root, settings, collection)
    planner.galleries()
    planner.training_passes()
    planner.raw()
    planner.queue()
    occupations, occ_source, occ_new = planner.occupations()
    planner.others()
    people = sorted(planner.people.values(), key=lambda p: (p.collection, p.name))
    for p in people:
        for f in p.files:
            f.sha256 = hashlib.sha256(f.path.read_bytes()).hexdigest()
    _mark_known(settings, people)
    return SeedPlan(root, people, planner.skipped, planner.mapping_source, occupations,
                    occ_source, occ_new, planner.queue_collection())


def _mark_known(settings: Settings, people: list[SeedPerson]) -> None:
    """Flag people and photos the database already has (by name key and content hash); the
    same bytes twice in the old folder are one photo."""
    known: dict[int, set[str]] = {}
    # a fresh home: everything is new (and a dry run creates no database)
    fresh = settings.db_url.startswith("sqlite") and not Layout(settings.home).database.exists()
    if not fresh:
        with session_scope(settings) as session:
            for i, p in enumerate(people):
                person_id = session.scalar(
                    select(Person.id).join(Collection)
                    .where(Collection.key == p.collection, Person.key == name_key(p.name)))
                if person_id is not None:
                    p.exists = True
                    known[i] = set(session.scalars(
                        select(Image.sha256).where(Image.person_id == person_id)))
    for i, p in enumerate(people):
        seen = set(known.get(i, ()))
        for f in p.files:
            f.new = f.sha256 not in seen
            seen.add(f.sha256)


# --------------------------------------------------------------------------- doing it


@dataclass
class MigrationReport:
    plan: SeedPlan
    people_created: int = 0
    images_added: int = 0
    occupations_copied: bool = False
    curated: list[CurationReport] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.people_created or self.images_added or self.occupations_copied)


def migrate_seed(
    root: Path | str,
    settings: Settings,
    *,
    collection: str | None = None,
    strategy: str | None = None,
    on_person: Callable[[SeedPerson], None] | None = None,
) -> MigrationReport:
    """Import the old storage folder (see the module doc); returns what changed."""

    plan = plan_migration(root, settings, collection=collection)
    report = MigrationReport(plan)
    todo: list[int] = []
    for p in plan.people:
        with session_scope(settings) as session:
            coll = get_or_create_collection(session, p.collection)
            first, last = split_name(p.name)
            person, created = upsert_person(
                session, coll, p.name, occupations=p.occupations,
                source="seed" if p.files else "sheet", first_name=first, last_name=last)
            if created:
                _keep_old_folder(session, person, p.stem)
            person_id = person.id
        report.people_created += created
        added = _add_files(settings, person_id, p.files)
        report.images_added += added
        if added:
            todo.append(person_id)
        if on_person:
            on_person(p)
    if plan.occupations_source is not None and plan.occupations_new:
        dest = Layout(settings.home).excel_dir / plan.occupations_source.name
        atomic_write(dest, plan.occupations_source.read_bytes())
        report.occupations_copied = True
    if todo:
        for pid in todo:  # names of the old storage get their Wikidata portrait too
            anchor_person(settings, pid)
        with face_pool(settings) as pool:
            queued = [(pid, pool.submit(plan_curation(settings, pid))) for pid in todo]
            for pid, futures in queued:
                report.curated.append(finish_curation(settings, pid, collect(futures),
                                                      strategy=strategy))
    if report.people_created or report.images_added:
        write_name_mapping(settings)
    return report


def _keep_old_folder(session: Session, person: Person, stem: str) -> None:
    """Keep the old file-name form as the person's folder, so gallery file names (and the old
    answer's ``person_name``) stay what old clients knew, e.g. ``Dorde_Balasevic``."""
    if stem == person.folder or not _SAFE_STEM.match(stem):
        return
    taken = session.scalar(select(Person.id).where(
        Person.collection_id == person.collection_id, Person.folder == stem))
    if taken is None:
        person.folder = stem
        session.flush()


def _add_files(settings: Settings, person_id: int, files: list[SeedFile]) -> int:
    """Register new photos (by content hash) as the person's candidate images."""
    layout = Layout(settings.home)
    added = 0
    with session_scope(settings) as session:
        person = session.get(Person, person_id)
        assert person is not None
        known = set(session.scalars(select(Image.sha256).where(Image.person_id == person_id)))
        origins = set(session.scalars(select(Image.origin).where(Image.person_id == person_id)))
        for rank, f in enumerate(files):
            origin = f"seed:{f.rel}"
            if f.sha256 in known or origin in origins:
                continue
            data = f.path.read_bytes()
            dest = layout.raw_file(person.collection.key, person.folder, f.sha256,
                                   ext_of(f.path))
            if not dest.exists():
                atomic_write(dest, data)
            session.add(Image(
                person_id=person_id, origin=origin, provider=f"seed-{f.kind}", rank=rank,
                title=f.path.name, sha256=f.sha256, path=layout.relative(dest),
                bytes=len(data), state=ImageState.FETCHED,
            ))
            known.add(f.sha256)
            origins.add(origin)
            added += 1
    return added


# --------------------------------------------------------------------------- for `import`


def explain_old_layout(root: Path) -> str | None:
    """Why ``faceatlas import`` should not take ``root``, when it is (part of) the old
    system's storage: a flat production gallery, its parent, or the storage folder itself."""
    hint = ("use `faceatlas migrate-seed <the old storage folder>`: it reads people from the "
            "file names and original names from name_mapping.json")
    if root.name == GALLERY_DIR or (root / GALLERY_DIR).is_dir() or any(
            root.glob(f"{TRAINING_PASS}*")):
        return f"{root} is the old system's storage (or its {GALLERY_DIR} folder); {hint}"
    files = [f.name for f in root.iterdir() if f.is_file()] if root.is_dir() else []
    if _several_people(files):
        return (f"{root} is a flat gallery of several people (old file names such as "
                f"{next(f for f in files if gallery_stem(f))}), not one sub-folder per "
                f"person; {hint}")
    for sub in (d for d in root.iterdir() if d.is_dir()) if root.is_dir() else ():
        if _several_people([f.name for f in sub.iterdir() if f.is_file()]):
            return (f"{sub} holds photos of several people named the old system's way "
                    f"(Name_Surname_YYYY-MM-DD_…): importing it would make one person named "
                    f"{sub.name!r}; {hint}")
    return None


def _several_people(names: list[str]) -> bool:
    stems = {s for s in (gallery_stem(n) for n in names) if s}
    return len(stems) >= 2
