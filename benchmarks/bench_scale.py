"""People per minute with 1 worker process vs 2 (Celery on Redis, PostgreSQL or SQLite).

    FACEATLAS_TESTDATA=../shared/testdata python benchmarks/bench_scale.py [--people 12]
        [--latency-ms 100] [--database postgresql+psycopg://postgres@127.0.0.1/postgres]
        [--broker redis://127.0.0.1:6379/14] [--workers 1,2]

Each round gets a fresh database, home and queue, starts ``faceatlas worker --concurrency 1``
processes, waits until they are ready, then times enqueue → every job finished. simweb (in its
own process, so it does not share our GIL) serves each person's test photos, a stranger and a
broken URL, with ``--latency-ms`` added to every image. ``--database sqlite`` uses the
embedded file instead of PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_download import photos_dir  # noqa: E402

NAMES = ["Milan Petrović", "Jovana Jovanović", "Nikola Nikolić", "Marija Marković",
         "Stefan Stojanović", "Ivana Ilić", "Marko Đorđević", "Ana Pavlović", "Luka Lukić",
         "Mina Milošević", "Petar Popović", "Sara Savić"]


def people_file(photos: Path, n: int) -> list[dict]:
    """n people cycling over person_01..12; a person_13 stranger and a 404 among the hits."""
    stranger = sorted(p.name for p in (photos / "people" / "person_13").iterdir())
    out = []
    for i in range(n):
        who = f"person_{i % 12 + 1:02d}"
        own = [f"people/{who}/{p.name}" for p in sorted((photos / "people" / who).iterdir())]
        name = NAMES[i % 12] + ("" if i < 12 else f" {chr(ord('A') + i // 12)}")
        out.append({"name": name, "country": "Serbia", "occupations": ["Actor"], "real": True,
                    "images": [*own, f"people/person_13/{stranger[i % 2]}", "fault:404"]})
    return out


def start_simweb(people: Path, photos: Path, latency_ms: float) -> tuple[subprocess.Popen, str]:
    """simweb in its own process; its stderr (resets by stopping workers) is dropped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceatlas.devtools.simweb", "--people", str(people),
         "--photos", str(photos), "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    line = proc.stdout.readline() if proc.stdout else ""
    if " at " not in line:
        proc.kill()
        sys.exit(f"simweb did not start: {line!r}")
    return proc, line.split(" at ")[1].split()[0]


def fresh_database(admin: str, home: Path) -> tuple[str, str | None]:
    """(URL, name to drop) — a new PostgreSQL database, or the home's SQLite file."""
    if admin == "sqlite":
        return f"sqlite:///{home / 'faceatlas.db'}", None
    from sqlalchemy import create_engine, make_url, text

    name = f"faceatlas_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False), name


def drop_database(admin: str, name: str | None) -> None:
    if name is None:
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def wait_ready(logs: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.exists() and " ready." in p.read_text(errors="replace") for p in logs):
            return
        time.sleep(0.1)
    sys.exit("workers did not become ready:\n" + "\n".join(p.read_text()[-2000:] for p in logs))


def round_(n_workers: int, args: argparse.Namespace, web_url: str, people: list[dict]) -> float:
    """Seconds from enqueue until every job is finished, with ``n_workers`` processes."""
    from faceatlas.settings import Settings
    from faceatlas.store import db
    from faceatlas.store.db import session_scope
    from faceatlas.store.people import get_or_create_collection, upsert_person

    tmp = Path(tempfile.mkdtemp(prefix=f"bench_scale_{n_workers}_"))
    home = tmp / "home"
    url, dbname = fresh_database(args.database, home)
    queue = f"faceatlas-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FACEATLAS_HOME": str(home), "FACEATLAS_DATABASE_URL": url,
           "FACEATLAS_BROKER_URL": args.broker, "FACEATLAS_QUEUE": queue,
           "RAPIDAPI_KEY": "bench", "FACEATLAS_IMAGE_SEARCH_URL": f"{web_url}/search",
           "FACEATLAS_ALLOW_PRIVATE_NETWORKS": "1", "PYTHONPATH": str(ROOT / "src"),
           # names are looked up on Wikidata at collection: the replica, never the real one
           "FACEATLAS_WIKIDATA_API_URL": f"{web_url}/wikidata/w/api.php",
           "FACEATLAS_WIKIDATA_SPARQL_URL": f"{web_url}/wikidata/sparql",
           "FACEATLAS_COMMONS_API_URL": f"{web_url}/commons/w/api.php",
           "FACEATLAS_WIKIMEDIA_MIN_INTERVAL": "0"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("FACEATLAS_")})
    settings = Settings(home=home, database_url=url, broker_url=args.broker)
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, "Serbia")
        ids = [upsert_person(s, coll, p["name"], occupations=["Actor"])[0].id for p in people]
    db.reset_caches()
    workers, logs = [], []
    try:
        for i in range(n_workers):
            logs.append(tmp / f"worker{i}.log")
            with open(logs[-1], "wb") as log:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "faceatlas.cli", "worker", "--concurrency", "1",
                     "--loglevel", "INFO"],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_ready(logs)
        from faceatlas.jobs.worker import enqueue_people, jobs_progress

        t0 = time.perf_counter()
        jobs = enqueue_people(settings, ids)
        while not jobs_progress(settings, jobs, seen=jobs.keys()).complete:
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        results = jobs_progress(settings, jobs).new
        curated = sum(r.state == "curated" for r in results)
        if curated != len(people):
            sys.exit(f"only {curated} of {len(people)} people curated: "
                     f"{[(r.name, r.error) for r in results if r.error]}")
        return elapsed
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(30)
        db.reset_caches()
        drop_database(args.database, dbname)
        forget_queue(args.broker, queue)
        shutil.rmtree(tmp, ignore_errors=True)


def forget_queue(broker: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=12)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added per image")
    parser.add_argument("--database", default=os.environ.get(
        "FACEATLAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL admin URL (a database is created per round), or 'sqlite'")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workers", default="1,2", help="worker process counts to compare")
    args = parser.parse_args(argv)

    photos = photos_dir()
    people = people_file(photos, args.people)
    with tempfile.TemporaryDirectory() as tmp:
        people_json = Path(tmp) / "people.json"
        people_json.write_text(json.dumps(people), encoding="utf-8")
        web, web_url = start_simweb(people_json, photos, args.latency_ms)
        try:
            counts = [int(n) for n in args.workers.split(",")]
            rates = {}
            print(f"{args.people} people, {args.latency_ms:g} ms per image, "
                  f"database {'sqlite' if args.database == 'sqlite' else 'postgresql'}, "
                  f"{os.cpu_count()} cores")
            for n in counts:
                seconds = round_(n, args, web_url, people)
                rates[n] = args.people / seconds * 60
                print(f"  {n} worker process(es): {seconds:6.1f} s, "
                      f"{rates[n]:6.1f} people/min", flush=True)
        finally:
            web.terminate()
            web.wait()
    if len(counts) >= 2:
        print(f"speed-up {counts[-1]} vs {counts[0]}: {rates[counts[-1]] / rates[counts[0]]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
