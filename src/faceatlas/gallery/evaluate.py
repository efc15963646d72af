"""A/B evaluation of face engines on a labelled folder (``faceatlas eval``).

The folder holds one sub-folder of photos per identity. For each engine every photo is decoded,
its largest face detected and embedded (CPU time per image by ``time.process_time``), then:

- detection rate: photos with at least one face;
- verification over every pair of embedded photos: distances of same-identity ("genuine") and
  different-identity ("impostor") pairs, the ROC, TAR at FAR 1e-3 and 1e-4 (only where there are
  enough impostor pairs to measure that FAR), the threshold meeting a target FAR, and pair
  accuracy at that threshold and at the engine's configured one;
- open-set identification: some identities are held out as strangers; the others' photos are
  split into gallery and probes, and every probe goes through the product's own index and
  ``best_person`` rule at the threshold: top-1 of the known, false accepts of the strangers.

``calibrate`` turns results into thresholds: accept and seed (one face against one centre or
reference) = the target-FAR threshold; recognise = the threshold at a tenth of the target FAR
when the pairs can measure it (a stranger meets every face of a gallery, so identification
needs the margin: on LFW, sface at FAR 1e-3 named 17% of held-out strangers, at its 1.05
default 0.9%); link = 97% of the smallest impostor distance, so that no different-person pair
of the set would link, capped at accept; duplicate = the engine's setting. They go to the
file Settings reads (``$FACEATLAS_HOME/thresholds.json``).
The report is Markdown with a ROC plot and distance histograms drawn with Pillow.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from faceatlas.curation.identity import pairwise
from faceatlas.domain.errors import FaceAtlasError, ImageError
from faceatlas.faces.engines import ENGINES, EngineConfig, create_engine, engine_spec
from faceatlas.faces.image import decode
from faceatlas.gallery.index import ExactIndex, best_person
from faceatlas.settings import Settings

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FAR_POINTS = (1e-2, 1e-3, 1e-4)
COLOURS = {"dlib": (31, 119, 180), "sface": (214, 39, 40), "ensemble": (44, 160, 44)}


@dataclass(frozen=True)
class Sample:
    path: Path
    identity: str


def load_folder(
    folder: Path, *, per_identity: int | None = None, identities: int | None = None,
    seed: int = 0,
) -> list[Sample]:
    """Photos of a labelled folder; optionally at most ``per_identity`` photos of at most
    ``identities`` identities (a reproducible random sample)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FaceAtlasError(f"{folder} is not a folder (expected one sub-folder per identity)")
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    rng = random.Random(seed)
    if identities is not None and identities < len(people):
        people = sorted(rng.sample(people, identities))
    out = []
    for person in people:
        files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if per_identity is not None:
            files = files[:per_identity]
        out.extend(Sample(f, person.name) for f in files)
    if len({s.identity for s in out}) < 2:
        raise FaceAtlasError(f"{folder} needs photos of at least two identities")
    return out


@dataclass
class Embedded:
    """One engine's pass over the samples."""

    engine: str
    vectors: list[np.ndarray | None]  # the largest face's embedding, None: no face
    cpu: list[float]  # process CPU seconds per image (decode + detect + embed)
    faces: list[int]  # faces found per image


def embed_samples(
    samples: Sequence[Sample], engine_name: str, settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> Embedded:
    """Embed the largest face of every sample with a fresh engine (models loaded first, so
    loading is not counted as per-image time)."""
    engine = create_engine(EngineConfig.from_settings(
        settings.model_copy(update={"engine": engine_name})))
    engine.warm()
    out = Embedded(engine_name, [], [], [])
    for i, sample in enumerate(samples):
        data = sample.path.read_bytes()
        t0 = time.process_time()
        try:
            rgb = decode(data, max_pixels=settings.max_pixels).rgb
        except ImageError:
            out.vectors.append(None)
            out.cpu.append(time.process_time() - t0)
            out.faces.append(0)
            continue
        faces = engine.detect(rgb)
        vec = None
        if faces:
            largest = max(faces, key=lambda f: f.box[2] * f.box[3])
            vec = engine.embed(rgb, [largest])[0]
        out.cpu.append(time.process_time() - t0)
        out.vectors.append(vec)
        out.faces.append(len(faces))
        if progress:
            progress(i + 1, len(samples))
    return out


# --------------------------------------------------------------------------- metrics


@dataclass
class Verification:
    genuine: np.ndarray
    impostor: np.ndarray

    def far_tar(self, threshold: float) -> tuple[float, float]:
        far = float((self.impostor <= threshold).mean()) if len(self.impostor) else 0.0
        tar = float((self.genuine <= threshold).mean()) if len(self.genuine) else 0.0
        return far, tar

    def threshold_at_far(self, target: float) -> float | None:
        """The largest threshold whose FAR is ≤ ``target`` (None when the impostor pairs are
        too few to measure that FAR)."""
        n = len(self.impostor)
        if n == 0 or n * target < 1.0:
            return None
        allowed = int(np.floor(target * n))  # impostor pairs that may fall at or under it
        imp = np.sort(self.impostor)
        # just under the (allowed+1)-th smallest impostor distance
        return float(np.nextafter(imp[allowed], -np.inf)) if allowed < n else float(imp[-1])

    def tar_at_far(self, target: float) -> float | None:
        t = self.threshold_at_far(target)
        return None if t is None else self.far_tar(t)[1]

    def accuracy(self, threshold: float) -> float:
        right = (self.genuine <= threshold).sum() + (self.impostor > threshold).sum()
        return float(right) / max(1, len(self.genuine) + len(self.impostor))

    def best_accuracy(self) -> tuple[float, float]:
        """(accuracy, threshold) of the best single threshold."""
        cands = np.unique(np.concatenate([self.genuine, self.impostor]))
        best = (0.0, 0.0)
        g, imp = np.sort(self.genuine), np.sort(self.impostor)
        total = len(g) + len(imp)
        for t in cands:
            right = np.searchsorted(g, t, side="right") + (len(imp) - np.searchsorted(
                imp, t, side="right"))
            if right / total > best[0]:
                best = (right / total, float(t))
        return best

    def roc(self, points: int = 400) -> list[tuple[float, float]]:
        """(FAR, TAR) pairs over the thresholds where something changes."""
        cands = np.unique(np.concatenate([self.genuine, self.impostor]))
        if len(cands) > points:
            cands = cands[np.linspace(0, len(cands) - 1, points).astype(int)]
        return [self.far_tar(float(t)) for t in cands]


def verification(vectors: Sequence[np.ndarray | None], identities: Sequence[str],
                 parts: Sequence[tuple[slice, float]] | None = None) -> Verification:
    """Genuine and impostor pair distances. ``parts`` (each part of a composite engine's
    vectors, with its engine's threshold): a pair's score is the largest of its parts'
    distances each divided by its threshold, so a score ≤ 1 means every engine accepts it."""
    keep = [i for i, v in enumerate(vectors) if v is not None]
    if len(keep) < 2:
        return Verification(np.zeros(0), np.zeros(0))
    v = np.stack([vectors[i] for i in keep]).astype(np.float64)
    ids = np.array([identities[i] for i in keep])
    if parts is None:
        dist = pairwise(v)
    else:
        scores = [pairwise(v[:, cols]) / threshold for cols, threshold in parts]
        dist = functools.reduce(np.maximum, scores)
    iu = np.triu_indices(len(keep), k=1)
    same = ids[iu[0]] == ids[iu[1]]
    d = dist[iu]
    return Verification(d[same], d[~same])


@dataclass
class Identification:
    known_probes: int = 0
    top1: float = 0.0  # nearest gallery person is right (closed set, no threshold)
    identified: float = 0.0  # right person and within the threshold (open set)
    stranger_probes: int = 0
    false_accepts: float = 0.0  # strangers matched to someone within the threshold


def identification(
    vectors: Sequence[np.ndarray | None], identities: Sequence[str], threshold: float,
    holdout: float = 0.3, seed: int = 0,
) -> Identification:
    """Open-set identification through the product's index and ``best_person``."""
    by_id: dict[str, list[np.ndarray]] = {}
    for v, ident in zip(vectors, identities, strict=True):
        if v is not None:
            by_id.setdefault(ident, []).append(v)
    names = sorted(by_id)
    rng = random.Random(seed)
    strangers = set(rng.sample(names, max(1, round(len(names) * holdout)))) if names else set()
    gallery_ids, gallery_vecs, probes = [], [], []
    person_no = {n: i for i, n in enumerate(names)}
    for name in names:
        vecs = by_id[name]
        if name in strangers:
            probes.extend((None, v) for v in vecs)
        elif len(vecs) >= 2:
            half = max(1, len(vecs) // 2)
            gallery_vecs.extend(vecs[:half])
            gallery_ids.extend([person_no[name]] * half)
            probes.extend((person_no[name], v) for v in vecs[half:])
        else:  # a single photo: gallery only
            gallery_vecs.extend(vecs)
            gallery_ids.append(person_no[name])
    out = Identification()
    if not gallery_vecs or not probes:
        return out
    index = ExactIndex(dim=len(gallery_vecs[0]))
    index.add(range(len(gallery_vecs)), gallery_ids, np.stack(gallery_vecs))
    results = index.search(np.stack([v for _, v in probes]), 10)
    top1 = ident = known = fa = stranger = 0
    for (truth, _), neighbours in zip(probes, results, strict=True):
        found = best_person(neighbours, threshold)
        if truth is None:
            stranger += 1
            fa += found is not None
        else:
            known += 1
            top1 += neighbours[0].person_id == truth
            ident += found is not None and found[0] == truth
    out.known_probes, out.stranger_probes = known, stranger
    out.top1 = top1 / max(1, known)
    out.identified = ident / max(1, known)
    out.false_accepts = fa / max(1, stranger)
    return out


@dataclass
class EngineResult:
    engine: str
    images: int
    detected: int
    faces: int
    cpu_mean: float
    cpu_p50: float
    verification: Verification
    configured_threshold: float
    target_far: float
    threshold: float | None  # meeting the target FAR
    strict_threshold: float | None  # meeting target FAR / 10
    identification: Identification = field(default_factory=Identification)  # target FAR
    identification_configured: Identification = field(default_factory=Identification)
    #: the pair-score threshold the product applies (= configured_threshold but for the
    #: ensemble, whose pair score is max(distance / threshold) over its two engines: 1.0)
    pair_threshold: float | None = None

    @property
    def pair_at(self) -> float:
        return self.configured_threshold if self.pair_threshold is None else self.pair_threshold

    @property
    def detection_rate(self) -> float:
        return self.detected / max(1, self.images)

    def summary(self) -> dict[str, object]:
        v = self.verification
        best_acc, best_t = v.best_accuracy() if len(v.genuine) else (0.0, 0.0)
        at = self.threshold if self.threshold is not None else self.pair_at
        return {
            "engine": self.engine,
            "detection_rate": round(self.detection_rate, 4),
            "genuine_pairs": len(v.genuine), "impostor_pairs": len(v.impostor),
            "accuracy_configured": round(v.accuracy(self.pair_at), 4),
            "configured_threshold": round(self.configured_threshold, 4),
            "far_configured": v.far_tar(self.pair_at)[0],
            "tar_configured": round(v.far_tar(self.pair_at)[1], 4),
            "accuracy_at_target": round(v.accuracy(at), 4),
            "best_accuracy": round(best_acc, 4), "best_threshold": round(best_t, 4),
            "tar_at_far_1e-3": v.tar_at_far(1e-3), "tar_at_far_1e-4": v.tar_at_far(1e-4),
            "threshold_at_target_far": self.threshold, "target_far": self.target_far,
            "top1": round(self.identification.top1, 4),
            "identified": round(self.identification.identified, 4),
            "stranger_false_accepts": round(self.identification.false_accepts, 4),
            "identified_configured": round(self.identification_configured.identified, 4),
            "stranger_false_accepts_configured": round(
                self.identification_configured.false_accepts, 4),
            "cpu_ms_per_image": round(1000 * self.cpu_mean, 1),
            "cpu_ms_p50": round(1000 * self.cpu_p50, 1),
        }


def evaluate_engine(
    samples: Sequence[Sample], engine: str, settings: Settings, *, target_far: float = 1e-3,
    progress: Callable[[int, int], None] | None = None,
) -> EngineResult:
    emb = embed_samples(samples, engine, settings, progress)
    identities = [s.identity for s in samples]
    vectors = emb.vectors
    spec = engine_spec(engine)
    configured = settings.thresholds(spec.search.name).recognize
    if spec.parts:
        # pairs: every engine must accept (score = max of distance/threshold, accept at 1);
        # identification searches the first part (the ensemble's SFace), as the product does
        ver = verification(vectors, identities, [
            (cols, settings.thresholds(part.name).recognize)
            for part, cols in spec.part_slices()])
        vectors = [None if v is None else spec.search_part(v) for v in vectors]
        configured_pairs = 1.0
    else:
        ver = verification(vectors, identities)
        configured_pairs = configured
    threshold = ver.threshold_at_far(target_far)
    result = EngineResult(
        engine, len(samples), sum(v is not None for v in emb.vectors), sum(emb.faces),
        statistics.fmean(emb.cpu) if emb.cpu else 0.0,
        statistics.median(emb.cpu) if emb.cpu else 0.0, ver, configured, target_far,
        threshold, ver.threshold_at_far(target_far / 10),
    )
    result.pair_threshold = configured_pairs
    at = threshold if threshold is not None else configured_pairs
    if spec.parts:  # from pair-score units back to the searched part's distances
        at *= configured
    result.identification = identification(vectors, identities, at)
    result.identification_configured = identification(vectors, identities, configured)
    return result


# --------------------------------------------------------------------------- calibration


def calibrated_thresholds(result: EngineResult, settings: Settings) -> dict[str, float]:
    """Thresholds for one engine from its evaluation (see the module docstring)."""
    if result.threshold is None:
        raise FaceAtlasError(
            f"{result.engine}: {len(result.verification.impostor)} impostor pairs cannot "
            f"measure FAR {result.target_far:g}; evaluate on more identities/photos"
        )
    base = settings.thresholds(result.engine)
    accept = round(result.threshold, 4)
    strict = result.strict_threshold
    recognize = round(strict, 4) if strict is not None else accept
    link = round(min(0.97 * float(result.verification.impostor.min()), accept), 4)
    return {"link": link, "accept": accept, "seed": accept, "recognize": recognize,
            "duplicate": base.duplicate}


def write_calibration(path: Path, thresholds: dict[str, dict[str, float]], source: str) -> Path:
    """Merge per-engine thresholds into the calibration file (other engines' entries stay)."""
    data: dict[str, object] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    engines = dict(data.get("engines", {})) if isinstance(data.get("engines"), dict) else {}
    engines.update(thresholds)
    data = {"engines": engines, "source": source,
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- report


def _fmt(x: object, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{100 * x:.2f}%" if pct else f"{x:.4g}"
    return str(x)


def write_report(
    results: Sequence[EngineResult], out: Path, folder: Path, samples: Sequence[Sample]
) -> Path:
    """``report.md``, ``roc.png`` and one ``hist_<engine>.png`` per engine in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    draw_roc(results, out / "roc.png")
    for r in results:
        draw_histogram(r, out / f"hist_{r.engine}.png")
    rows = [r.summary() for r in results]
    ids = len({s.identity for s in samples})
    lines = [
        "# Face engine evaluation", "",
        f"Folder `{folder}`: {len(samples)} photos of {ids} identities; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
        "Distances are Euclidean between stored embeddings (sface: unit vectors, "
        "d = sqrt(2 − 2·cos)). CPU is `time.process_time` per image: decode, detect, embed the "
        "largest face.", "",
        "## Summary", "",
        "| | " + " | ".join(r.engine for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    metrics = [
        ("detection rate", "detection_rate", True),
        ("pair accuracy at the configured threshold", "accuracy_configured", True),
        ("configured recognise threshold", "configured_threshold", False),
        ("FAR at the configured threshold", "far_configured", False),
        ("TAR at the configured threshold", "tar_configured", True),
        ("best pair accuracy", "best_accuracy", True),
        ("TAR at FAR 1e-3", "tar_at_far_1e-3", True),
        ("TAR at FAR 1e-4", "tar_at_far_1e-4", True),
        ("threshold meeting the target FAR", "threshold_at_target_far", False),
        ("identification top-1 (closed set)", "top1", True),
        ("identified, configured threshold", "identified_configured", True),
        ("strangers accepted, configured threshold", "stranger_false_accepts_configured", True),
        ("identified, target-FAR threshold", "identified", True),
        ("strangers accepted, target-FAR threshold", "stranger_false_accepts", True),
        ("CPU ms per image (mean)", "cpu_ms_per_image", False),
        ("CPU ms per image (p50)", "cpu_ms_p50", False),
    ]
    for label, key, pct in metrics:
        lines.append(f"| {label} | " + " | ".join(_fmt(r[key], pct) for r in rows) + " |")
    lines += ["", "## ROC", "", "![ROC](roc.png)", ""]
    for r, row in zip(results, rows, strict=True):
        v, ident = r.verification, r.identification
        lines += [
            f"## {r.engine}", "",
            "### Detection", "",
            f"{r.detected} of {r.images} photos with a face ({_fmt(r.detection_rate, True)}); "
            f"{r.faces} faces in all.", "",
            "### Verification", "",
            f"{len(v.genuine)} genuine and {len(v.impostor)} impostor pairs. Genuine distance "
            f"median {_fmt(float(np.median(v.genuine)) if len(v.genuine) else None)}, impostor "
            f"median {_fmt(float(np.median(v.impostor)) if len(v.impostor) else None)}, "
            f"smallest impostor {_fmt(float(v.impostor.min()) if len(v.impostor) else None)}.",
            "",
            "| FAR | threshold | TAR |", "|---:|---:|---:|",
        ]
        spec = ENGINES.get(r.engine)
        if spec is not None and spec.parts:
            labels = ", ".join(p.label for p in spec.parts)
            lines[-2:-2] = ["Pair score: the larger of each engine's distance divided by its "
                            f"recognise threshold ({labels}): ≤ 1 when both engines accept "
                            f"the pair. Identification searches the {spec.search.label} half.",
                            ""]
        for far in FAR_POINTS:
            t = v.threshold_at_far(far)
            lines.append(f"| {far:g} | {_fmt(t)} | "
                         f"{_fmt(None if t is None else v.far_tar(t)[1], True)} |")
        lines += [
            "",
            f"Target FAR {r.target_far:g}: threshold {_fmt(r.threshold)}. "
            f"Best accuracy {_fmt(row['best_accuracy'], True)} at {row['best_threshold']}.", "",
            f"![distances of {r.engine}](hist_{r.engine}.png)", "",
            "### Identification (open set)", "",
            f"{ident.known_probes} probes of known identities: top-1 {_fmt(ident.top1, True)}. "
            f"At the configured threshold ({_fmt(r.configured_threshold)}): identified "
            f"{_fmt(r.identification_configured.identified, True)}, held-out strangers falsely "
            f"accepted {_fmt(r.identification_configured.false_accepts, True)} of "
            f"{ident.stranger_probes}. At the target-FAR threshold: identified "
            f"{_fmt(ident.identified, True)}, strangers accepted "
            f"{_fmt(ident.false_accepts, True)}. (A stranger meets every gallery face: "
            "open-set false accepts grow with the gallery, so recognition needs a stricter "
            "threshold than one pair's FAR.)", "",
            "### Speed", "",
            f"CPU per image: mean {row['cpu_ms_per_image']} ms, p50 {row['cpu_ms_p50']} ms.", "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    return path


# --------------------------------------------------------------------------- plots (Pillow)


def _canvas(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw, tuple[int, int, int, int]]:
    img = Image.new("RGB", (720, 520), "white")
    draw = ImageDraw.Draw(img)
    box = (70, 40, 700, 460)  # plot area: left, top, right, bottom
    draw.rectangle(box, outline="black")
    draw.text((box[0], 12), title, fill="black")
    return img, draw, box


def draw_roc(results: Sequence[EngineResult], path: Path) -> None:
    """TAR against log10 FAR (1e-5 … 1)."""
    img, draw, (x0, y0, x1, y1) = _canvas("ROC: true accept rate vs false accept rate")
    lo, hi = -5.0, 0.0

    def xy(far: float, tar: float) -> tuple[float, float]:
        lf = np.log10(max(far, 10**lo))
        return x0 + (lf - lo) / (hi - lo) * (x1 - x0), y1 - tar * (y1 - y0)

    for e in range(-5, 1):  # grid
        x, _ = xy(10.0**e, 0)
        draw.line([(x, y0), (x, y1)], fill=(225, 225, 225))
        draw.text((x - 12, y1 + 6), f"1e{e}", fill="black")
    for t in range(0, 11, 2):
        _, y = xy(1, t / 10)
        draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        draw.text((x0 - 30, y - 6), f"{t / 10:.1f}", fill="black")
    draw.text(((x0 + x1) // 2 - 20, y1 + 24), "FAR (log)", fill="black")
    draw.text((8, (y0 + y1) // 2), "TAR", fill="black")
    for n, r in enumerate(results):
        colour = COLOURS.get(r.engine, (120, 120, 120))
        pts = sorted(r.verification.roc())
        # FAR 0 has no place on a log axis: start the curve at the left edge instead
        zero = [t for f, t in pts if f == 0.0]
        pts = ([(10.0**lo, max(zero))] if zero else []) + [(f, t) for f, t in pts if f > 0]
        if pts:
            draw.line([xy(f, t) for f, t in pts], fill=colour, width=3)
        draw.rectangle([x1 - 150, y1 - 30 - 20 * n, x1 - 130, y1 - 20 - 20 * n],
                       fill=colour)
        draw.text((x1 - 124, y1 - 32 - 20 * n), r.engine, fill="black")
    img.save(path)


def draw_histogram(r: EngineResult, path: Path, bins: int = 60) -> None:
    """Genuine (green) and impostor (red) distance histograms, each scaled to its own peak,
    with the threshold at the target FAR (black) and the configured one (grey)."""
    v = r.verification
    img, draw, (x0, y0, x1, y1) = _canvas(
        f"{r.engine}: pair distances (green same person, red different)")
    both = np.concatenate([v.genuine, v.impostor]) if len(v.genuine) + len(v.impostor) else \
        np.array([0.0, 1.0])
    lo, hi = 0.0, float(max(both.max(), r.pair_at)) * 1.05
    edges = np.linspace(lo, hi, bins + 1)

    def x_of(d: float) -> float:
        return x0 + (d - lo) / (hi - lo) * (x1 - x0)

    for values, colour in ((v.impostor, (214, 39, 40)), (v.genuine, (44, 160, 44))):
        if not len(values):
            continue
        counts, _ = np.histogram(values, edges)
        peak = max(1, counts.max())
        for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
            if c:
                top = y1 - c / peak * (y1 - y0 - 10)
                draw.rectangle([x_of(a) + 1, top, x_of(b) - 1, y1],
                               outline=colour)
    for t, colour in ((r.pair_at, (150, 150, 150)), (r.threshold, (0, 0, 0))):
        if t is not None:
            draw.line([(x_of(t), y0), (x_of(t), y1)], fill=colour, width=2)
    for k in range(6):
        d = lo + k * (hi - lo) / 5
        draw.text((x_of(d) - 10, y1 + 6), f"{d:.2f}", fill="black")
    draw.text(((x0 + x1) // 2 - 30, y1 + 24), "distance", fill="black")
    img.save(path)
