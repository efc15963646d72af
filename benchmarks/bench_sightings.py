"""Sightings (issue 24): candidates from unknown faces, and what recording costs.

    python benchmarks/bench_sightings.py [--known 52] [--unknown 10] [--gallery-per-person 10]
                                         [--known-photos 200] [--sources 8] [--seed 24]
                                         [--clip-every 3] [--known-clip-every 8]
    python benchmarks/bench_sightings.py --known 12 --unknown 4 --known-photos 30  # CI sample

From ``$FACEATLAS_TESTDATA/lfw`` (62 people): ``--unknown`` people are kept out of the
gallery, the others are imported (``--gallery-per-person`` photos each) and promoted. A
stream of photos and short clips then goes through recognition with recording on, each from
one of ``--sources`` sources: photos of known people not in the gallery, and appearances of
the unknown people, each seen a different number of times (3 … 25; the first two fewer than
5). Of an unknown person's appearances every ``--clip-every``-th is a short clip (two of
their photos, 0.8 s each, H.264 written with PyAV) recognised by ``recognize_video`` — the
video path, which records one sighting per track —, half of the others are pasted beside a
known person's photo (one picture, two faces: they "appear among the known ones"); every
``--known-clip-every``-th known photo is a clip too (1.6 s of it).

Figures:

- candidate clusters: BCubed precision and recall of the unknown people's sightings (all
  clusters, and the candidate clusters alone); goal precision ≥ 0.98, recall ≥ 0.90;
- every unknown person seen ≥ 5 times must surface as exactly one candidate, and no known
  person's face may be in a candidate (a face off its LFW photo's centre is unlabelled and
  counted apart: in the CI sample one such is George W. Bush at the edge of a Koizumi photo,
  rightly in the Bush candidate);
- recording overhead: the same photos recognised with ``where`` (recorded) and without,
  interleaved photo by photo in one run; p50 of each and the difference (goal ≤ 5 ms), the
  same for the clips (a clip's recognition, its tracks recorded or not), and the writer
  thread's own cost per sighting (off the request path).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from sqlalchemy import select

from faceatlas.gallery import candidates as cands
from faceatlas.gallery import sightings
from faceatlas.gallery.promote import promote
from faceatlas.gallery.recognize import engine_pool, recognize_bytes
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Sighting
from faceatlas.video import recognize as video_recognize
from faceatlas.video.analyse import video_engine
from faceatlas.video.recognize import recognize_video

COLLECTION = "bench"
UNKNOWN_COUNTS = (3, 4, 5, 6, 8, 10, 12, 15, 20, 25)


def lfw_root() -> Path:
    base = os.environ.get("FACEATLAS_TESTDATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "testdata")
    root = Path(base) / "lfw"
    if not root.is_dir():
        sys.exit(f"LFW photos not found at {root} (set FACEATLAS_TESTDATA)")
    return root


@dataclass
class Item:
    """One thing of the stream: a photo (``data``) or a short clip of one person (``clip``)."""

    names: list[str]  # who is in it: the left half's identity, the right half's (photos)
    files: list[Path]  # its LFW files, for the report
    data: bytes | None = None
    clip: Path | None = None


#: frames per second of the clips written, seconds each photo is shown, frames sampled
CLIP_RATE, CLIP_HOLD, CLIP_FPS = 10, 0.8, 4.0


def write_clip(dest: Path, photos: list[Path], hold: float = CLIP_HOLD) -> Path:
    """A slideshow of LFW photos (250×250) as H.264, each shown ``hold`` seconds."""
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=CLIP_RATE)
        stream.width, stream.height, stream.pix_fmt = 250, 250, "yuv420p"
        for p in photos:
            rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for _ in range(round(hold * CLIP_RATE)):
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def side_by_side(left: Path, right: Path) -> bytes:
    a, b = cv2.imread(str(left)), cv2.imread(str(right))
    ok, buf = cv2.imencode(".jpg", np.hstack([a, b]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def bcubed(items: list[tuple[str, int]]) -> tuple[float, float]:
    """BCubed precision and recall of (true identity, cluster) pairs."""
    if not items:
        return 1.0, 1.0
    by_cluster: dict[int, Counter[str]] = defaultdict(Counter)
    by_truth: Counter[str] = Counter()
    for truth, cluster in items:
        by_cluster[cluster][truth] += 1
        by_truth[truth] += 1
    p = r = 0.0
    for truth, cluster in items:
        same = by_cluster[cluster][truth]
        p += same / sum(by_cluster[cluster].values())
        r += same / by_truth[truth]
    return p / len(items), r / len(items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--known", type=int, default=52)
    ap.add_argument("--unknown", type=int, default=10)
    ap.add_argument("--gallery-per-person", type=int, default=10)
    ap.add_argument("--known-photos", type=int, default=200)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--clip-every", type=int, default=3,
                    help="every n-th appearance of an unknown person is a clip")
    ap.add_argument("--known-clip-every", type=int, default=8,
                    help="every n-th known photo is a clip")
    ap.add_argument("--cut", type=float, default=None,
                    help="FACEATLAS_SIGHTINGS_CLUSTER_DISTANCE (default: the link distance)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    people = sorted(p for p in lfw_root().iterdir() if p.is_dir())
    rng.shuffle(people)
    unknown, known = people[:args.unknown], people[args.unknown:args.unknown + args.known]
    tmp = Path(tempfile.mkdtemp(prefix="bench-sightings-"))
    try:
        settings = Settings(home=tmp / "home", min_faces_to_promote=3, workers=2,
                            default_collection=COLLECTION,
                            sightings_cluster_distance=args.cut)
        incoming = tmp / "incoming"
        rest: list[tuple[str, Path]] = []
        for folder in known:
            photos = sorted(folder.glob("*.jpg"))
            (incoming / folder.name).mkdir(parents=True)
            for p in photos[:args.gallery_per_person]:
                shutil.copyfile(p, incoming / folder.name / p.name)
            rest += [(folder.name, p) for p in photos[args.gallery_per_person:]]
        t0 = time.perf_counter()
        list(import_folder(incoming, COLLECTION, settings))
        promoted = promote(settings, collection=COLLECTION)
        print(f"gallery: {len(known)} known people ({sum(1 for r in promoted if r.faces)} "
              f"promoted), {args.unknown} unknown, in {time.perf_counter() - t0:.0f} s")

        # the stream: photos (some two people side by side) and clips
        stream: list[Item] = []
        clips = tmp / "clips"
        clips.mkdir()

        def clip_of(names: list[str], photos: list[Path], hold: float = CLIP_HOLD) -> Item:
            path = write_clip(clips / f"clip-{len(stream)}.mp4", photos, hold)
            return Item(names, photos, clip=path)

        rng.shuffle(rest)
        known_iter = iter(rest[:args.known_photos])
        seen_target: dict[str, int] = {}
        for i, folder in enumerate(unknown):
            n = UNKNOWN_COUNTS[i % len(UNKNOWN_COUNTS)]
            seen_target[folder.name] = n
            mine = sorted(folder.glob("*.jpg"))[:n]
            for j, p in enumerate(mine):
                if args.clip_every and j % args.clip_every == args.clip_every - 1:
                    stream.append(clip_of([folder.name], [p, mine[(j + 1) % len(mine)]]))
                    continue
                partner = next(known_iter, None) if j % 2 else None
                if partner is None:
                    stream.append(Item([folder.name], [p], p.read_bytes()))
                else:
                    stream.append(Item([partner[0], folder.name], [partner[1], p],
                                       side_by_side(partner[1], p)))
        for k, (who, p) in enumerate(known_iter):
            if args.known_clip_every and k % args.known_clip_every == args.known_clip_every - 1:
                stream.append(clip_of([who], [p], 2 * CLIP_HOLD))
            else:
                stream.append(Item([who], [p], p.read_bytes()))
        rng.shuffle(stream)
        sources = [f"source-{rng.randrange(args.sources)}" for _ in stream]
        n_clips = sum(1 for it in stream if it.clip is not None)

        sightings.set_policy(settings, COLLECTION, enabled=True)
        engines = engine_pool(settings, 1)
        photos_only = [it for it in stream if it.data is not None]
        for it in photos_only[:3]:  # warm the models and the index
            recognize_bytes(it.data or b"", settings, engines=engines)
        engine = video_engine(settings, for_search=True)
        # the video path's recording step, timed where recognize_video calls it
        record_ms: list[float] = []
        record_tracks = video_recognize.record_tracks

        def timed_record_tracks(*args: Any, **kwargs: Any) -> int:
            t = time.perf_counter()
            try:
                return record_tracks(*args, **kwargs)
            finally:
                record_ms.append(1000 * (time.perf_counter() - t))
        video_recognize.record_tracks = timed_record_tracks
        off: list[float] = []
        on: list[float] = []
        clip_off: list[float] = []
        clip_on: list[float] = []
        for i, it in enumerate(stream):
            # clip: the benchmark's key back to the stream
            where = sightings.Where(sources[i], clip=f"item-{i}")
            if it.clip is not None:
                path = it.clip

                def run(w: sightings.Where | None, path: Path = path) -> None:
                    recognize_video(path, settings, fps=CLIP_FPS, engine=engine, where=w)
                pair = (clip_off, clip_on)
            else:
                data = it.data or b""

                def run(w: sightings.Where | None, data: bytes = data) -> None:
                    recognize_bytes(data, settings, engines=engines, where=w)
                pair = (off, on)
            # on first for every other photo (clip) of its kind: neither side always first
            runs = [(None, pair[0]), (where, pair[1])] if len(pair[0]) % 2 else \
                [(where, pair[1]), (None, pair[0])]
            for w, times in runs:  # once each: a second recorded run would record twice
                t = time.perf_counter()
                run(w)
                times.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        sightings.flush(600)
        drain = time.perf_counter() - t
        stats = sightings.stats()

        with session_scope(settings) as s:
            rows = s.execute(select(Sighting.id, Sighting.person_id, Sighting.cluster_id,
                                    Sighting.clip, Sighting.x, Sighting.y, Sighting.w,
                                    Sighting.h, Sighting.source)).all()
        truth: dict[int, str] = {}
        for sid, _, _, clip, x, y, w, h, _ in rows:
            names = stream[int(clip.split("-")[1])].names
            cx, cy = x + w / 2, y + h / 2
            half = 0 if len(names) == 1 or cx < 250 else 1
            # LFW photos are centred on their person; a face off the centre is a bystander
            main = abs(cx - 125 - 250 * half) < 40 and abs(cy - 125) < 40
            truth[sid] = names[half] if main else f"bystander-{sid}"
        boxes = rows
        rows = [r[:5] for r in rows]
        unknown_names = {f.name for f in unknown}
        unknown_rows = [(truth[sid], c) for sid, pid, c, _, _ in rows
                        if pid is None and truth[sid] in unknown_names]
        found = cands.candidates(settings, COLLECTION)
        in_candidates = {m: c.cluster_id for c in found for m in c.members}
        cand_rows = [(truth[m], c) for m, c in in_candidates.items()]
        p_all, r_all = bcubed(unknown_rows)
        p_cand, r_cand = bcubed([x for x in cand_rows if x[0] in unknown_names])
        # a face off its photo's centre is someone unlabelled (LFW photos show their person
        # in the middle; a politician's photo may show another at the edge)
        known_in_cand = sum(1 for who, _ in cand_rows
                            if who not in unknown_names and not who.startswith("bystander"))
        bystanders = sum(1 for who, _ in cand_rows if who.startswith("bystander"))
        recorded = Counter(who for who, _ in unknown_rows)
        surfaced: Counter[str] = Counter()
        for c in found:
            top = Counter(truth[m] for m in c.members).most_common(1)[0][0]
            surfaced[top] += 1
        eligible = [u for u in unknown_names if recorded[u] >= settings.sightings_min_sightings]
        exactly_one = [u for u in eligible if surfaced[u] == 1]
        for u in sorted(set(eligible) - set(exactly_one)):
            split = Counter(c for who, c in unknown_rows if who == u)
            print(f"  {u}: seen {recorded[u]}, clusters {dict(split)}")
        for c in found:
            bad = [m for m in c.members if truth[m] not in unknown_names]
            if bad:
                where = [(stream[int(r[3].split("-")[1])].files, r[4:8])
                         for r in boxes if r[0] in bad]
                print(f"  candidate {c.cluster_id}: {dict(Counter(truth[m] for m in c.members))}"
                      f"; the others (photo files, box): {where}")

        from_clips = sum(1 for r in rows if stream[int(r[3].split("-")[1])].clip is not None)
        print(f"stream: {len(stream) - n_clips} photos and {n_clips} clips, {len(rows)} "
              f"sightings ({from_clips} from clips, {sum(1 for r in rows if r[1] is None)} "
              f"unknown), {args.sources} sources")
        print("unknown people (photos → unknown sightings → candidates): " + ", ".join(
            f"{seen_target[u]}→{recorded[u]}→{surfaced[u]}" for u in sorted(seen_target)))
        print(f"BCubed, all clusters of unknown people: precision {p_all:.3f}, "
              f"recall {r_all:.3f}")
        ok_pr = p_cand >= 0.98 and r_cand >= 0.90
        print(f"BCubed, candidate clusters: precision {p_cand:.3f}, recall {r_cand:.3f} "
              f"(goal ≥ 0.98 / ≥ 0.90: {'met' if ok_pr else 'NOT met'})")
        print(f"unknown people seen ≥ {settings.sightings_min_sightings}: {len(eligible)}, "
              f"surfaced as exactly one candidate: {len(exactly_one)} "
              f"({'met' if len(exactly_one) == len(eligible) else 'NOT met'})")
        print(f"candidates: {len(found)}; known people's faces in them: {known_in_cand} "
              f"({'met' if known_in_cand == 0 else 'NOT met'}); unlabelled faces off a "
              f"photo's centre in them: {bystanders}")
        p50_off, p50_on = statistics.median(off), statistics.median(on)
        print(f"recognition p50: recording off {p50_off:.1f} ms, on {p50_on:.1f} ms, "
              f"difference {p50_on - p50_off:+.2f} ms (goal ≤ 5 ms: "
              f"{'met' if p50_on - p50_off <= 5 else 'NOT met'}); p90 off "
              f"{np.percentile(off, 90):.1f}, on {np.percentile(on, 90):.1f} ms")
        if clip_off:
            # few clips, each ~6x a photo: the median of each clip's own on−off difference
            # (pairs) says more than the difference of two medians over different clips;
            # on a shared machine it still swings by ±10 ms, so the recording step's own
            # time (record_tracks, on the request path) is printed beside it
            c_off, c_on = statistics.median(clip_off), statistics.median(clip_on)
            paired = statistics.median(b - a for a, b in zip(clip_off, clip_on, strict=True))
            print(f"clip recognition p50 ({len(clip_off)} clips, {CLIP_FPS:g} frames/s "
                  f"sampled): recording off {c_off:.1f} ms, on "
                  f"{c_on:.1f} ms; per clip, on − off p50 {paired:+.2f} ms (goal ≤ 5 ms: "
                  f"{'met' if paired <= 5 else 'NOT met'}); the recording step itself "
                  f"(record_tracks) p50 {statistics.median(record_ms):.2f} ms")
        print(f"writer: {stats['written']} written, {stats['dropped']} dropped, "
              f"{stats['failed']} failed; {drain:.2f} s left to drain after the stream")
        t = time.perf_counter()
        groups = cands.recluster(settings, COLLECTION)
        again = cands.candidates(settings, COLLECTION)
        print(f"recluster from scratch (average_linkage): {groups} clusters, {len(again)} "
              f"candidates, {time.perf_counter() - t:.2f} s")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
