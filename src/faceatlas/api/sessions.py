"""Review-UI log-ins: sessions kept server-side, and a limit on wrong log-ins.

A session is a random id in the cookie. The ``ui_sessions`` table keeps its SHA-256 (a leaked
table opens no session), a fingerprint of the token that logged in (an HMAC, never the token),
when it was created, when it expires (``session_ttl_seconds``) and when it was revoked. Log-out
revokes the row, so a copied cookie dies with it; removing a token from
``FACEATLAS_API_TOKENS`` ends its sessions, because no configured token has that fingerprint
any more. Sessions work across server processes that share the database.

Failed authentications — wrong UI log-ins and wrong API tokens alike — are counted per client
address, per token prefix (a fingerprint of the first characters tried: guesses at one token
from many addresses) and, for the log-in form, per form (its nonce) in a sliding window; past
``login_max_failures`` every attempt there is refused with 429 and ``Retry-After`` — before the
token is even compared, so a lucky guess during the lock-out tells nothing. With a Redis URL
(``FACEATLAS_REDIS_URL``, else a ``redis://`` broker URL) the counts are shared by every server
process and survive restarts; without one they live in the process. Behind a reverse proxy
every client has the proxy's address.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete

from faceatlas.domain.errors import ConfigError
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import UiSession, aware

log = logging.getLogger(__name__)

#: tokens shorter than this are refused at start-up: guessable, whatever the rate limit
MIN_TOKEN_LENGTH = 16
#: least variety a token must show (Shannon entropy of its characters × its length, in bits):
#: 16 random hex digits show ~52 (of their 64), 8 "a" then 8 "b" show 16
MIN_TOKEN_BITS = 40
#: words that make a token guessable when it is made only of them (plus a few digits)
_WEAK_WORDS = ("password", "passwd", "secret", "token", "admin", "changeme", "letmein",
               "qwerty", "welcome", "default", "test", "api", "key", "my", "super", "access",
               "root", "login", "faceatlas", "master", "pass", "abc", "user")
_HOW = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
_FINGERPRINT_KEY = b"faceatlas-token-fingerprint-v1"
#: characters of a tried token that make its "prefix" key
PREFIX_CHARS = 6


def token_bits(token: str) -> float:
    """Shannon entropy of the token's characters times its length (bits)."""
    counts, n = Counter(token), len(token)
    return -n * sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def token_weakness(token: str) -> str | None:
    """Why ``token`` is guessable, or None: too short, a repeated unit, dictionary words, a
    run like ``abcdef…``, too little variety."""
    n = len(token)
    if n < MIN_TOKEN_LENGTH:
        return f"is shorter than {MIN_TOKEN_LENGTH} characters"
    for size in range(1, n // 2 + 1):
        if token == (token[:size] * (n // size + 1))[:n]:
            return "repeats one short pattern"
    steps = [ord(b) - ord(a) for a, b in itertools.pairwise(token)]
    if sum(1 for d in steps if abs(d) == 1) >= 0.8 * len(steps):
        return "is a run of consecutive characters"
    letters, rest = re.sub(r"[^a-z]", "", token.lower()), re.sub(r"[a-zA-Z]", "", token)
    if letters and len(rest) < 10 and _only_words(letters):
        return "is made of dictionary words"
    if token_bits(token) < MIN_TOKEN_BITS:
        return f"has too little variety (~{token_bits(token):.0f} bits, {MIN_TOKEN_BITS} needed)"
    return None


def _only_words(text: str) -> bool:
    ok = [True] + [False] * len(text)  # ok[i]: text[:i] splits into weak words
    for i in range(1, len(text) + 1):
        ok[i] = any(ok[i - len(w)] and text[i - len(w):i] == w for w in _WEAK_WORDS
                    if len(w) <= i)
    return ok[-1]


def check_tokens(tokens: list[str]) -> None:
    """ConfigError naming (by position, never by value) every guessable token."""
    weak = [(i, why) for i, t in enumerate(tokens, start=1) if (why := token_weakness(t))]
    if weak:
        which = "; ".join(f"token #{i} ({len(tokens[i - 1])} characters) {why}"
                          for i, why in weak)
        raise ConfigError(f"FACEATLAS_API_TOKENS: {which}: use long random tokens, e.g. "
                          f"{_HOW}")


def token_fingerprint(token: str | bytes) -> str:
    raw = token.encode("utf-8") if isinstance(token, str) else token
    return hmac.new(_FINGERPRINT_KEY, raw, hashlib.sha256).hexdigest()


def _id_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogateescape")).hexdigest()


def create_session(settings: Settings, fingerprint: str) -> str:
    """A new session for the token with ``fingerprint``; returns the id for the cookie."""
    sid = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    with session_scope(settings) as s:
        # expired rows are of no use to anyone: drop them while we are here
        s.execute(delete(UiSession).where(UiSession.expires_at < now - timedelta(days=1)))
        s.add(UiSession(id_hash=_id_hash(sid), token_fingerprint=fingerprint, created_at=now,
                        expires_at=now + timedelta(seconds=settings.session_ttl_seconds)))
    return sid


def session_fingerprint(settings: Settings, sid: str) -> str | None:
    """The token fingerprint of a live session (not revoked, not expired), else None."""
    if not sid or len(sid) > 200:
        return None
    with session_scope(settings) as s:
        row = s.get(UiSession, _id_hash(sid))
        if row is None or row.revoked_at is not None:
            return None
        if aware(row.expires_at) <= datetime.now(timezone.utc):
            return None
        return row.token_fingerprint


def revoke_session(settings: Settings, sid: str) -> None:
    with session_scope(settings) as s:
        row = s.get(UiSession, _id_hash(sid))
        if row is not None and row.revoked_at is None:
            row.revoked_at = datetime.now(timezone.utc)


def auth_keys(address: str, token: str | bytes | None) -> tuple[str, ...]:
    """The limiter keys of one authentication attempt: its address and its token's prefix
    (a fingerprint of it: the keys, in Redis too, never hold a token's characters)."""
    keys = [f"ip:{address}"]
    if token:
        raw = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
        keys.append(f"tok:{token_fingerprint(raw[:PREFIX_CHARS])[:16]}")
    return tuple(keys)


def redis_url_of(settings: Settings) -> str | None:
    """Where failure counts are shared: ``redis_url``, else a ``redis://`` broker URL."""
    return settings.redis_url or settings.broker_redis


def failure_limiter(settings: Settings) -> LoginLimiter:
    """The limiter of failed authentications: in Redis when one is configured."""
    url = redis_url_of(settings)
    # one deployment (its set of tokens) shares counts; another one on the same Redis does not
    space = token_fingerprint("\n".join(sorted(settings.api_tokens)))[:12]
    limiter: LoginLimiter = (RedisLimiter(settings.login_max_failures,
                                          settings.login_window_seconds, url, space)
                             if url else LoginLimiter(settings.login_max_failures,
                                                      settings.login_window_seconds))
    return limiter


class LoginLimiter:
    """Failures per key (``ip:…``, ``tok:…``, ``nonce:…``) in a sliding window, in this
    process; thread-safe, bounded."""

    MAX_KEYS = 50_000  # oldest keys are forgotten first: memory stays bounded under a flood

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> int | None:
        """Seconds until any of ``keys`` may try again, or None when none is locked out."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window - now)
        return max(1, int(wait) + 1) if wait > 0 else None

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.MAX_KEYS:
                self._failures.popitem(last=False)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        return times


class RedisLimiter(LoginLimiter):
    """The same sliding window in Redis (a sorted set of failure times per key), shared by
    every server process. Redis down: the counts fall back to this process, with a warning."""

    def __init__(self, max_failures: int, window_seconds: float, url: str,
                 space: str = "") -> None:
        import redis

        super().__init__(max_failures, window_seconds)
        self.PREFIX = f"faceatlas:authfail:{space}:"
        self.client: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def retry_after(self, *keys: str) -> int | None:
        import redis

        now = time.time()
        try:
            pipe = self.client.pipeline()
            for key in keys:
                pipe.zremrangebyscore(self.PREFIX + key, "-inf", now - self.window)
                pipe.zcard(self.PREFIX + key)
                pipe.zrange(self.PREFIX + key, 0, 0, withscores=True)
            answers = pipe.execute()
        except redis.RedisError as exc:
            log.warning("auth failure counts: Redis unavailable (%s); this process only", exc)
            return super().retry_after(*keys)
        wait = 0.0
        for i in range(len(keys)):
            count, oldest = answers[3 * i + 1], answers[3 * i + 2]
            if count >= self.max_failures and oldest:
                wait = max(wait, oldest[0][1] + self.window - now)
        return max(1, int(wait) + 1) if wait > 0 else None

    def failed(self, *keys: str) -> None:
        import redis

        now = time.time()
        try:
            pipe = self.client.pipeline()
            for key in keys:
                pipe.zadd(self.PREFIX + key, {uuid.uuid4().hex: now})
                pipe.expire(self.PREFIX + key, int(self.window) + 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("auth failure counts: Redis unavailable (%s); this process only", exc)
            super().failed(*keys)
