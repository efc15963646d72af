"""Review-UI log-ins: sessions kept server-side, and a limit on wrong log-ins.

A session is a random id in the cookie. The ``ui_sessions`` table keeps its SHA-256 (a leaked
table opens no session), a fingerprint of the token that logged in (an HMAC, never the token),
when it was created, when it expires (``session_ttl_seconds``) and when it was revoked. Log-out
revokes the row, so a copied cookie dies with it; removing a token from
``FACEATLAS_API_TOKENS`` ends its sessions, because no configured token has that fingerprint
any more. Sessions work across server processes that share the database.

Wrong log-ins are counted per client address and per log-in form (its nonce) in a sliding
window; past ``login_max_failures`` every attempt from there is refused with 429 and
``Retry-After`` — before the token is even compared, so a lucky guess during the lock-out
tells nothing. The counts live in the server process (a restart forgets them; N processes
allow N times the attempts); behind a reverse proxy every client has the proxy's address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete

from faceatlas.domain.errors import ConfigError
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import UiSession

#: tokens shorter than this are refused at start-up: guessable, whatever the rate limit
MIN_TOKEN_LENGTH = 16
_FINGERPRINT_KEY = b"faceatlas-token-fingerprint-v1"


def check_tokens(tokens: list[str]) -> None:
    """ConfigError naming (by position, never by value) every token that is too short."""
    short = [i for i, t in enumerate(tokens, start=1) if len(t) < MIN_TOKEN_LENGTH]
    if short:
        which = ", ".join(f"#{i} ({len(tokens[i - 1])} characters)" for i in short)
        raise ConfigError(
            f"FACEATLAS_API_TOKENS: token {which} is shorter than {MIN_TOKEN_LENGTH} "
            "characters; use long random tokens, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )


def token_fingerprint(token: str | bytes) -> str:
    raw = token.encode("utf-8") if isinstance(token, str) else token
    return hmac.new(_FINGERPRINT_KEY, raw, hashlib.sha256).hexdigest()


def _id_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogateescape")).hexdigest()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every one we store is UTC
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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
        if _aware(row.expires_at) <= datetime.now(timezone.utc):
            return None
        return row.token_fingerprint


def revoke_session(settings: Settings, sid: str) -> None:
    with session_scope(settings) as s:
        row = s.get(UiSession, _id_hash(sid))
        if row is not None and row.revoked_at is None:
            row.revoked_at = datetime.now(timezone.utc)


class LoginLimiter:
    """Failures per key (``ip:…``, ``nonce:…``) in a sliding window; thread-safe, bounded."""

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
