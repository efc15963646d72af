"""Benchmark the review pages at scale: server time per page on a big collection.

    .venv/bin/python benchmarks/bench_review.py [--people 2000] [--faces 40] [--requests 20]
        [--home DIR] [--small]

Generates a collection of ``--people`` people with ``--faces`` faces each
(``faceatlas.devtools.bigcollection``: 2,000 × 40 = 80,000 faces in SQLite; ``--home`` reuses
a home that already holds it), starts ``faceatlas serve`` in a subprocess on loopback, logs
in, and requests each page ``--requests`` times, one at a time: the collection page (first
page, a search, a state filter, a reason filter, sorts by faces and by flags, a late page),
the page of a person with the most faces, the collections overview and the jobs page.

Figures: the server's own time from the ``Server-Timing: app;dur=…`` header the UI adds to
every answer (median and p95), and the client's wall time on loopback for comparison (a
server without the header — an older checkout — is measured by wall time alone).

Goal (issue 15): every review page ≤ 300 ms server time at 2,000 people and 80,000 faces.
``--small`` (CI): 300 people × 40 faces, 5 requests per page.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

TOKEN = "bench-token-0123456789"
GOAL_MS = 300.0
COLLECTION = "big"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], port: int, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
    proc.kill()
    raise RuntimeError("server did not start")


def login(client: httpx.Client) -> None:
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text[:500]
    done = client.post("/ui/login", data={"token": TOKEN, "nonce": nonce[1], "next": "/ui/"})
    assert done.status_code == 303, done.text[:500]


def ensure_collection(home: Path, people: int, faces: int) -> None:
    if (home / "faceatlas.db").is_file():
        print(f"reusing {home}")
        return
    from faceatlas.devtools.bigcollection import generate
    from faceatlas.settings import Settings
    from faceatlas.store.db import reset_caches

    made = generate(Settings(home=home), people=people, faces=faces, collection=COLLECTION)
    reset_caches()
    print(f"generated {made.people} people, {made.faces} faces, {made.images} photos in "
          f"{made.seconds} s")


def person_with_most_faces(home: Path) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(home / "faceatlas.db") as db:
        row = db.execute("select person_id, count(*) n from faces group by person_id "
                         "order by n desc, person_id limit 1").fetchone()
    return int(row[0]), int(row[1])


def measure(client: httpx.Client, url: str, n: int) -> tuple[list[float], list[float], int]:
    """(server ms, wall ms, bytes) of ``n`` requests after one warm-up."""
    warm = client.get(url)
    assert warm.status_code == 200, (url, warm.status_code, warm.text[:300])
    server, wall = [], []
    for _ in range(n):
        started = time.perf_counter()
        r = client.get(url)
        wall.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (url, r.status_code)
        timing = re.search(r"app;dur=([\d.]+)", r.headers.get("server-timing", ""))
        if timing:
            server.append(float(timing[1]))
    return server, wall, len(warm.content)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--faces", type=int, default=40)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--home", type=Path, default=None,
                        help="reuse (or fill) this FACEATLAS_HOME instead of a temporary one")
    parser.add_argument("--small", action="store_true",
                        help="CI: 300 people × 40 faces, 5 requests per page")
    args = parser.parse_args()
    if args.small:
        args.people, args.requests = 300, 5
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        home = args.home or Path(tmp) / "home"
        ensure_collection(home, args.people, args.faces)
        person, person_faces = person_with_most_faces(home)
        port = free_port()
        log = Path(tmp) / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
        env.update(FACEATLAS_HOME=str(home), FACEATLAS_API_TOKENS=TOKEN,
                   OPENBLAS_NUM_THREADS="1", FACEATLAS_WORKERS="2")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "faceatlas", "serve", "--host", "127.0.0.1", "--port",
                 str(port), "--engines", "1"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(proc, port, 120, log)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                login(client)
                base = f"/ui/collections/{COLLECTION}"
                last = max(1, -(-args.people // 100))
                pages = [
                    ("collection, first page", base),
                    ("collection, search 'ović'", f"{base}?q=ovi%C4%87"),
                    ("collection, search 'djokovic'", f"{base}?q=djokovic"),
                    ("collection, state failed", f"{base}?state=failed"),
                    ("collection, reason other_person", f"{base}?reason=other_person"),
                    ("collection, reason download_failed", f"{base}?reason=download_failed"),
                    ("collection, sort faces", f"{base}?sort=faces"),
                    ("collection, sort flags", f"{base}?sort=flags"),
                    (f"collection, last page ({last})", f"{base}?page={last}"),
                    (f"person page ({person_faces} faces)", f"/ui/people/{person}"),
                    ("collections overview", "/ui/"),
                    ("jobs page", "/ui/jobs"),
                ]
                rows = []
                for label, url in pages:
                    server, wall, size = measure(client, url, args.requests)
                    rows.append((label, server, wall, size))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    with_header = all(server for _, server, _, _ in rows)
    print(f"\nreview pages: {args.people} people × {args.faces} faces, {args.requests} "
          f"requests each (ms; goal ≤ {GOAL_MS:.0f} ms server time)")
    print(f"{'page':40} {'server p50':>10} {'p95':>7} {'wall p50':>9} {'p95':>7} {'kB':>6}  goal")
    worst = 0.0
    for label, server, wall, size in rows:
        figure = server if with_header else wall
        worst = max(worst, statistics.median(figure))
        s50 = f"{statistics.median(server):.0f}" if server else "-"
        s95 = f"{p95(server):.0f}" if server else "-"
        ok = "ok" if statistics.median(figure) <= GOAL_MS else "SLOW"
        print(f"{label:40} {s50:>10} {s95:>7} {statistics.median(wall):9.0f} "
              f"{p95(wall):7.0f} {size / 1e3:6.0f}  {ok}")
    what = "server" if with_header else "wall (no Server-Timing header)"
    print(f"worst median ({what}): {worst:.0f} ms; goal ≤ {GOAL_MS:.0f} ms: "
          f"{'met' if worst <= GOAL_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
