"""What the browser tests share: `faceatlas serve` in a subprocess on a loopback port, log-in
over httpx, Debian chromium through Playwright, full-page screenshots as artefacts
(artifacts/screenshots/, gitignored)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from faceatlas.settings import Settings

TOKEN = "ui-token-0123456789"
OTHER_TOKEN = "ui-token-other-9876543"
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]
#: images the page shows (not those inside a closed <details>, which chromium still gives
#: client rects but never loads while it is closed)
VISIBLE_IMAGES = ("Array.from(document.images).filter(i => i.getClientRects().length"
                  " && !i.closest('details:not([open])'))")


class HasUrl(Protocol):
    url: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(settings: Settings, root: Path, **env_extra: str) -> Iterator[str]:
    """``faceatlas serve`` on the home of ``settings`` with the two UI tokens; yields its URL.
    ``env_extra``: more ``FACEATLAS_*`` settings (e.g. ``FACEATLAS_MIN_FACES_TO_PROMOTE``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
    env.update(FACEATLAS_HOME=str(settings.home), FACEATLAS_API_TOKENS=f"{TOKEN},{OTHER_TOKEN}",
               FACEATLAS_WORKERS="2", OPENBLAS_NUM_THREADS="1")
    env.update(env_extra)
    log_path = root / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceatlas", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--engines", "1"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("faceatlas serve did not start:\n"
                                   + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def login(client: httpx.Client, token: str = TOKEN) -> str:
    """Log in like the form does; returns the CSRF token of the session."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text
    done = client.post("/ui/login", data={"token": token, "nonce": nonce[1], "next": "/ui/"})
    assert done.status_code == 303, done.text
    page = client.get("/ui/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return csrf[1]


def client_for(server: HasUrl) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright; missing: a failure under CI, a skip elsewhere."""
    problem = None
    if not CHROMIUM.is_file():
        problem = f"{CHROMIUM} missing: run scripts/ci-browser.sh"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            problem = "playwright missing: pip install -e '.[dev]'"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def browser_login(browser: Any, url: str, *, width: int = 1280, height: int = 900) -> Any:
    """A new page of a new context, logged in through the form; console errors are collected
    in ``page.errors`` (a list the caller asserts empty)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    page.goto(f"{url}/ui/login")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui/")
    return page


def shot(page: Any, name: str) -> None:
    """A full-page screenshot once every lazy thumbnail has loaded."""
    # scrolled through a screen at a time, as a person would: every lazy image comes near
    # the viewport once (a jump to the bottom leaves those of a long page's middle unasked)
    height = page.evaluate("document.body.scrollHeight")
    step = page.evaluate("window.innerHeight")
    for y in range(0, height + step, step):
        page.evaluate(f"window.scrollTo(0, {y})")
        time.sleep(0.02)
    # polled from here: wait_for_function would need 'unsafe-eval', which the CSP forbids
    deadline = time.monotonic() + 15
    while not page.evaluate(f"{VISIBLE_IMAGES}.every(i => i.complete)"):
        if time.monotonic() > deadline:
            late = page.evaluate(f"{VISIBLE_IMAGES}.filter(i => !i.complete)"
                                 ".slice(0, 5).map(i => i.outerHTML)")
            raise AssertionError(f"thumbnails did not load, e.g. {late}")
        time.sleep(0.05)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
