"""Load benchmark: concurrent recognition, with normal photos and with 16-bit "bombs".

    .venv/bin/python benchmarks/bench_load.py [--clients 16] [--requests 64] [--people 6]
                                              [--engines N] [--bomb-share 0.5]

Builds a tiny promoted gallery from the shared test photos (``people/``, the first
``--people`` identities, ``min_faces_to_promote=1``), starts ``faceatlas serve`` in a
subprocess on a loopback port and sends ``POST /api/recognize`` from ``--clients`` threads:

1. normal: ~1 MP JPEGs of known faces;
2. bomb mix: a ``--bomb-share`` of the requests are a 7000×7000 16-bit greyscale PNG (a few
   hundred kB: black but for one face) — 49 MP each, under the 50 MP limit.

For each phase it prints p50/p95 latency of the answered requests, the count of answers by
status, whether the answers named the right person, and the server's peak RSS (VmHWM from
/proc/<pid>/status) against its RSS after start-up. Goal: with 16 clients sending the bomb
mix the server stays under 1.5 GB and answers no 5xx but 503 (busy, with Retry-After).
For a before figure run the script with another source tree first on ``PYTHONPATH`` (the
gallery and the server both use it; keep clients low there). CI: ``--clients 2 --requests 6``.

3. hostile storm (issue 22; ``--hostile``, or ``--hostile-only`` to skip 1 and 2): zero-byte,
   random and garbage "mp4", an MKV whose timestamps jump 10¹¹ s past its declared 2 s, a
   10000×10000 MJPEG clip, 8 concurrent 7000×7000 CMYK progressive JPEGs, a sheet whose
   references name ``/etc/passwd`` and ``../../etc/hosts`` (``faceatlas names import``), and
   300 wrong bearer tokens. Prints each answer with its time, the server's RSS before, at its
   peak (VmHWM reset first) and after, and the goal: clear 4xx in seconds, peak ≤ 800 MB,
   after ≤ 1.3× before, 429 after the failure limit.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from bench_recognize import free_port, wait_healthy

TOKEN = "bench-load-token-0123456789"
GOAL_RSS_MB = 1500.0
SIDE = 7000


def build_gallery(home: Path, faces: Path, people: int) -> list[tuple[str, Path]]:
    """Promote every other photo of the first ``people`` identities; the rest are queries."""
    from faceatlas.gallery.promote import promote
    from faceatlas.jobs.importer import import_folder
    from faceatlas.settings import Settings

    incoming = home.parent / "incoming"
    queries: list[tuple[str, Path]] = []
    folders = [f for f in sorted((faces / "people").iterdir())
               if len([p for p in f.iterdir() if p.is_file()]) >= 2][:people]
    for folder in folders:
        photos = sorted(p for p in folder.iterdir() if p.is_file())
        for i, photo in enumerate(photos):
            if i % 2 == 0:
                (incoming / folder.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(photo, incoming / folder.name / photo.name)
            else:
                queries.append((folder.name.replace("_", " "), photo))
    settings = Settings(home=home, min_faces_to_promote=1, default_collection="bench")
    list(import_folder(incoming, "bench", settings))
    promote(settings, collection="bench")
    return queries


def jpeg_1mp(src: Path) -> bytes:
    from PIL import Image

    img = Image.open(src).convert("RGB")
    scale = (1_000_000 / (img.width * img.height)) ** 0.5
    img = img.resize((round(img.width * scale), round(img.height * scale)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bomb_png(src: Path) -> bytes:
    """7000×7000 16-bit greyscale, black but for the face photo at 1400 px."""
    from PIL import Image

    face = Image.open(src).convert("L")
    face = face.resize((1400, round(1400 * face.height / face.width)))
    canvas = np.zeros((SIDE, SIDE), dtype=np.uint16)
    canvas[2500:2500 + face.height, 3000:3000 + face.width] = (
        np.asarray(face, dtype=np.uint16) * 257)
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "PNG")
    return buf.getvalue()


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def start_server(home: Path, port: int, engines: int | None,
                 log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
    env.update(FACEATLAS_HOME=str(home), FACEATLAS_API_TOKENS=TOKEN,
               FACEATLAS_DEFAULT_COLLECTION="bench", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "faceatlas", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if engines:
        cmd += ["--engines", str(engines)]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return wait_healthy(proc, port, 180, log)


def run_phase(name: str, url: str, pid: int, work: list[tuple[str, bytes, str]],
              clients: int) -> dict[str, object]:
    """Send ``work`` (expected name, body, content type) from ``clients`` threads."""
    lock = threading.Lock()
    todo = list(enumerate(work))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    wrong = 0
    retry_after: set[str] = set()
    peak = [0.0]
    done = threading.Event()

    def poll_rss() -> None:  # VmHWM is the kernel's own peak; polled to see the live curve
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid)[1])
            time.sleep(0.1)

    def client() -> None:
        nonlocal wrong
        with httpx.Client(base_url=url, timeout=300,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    _, (who, body, ctype) = todo.pop()
                t = time.perf_counter()
                try:
                    r = http.post("/api/recognize", files={"image": ("q", body, ctype)})
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code, r = type(exc).__name__, None
                elapsed = time.perf_counter() - t
                with lock:
                    statuses[code] += 1
                    if r is not None and r.status_code == 200:
                        latencies.append(elapsed)
                        if r.json().get("person") != who:
                            wrong += 1
                    if r is not None and r.status_code == 503:
                        retry_after.add(r.headers.get("retry-after", "missing"))

    watcher = threading.Thread(target=poll_rss, daemon=True)
    watcher.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done.set()
    watcher.join()
    _, hwm = rss_mb(pid)
    ms = np.asarray(latencies) * 1e3
    p50 = float(np.percentile(ms, 50)) if len(ms) else float("nan")
    p95 = float(np.percentile(ms, 95)) if len(ms) else float("nan")
    five = sum(n for code, n in statuses.items() if code.startswith("5") and code != "503")
    print(f"{name:>9}: {len(work)} requests, {clients} clients, {wall:.1f} s | "
          f"p50 {p50:.0f} ms, p95 {p95:.0f} ms (answered) | statuses "
          f"{dict(sorted(statuses.items()))} | wrong person {wrong} | "
          f"Retry-After {sorted(retry_after) or '-'} | peak RSS {max(hwm, peak[0]):.0f} MB")
    return {"peak": max(hwm, peak[0]), "other_5xx": five, "errors": sum(
        n for code, n in statuses.items() if not code.isdigit())}


HOSTILE_PEAK_MB, HOSTILE_AFTER_RATIO = 800.0, 1.3


def hostile_storm(url: str, proc: subprocess.Popen[bytes], home: Path, tmp: Path) -> bool:
    """Phase 3; True when every goal is met."""
    from faceatlas.devtools.hostile import cmyk_progressive_jpeg, huge_mjpeg, timestamp_jump_mkv

    pid = proc.pid
    clips = {
        "zero.mp4": b"",
        "random.mp4": os.urandom(1_000_000),
        "garbage.mp4": b"\x00\x00\x00\x18ftypisom" + os.urandom(500_000),
        "jump.mkv": timestamp_jump_mkv(tmp / "jump.mkv", jump=1e11).read_bytes(),
        "huge.avi": huge_mjpeg(tmp / "huge.avi", side=10_000).read_bytes(),
    }
    cmyk = cmyk_progressive_jpeg()
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from here on
    time.sleep(1.0)
    before, _ = rss_mb(pid)
    ok = True
    rows: list[tuple[str, int | str, float]] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, timeout=600, headers=auth) as http:
        for name, data in clips.items():
            t = time.perf_counter()
            r = http.post("/api/v1/recognize/video", files={"video": (name, data, "video/mp4")})
            rows.append((f"{name} ({len(data) / 1e3:.0f} kB)", r.status_code,
                         time.perf_counter() - t))
        answers: list[tuple[int, float]] = []

        def one() -> None:
            t = time.perf_counter()
            r = http.post("/api/recognize", files={"image": ("cmyk.jpg", cmyk, "image/jpeg")})
            answers.append((r.status_code, time.perf_counter() - t))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for code, took in answers:
            rows.append((f"CMYK progressive 7000² ({len(cmyk) / 1e3:.0f} kB)", code, took))
    sheet = tmp / "sheets" / "people.csv"
    sheet.parent.mkdir(exist_ok=True)
    sheet.write_text("name,last_name,references\nAna,Hostile,/etc/passwd|../../../../etc/hosts\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
    env.update(FACEATLAS_HOME=str(home))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "faceatlas", "names", "import", str(sheet),
                          "--collection", "bench"], env=env, capture_output=True, text=True)
    refused = out.stdout.count("outside the references folder")
    rows.append(("sheet references /etc/passwd, ../etc/hosts", f"{refused} of 2 refused",
                 time.perf_counter() - t))
    ok &= refused == 2
    # 300 wrong tokens from an address of their own (the others keep working)
    codes: list[int] = []
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"),
                      base_url=url, timeout=30) as guesser:
        t = time.perf_counter()
        for i in range(300):
            codes.append(guesser.get("/api/v1/collections", headers={
                "Authorization": f"Bearer guess-{i:04d}-x7Qz9kLmP2"}).status_code)
    first = codes.index(429) if 429 in codes else None
    rows.append((f"300 wrong tokens: 429 from attempt {None if first is None else first + 1}",
                 dict(Counter(codes)).__repr__(), time.perf_counter() - t))
    ok &= first is not None and set(codes[first:]) == {429}
    time.sleep(2.0)  # let the video worker finish what it accepted
    after, peak = rss_mb(pid)
    for what, code, took in rows:
        print(f"  hostile: {what:<48} → {code} in {took:.2f} s")
        if isinstance(code, int):
            ok &= 400 <= code < 500 and took < 30
    ratio = after / before if before else float("nan")
    met = peak <= HOSTILE_PEAK_MB and ratio <= HOSTILE_AFTER_RATIO
    ok &= met
    print(f"  hostile: server RSS before {before:.0f} MB, peak {peak:.0f} MB, after "
          f"{after:.0f} MB ({ratio:.2f}× before)")
    print(f"goal (hostile: clear 4xx in seconds, peak ≤ {HOSTILE_PEAK_MB:.0f} MB, after ≤ "
          f"{HOSTILE_AFTER_RATIO}× before, 429 after the limit): {'met' if ok else 'NOT met'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=64, help="per phase")
    parser.add_argument("--people", type=int, default=6, help="gallery identities")
    parser.add_argument("--engines", type=int, default=None, help="server engines (cores)")
    parser.add_argument("--bomb-share", type=float, default=0.5)
    parser.add_argument("--skip-normal", action="store_true")
    parser.add_argument("--hostile", action="store_true", help="add phase 3 (issue 22)")
    parser.add_argument("--hostile-only", action="store_true", help="phase 3 alone")
    args = parser.parse_args()

    from faceatlas.devtools.testdata import faces_dir

    faces = faces_dir()
    with tempfile.TemporaryDirectory(prefix="faceatlas-bench-load-") as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        queries = build_gallery(home, faces, args.people)
        print(f"gallery: {args.people} people, {len(queries)} query photos "
              f"({time.perf_counter() - t:.0f} s)")
        port = free_port()
        proc = start_server(home, port, args.engines, Path(tmp) / "server.log")
        url = f"http://127.0.0.1:{port}"
        try:
            # warm up (models, index) and keep the photos the server names right when alone,
            # so "wrong person" under load means load broke something
            normal, sources = [], []
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=120) as http:
                for who, p in queries:
                    body = jpeg_1mp(p)
                    r = http.post("/api/recognize", files={"image": ("q", body, "image/jpeg")})
                    if r.status_code == 200 and r.json().get("person") == who:
                        normal.append((who, body, "image/jpeg"))
                        sources.append(p)
            if not normal:
                raise SystemExit("no query photo is recognised: check the test data")
            bomb_who, bomb = normal[0][0], bomb_png(sources[0])
            print(f"queries named right alone: {len(normal)} of {len(queries)}; bomb: "
                  f"{SIDE}×{SIDE} 16-bit PNG, {len(bomb) / 1e3:.0f} kB "
                  f"({SIDE * SIDE / 1e6:.0f} MP), of {bomb_who}")
            base, _ = rss_mb(proc.pid)
            print(f"server RSS after start-up and warm-up: {base:.0f} MB")
            if args.hostile_only:
                hostile_ok = hostile_storm(url, proc, home, Path(tmp))
                raise SystemExit(0 if hostile_ok else 1)
            results = {}
            if not args.skip_normal:
                work = [normal[i % len(normal)] for i in range(args.requests)]
                results["normal"] = run_phase("normal", url, proc.pid, work, args.clients)
            every = max(1, round(1 / args.bomb_share)) if args.bomb_share > 0 else 0
            mix = [(bomb_who, bomb, "image/png") if every and i % every == 0
                   else normal[i % len(normal)] for i in range(args.requests)]
            results["bomb mix"] = run_phase("bomb mix", url, proc.pid, mix, args.clients)
            if args.hostile:
                hostile_storm(url, proc, home, Path(tmp))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        peak = results["bomb mix"]["peak"]
        bad = results["bomb mix"]["other_5xx"]
        verdict = "met" if peak < GOAL_RSS_MB and not bad else "NOT met"
        print(f"goal (bomb mix: peak RSS < {GOAL_RSS_MB:.0f} MB, no 5xx but 503): {verdict} "
              f"(peak {peak:.0f} MB, other 5xx {bad})")


if __name__ == "__main__":
    main()
