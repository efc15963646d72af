"""A queue of 100,000 people, and one polite request budget per host shared by 4 workers.

    FACEATLAS_TESTDATA=../shared/testdata python benchmarks/bench_queue.py [--people 100000]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--broker redis://127.0.0.1:6379/14] [--workers 4] [--seconds 6] [--skip-budget]

Part 1, the queue (a fresh PostgreSQL database): ``--people`` people in one collection, then
``enqueue_people`` timed whole (job rows + one broker message each) beside the old way of
finding open jobs (a query per person, timed on a sample and scaled), claim latency
(``claim_job`` on random jobs, p50/p95), ``collection_status``, ``jobs_progress`` of every
job, ``pending_people``.

Part 2, the budget: three simweb "hosts" (a Wikidata, a Commons, an image search, each on its
own loopback port) and ``--workers`` processes that ask them as fast as the polite clients let
them, once with every process pacing itself (no broker: each worker keeps its own budget, as
before) and once sharing the budget through Redis. Halfway through the shared round one worker
is told ``Retry-After: 1`` by the search host. Printed per host: the most requests that
arrived in any 1-second window beside the budget, and the quiet after the Retry-After.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_scale import drop_database, fresh_database, wait_ready  # noqa: E402,F401


# -- part 1: the queue
def make_people(settings: object, n: int) -> list[int]:
    """n people in one collection, inserted in bulk (the queue is measured, not the import)."""
    from sqlalchemy import insert, select

    from faceatlas.store.db import session_scope
    from faceatlas.store.models import Person
    from faceatlas.store.people import get_or_create_collection

    with session_scope(settings) as s:  # type: ignore[arg-type]
        coll = get_or_create_collection(s, "World")
        rows = [{"collection_id": coll.id, "key": f"person {i}", "name": f"Person {i}",
                 "ascii_name": f"Person {i}", "folder": f"Person_{i}", "occupations": ["Actor"],
                 "state": "queued", "attempts": 0} for i in range(n)]
        for i in range(0, n, 10_000):
            s.execute(insert(Person), rows[i:i + 10_000])
        return list(s.scalars(select(Person.id).order_by(Person.id)))


def old_open_jobs_seconds(settings: object, ids: list[int]) -> float:
    """The lookup as it was: one SELECT per person (existing jobs, so nothing is written)."""
    from sqlalchemy import select

    from faceatlas.domain.states import JobKind, JobState
    from faceatlas.store.db import session_scope
    from faceatlas.store.models import Job

    t0 = time.perf_counter()
    with session_scope(settings) as s:  # type: ignore[arg-type]
        for pid in ids:
            s.scalar(select(Job).where(Job.kind == JobKind.COLLECT, Job.person_id == pid,
                                       Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
                     .order_by(Job.id.desc()).limit(1))
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def queue_part(args: argparse.Namespace) -> None:
    from faceatlas.jobs.collect import pending_people
    from faceatlas.jobs.worker import claim_job, collection_status, enqueue_people, jobs_progress
    from faceatlas.jobs.worker.enqueue import open_jobs
    from faceatlas.settings import Settings
    from faceatlas.store import db

    tmp = Path(tempfile.mkdtemp(prefix="bench_queue_"))
    url, dbname = fresh_database(args.database, tmp)
    queue = f"faceatlas-bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(home=tmp, database_url=url, broker_url=args.broker, queue=queue)
    try:
        db.prepare_database(settings)
        t0 = time.perf_counter()
        ids = make_people(settings, args.people)
        print(f"queue: {args.people} people in PostgreSQL ({time.perf_counter() - t0:.1f} s to "
              f"insert), broker {args.broker}")
        t0 = time.perf_counter()
        jobs = enqueue_people(settings, ids)
        enqueue_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = open_jobs(settings, ids)  # every job exists now: the lookup alone
        lookup_s = time.perf_counter() - t0
        assert again == jobs
        sample = random.Random(1).sample(ids, min(len(ids), 2000))
        old_s = old_open_jobs_seconds(settings, sample) * len(ids) / len(sample)
        print(f"  enqueue {len(jobs)} people (rows + messages): {enqueue_s:7.2f} s "
              f"(goal <= 60 s)")
        print(f"  find open jobs of {len(ids)} people: now {lookup_s:6.2f} s | one query per "
              f"person (as before, {len(sample)} timed, scaled) {old_s:6.2f} s | "
              f"{old_s / max(lookup_s, 1e-9):.0f}x")
        picks = random.Random(2).sample(list(jobs.items()), min(len(jobs), args.claims))
        times = []
        for pid, jid in picks:
            t0 = time.perf_counter()
            claim_job(settings, jid, pid, lease_seconds=60, max_attempts=5)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"  claim latency at {len(jobs)} jobs: p50 {statistics.median(times):.2f} ms, "
              f"p95 {pct(times, 0.95):.2f} ms ({len(times)} claims)")
        for label, fn in (
            ("collection_status", lambda: collection_status(settings)),
            ("jobs_progress (all jobs)", lambda: jobs_progress(settings, jobs, seen=jobs)),
            ("pending_people (all)", lambda: pending_people(settings, "World")),
            ("pending_people (limit 10)", lambda: pending_people(settings, "World", limit=10)),
        ):
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            print(f"  {label:26s} {min(runs) * 1000:9.1f} ms (best of 3)")
    finally:
        db.reset_caches()
        drop_database(args.database, dbname)
        forget(args.broker, queue)


def forget(broker: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    client.close()


# -- part 2: the budget
HOSTS = ("wikidata", "commons", "search")


def worker(env: dict[str, str], urls: dict[str, str], until: float, stop_after_429: bool,
           out: mp.Queue) -> None:
    """One worker process: the polite clients, as fast as their budgets let them."""
    os.environ.update(env)
    import threading

    from faceatlas.settings import Settings
    from faceatlas.sources.rapidapi import RapidAPIImageSearch
    from faceatlas.web.wikimedia import WikimediaClient

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    sent = {h: 0 for h in HOSTS}

    asks = {"wikidata": {"action": "wbgetentities", "ids": "Q403"},
            "commons": {"action": "query", "titles": "File:Example.jpg"}}

    def wiki(host: str) -> None:
        with WikimediaClient(settings, cache=False) as client:
            while time.monotonic() < until:
                client.api(urls[host] + "/w/api.php", asks[host])
                sent[host] += 1

    def search() -> None:
        with RapidAPIImageSearch.from_settings(settings, max_retries=5) as client:
            while time.monotonic() < until:
                client.search("Novak Djokovic Actor", 5)
                sent["search"] += 1

    threads = [threading.Thread(target=wiki, args=(h,)) for h in ("wikidata", "commons")]
    threads.append(threading.Thread(target=search))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sent)


def budget_round(shared: bool, args: argparse.Namespace, webs: dict, budgets: dict) -> None:
    from faceatlas.devtools.simweb import max_in_window

    for web in webs.values():
        web.reset_stats()
    env = {"FACEATLAS_ALLOW_PRIVATE_NETWORKS": "1", "RAPIDAPI_KEY": "bench",
           "FACEATLAS_IMAGE_SEARCH_URL": webs["search"].url + "/search",
           "FACEATLAS_HOST_BUDGETS": "{" + ", ".join(
               f'"{webs[h].netloc}": {budgets[h]}' for h in HOSTS) + "}",
           "FACEATLAS_WIKIMEDIA_RETRIES": "6", "FACEATLAS_WIKIMEDIA_CONTACT": "bench@example.org",
           "FACEATLAS_HOME": tempfile.mkdtemp(prefix="bench_budget_")}
    if shared:
        env["FACEATLAS_BROKER_URL"] = args.broker
        import redis

        from faceatlas.web.budget import KEY_PREFIX
        client = redis.Redis.from_url(args.broker)
        client.delete(*[KEY_PREFIX + webs[h].netloc for h in HOSTS])
        client.close()
    urls = {"wikidata": webs["wikidata"].url + "/wikidata", "commons": webs["commons"].url
            + "/commons", "search": webs["search"].url}
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = time.monotonic() + 2.0  # the processes start and import meanwhile
    until = start + args.seconds
    procs = [ctx.Process(target=worker, args=(env, urls, until, False, out))
             for _ in range(args.workers)]
    for p in procs:
        p.start()
    told_at = None
    if shared:  # one worker is told to wait by the search host, halfway through
        time.sleep(max(0.0, start + args.seconds / 2 - time.monotonic()))
        webs["search"].retry_after_next = 1.0
        while webs["search"].told_at is None and time.monotonic() < until:
            time.sleep(0.01)
        told_at = webs["search"].told_at
    results = [out.get(timeout=args.seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    label = "shared through Redis" if shared else "each worker its own budget (no broker)"
    print(f"budget: {args.workers} worker processes, {args.seconds:g} s, {label}")
    for h in HOSTS:
        times = [t for t, _ in webs[h].arrivals if t >= start]
        most = max_in_window(times, 1.0)
        within = [t for t in times if t < until]  # slots taken before the end, sent after
        span = until - min(within) if within else 1.0
        verdict = "ok" if most <= budgets[h] else "OVER"
        print(f"  {h:9s} budget {budgets[h]:4g}/s: max in any 1 s window {most:3d} "
              f"({len(within) / span:5.1f}/s on average) {verdict}")
    if told_at is not None:
        after = [t for t, _ in webs["search"].arrivals if t > told_at]
        quiet = (min(after) - told_at) if after else float("nan")
        print(f"  search told one worker Retry-After: 1 -> next request from any worker "
              f"{quiet:.2f} s later")
    del results


def budget_part(args: argparse.Namespace) -> None:
    from faceatlas.devtools.simweb import SimWeb
    from faceatlas.devtools.simwiki import replica

    photos = Path(os.environ.get("FACEATLAS_TESTDATA", ROOT.parent / "shared" / "testdata"))
    photos = photos / "faces"
    people = replica(photos)
    budgets = {"wikidata": args.rate, "commons": args.rate, "search": max(1, args.rate // 2)}
    webs = {h: SimWeb(people, photos).start() for h in HOSTS}
    try:
        budget_round(False, args, webs, budgets)
        budget_round(True, args, webs, budgets)
    finally:
        for web in webs.values():
            web.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--database", default=os.environ.get(
        "FACEATLAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=int, default=5, help="requests/s per Wikimedia host")
    parser.add_argument("--skip-budget", action="store_true")
    parser.add_argument("--skip-queue", action="store_true")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores")
    if not args.skip_queue:
        queue_part(args)
    if not args.skip_budget:
        budget_part(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
