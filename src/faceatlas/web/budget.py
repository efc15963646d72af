"""One polite request budget per outside host, shared by every worker of the service.

Each worker process used to pace its own requests, so 8 workers sent 8× the polite rate. With
a Redis broker configured (``FACEATLAS_BROKER_URL=redis://…``) the schedule of every host lives
in Redis instead: one key per host holds the next free slot, and a small Lua script (atomic
inside Redis, timed by Redis's own clock so the workers' clocks never matter) hands each
request its slot — the next-slot form of GCRA with no burst, the same strict spacing the
in-process pacer always had. A ``Retry-After`` (or a ``maxlag`` wait) one worker is told
moves that host's next slot past the wait, so every worker waits.

Without a broker the pacing stays in this process, as before: one schedule per host for all
threads, and a ``Retry-After`` is waited out by the client that received it.

Rates are requests per second per host (``host:port`` as in the URL, or the bare host name):
``FACEATLAS_HOST_BUDGETS`` (JSON ``{"commons.wikimedia.org": 5}``) wins; else the caller's
default (Wikimedia: ``1 / FACEATLAS_WIKIMEDIA_MIN_INTERVAL``; other hosts: unpaced). A shared
schedule plans ``rate`` requests per ``1 + FACEATLAS_BUDGET_SLACK`` seconds, so that timing
jitter between the planned slot and the request's arrival never puts more than the budget
into any one second at the host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from faceatlas.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "faceatlas:budget:"

# KEYS[1]: the host's next free slot, KEYS[2]: the end of its pause (µs of Redis TIME).
# ARGV[1] = 'reserve', ARGV[2] = interval (µs): take the next slot, return the µs to wait for
# it; 'pause', µs: nobody starts before now + µs (new slots and ones already handed out);
# 'check': the µs of pause still ahead (a slot handed out before a pause waits it out too).
# Keys expire a minute after their last slot, so idle hosts leave nothing behind.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local amount = tonumber(ARGV[2])
if mode == 'check' then
  local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
  return math.max(0, paused - now)
end
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if mode == 'pause' then
  local stop = now + amount
  local ttl = math.ceil(amount / 1000) + 60000
  if stop > nxt then
    redis.call('SET', KEYS[1], string.format('%d', stop), 'PX', ttl)
  end
  local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
  if stop > paused then
    redis.call('SET', KEYS[2], string.format('%d', stop), 'PX', ttl)
  end
  return 0
end
local slot = math.max(now, nxt)
if amount > 0 then
  redis.call('SET', KEYS[1], string.format('%d', slot + amount), 'PX',
             math.ceil((slot + amount - now) / 1000) + 60000)
end
return slot - now
"""

Sleep = Callable[[float], None]


class HostBudget(Protocol):
    """Where a client asks when it may send its next request to a host."""

    shared: bool  # True: every worker of the service shares it (Redis)

    def acquire(self, host: str, rate: float, sleep: Sleep = time.sleep,
                now: float | None = None) -> float:
        """Wait (with ``sleep``) for the host's next slot at ``rate`` requests/s (0: unpaced,
        but a pause still holds); the seconds waited."""
        ...

    def pause(self, host: str, seconds: float) -> None:
        """The host asked to wait (Retry-After, maxlag): no request starts before then."""
        ...


class LocalBudget:
    """This process's schedule: one next slot per host under a lock (the pacer as it was)."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def acquire(self, host: str, rate: float, sleep: Sleep = time.sleep,
                now: float | None = None) -> float:
        if rate <= 0:
            return 0.0
        with self._lock:
            at = self._clock() if now is None else now
            slot = max(at, self._next.get(host, 0.0))
            self._next[host] = slot + 1.0 / rate
        if slot > at:
            sleep(slot - at)
        return slot - at

    def pause(self, host: str, seconds: float) -> None:
        """Without a broker the client that was told waits itself, as before."""


class RedisBudget:
    """The schedule of every host in Redis, shared by all workers on all machines."""

    shared = True

    def __init__(self, url: str, *, slack: float = 0.05, fallback: LocalBudget | None = None,
                 client: Any = None) -> None:
        import redis

        self.url = url
        self.slack = max(0.0, slack)
        self._redis = client or redis.Redis.from_url(url, socket_timeout=5,
                                                     socket_connect_timeout=5)
        self._script = self._redis.register_script(_SCRIPT)
        self._fallback = fallback or LocalBudget()
        self._warned = False

    def _run(self, host: str, mode: str, micros: float = 0) -> float:
        keys = [f"{KEY_PREFIX}{host}", f"{KEY_PREFIX}{host}:pause"]
        return max(0, int(self._script(keys=keys, args=[mode, round(micros)]))) / 1e6

    def acquire(self, host: str, rate: float, sleep: Sleep = time.sleep,
                now: float | None = None) -> float:
        interval = (1.0 + self.slack) / rate if rate > 0 else 0.0
        waited = 0.0
        try:
            for _ in range(100):  # a pause after a pause after …: bounded, then go
                wait = self._run(host, "reserve", interval * 1e6)
                if wait <= 0:  # a pause already set holds the slot back: nothing to re-check
                    break
                sleep(wait)
                waited += wait
                # told to wait while this slot was ahead: wait it out, then a fresh slot
                paused = self._run(host, "check")
                if paused <= 0:
                    break
                sleep(paused)
                waited += paused
        except Exception as exc:  # Redis away: stay polite in this process, do not fail
            self._lost(exc)
            return waited + self._fallback.acquire(host, rate, sleep, now)
        return waited

    def pause(self, host: str, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            self._run(host, "pause", seconds * 1e6)
        except Exception as exc:
            self._lost(exc)

    def close(self) -> None:
        self._redis.close()

    def _lost(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("request budget: Redis unreachable (%s); pacing in this process only",
                        type(exc).__name__)


def host_key(url: str) -> str:
    """The budget key of a URL: ``host`` or ``host:port`` when the URL names a port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def host_rate(settings: Settings, url: str, default: float = 0.0) -> float:
    """Requests per second allowed to the host of ``url`` (0: unpaced)."""
    key = host_key(url)
    budgets = settings.host_budgets
    for name in (key, key.split(":")[0]):
        if name in budgets:
            return max(0.0, float(budgets[name]))
    return max(0.0, default)


def wikimedia_rate(settings: Settings) -> float:
    gap = settings.wikimedia_min_interval
    return 1.0 / gap if gap > 0 else 0.0


_local = LocalBudget()
_shared: dict[tuple[str, float], RedisBudget] = {}
_shared_lock = threading.Lock()


def host_budget(settings: Settings) -> HostBudget:
    """The budget of this process: shared through the broker's Redis, else local."""
    url = settings.broker_redis
    if url is None:
        return _local
    key = (url, settings.budget_slack)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = RedisBudget(url, slack=settings.budget_slack, fallback=_local)
        return _shared[key]


def reset_budgets(*, close: bool = True) -> None:
    """Forget this process's schedules and Redis connections (tests; a forked worker passes
    ``close=False``: closing would shut the parent's sockets too)."""
    global _local
    with _shared_lock:
        for budget in _shared.values():
            if close:
                budget.close()
        _shared.clear()
        _local = LocalBudget()
