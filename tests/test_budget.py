"""One polite budget per host: shared by every worker through Redis when a broker is set
(threads with clients and Redis connections of their own stand for the worker processes),
with a Retry-After told to one worker waited out by all; without a broker, the pacing of old.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceatlas.devtools.simweb import SimWeb, max_in_window
from faceatlas.settings import Settings
from faceatlas.sources.rapidapi import RapidAPIImageSearch
from faceatlas.web.budget import (
    KEY_PREFIX,
    LocalBudget,
    RedisBudget,
    host_budget,
    host_key,
    host_rate,
    reset_budgets,
)
from faceatlas.web.wikimedia import WikimediaClient
from tests.services import REDIS, redis_client
from tests.test_wikimedia import PEOPLE, wiki_settings


@pytest.fixture()
def web(faces_root: Path) -> Iterator[SimWeb]:
    with SimWeb(PEOPLE, faces_root) as sim:
        yield sim


@pytest.fixture()
def redis_url(web: SimWeb) -> Iterator[str]:
    """The test Redis, with this test's simweb host's schedule cleared before and after."""
    client = redis_client()
    keys = [KEY_PREFIX + web.netloc, KEY_PREFIX + web.netloc + ":pause"]
    client.delete(*keys)
    reset_budgets()
    yield REDIS
    client.delete(*keys)
    client.close()
    reset_budgets()


def _ask(settings: Settings, web: SimWeb, n: int) -> None:
    """One worker: its own client and its own Redis connection."""
    budget = RedisBudget(REDIS, slack=settings.budget_slack)
    try:
        with WikimediaClient(settings, cache=False, budget=budget) as client:
            for _ in range(n):
                client.api(settings.wikidata_api_url, {"action": "wbgetentities", "ids": "Q403"})
    finally:
        budget.close()


def test_two_workers_share_one_budget(web: SimWeb, tmp_path: Path, redis_url: str) -> None:
    settings = wiki_settings(web, tmp_path, broker_url=redis_url,
                             host_budgets={web.netloc: 8.0})
    assert host_rate(settings, settings.wikidata_api_url) == 8.0
    workers = [threading.Thread(target=_ask, args=(settings, web, 8)) for _ in range(2)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    times = [t for t, _ in web.arrivals]
    assert len(times) == 16
    # together never more than the budget in any second; alone each would have sent 8 in 1 s
    assert max_in_window(times, 1.0) <= 8
    assert time.monotonic() - start >= 15 / 8


def test_retry_after_to_one_worker_makes_every_worker_wait(web: SimWeb, tmp_path: Path,
                                                          redis_url: str) -> None:
    settings = wiki_settings(web, tmp_path, broker_url=redis_url, wikimedia_retries=2)
    web.wiki.faults["wikidata"] += ["429"]  # Retry-After: 1, to whoever asks first
    first = threading.Thread(target=_ask, args=(settings, web, 1))
    first.start()
    while not web.arrivals:  # the 429 went out
        time.sleep(0.005)
    told = web.arrivals[0][0]
    time.sleep(0.1)
    _ask(settings, web, 1)  # another worker, its own client and connection
    first.join()
    after = sorted(t for t, _ in web.arrivals[1:])
    assert len(after) == 2  # the first worker's retry and the second worker's request
    assert min(after) - told >= 0.95


@pytest.mark.slow
def test_maxlag_wait_is_shared_too(web: SimWeb, tmp_path: Path, redis_url: str) -> None:
    settings = wiki_settings(web, tmp_path, broker_url=redis_url, wikimedia_retries=2)
    web.wiki.faults["wikidata"] += ["maxlag"]
    first = threading.Thread(target=_ask, args=(settings, web, 1))
    first.start()
    while not web.arrivals:
        time.sleep(0.005)
    told = web.arrivals[0][0]
    _ask(settings, web, 1)
    first.join()
    assert min(t for t, _ in web.arrivals[1:]) - told >= 0.95


@pytest.mark.slow
def test_image_search_retry_after_is_shared(web: SimWeb, tmp_path: Path,
                                           redis_url: str) -> None:
    settings = Settings(home=tmp_path, broker_url=redis_url, rapidapi_key="k",
                        image_search_url=f"{web.url}/search")
    assert isinstance(host_budget(settings), RedisBudget)
    web.retry_after_next = 1.0
    with RapidAPIImageSearch.from_settings(settings) as one, \
            RapidAPIImageSearch.from_settings(settings, budget=RedisBudget(REDIS)) as two:
        done = threading.Thread(target=one.search, args=("Novak Đoković Actor", 5))
        done.start()
        while web.told_at is None:
            time.sleep(0.005)
        assert two.search("Novak Đoković Actor", 5)
        done.join()
    assert min(t for t, _ in web.arrivals[1:]) - web.told_at >= 0.95


def test_without_a_broker_the_pacing_stays_in_the_process(web: SimWeb, tmp_path: Path) -> None:
    settings = wiki_settings(web, tmp_path, wikimedia_min_interval=0.15)
    budget = host_budget(settings)
    assert isinstance(budget, LocalBudget) and not budget.shared
    with WikimediaClient(settings, cache=False) as a, WikimediaClient(settings, cache=False) as b:
        for client in (a, b, a, b):  # two clients of one process: one schedule
            client.api(settings.wikidata_api_url, {"action": "wbgetentities", "ids": "Q403"})
    times = sorted(t for t, _ in web.arrivals)
    assert len(times) == 4 and times[-1] - times[0] >= 0.42  # 3 gaps of 0.15 s, less jitter
    # a Retry-After is still waited out by the client that was told (as before): no pause
    budget.pause(host_key(settings.wikidata_api_url), 5.0)
    waited: list[float] = []
    assert budget.acquire("elsewhere", 0.0, waited.append) == 0 and waited == []


def test_a_lost_redis_falls_back_to_local_pacing(tmp_path: Path, web: SimWeb) -> None:
    budget = RedisBudget("redis://127.0.0.1:1/0", fallback=LocalBudget())  # nothing listens
    waits: list[Any] = []
    assert budget.acquire(f"host-{uuid.uuid4().hex}", 2.0, waits.append) == 0  # first slot
    assert budget.acquire("h", 2.0, waits.append) == 0
    assert budget.acquire("h", 2.0, waits.append) > 0.4 and waits  # paced, not failed


def test_host_keys_and_rates(tmp_path: Path) -> None:
    assert host_key("https://Commons.Wikimedia.org/w/api.php") == "commons.wikimedia.org"
    assert host_key("http://127.0.0.1:8765/search") == "127.0.0.1:8765"
    settings = Settings(home=tmp_path, host_budgets={"commons.wikimedia.org": 2})
    assert host_rate(settings, "https://commons.wikimedia.org/w/api.php", 5.0) == 2.0
    assert host_rate(settings, "https://www.wikidata.org/w/api.php", 5.0) == 5.0
    assert host_rate(settings, "https://images.example/x.jpg") == 0.0


def test_a_request_that_need_not_wait_costs_one_redis_round_trip() -> None:
    """The pause check follows only a wait: an unpaced host (or a free slot) is one script
    call per request, and a pause already set still holds the slot back."""
    client = redis_client()
    host = f"unpaced-{uuid.uuid4().hex}.test"

    def script_calls() -> int:
        stats = client.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0))
                   for c in ("evalsha", "eval"))

    budget = RedisBudget(REDIS)
    try:
        budget.acquire(host, 0)  # loads the script (EVALSHA falls back to EVAL once)
        before = script_calls()
        for _ in range(10):
            assert budget.acquire(host, 0) == 0.0
        assert script_calls() - before == 10
        budget.pause(host, 0.2)
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            time.sleep(seconds)

        budget.acquire(host, 0, sleep=sleep)
        assert slept and 0.1 < slept[0] <= 0.2  # the pause holds an unpaced host too
    finally:
        budget.close()
        client.delete(KEY_PREFIX + host, KEY_PREFIX + host + ":pause")
        client.close()
