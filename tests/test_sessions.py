"""UI sessions and the doors of the server (issue 11, findings 3 and 8): sessions live in the
database and die at log-out, wrong log-ins are limited, short tokens and open servers away
from loopback refuse to start, requests without credentials are refused unread, and /docs
loads nothing from a CDN. Real uvicorn on loopback, real SQLite."""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from faceatlas.api import create_app
from faceatlas.api.app import check_bind
from faceatlas.domain.errors import ConfigError
from faceatlas.settings import Settings, get_settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import UiSession
from tests.gallery_fixtures import running

TOKEN = "sessions-token-0123456789"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = Settings(home=tmp_path / "home", api_tokens=[TOKEN], workers=1,
                        max_upload_bytes=2_000_000)
    with running(create_app(settings, engines=1)) as url:
        yield url, settings


def _form(client: httpx.Client) -> str:
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/ui/login").text)
    assert nonce
    return nonce[1]


def test_copied_cookie_is_dead_after_log_out(server: tuple[str, Settings]) -> None:
    url, settings = server
    with httpx.Client(base_url=url) as c:
        nonce = _form(c)
        assert c.post("/ui/login", data={"token": TOKEN, "nonce": nonce}).status_code == 303
        copied = c.cookies["faceatlas_session"]
        assert TOKEN not in copied
        page = c.get("/ui/")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        # the table holds a hash of the id and a fingerprint of the token, neither in clear
        with session_scope(settings) as s:
            (row,) = s.scalars(select(UiSession)).all()
            assert row.revoked_at is None and copied not in row.id_hash
            assert TOKEN not in row.token_fingerprint
        assert c.post("/ui/logout", data={"csrf": csrf[1]}).status_code == 303
    with httpx.Client(base_url=url, cookies={"faceatlas_session": copied}) as thief:
        got = thief.get("/ui/")
        assert got.status_code == 303 and got.headers["location"].startswith("/ui/login")
        assert thief.post("/ui/recognize", data={"csrf": csrf[1]}).status_code == 401
    with session_scope(settings) as s:
        assert s.scalars(select(UiSession)).one().revoked_at is not None


@pytest.mark.slow
def test_sessions_expire(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", api_tokens=[TOKEN], workers=1,
                        session_ttl_seconds=1)
    with running(create_app(settings, engines=1)) as url, httpx.Client(base_url=url) as c:
        assert c.post("/ui/login", data={"token": TOKEN, "nonce": _form(c)}).status_code == 303
        assert c.get("/ui/").status_code == 200
        time.sleep(1.5)
        assert c.get("/ui/").status_code == 303


def test_eleventh_wrong_guess_is_429(server: tuple[str, Settings]) -> None:
    url, _ = server
    with httpx.Client(base_url=url) as c:
        nonce = _form(c)
        for i in range(10):
            bad = c.post("/ui/login", data={"token": f"wrong-guess-{i:08d}", "nonce": nonce})
            assert bad.status_code == 401, (i, bad.text)
        locked = c.post("/ui/login", data={"token": "wrong-guess-eleven", "nonce": nonce})
        assert locked.status_code == 429
        assert 0 < int(locked.headers["retry-after"]) <= 901
        assert "Too many wrong tokens" in locked.text
        # locked means locked: the right token now gets the same answer, from a fresh form too
        right = c.post("/ui/login", data={"token": TOKEN, "nonce": _form(c)})
        assert right.status_code == 429 and "faceatlas_session" not in c.cookies
    # the address is locked for the API too (issue 22: it guessed at 593/s before), the right
    # token included; another address is not
    locked = httpx.get(f"{url}/api/v1/collections",
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert other.get(f"{url}/api/v1/collections",
                     headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_short_tokens_refuse_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path / "home", api_tokens=[TOKEN, "x"], workers=1)
    with pytest.raises(ConfigError, match=r"#2 \(1 characters\) is shorter than 16") as err:
        create_app(settings)
    assert "x" not in str(err.value).split("e.g.")[0].replace("characters", "")
    from faceatlas.cli import serve  # noqa: F401  (registers the commands)
    from faceatlas.cli.base import app

    monkeypatch.setenv("FACEATLAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACEATLAS_API_TOKENS", "short-token")
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["serve", "--port", "1"])
        assert out.exit_code == 1 and "shorter than 16" in out.output
    finally:
        get_settings.cache_clear()


def test_insecure_no_auth_only_on_loopback(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        check_bind(host, True)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        with pytest.raises(ConfigError, match="loopback"):
            check_bind(host, True)
        check_bind(host, False)  # with tokens any address is fine
    from faceatlas.cli import serve  # noqa: F401
    from faceatlas.cli.base import app

    monkeypatch.setenv("FACEATLAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACEATLAS_API_TOKENS", raising=False)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1",
                                       "--insecure-no-auth"])
        assert out.exit_code == 1 and "loopback" in out.output
    finally:
        get_settings.cache_clear()


def _raw(url: str, head: str) -> bytes:
    """Send only a request head (no body) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize("length", [1_000, 1_000_000, 50_000_000])
def test_no_credentials_refused_before_the_body(server: tuple[str, Settings],
                                                length: int) -> None:
    url, _ = server
    for path, extra in (("/api/recognize", ""), ("/api/v1/people", "Authorization: Bearer no\r\n"),
                        ("/ui/recognize", "Cookie: faceatlas_session=forged\r\n")):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
                "Content-Type: multipart/form-data; boundary=zz\r\n"
                f"Content-Length: {length}\r\n\r\n")
        started = time.monotonic()
        # the body never comes: an answer means it was not awaited (a small one for a second
        # at most: read and dropped when it comes, so closing sends no reset)
        answer = _raw(url, head)
        assert answer.startswith(b"HTTP/1.1 401"), (path, answer[:200])
        assert time.monotonic() - started < 4


def test_docs_load_no_script_from_elsewhere(server: tuple[str, Settings]) -> None:
    url, _ = server
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert "cdn" not in page.text.lower()
    for s in sources:
        asset = httpx.get(f"{url}{s}")
        assert asset.status_code == 200 and len(asset.content) > 500, s
    assert httpx.get(f"{url}/docs/assets/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{url}/redoc").status_code in (401, 404)


# --------------------------------------------------------------------------- issue 22


@pytest.mark.parametrize("weak", ["aaaaaaaaaaaaaaaa", "abababababababab", "0123456789abcdef",
                                  "mysupersecrettoken", "secret-token-1234",
                                  "aaaaaaaaabbbbbbbbbb"])
def test_guessable_tokens_refuse_to_start(tmp_path: Path, weak: str) -> None:
    settings = Settings(home=tmp_path / "home", api_tokens=[TOKEN, weak], workers=1)
    with pytest.raises(ConfigError, match=r"token #2 \(\d+ characters\)") as err:
        create_app(settings)
    text = str(err.value)
    assert weak not in text  # by position, never by value
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in text


def _guess(client: httpx.Client, url: str, token: str) -> httpx.Response:
    return client.get(f"{url}/api/v1/collections", headers={"Authorization": f"Bearer {token}"})


def test_wrong_tokens_are_limited_per_token_prefix(server: tuple[str, Settings]) -> None:
    """Guesses at one token's start from many addresses: the prefix locks, the address next
    door with another prefix does not."""
    url, _ = server
    for i in range(10):
        with httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.1.{i + 1}")) as c:
            assert _guess(c, url, f"sessio-wrong-{i:012d}").status_code == 401
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.2.1")) as c:
        locked = _guess(c, url, "sessio-wrong-again-0000")
        assert locked.status_code == 429 and locked.json()["code"] == "too_many_attempts"
        assert _guess(c, url, "other-prefix-wrong-000").status_code == 401


def test_300_wrong_tokens_on_two_servers_sharing_redis(tmp_path: Path) -> None:
    """The failure counts live in Redis: two servers (or a restart) share them."""
    from tests.services import REDIS, redis_client

    redis_client().close()  # fails under CI, skips elsewhere, when Redis does not answer
    redis_url = REDIS
    token = "two-servers-" + secrets.token_urlsafe(16)  # its own count space in Redis
    answers: list[int] = []
    retry: set[str] = set()
    apps = [create_app(Settings(home=tmp_path / f"home{i}", api_tokens=[token], workers=1,
                                redis_url=redis_url), engines=1) for i in range(2)]
    with running(apps[0]) as a, running(apps[1]) as b, httpx.Client() as c:
        for i in range(300):
            got = _guess(c, (a, b)[i % 2], f"wrong-{i:04d}-" + "x7Qz" * 5)
            answers.append(got.status_code)
            if got.status_code == 429:
                retry.add(got.headers["retry-after"])
        assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}, answers[:20]
        assert retry and all(0 < int(r) <= 901 for r in retry)
        # locked on both, the right token too (decided before the token is compared)
        assert _guess(c, a, token).status_code == 429 and _guess(c, b, token).status_code == 429
    # a third server started afterwards (a restart) remembers
    again = create_app(Settings(home=tmp_path / "home2", api_tokens=[token], workers=1,
                                redis_url=redis_url), engines=1)
    with running(again) as url, httpx.Client() as c:
        assert _guess(c, url, token).status_code == 429
