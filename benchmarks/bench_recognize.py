"""Benchmark recognition: end to end over HTTP, and index search alone.

    .venv/bin/python benchmarks/bench_recognize.py [--requests 60] [--sizes 10k,100k,1M]
        [--engine dlib --engine sface] [--serve-workers 1,2]

(a) For each ``--engine`` (default: dlib and sface) and each ``--serve-workers`` count: builds
    a gallery from the shared test photos with it (``people/``, ``min_faces_to_promote=1``),
    starts the API in a subprocess (uvicorn on loopback, or ``faceatlas serve --workers N``;
    ``OPENBLAS_NUM_THREADS=1``, ``FACEATLAS_ENGINE``) and measures ``POST /api/recognize``
    with a 1024 px photo of one known face: latency p50/p95 and the server's CPU per request
    (utime+stime from /proc, every server process: the primary figure on a shared machine)
    one request at a time, then requests/s, latency and CPU per request (server's and this
    client's own, both on the same cores) with 8 concurrent clients. A side-by-side table
    ends the run.
(b) Search alone (``ExactIndex.search`` + ``best_person``, what a request does after
    embedding) over 10k / 100k / 1M synthetic gallery vectors, 40 faces per person.

Goals (issue 23, sface): p50 ≤ 40 ms; ≥ 50 req/s with 8 clients on 2 cores (≤ 40 ms of server
CPU per request), no 5xx; search ≤ 5 ms at 100k.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

TOKEN = "bench-token-0123456789"
GOAL_SEARCH_MS, GOAL_P50_MS, GOAL_RPS = 5.0, 40.0, 50.0  # issue 23 (sface, 8 clients)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


# --------------------------------------------------------------------------- (a) end to end


def build_gallery(home: Path, faces: Path, engine: str = "dlib") -> int:
    from faceatlas.gallery.promote import promote
    from faceatlas.jobs.importer import import_folder
    from faceatlas.settings import Settings

    incoming = home.parent / "incoming"
    for folder in sorted((faces / "people").iterdir()):
        photos = sorted(folder.iterdir())
        if len(photos) >= 2:
            shutil.copytree(folder, incoming / folder.name)
    settings = Settings(home=home, min_faces_to_promote=1, default_collection="bench",
                        engine=engine)
    list(import_folder(incoming, "bench", settings))
    results = promote(settings, collection="bench")
    return sum(r.gallery_files for r in results)


def query_photo(src: Path, side: int = 1024) -> bytes:
    """The photo with its long side ``side`` px, as a JPEG."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    scale = side / max(img.width, img.height)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    print(f"query photo: {src.name} at {img.width}×{img.height} "
          f"({img.width * img.height / 1e6:.2f} MP, {len(buf.getvalue()) / 1e3:.0f} kB)")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    home: Path, port: int, engines: int | None, upsample: int | None, engine: str = "dlib",
    workers: int = 1,
) -> subprocess.Popen[bytes]:
    name, _, runtime = engine.partition("@")  # sface@opencv: SFace on OpenCV's DNN (before)
    env = {**os.environ, "FACEATLAS_HOME": str(home), "FACEATLAS_API_TOKENS": TOKEN,
           "FACEATLAS_DEFAULT_COLLECTION": "bench", "OPENBLAS_NUM_THREADS": "1",
           "FACEATLAS_ENGINE": name}
    if runtime:
        env["FACEATLAS_SFACE_RUNTIME"] = runtime
    if upsample is not None:  # detector upsampling: 0 is ~3x faster, misses faces < ~80 px
        env["FACEATLAS_UPSAMPLE"] = str(upsample)
    if engines:
        env["FACEATLAS_WORKERS"] = str(engines)  # the engine pool is sized by worker_count
    if workers > 1:  # `faceatlas serve --workers N`: N processes behind one socket
        cmd = [sys.executable, "-m", "faceatlas", "serve", "--port", str(port),
               "--workers", str(workers)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "faceatlas.api.app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
               "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    return wait_healthy(proc, port, 120)


def wait_healthy(proc: subprocess.Popen[bytes], port: int, seconds: float,
                 log: Path | None = None) -> subprocess.Popen[bytes]:
    """``proc`` once its /healthz answers 200; RuntimeError (with the log's tail) if it exits
    or does not answer within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"server exited:\n{tail}")
    proc.kill()
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (Linux /proc; all threads; a
    multi-worker server's workers are its children)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def end_to_end(photo: bytes, url: str, requests: int, clients: int, pid: int | None = None
               ) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    files = {"image": ("q.jpg", photo, "image/jpeg")}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        first = client.post("/api/recognize", files=files).json()
        assert first["status"] == "success", first
        print(f"answer: {first['person']} (confidence {first['confidence']}, "
              f"distance {first['best_match']['distance']})")
        for _ in range(3):
            client.post("/api/recognize", files=files)
        serial = []
        cpu0 = cpu_seconds(pid) if pid else 0.0
        for _ in range(requests):
            t = time.perf_counter()
            r = client.post("/api/recognize", files=files)
            serial.append(time.perf_counter() - t)
            assert r.status_code == 200
        cpu_ms = 1000 * (cpu_seconds(pid) - cpu0) / requests if pid else float("nan")
    print(f"sequential, {requests} requests: p50 {pct(serial, 50):.0f} ms, "
          f"p95 {pct(serial, 95):.0f} ms, server CPU {cpu_ms:.0f} ms/request "
          f"(goal p50 ≤ {GOAL_P50_MS:.0f} ms)")

    latencies: list[float] = []
    errors: list[int] = []  # status codes other than 200 under load (goal: no 5xx)
    lock = threading.Lock()
    per_client = max(1, requests // clients) * 2

    def worker() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            for _ in range(per_client):
                t = time.perf_counter()
                r = c.post("/api/recognize", files=files)
                dt = time.perf_counter() - t
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors.append(r.status_code)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    cpu0, client0 = (cpu_seconds(pid) if pid else 0.0), time.process_time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = max(1, len(latencies) + len(errors))
    loaded_cpu = 1000 * (cpu_seconds(pid) - cpu0) / done if pid else float("nan")
    client_cpu = 1000 * (time.process_time() - client0) / done
    print(f"{clients} concurrent clients, {len(latencies)} requests: "
          f"{len(latencies) / wall:.1f} req/s, p50 {pct(latencies, 50):.0f} ms, "
          f"p95 {pct(latencies, 95):.0f} ms (goal ≥ {GOAL_RPS:.0f} req/s), "
          f"other answers: {errors or 'none'}; "
          f"CPU per request: server {loaded_cpu:.0f} ms, this client {client_cpu:.0f} ms")
    return {"p50": pct(serial, 50), "p95": pct(serial, 95), "cpu_ms": cpu_ms,
            "rps": len(latencies) / wall, "p50_loaded": pct(latencies, 50),
            "cpu_loaded": loaded_cpu, "client_cpu": client_cpu,
            "errors": len(errors)}


# --------------------------------------------------------------------------- (b) search only


def search_only(n: int, queries: int, threshold: float = 0.55) -> tuple[float, float]:
    from faceatlas.gallery.index import DIM, ExactIndex, best_person
    from faceatlas.gallery.promote import SEARCH_K

    rng = np.random.default_rng(n)
    index = ExactIndex()
    step = 100_000  # build in slices: keeps peak memory near one gallery
    for start in range(0, n, step):
        m = min(step, n - start)
        vecs = rng.standard_normal((m, DIM), dtype=np.float32) * np.float32(1 / np.sqrt(DIM))
        ids = np.arange(start, start + m, dtype=np.int64)
        index.add(ids, ids // 40, vecs)
    rows = rng.integers(0, n, queries)
    qs = index.vectors[rows] + rng.standard_normal((queries, DIM), dtype=np.float32) * 0.02
    for q in qs[:5]:
        best_person(index.search(q, SEARCH_K)[0], threshold)
    times = []
    for q in qs:
        t = time.perf_counter()
        best_person(index.search(q, SEARCH_K)[0], threshold)
        times.append(time.perf_counter() - t)
    return pct(times, 50), pct(times, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--engines", type=int, default=None,
                        help="face engines in the server (default: one per core)")
    parser.add_argument("--serve-workers", default="1",
                        help="server processes, `faceatlas serve --workers N` (a list: 1,2 "
                        "measures each side by side)")
    parser.add_argument("--upsample", type=int, default=None,
                        help="server's detector upsampling (default: the setting, 1)")
    parser.add_argument("--sizes", default="10k,100k,1M")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--engine", action="append",
                        choices=["dlib", "sface", "ensemble", "sface@opencv"],
                        help="server engine(s) to compare (repeat; default dlib and sface; "
                        "sface@opencv: SFace on OpenCV's DNN, the path before issue 23)")
    parser.add_argument("--side", type=int, default=1024, help="query photo's long side, px")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, numpy {np.__version__}, load1 {os.getloadavg()[0]:.2f}")

    if not args.skip_http:
        from faceatlas.devtools.testdata import faces_dir

        faces = faces_dir()
        photo = query_photo(faces / "people" / "barack_obama" / "obama3.jpg", args.side)
        side: dict[str, dict[str, float]] = {}
        runs = [(e, w) for e in args.engine or ["dlib", "sface"]
                for w in (int(x) for x in args.serve_workers.split(","))]
        for engine, workers in runs:
            label = engine if workers == 1 else f"{engine} ×{workers}"
            print(f"\n== engine {engine}, {workers} server process(es)")
            with tempfile.TemporaryDirectory(prefix="faceatlas-bench-") as tmp:
                home = Path(tmp) / "home"
                t = time.perf_counter()
                n = build_gallery(home, faces, engine.partition("@")[0])
                print(f"gallery: {n} faces, built in {time.perf_counter() - t:.1f} s")
                port = free_port()
                proc = start_server(home, port, args.engines, args.upsample, engine, workers)
                try:
                    side[label] = end_to_end(photo, f"http://127.0.0.1:{port}", args.requests,
                                              args.clients, proc.pid)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
        print(f"\n{'engine':<16}{'p50 ms':>8}{'p95 ms':>8}{'CPU ms/req':>12}"
              f"{f'req/s @{args.clients}':>12}{'p50 @load':>11}{'CPU @load':>11}"
              f"{'client':>8}{'5xx':>6}")
        for engine, r in side.items():
            print(f"{engine:<16}{r['p50']:>8.0f}{r['p95']:>8.0f}{r['cpu_ms']:>12.0f}"
                  f"{r['rps']:>12.1f}{r['p50_loaded']:>11.0f}{r['cpu_loaded']:>11.0f}"
                  f"{r['client_cpu']:>8.0f}{r.get('errors', 0):>6.0f}")
        print(f"(CPU @load: the server's CPU per request under {args.clients} clients, every "
              "process; client: this benchmark's own CPU per request, on the same cores)")
        if "sface" in side and "sface@opencv" in side:
            a, b = side["sface"], side["sface@opencv"]
            print(f"sface vs sface@opencv (same run): CPU/request {b['cpu_ms'] / a['cpu_ms']:.2f}× "
                  f"less, p50 {b['p50'] / a['p50']:.2f}× lower, req/s {a['rps'] / b['rps']:.2f}×")
        print("(wall-clock figures suffer from other load on a shared machine; "
              f"load1 {os.getloadavg()[0]:.2f})\n")

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # only effective before numpy loads
    print(f"search + best_person, k=10, {args.queries} single queries "
          f"(goal ≤ {GOAL_SEARCH_MS:.0f} ms at 100k):")
    for size in args.sizes.split(","):
        n = parse_size(size)
        p50, p95 = search_only(n, args.queries)
        print(f"  {size.strip():>5} faces: p50 {p50:.2f} ms, p95 {p95:.2f} ms  "
              f"(load1 {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
