"""A big collection for the review pages: N people with M faces each, straight into the
database and the folder tree, in seconds.

For benchmarks and browser tests at scale (issue 15: 2,000 people, 80,000 faces). Nothing is
detected or embedded: the rows are written with SQLAlchemy core bulk inserts, and what a
reviewer sees is real —

- **crops**: real face crops cut from the shared test photos (``$FACEATLAS_TESTDATA/lfw``,
  else ``faces/people``), written once under ``faces/<collection>/Bigcollection_shared/``
  and shared by many faces' ``crop_path`` (so a person's thumbnails are real faces, though
  not one identity; promoting two people who share a crop shares its gallery file too);
- **states**: promoted, curated (some below the promotion minimum, a few blocked by a failed
  self-test), too_few_faces, failed, queued — in realistic shares;
- **reasons**: accepted, duplicate, not_this_person, other_person (naming the other person,
  as arbitration does), blurry, face_too_small, over_limit, multiple_faces, rejected_by_user,
  and faceless images that failed to download;
- **names**: varied first and last names, some with accents (``Novak Đoković`` is always
  there), some with a native-script spelling;
- **embeddings**: unit float32 vectors of SFace's dimension (engine ``sface`` and its model
  hash), clustered per person (a random centre plus noise), so promotion's self-test passes;
- **provenance**: provider, query, rank, url, page url, licence and author (Commons).

Promoted people's accepted faces get gallery files and index rows, so the overview's counts
agree. Deterministic for a seed.

``python -m faceatlas.devtools.bigcollection --home DIR --people 2000 --faces 40``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from faceatlas.devtools.testdata import testdata_dir
from faceatlas.domain.errors import ConfigError
from faceatlas.domain.names import file_stem, name_key, split_name, to_ascii
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout, atomic_write
from faceatlas.store.models import (
    Base,
    Collection,
    Face,
    FaceState,
    Image,
    ImageState,
    Person,
    PersonState,
    Reason,
)

#: SFace: 128-d, tagged with faces.engines.sface.MODEL_HASH (a constant: no model is loaded)
ENGINE = "sface"
DIM = 128
SHARED_FOLDER = "Bigcollection_shared"
#: always in the collection: a name with an accent, findable by its ASCII spelling
ACCENTED = "Novak Đoković"
#: the accented person is curated and eligible for promotion in every generated collection
ACCENTED_STATE = PersonState.CURATED

_FIRST = ["Ana", "Marko", "Jelena", "Nikola", "Milica", "Stefan", "Ivana", "Luka", "Maja",
          "Petar", "Sofía", "José", "François", "Zoë", "Łukasz", "Søren", "Émile", "Jürgen",
          "Ahmed", "Chen", "Yuki", "Olga", "Dmitri", "Aisha", "Kwame", "Lucía", "Mateo",
          "Ingrid", "Björn", "Chiara", "Giulia", "Omar", "Priya", "Rahul", "Sara", "Tomás",
          "Ülkü", "Vesna", "Wojciech", "Xavier", "Yasmin", "Zoran", "Đorđe", "Snežana",
          "Miloš", "Dragana", "Brankica", "Nemanja", "Aleksandar", "Teodora"]
_LAST = ["Petrović", "Jovanović", "Nikolić", "Marković", "Đorđević", "Stojanović", "Ilić",
         "Müller", "García", "Núñez", "Dubois", "Rossi", "Kowalski", "Nowak", "Andersen",
         "Nielsen", "Smith", "O'Connor", "Van der Berg", "Schmidt", "Lefèvre", "Costa",
         "Silva", "Tanaka", "Wang", "Ivanova", "Popescu", "Horváth", "Novák", "Kovač",
         "Babić", "Šarić", "Žižić", "Çelik", "Yılmaz", "Öztürk", "Bergström", "Ødegaard",
         "Mendoza", "Fernández", "Ramírez", "Okafor", "Mensah", "Haddad", "Khan", "Singh",
         "Lindqvist", "Papadopoulos", "Kuznetsov", "Radović"]
_CYRILLIC = str.maketrans({"a": "а", "e": "е", "i": "и", "o": "о", "u": "у", "k": "к",
                           "m": "м", "n": "н", "p": "п", "r": "р", "s": "с", "t": "т",
                           "v": "в", "l": "л", "d": "д", "j": "ј", "b": "б", "g": "г"})
_OCCUPATIONS = ["actor", "singer", "footballer", "politician", "writer", "tennis player",
                "basketball player", "journalist", "director", "scientist"]

#: shares of person states (queued people have no photos yet)
_STATES = [(PersonState.PROMOTED, 0.45), (PersonState.CURATED, 0.25),
           (PersonState.TOO_FEW_FACES, 0.10), (PersonState.FAILED, 0.10),
           (PersonState.QUEUED, 0.10)]
#: shares of rejected faces' reasons
_REJECTED = [(Reason.DUPLICATE, 0.35), (Reason.NOT_THIS_PERSON, 0.2), (Reason.BLURRY, 0.12),
             (Reason.FACE_TOO_SMALL, 0.08), (Reason.OVER_LIMIT, 0.08),
             (Reason.OTHER_PERSON, 0.07), (Reason.MULTIPLE_FACES, 0.06),
             (Reason.REJECTED_BY_USER, 0.04)]
_PROVIDERS = ["commons", "rapidapi", "simweb"]


@dataclass
class BigCollection:
    """What was written."""

    collection: str
    people: int
    faces: int
    images: int
    crops: int
    seconds: float
    by_state: dict[str, int]


def generate(settings: Settings, *, people: int = 2000, faces: int = 40,
             collection: str = "big", seed: int = 15, crops: int = 120,
             photos: Path | None = None) -> BigCollection:
    """Write ``people`` people (``faces`` candidate faces each, fewer for failed people, none
    for queued ones) into a new collection ``collection`` of ``settings.home``."""
    started = time.perf_counter()
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    layout = Layout(settings.home)
    crop_paths = _write_crops(layout, collection, crops, photos, rng)
    gallery_paths = _write_gallery(layout, collection, crop_paths)
    names = _names(people, rng)
    now = datetime.now(timezone.utc)
    with session_scope(settings) as s:
        if s.scalar(select(Collection.id).where(Collection.key == collection)) is not None:
            raise ConfigError(f"collection {collection!r} exists already: choose another "
                              "--collection or a fresh --home")
        s.add(Collection(key=collection, name=collection.replace("_", " ").title()))
        s.flush()
        cid = s.scalar(select(Collection.id).where(Collection.key == collection))
        pid0 = int(s.scalar(select(func.max(Person.id))) or 0) + 1
        iid0 = int(s.scalar(select(func.max(Image.id))) or 0) + 1
        fid0 = int(s.scalar(select(func.max(Face.id))) or 0) + 1
    person_rows, image_rows, face_rows = [], [], []
    index_rows: list[tuple[int, int, np.ndarray]] = []
    by_state: dict[str, int] = {}
    iid, fid = iid0, fid0
    minimum = settings.min_faces_to_promote
    states = [ACCENTED_STATE if name == ACCENTED else _pick(rng, _STATES) for name in names]
    # queued people have no photos yet: the others share their faces, so the collection
    # holds people × faces faces in all (2,000 × 40 = 80,000)
    collected = sum(1 for st in states if st != PersonState.QUEUED) or 1
    base, extra = divmod(people * faces, collected)
    k = 0
    for i, (name, state) in enumerate(zip(names, states, strict=True)):
        pid = pid0 + i
        by_state[state] = by_state.get(state, 0) + 1
        ascii_ = to_ascii(name)
        slug = ascii_.replace(" ", "_") or f"p{pid}"
        mine = 0
        if state != PersonState.QUEUED:
            mine, k = base + (1 if k < extra else 0), k + 1
        first, last = split_name(name)
        updated = now - timedelta(seconds=rng.randint(60, 90 * 86400))
        person = dict(
            id=pid, collection_id=cid, key=name_key(name), name=name, ascii_name=ascii_,
            first_name=first, last_name=last, folder=file_stem(name, ascii_),
            occupations=rng.sample(_OCCUPATIONS, rng.randint(1, 2)), country="Testland",
            source=rng.choice(["llm", "sheet", "wikidata"]), verdict=None, state=state,
            error=None, attempts=1, selftest=None,
            wikidata_qid=f"Q{100000 + pid}" if rng.random() < 0.5 else None,
            native_name=name.lower().translate(_CYRILLIC).title() if rng.random() < 0.2
            else None, engine=ENGINE if state != PersonState.QUEUED else None,
            created_at=updated - timedelta(days=rng.randint(0, 30)), updated_at=updated)
        n_faces, n_accepted = _face_plan(state, mine, minimum, rng)
        if name == ACCENTED:
            n_faces, n_accepted = mine, min(mine, max(minimum, mine // 2))
        if state == PersonState.FAILED:
            person["error"] = rng.choice([
                "no face group matches the references",
                "image search failed: http_503 after 3 attempts",
                "every download failed"])
        centre = nrng.standard_normal(DIM)
        centre /= np.linalg.norm(centre)
        accepted_idx = set(rng.sample(range(n_faces), n_accepted))
        noise = nrng.standard_normal((max(1, n_faces), DIM))
        for n in range(n_faces):
            accepted = n in accepted_idx
            reason = Reason.ACCEPTED if accepted else _pick(rng, _REJECTED)
            when = updated - timedelta(minutes=rng.randint(1, 600))
            image_rows.append(_image(iid, pid, name, slug, n, reason, when, rng))
            vector = centre + noise[n] * (0.04 if accepted else 0.09)
            vector = (vector / np.linalg.norm(vector)).astype(np.float32)
            crop = rng.randrange(len(crop_paths))
            other = None
            if reason == Reason.OTHER_PERSON and people > 1:
                other = pid0 + (i + rng.randrange(1, people)) % people  # never themselves
            detail = (f"{names[other - pid0]} (person {other}): this face is nearer to that "
                      "person's faces than to this gallery") if other is not None else None
            if accepted and rng.random() < 0.01:
                detail = f"the same photo is also a candidate of {rng.choice(names)}"
            in_gallery = accepted and state == PersonState.PROMOTED
            size = rng.randint(60, 400)
            face_rows.append(dict(
                id=fid, image_id=iid, person_id=pid, idx=0, x=rng.randint(0, 200),
                y=rng.randint(0, 200), w=size, h=int(size * 1.2), landmarks=[],
                det_score=round(rng.uniform(0.7, 1.0), 3), blur=round(rng.uniform(20, 400), 1),
                embedding=vector.tobytes(), phash=None,
                distance=round(rng.uniform(0.2, 0.9), 4), quality=round(rng.random(), 4),
                state=FaceState.ACCEPTED if accepted else FaceState.REJECTED, reason=reason,
                crop_path=crop_paths[crop], gallery_path=gallery_paths[crop] if in_gallery
                else None, created_at=when, engine=ENGINE, model_hash=_model_hash(),
                other_person_id=other, detail=detail))
            if in_gallery:
                index_rows.append((fid, pid, vector))
            iid += 1
            fid += 1
        # photos that never became a face: failed downloads
        for n in range(_failed_downloads(state, rng)):
            image_rows.append(dict(
                _image(iid, pid, name, slug, n_faces + n, Reason.DOWNLOAD_FAILED, updated, rng),
                state=ImageState.FAILED, detail=rng.choice(["http_404", "http_403", "timeout"]),
                sha256=None, width=None, height=None, bytes=None))
            iid += 1
        if state == PersonState.PROMOTED:
            person["selftest"] = {"passed": True, "face_id": None, "detail": "recognised"}
        elif state == PersonState.CURATED and n_accepted >= minimum and rng.random() < 0.1:
            other = names[rng.randrange(people)]
            person["selftest"] = {"passed": False, "face_id": None, "predicted_name": other,
                                  "detail": f"a face was recognised as {other}"}
            person["error"] = f"promotion blocked, self-test failed: a face was recognised " \
                              f"as {other}"
        person_rows.append(person)
    with session_scope(settings) as s:
        s.execute(insert(Person.__table__), person_rows)
        for start in range(0, len(image_rows), 20000):  # bounded memory per statement
            s.execute(insert(Image.__table__), image_rows[start:start + 20000])
        for start in range(0, len(face_rows), 20000):
            s.execute(insert(Face.__table__), face_rows[start:start + 20000])
        _advance_sequences(s, (Person, Image, Face))
    if index_rows:
        _write_index(settings, collection, index_rows)
    return BigCollection(collection, len(person_rows), len(face_rows), len(image_rows),
                         len(crop_paths), round(time.perf_counter() - started, 2), by_state)


def _advance_sequences(s: Session, models: Sequence[type[Base]]) -> None:
    """The rows were inserted with explicit ids (max + 1 …), which PostgreSQL's id sequences
    do not see: move each sequence past them, or the next ordinary insert would take an id
    that is already used. (SQLite's rowids follow the table's max id by themselves.)"""
    if s.get_bind().dialect.name != "postgresql":
        return
    for model in models:
        table = model.__tablename__
        s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                       f"(SELECT max(id) FROM {table}))"))


def _model_hash() -> str:
    from faceatlas.faces.engines.sface import MODEL_HASH  # a constant: the models are not loaded

    return MODEL_HASH


def _pick(rng: random.Random, shares: Sequence[tuple[str, float]]) -> str:
    x = rng.random() * sum(w for _, w in shares)
    for value, weight in shares:
        x -= weight
        if x <= 0:
            return value
    return shares[-1][0]


def _face_plan(state: str, faces: int, minimum: int, rng: random.Random) -> tuple[int, int]:
    """(candidate faces, accepted faces) of a person in ``state``."""
    if state == PersonState.QUEUED or faces == 0:
        return 0, 0
    if state == PersonState.FAILED:
        return faces, 0
    # below the minimum, but never more accepted faces than there are (small --faces)
    if state == PersonState.TOO_FEW_FACES:
        return faces, rng.randint(0, min(faces, max(0, minimum - 1)))
    if state == PersonState.CURATED and rng.random() < 0.2:  # curated, below the minimum
        return faces, rng.randint(1, min(faces, max(1, minimum - 1)))
    return faces, min(faces, max(minimum, int(faces * rng.uniform(0.35, 0.65))))


def _failed_downloads(state: str, rng: random.Random) -> int:
    if state == PersonState.QUEUED:
        return 0
    if state == PersonState.FAILED:
        return rng.randint(2, 6)
    return rng.choice([0, 0, 0, 1, 2])


def _image(iid: int, pid: int, name: str, slug: str, n: int, reason: str, when: datetime,
           rng: random.Random) -> dict[str, object]:
    provider = rng.choice(_PROVIDERS)
    commons = provider == "commons"
    host = "commons.wikimedia.org" if commons else rng.choice(
        ["news.example", "photos.example", "sport.example", "wiki.example"])
    url = f"https://upload.{host}/{slug}_{n}.jpg"
    return dict(
        id=iid, person_id=pid, origin=url, provider=provider, query=name, rank=n, url=url,
        thumbnail_url=None, page_url=f"https://{host}/wiki/{slug}_{n}",
        title=f"{name} ({n + 1})", sha256=hashlib.sha256(f"{pid}:{n}".encode()).hexdigest(),
        path=None, width=rng.choice([640, 800, 1024, 2048]), height=rng.choice([480, 600, 768]),
        bytes=rng.randint(30_000, 900_000), state=ImageState.ANALYSED, reason=reason,
        detail=None, licence="CC BY-SA 4.0" if commons else None,
        licence_url="https://creativecommons.org/licenses/by-sa/4.0/" if commons else None,
        author=f"Photographer {pid % 97}" if commons else None, created_at=when)


def _names(n: int, rng: random.Random) -> list[str]:
    combos = [f"{f} {la}" for f in _FIRST for la in _LAST]
    rng.shuffle(combos)
    if ACCENTED in combos:
        combos.remove(ACCENTED)
    out = [ACCENTED]
    seen = {name_key(ACCENTED)}
    i = 0
    while len(out) < n:
        base = combos[i % len(combos)]
        name = base if i < len(combos) else f"{base} {i // len(combos) + 1}"
        i += 1
        if name_key(name) not in seen:
            seen.add(name_key(name))
            out.append(name)
    return out[:n]


def _photos(photos: Path | None) -> list[Path]:
    if photos is None:
        root = testdata_dir()
        photos = root / "lfw" if (root / "lfw").is_dir() else root / "faces" / "people"
    found = sorted(p for p in photos.rglob("*.jpg") if p.is_file())
    if not found:
        raise ConfigError(f"no .jpg photos under {photos}: set FACEATLAS_TESTDATA (the folder "
                          "holding lfw/ or faces/) or pass --photos")
    return found


def _write_crops(layout: Layout, collection: str, count: int, photos: Path | None,
                 rng: random.Random) -> list[str]:
    """``count`` real face crops (the middle of LFW's aligned photos: the face), written once.
    Returns their paths relative to the home."""
    sources = _photos(photos)
    picked = rng.sample(sources, min(count, len(sources)))
    stamp = datetime(2024, 1, 1, tzinfo=timezone.utc)
    out = []
    for n, src in enumerate(picked):
        with PILImage.open(src) as pic:
            pic = pic.convert("RGB")
            w, h = pic.size
            side = int(min(w, h) * 0.5)  # LFW: the face fills the middle ~45 %
            left, top = (w - side) // 2, (h - side) // 2
            crop = pic.crop((left, top, left + side, top + side)).resize((160, 160))
            buf = io.BytesIO()
            crop.save(buf, "JPEG", quality=85)
        dest = layout.crop_file(collection, SHARED_FOLDER, stamp, n)
        atomic_write(dest, buf.getvalue())
        out.append(layout.relative(dest))
    return out


def _write_gallery(layout: Layout, collection: str, crops: list[str]) -> list[str]:
    out = []
    for rel in crops:
        src = layout.absolute(rel)
        dest = layout.gallery_file(collection, src.name)
        atomic_write(dest, src.read_bytes())
        out.append(layout.relative(dest))
    return out


def _write_index(settings: Settings, collection: str,
                 rows: list[tuple[int, int, np.ndarray]]) -> None:
    from faceatlas.gallery.index import index_store

    face_ids = np.array([f for f, _, _ in rows], dtype=np.int64)
    person_ids = np.array([p for _, p, _ in rows], dtype=np.int64)
    vectors = np.stack([v for _, _, v in rows])
    index_store(settings).update(
        collection, lambda index: index.add(face_ids, person_ids, vectors),
        engine=(ENGINE, _model_hash()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faceatlas.devtools.bigcollection",
        description="Generate a big collection (people, photos, faces, crops, gallery, index) "
                    "for the review pages' benchmarks and tests.")
    parser.add_argument("--home", type=Path, required=True, help="FACEATLAS_HOME to write into")
    parser.add_argument("--people", type=int, default=2000, help="people (default 2000)")
    parser.add_argument("--faces", type=int, default=40,
                        help="candidate faces per collected person (default 40)")
    parser.add_argument("--collection", default="big", help="collection key (default big)")
    parser.add_argument("--seed", type=int, default=15, help="random seed (default 15)")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of .jpg photos for the crops (default: the shared "
                             "test data's lfw/)")
    args = parser.parse_args(argv)
    if args.people < 1 or args.faces < 1:
        parser.error("--people and --faces must be at least 1")
    settings = Settings(home=args.home)
    try:
        made = generate(settings, people=args.people, faces=args.faces,
                        collection=args.collection, seed=args.seed, photos=args.photos)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    states = ", ".join(f"{k} {v}" for k, v in sorted(made.by_state.items()))
    print(f"{made.collection}: {made.people} people ({states}), {made.images} photos, "
          f"{made.faces} faces, {made.crops} shared crops in {made.seconds} s "
          f"under {args.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
