"""Gallery purity on web-like search results: precision, recall and impure galleries.

From a labelled folder (one sub-folder per identity; default ``../shared/testdata/lfw``) each
person of the sample gets a web-like result list served over loopback by simweb:

- their own photos pasted into larger web-like canvases at varied sizes (some of them only as
  soft copies: shrunk to a small original and upscaled again, as web thumbnails are),
- correlated noise from people of the same collection: one dominant co-star (two thirds of
  the noise, a fixed random other person) and a look-alike (the identity whose embedding
  centroid is nearest), the same photos those people's own lists show,
- duplicates (re-encoded, re-sized), blurred copies (out of focus and motion), a group photo
  with the co-star, and broken URLs.

``faceatlas collect`` runs in-process (search → download → curate, then promotion, which
arbitrates again); every strategy is then re-decided from the stored analyses, so the same
measurements serve ``consensus`` and ``seed`` side by side. Generated files live in a temp
folder, never in the repository.

Recall counts the own photos whose face passed the quality gates (distinct photos, at most
``max_faces_per_person``); a gallery under 95% precision is impure, one whose majority is
somebody else "is another person". The curation cost (the pure decision only) is timed at 70
and 500 candidates drawn from the measured faces.

Anchors (issue 25), ``--anchors portrait none``: with ``--noise 0.65`` the co-star supplies
more photos than the person (the group a vote would pick). ``portrait``: the names arrive bare
(as from a sheet), resolve on the simweb Wikidata replica at collection, and each person's
P18 portrait (an LFW photo of them not in the results) anchors their gallery. ``none``:
Wikidata is unreachable; the collection is promoted once with FACEATLAS_REQUIRE_ANCHOR=1
and once without, and held-out probe photos (never in any result) are recognised after
each: the "wrong person" count is recognition naming somebody else with confidence.

    python benchmarks/bench_purity.py [--people 62] [--per-person 40] [--noise 0.35 0.5]
    python benchmarks/bench_purity.py --people 6 --per-person 10 --noise 0.35   # CI sample
    python benchmarks/bench_purity.py --people 24 --per-person 12 --noise 0.65 \
        --anchors portrait none --strategies consensus
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import select

from faceatlas.curation.apply import analysis_from_rows
from faceatlas.curation.curate import finish_curation
from faceatlas.curation.decide import CurateParams, decide
from faceatlas.devtools.simweb import SimWeb
from faceatlas.devtools.testdata import testdata_dir
from faceatlas.faces.analyse import AnalyseParams, analyse_bytes
from faceatlas.jobs.collect import collect_people, pending_people
from faceatlas.settings import Settings
from faceatlas.sources.rapidapi import RapidAPIImageSearch
from faceatlas.store import db
from faceatlas.store.db import session_scope
from faceatlas.store.models import Image as ImageRow
from faceatlas.store.models import Person
from faceatlas.store.people import get_or_create_collection, upsert_person

COUNTRY = "Benchland"


@dataclass
class Placed:
    """Which identity's face sits where on a generated canvas (ground truth)."""

    who: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the pasted photo
    source: str  # the original file (distinct photo), "" for no face expected
    kind: str  # own, soft, costar, lookalike, duplicate, blurred, group


@dataclass
class World:
    folder: Path
    truth: dict[str, list[Placed]] = field(default_factory=dict)  # rel path -> faces placed
    lists: dict[str, list[str]] = field(default_factory=dict)  # person -> simweb entries
    costar: dict[str, str] = field(default_factory=dict)
    lookalike: dict[str, str] = field(default_factory=dict)
    portrait: dict[str, str] = field(default_factory=dict)  # person -> their P18 photo
    probes: dict[str, list[Path]] = field(default_factory=dict)  # held-out photos


def display(identity: str) -> str:
    return identity.replace("_", " ")


def photos_of(root: Path, who: str) -> list[Path]:
    return sorted(p for p in (root / who).iterdir() if p.suffix.lower() in (".jpg", ".png"))


def centroids(root: Path, people: list[str], cache: Path) -> dict[str, np.ndarray]:
    """Mean embedding of up to 5 photos per identity (cached between runs)."""
    known: dict[str, list[float]] = json.loads(cache.read_text()) if cache.is_file() else {}
    params = AnalyseParams(min_face_px=40, blur_threshold=0.0)
    for who in people:
        if who in known:
            continue
        vecs = []
        for f in photos_of(root, who)[:5]:
            a = analyse_bytes(0, f.read_bytes(), params)
            faces = [x for x in a.faces if x.embedding is not None]
            if faces:
                vecs.append(max(faces, key=lambda x: x.size).embedding)
        if vecs:
            known[who] = np.mean(vecs, axis=0).tolist()
    cache.write_text(json.dumps(known))
    return {k: np.array(v) for k, v in known.items() if k in people}


def canvas(rng: random.Random, w: int, h: int) -> Image.Image:
    """A web-page-like background: a colour, a few blocks and stripes of 'text'."""
    img = Image.new("RGB", (w, h), tuple(rng.randrange(150, 256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(2, 6)):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.rectangle([x, y, x + rng.randrange(40, 300), y + rng.randrange(10, 120)],
                       fill=tuple(rng.randrange(0, 256) for _ in range(3)))
    for y in range(0, h, 18):
        if rng.random() < 0.3:
            draw.line([(10, y), (w - 10, y)], fill=(60, 60, 60), width=2)
    return img


def place(rng: random.Random, photo: Image.Image, scale: float,
          base: Image.Image | None = None, at: tuple[int, int] | None = None
          ) -> tuple[Image.Image, tuple[int, int, int, int]]:
    pw, ph = max(8, round(photo.width * scale)), max(8, round(photo.height * scale))
    photo = photo.resize((pw, ph), Image.Resampling.LANCZOS)
    if base is None:
        base = canvas(rng, pw + rng.randrange(80, 600), ph + rng.randrange(60, 400))
    x, y = at or (rng.randrange(0, base.width - pw + 1), rng.randrange(0, base.height - ph + 1))
    base.paste(photo, (x, y))
    return base, (x, y, x + pw, y + ph)


def soften(photo: Image.Image, native: float) -> Image.Image:
    """A small original upscaled again: soft, but the face is all there."""
    small = photo.resize((round(photo.width * native), round(photo.height * native)),
                         Image.Resampling.LANCZOS)
    return small.resize(photo.size, Image.Resampling.BICUBIC)


def blur(photo: Image.Image, rng: random.Random) -> Image.Image:
    rgb = np.asarray(photo)
    if rng.random() < 0.5:  # out of focus
        out = cv2.GaussianBlur(rgb, (0, 0), photo.width * 0.02)
    else:  # motion
        n = max(7, photo.width // 14)
        kernel = np.zeros((n, n), np.float32)
        kernel[n // 2, :] = 1.0 / n
        m = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, m, (n, n))
        out = cv2.filter2D(rgb, -1, kernel / max(kernel.sum(), 1e-6))
    return Image.fromarray(out)


def save(world: World, rel: str, img: Image.Image, placed: list[Placed], quality: int) -> str:
    path = world.folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    path.write_bytes(buf.getvalue())
    world.truth[rel] = placed
    return rel


def build(root: Path, people: list[str], per_person: int, noise: float, seed: int,
          folder: Path, cents: dict[str, np.ndarray]) -> World:
    rng = random.Random(seed)
    world = World(folder)
    for who in people:
        others = [p for p in people if p != who]
        costar = rng.choice(others)
        near = sorted((p for p in others if p != costar and p in cents and who in cents),
                      key=lambda p: float(np.linalg.norm(cents[p] - cents[who])))
        lookalike = near[0] if near else rng.choice(others)
        world.costar[who], world.lookalike[who] = costar, lookalike
        own = photos_of(root, who)[:per_person]
        n_noise = round(len(own) * noise / (1 - noise))
        n_costar = round(n_noise * 2 / 3)
        picks = ([("costar", costar, f) for f in rng.sample(
            photos_of(root, costar), min(n_costar, len(photos_of(root, costar))))]
            + [("lookalike", lookalike, f) for f in rng.sample(
                photos_of(root, lookalike),
                min(n_noise - n_costar, len(photos_of(root, lookalike))))])
        entries: list[tuple[str, int]] = []  # (rel, sort key) — own photos first on average
        n_soft = max(1, len(own) // 8)
        for i, f in enumerate(own):
            photo = Image.open(f).convert("RGB")
            kind = "soft" if i >= len(own) - n_soft else "own"
            if kind == "soft":
                photo = soften(photo, rng.uniform(0.4, 0.55))
            img, box = place(rng, photo, rng.uniform(0.9, 2.4))
            rel = save(world, f"{who}/{kind}_{i}.jpg", img, [Placed(who, box, f.name, kind)],
                       rng.randrange(70, 95))
            entries.append((rel, rng.randrange(0, 100)))
        for i, (kind, other, f) in enumerate(picks):
            img, box = place(rng, Image.open(f).convert("RGB"), rng.uniform(0.9, 2.4))
            rel = save(world, f"{who}/{kind}_{i}.jpg", img, [Placed(other, box, f.name, kind)],
                       rng.randrange(70, 95))
            entries.append((rel, rng.randrange(20, 120)))  # noise tends to rank lower
        for i, f in enumerate(rng.sample(own[: len(own) - n_soft], min(2, len(own) - n_soft))):
            img, box = place(rng, Image.open(f).convert("RGB"), rng.uniform(1.0, 2.0))
            rel = save(world, f"{who}/duplicate_{i}.jpg", img,
                       [Placed(who, box, f.name, "duplicate")], 60)
            entries.append((rel, rng.randrange(0, 120)))
        for i, f in enumerate(rng.sample(own, min(2, len(own)))):
            photo = blur(Image.open(f).convert("RGB").resize((500, 500)), rng)
            img, box = place(rng, photo, 1.0)
            rel = save(world, f"{who}/blurred_{i}.jpg", img, [Placed(who, box, f.name, "blurred")],
                       85)
            entries.append((rel, rng.randrange(0, 120)))
        a, b = Image.open(own[0]).convert("RGB"), Image.open(
            photos_of(root, costar)[0]).convert("RGB")
        base = canvas(rng, 760, 420)
        base, box_a = place(rng, a, 1.4, base, (20, 40))
        base, box_b = place(rng, b, 1.4, base, (400, 40))
        rel = save(world, f"{who}/group_0.jpg", base,
                   [Placed(who, box_a, own[0].name, "group"),
                    Placed(costar, box_b, photos_of(root, costar)[0].name, "group")], 88)
        entries.append((rel, rng.randrange(0, 120)))
        entries.sort(key=lambda e: e[1])
        world.lists[who] = [rel for rel, _ in entries] + ["fault:404", "fault:html"]
        # never in the results: the Wikidata portrait, then probes for recognition
        spare = photos_of(root, who)[per_person:]
        if spare:
            photo = Image.open(spare[0]).convert("RGB")
            world.portrait[who] = save(world, f"portrait/{who}.jpg", photo,
                                       [Placed(who, (0, 0, photo.width, photo.height),
                                               spare[0].name, "portrait")], 92)
        world.probes[who] = spare[1:4]
    return world


# --------------------------------------------------------------------------- measuring


@dataclass
class Score:
    accepted: int = 0
    correct: int = 0
    own_ok: int = 0  # distinct own photos whose face passed quality (capped)
    found: int = 0  # of those, accepted
    majority: str = ""
    state: str = ""


def truth_of(world: World, rel: str, box: tuple[int, int, int, int]) -> Placed | None:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    for p in world.truth.get(rel, []):
        x0, y0, x1, y1 = p.box
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return p
    return None


def rel_of(url: str | None) -> str:
    from urllib.parse import unquote

    url = unquote(url or "")
    for marker in ("/img/", "/thumb/"):
        if marker in url:
            return url.split(marker, 1)[1]
    return ""


def score(settings: Settings, world: World, cap: int) -> tuple[dict[str, Score], Counter[str]]:
    """Per person: accepted faces against the truth; quality outcomes of own faces by kind."""
    out: dict[str, Score] = {}
    gates: Counter[str] = Counter()
    with session_scope(settings) as s:
        for person in s.scalars(select(Person)):
            who = person.name.replace(" ", "_")
            sc = Score(state=person.state)
            own_ok: set[str] = set()
            found: set[str] = set()
            owners: Counter[str] = Counter()
            imgs = s.scalars(select(ImageRow).where(ImageRow.person_id == person.id)).all()
            for img in imgs:
                rel = rel_of(img.url)
                for face in img.faces:
                    t = truth_of(world, rel, (face.x, face.y, face.w, face.h))
                    if t is None:
                        continue
                    if t.who == who and t.kind in ("own", "soft"):
                        outcome = face.reason if face.embedding is None else "measured"
                        gates[f"{t.kind}:{outcome}"] += 1
                    if t.who == who and face.embedding is not None and t.kind != "blurred":
                        own_ok.add(t.source)
                    if face.state == "accepted":
                        sc.accepted += 1
                        owners[t.who] += 1
                        if t.who == who:
                            sc.correct += 1
                            found.add(t.source)
                if rel and not img.faces and img.reason == "no_face":
                    for t in world.truth.get(rel, []):
                        if t.who == who and t.kind in ("own", "soft"):
                            gates[f"{t.kind}:no_face"] += 1
            sc.own_ok = min(cap, len(own_ok))
            sc.found = min(sc.own_ok, len(found & own_ok))
            sc.majority = owners.most_common(1)[0][0] if owners else ""
            out[who] = sc
    return out, gates


def summary(label: str, scores: dict[str, Score], show_people: bool) -> dict[str, float]:
    acc = sum(s.accepted for s in scores.values())
    cor = sum(s.correct for s in scores.values())
    own = sum(s.own_ok for s in scores.values())
    fnd = sum(s.found for s in scores.values())
    impure = [w for w, s in scores.items() if s.accepted and s.correct / s.accepted < 0.95]
    other = [w for w, s in scores.items() if s.majority and s.majority != w]
    if show_people:
        print(f"  {label}: per person (precision, recall, accepted, state)")
        for w, s in sorted(scores.items()):
            p = s.correct / s.accepted if s.accepted else float("nan")
            r = s.found / s.own_ok if s.own_ok else float("nan")
            flag = " IMPURE" if w in impure else ""
            flag += f" IS {s.majority}" if w in other else ""
            print(f"    {w:28s} {p:7.1%} {r:7.1%} {s.accepted:4d}  {s.state}{flag}")
    res = {"precision": cor / acc if acc else 0.0, "recall": fnd / own if own else 0.0,
           "impure": len(impure), "other": len(other), "accepted": acc, "people": len(scores)}
    return res


# --------------------------------------------------------------------------- running


def run_collect(world: World, people: list[str], home: Path, workers: int,
                anchor: str = "none") -> Settings:
    """Collect everyone as a sheet's names (no Q-id). ``anchor`` portrait: the Wikidata
    replica knows each person with a portrait (a photo of theirs not in the results), so
    the name lookup finds the Q-id and the portrait anchors the gallery; none: Wikidata
    is unreachable (a closed port), so nothing anchors anyone."""
    entries = [{"name": display(w), "country": COUNTRY, "occupations": ["Actor"],
                "images": world.lists[w], "p18": world.portrait.get(w), "commons": []}
               for w in people]
    with SimWeb(people=entries, photos_dir=world.folder) as web:
        wiki = web.url if anchor == "portrait" else f"http://127.0.0.1:{web.closed_port}"
        settings = Settings(home=home, workers=workers, rapidapi_key="bench",
                            image_search_url=f"{web.url}/search", allow_private_networks=True,
                            max_downloads_per_person=200, search_limit=200,
                            download_timeout=10.0,
                            wikidata_api_url=f"{wiki}/wikidata/w/api.php",
                            wikidata_sparql_url=f"{wiki}/wikidata/sparql",
                            commons_api_url=f"{wiki}/commons/w/api.php",
                            wikimedia_min_interval=0.0, wikimedia_retries=0)
        db.get_engine(settings)
        with session_scope(settings) as s:
            coll = get_or_create_collection(s, COUNTRY)
            for w in people:
                upsert_person(s, coll, display(w), occupations=["Actor"], country=COUNTRY)
        provider = RapidAPIImageSearch.from_settings(settings)
        collect_people(settings, pending_people(settings), provider, trusted={web.netloc})
    return settings


def redecide_all(settings: Settings, strategy: str) -> None:
    with session_scope(settings) as s:
        ids = list(s.scalars(select(Person.id).order_by(Person.id)))
    for pid in ids:
        finish_curation(settings, pid, {}, strategy=strategy)


def promote_all(settings: Settings) -> Counter[str]:
    from faceatlas.gallery.promote import promote

    return Counter(r.state for r in promote(settings, collection=COUNTRY))


@dataclass
class Promoted:
    """One promotion pass: galleries of another person promoted, and what probes answered."""

    promoted: int = 0
    held: int = 0  # unanchored: held by FACEATLAS_REQUIRE_ANCHOR
    wrong: list[str] = field(default_factory=list)  # promoted galleries of someone else
    wrong_anchors: Counter[str] = field(default_factory=Counter)
    anchors: Counter[str] = field(default_factory=Counter)
    probes: Counter[str] = field(default_factory=Counter)  # right, wrong, unknown


def promote_and_probe(settings: Settings, world: World, require_anchor: bool) -> Promoted:
    """Promote the collection (with or without the anchor rule), then ask recognition who
    each held-out probe photo is: a wrong person's name is the disaster being measured."""
    from faceatlas.gallery.promote import HELD, promote
    from faceatlas.gallery.recognize import recognize_bytes

    run = settings.model_copy(update={"require_anchor": ["*"] if require_anchor else []})
    results = promote(run, collection=COUNTRY)
    scores, _ = score(settings, world, Settings().max_faces_per_person)
    out = Promoted()
    for r in results:
        who = r.person.replace(" ", "_")
        out.anchors[str(r.anchor)] += 1
        if r.state == HELD:
            out.held += 1
        if r.state == "promoted":
            out.promoted += 1
            if scores[who].majority and scores[who].majority != who:
                out.wrong.append(who)
                out.wrong_anchors[str(r.anchor)] += 1
    db.reset_caches()
    for who, probes in world.probes.items():
        for path in probes:
            try:
                best = recognize_bytes(path.read_bytes(), settings, collection=COUNTRY).best
            except Exception:
                out.probes["error"] += 1
                continue
            if best is None:
                out.probes["unknown"] += 1
            else:
                out.probes["right" if best.name == display(who) else "wrong"] += 1
    return out


def show_promoted(label: str, p: Promoted) -> None:
    probes = sum(p.probes.values())
    print(f"  {label}: promoted {p.promoted}, held unanchored {p.held}; galleries of another "
          f"person promoted: {len(p.wrong)} (their anchors: "
          f"{dict(p.wrong_anchors) or '-'}); anchors {dict(p.anchors)}")
    print(f"    probes {probes}: right {p.probes['right']}, WRONG PERSON {p.probes['wrong']} "
          f"({p.probes['wrong'] / max(probes, 1):.0%}), unknown {p.probes['unknown']}")


def curation_cost(settings: Settings, rng: random.Random) -> dict[tuple[str, int], float]:
    """Milliseconds of the pure decision for 70 and 500 candidates (median of 5)."""
    with session_scope(settings) as s:
        analyses = [analysis_from_rows(img) for img in s.scalars(
            select(ImageRow).where(ImageRow.state == "analysed"))]
        for a in analyses:
            a.key = 0
    out = {}
    for strategy in ("consensus", "seed"):
        for n in (70, 500):
            times = []
            for _ in range(5):
                pick = [a for a in rng.choices(analyses, k=n)]
                pick = [type(a)(key=i, width=a.width, height=a.height, error=a.error,
                                faces=a.faces) for i, a in enumerate(pick)]
                t0 = time.perf_counter()
                decide(pick, CurateParams(strategy=strategy))
                times.append((time.perf_counter() - t0) * 1000)
            out[(strategy, n)] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="labelled folder, one sub-folder per identity (default: lfw)")
    parser.add_argument("--people", type=int, default=0, help="identities to use (0 = all)")
    parser.add_argument("--per-person", type=int, default=40, help="own photos per person")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.35, 0.5])
    parser.add_argument("--strategies", nargs="+", default=["consensus", "seed"])
    parser.add_argument("--anchors", nargs="+", default=["none"],
                        choices=["none", "portrait"],
                        help="none: Wikidata unreachable, no anchor (then promotion with and "
                        "without FACEATLAS_REQUIRE_ANCHOR); portrait: each name resolves on "
                        "the Wikidata replica and its portrait anchors the gallery")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-person-table", action="store_true",
                        help="print every person's figures")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    root = (args.root or testdata_dir() / "lfw").resolve()
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and len(photos_of(root, p.name)))
    if args.people:
        people = sorted(random.Random(args.seed).sample(people, min(args.people, len(people))))
    tmp = Path(tempfile.mkdtemp(prefix="bench-purity-"))
    cache = Path(tempfile.gettempdir()) / f"faceatlas-centroids-{abs(hash(str(root)))}.json"
    print(f"{len(people)} people from {root}, ≤ {args.per_person} own photos each; temp {tmp}")
    t0 = time.perf_counter()
    cents = centroids(root, people, cache)
    print(f"centroids for look-alikes: {time.perf_counter() - t0:.0f} s")
    results: dict[tuple[float, str], dict[str, float]] = {}
    promoted: dict[tuple[float, str], Promoted] = {}
    cap = Settings().max_faces_per_person
    try:
        for noise, anchor in [(n, a) for n in args.noise for a in args.anchors]:
            world = build(root, people, args.per_person, noise, args.seed,
                          tmp / f"web-{noise}", cents)
            n_images = sum(len(v) for v in world.lists.values())
            t0 = time.perf_counter()
            settings = run_collect(world, people, tmp / f"home-{noise}-{anchor}", args.workers,
                                   anchor)
            took = time.perf_counter() - t0
            print(f"\nnoise {noise:.0%}, anchor {anchor}: {n_images} results, collected in "
                  f"{took:.0f} s")
            if anchor == "none":
                promoted[(noise, "none, REQUIRE_ANCHOR=1")] = p = promote_and_probe(
                    settings, world, True)
                show_promoted("with FACEATLAS_REQUIRE_ANCHOR=1", p)
            promoted[(noise, anchor)] = p = promote_and_probe(settings, world, False)
            show_promoted(f"anchor {anchor}, no rule", p)
            label = "" if anchor == "none" else f" ({anchor})"
            for strategy in (args.strategies if anchor == "none" else ["consensus"]):
                if strategy != args.strategies[0] or strategy != "consensus":
                    redecide_all(settings, strategy)
                states = promote_all(settings) if strategy == "consensus" else Counter()
                scores, gates = score(settings, world, cap)
                results[(noise, strategy + label)] = summary(
                    f"{strategy}{label} @ {noise:.0%}", scores, args.per_person_table)
                if states:
                    print(f"  promotion ({strategy}): { {str(k): v for k, v in states.items()} }")
                if strategy == args.strategies[0]:
                    print("  own faces by quality outcome: "
                          + ", ".join(f"{k} {v}" for k, v in sorted(gates.items())))
            if noise == args.noise[0] and anchor == args.anchors[0]:
                cost = curation_cost(settings, random.Random(args.seed))
            db.reset_caches()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\nnoise  strategy               precision  recall  impure(<95%)  another-person  "
          "accepted")
    for (noise, strategy), r in results.items():
        print(f"{noise:5.0%}  {strategy:21s} {r['precision']:9.2%} {r['recall']:7.1%} "
              f"{int(r['impure']):6d}/{int(r['people'])} {int(r['other']):10d} "
              f"{int(r['accepted']):9d}")
    print("\nnoise  anchor / rule            promoted  held  wrong galleries promoted (anchor)"
          "  probes: wrong person / all")
    for (noise, mode), p in promoted.items():
        probes = sum(p.probes.values())
        print(f"{noise:5.0%}  {mode:24s} {p.promoted:8d} {p.held:5d}  {len(p.wrong):6d} "
              f"{dict(p.wrong_anchors) or '-'!s:22s} {p.probes['wrong']:8d} / {probes}")
    print("\ncuration cost (decision only, ms):  70 candidates   500 candidates   ratio")
    for strategy in ("consensus", "seed"):
        a, b = cost[(strategy, 70)], cost[(strategy, 500)]
        print(f"  {strategy:10s} {a:18.1f} {b:16.1f} {b / max(a, 1e-9):8.1f}×  "
              f"(candidates ×{500 / 70:.1f})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
