"""simweb: a loopback "web" for tests and offline demos — LLM, image search, image hosting, faults.

One stdlib ``ThreadingHTTPServer`` (a thread per request) serves:

- ``POST /v1/chat/completions``  OpenAI Chat Completions; answers from the people file
- ``GET /search``                 RapidAPI Real-Time Image Search shape; hits point back here
- ``GET /img/<path>``             files under ``photos_dir`` (never outside it)
- ``GET /thumb/<path>``           a downscaled JPEG of the same file
- ``GET /wikidata/…, /commons/…, /upload/…``  Wikidata and Commons (see simwiki.py)
- ``GET /fault/<kind>/...``       broken hosts: 404, 500-then-ok, slow, truncated, html,
                                  oversized, redirect chains, redirect to a private address, tiny

A person's ``images`` entries are paths under ``photos_dir`` or ``fault:<kind>[:<path>]``
(kinds: 404, 500, 500-then-ok, slow, truncated, html, oversized, oversized-nolength,
redirect-<n>, redirect-private, tiny); ``<path>`` is the image a path-taking fault finally
serves and the thumbnail's source (default: the person's first plain image). ``titles``
(optional) maps an entry to its result's title (default ``<name> — photo <n>``).

Rate checks: ``.arrivals`` holds (monotonic time, Host header) of every request, and
``max_in_window`` the most of them in any window (a budget test's figure); setting
``.retry_after_next`` (seconds) answers the next ``/search`` with 429 and that Retry-After, and
``.told_at`` says when it was sent. Several SimWebs on their own ports are several hosts.

In-process: ``with SimWeb(people=..., photos_dir=...) as web: web.url``.
Command line: ``python -m faceatlas.devtools.simweb --people FILE --photos DIR --port P``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import mimetypes
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

from PIL import Image

from faceatlas.devtools import simwiki
from faceatlas.domain.names import name_key

OVERSIZED_BYTES = 64 * 1024 * 1024
THUMB_SIDE = 256
_CHUNK = 64 * 1024
# Search fault hooks, matched on the name part of the query.
RATE_LIMITED = name_key("RateLimited Person")
SERVER_ERROR = name_key("ServerError Person")
BAD_SHAPE = name_key("BadShape Person")


def load_people(people: str | Path | dict[str, Any] | Sequence[dict[str, Any]]) -> list[dict]:
    """People from a JSON file path, a ``{"people": [...]}`` dict, or a list of dicts."""
    data: Any = people
    if isinstance(people, (str, Path)):
        data = json.loads(Path(people).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("people")
    if not isinstance(data, (list, tuple)) or not all(isinstance(p, dict) for p in data):
        raise ValueError('people must be a list of objects or {"people": [...]}')
    out = []
    for i, p in enumerate(data):
        if not isinstance(p.get("name"), str) or not p["name"].strip():
            raise ValueError(f"person #{i} has no name")
        out.append(
            {
                "name": p["name"],
                "country": str(p.get("country", "")),
                "occupations": [str(o) for o in p.get("occupations", [])],
                "real": bool(p.get("real", True)),
                "images": [str(x) for x in p.get("images", [])],
                # optional: an entry's own result title (default: "<name> — photo <n>")
                "titles": {str(k): str(v) for k, v in (p.get("titles") or {}).items()},
                **{k: p[k] for k in simwiki.WIKI_KEYS if k in p},  # Wikidata/Commons extras
            }
        )
    return out


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _line(text: str, label: str) -> str | None:
    m = re.search(rf"^\s*{label}\s*:\s*(.+?)\s*$", text, re.MULTILINE | re.IGNORECASE)
    return m.group(1) if m else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connects under 80+ parallel clients
    sim: SimWeb


class SimWeb:
    """The simulated web. ``.requests`` logs every (method, raw path) served."""

    def __init__(
        self,
        people: str | Path | dict[str, Any] | Sequence[dict[str, Any]] = (),
        photos_dir: str | Path = ".",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
    ) -> None:
        self.people = load_people(people)
        self.by_key: dict[str, list[dict]] = {}  # name_key -> people (answers 10k-name lists)
        for p in self.people:
            self.by_key.setdefault(name_key(p["name"]), []).append(p)
        self.photos_dir = Path(photos_dir).resolve()
        self.host, self.port = host, port
        self.latency_ms = latency_ms
        self.requests: list[tuple[str, str]] = []
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), Host header)
        self.retry_after_next: float | None = None  # the next /search: 429 with this wait
        self.told_at: float | None = None  # when that 429 was answered
        self.inflight = 0  # requests being handled now
        self.max_inflight = 0  # the most handled at once (concurrency assertions)
        self.closed_port = _closed_port()
        self._lock = threading.Lock()
        self._seen_keys: set[str] = set()  # 500-then-ok keys already failed once
        self._rate_limited_once = False
        self._thumbs: dict[str, bytes] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.wiki = simwiki.WikiSim(self, people)  # Wikidata + Commons (devtools/simwiki.py)

    # -- lifecycle
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sim = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="simweb", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        """``host:port``, as a downloader's ``trusted`` entry."""
        return f"{self.host}:{self.port}"

    def count(self, prefix: str) -> int:
        """How many logged requests have a path starting with ``prefix``."""
        with self._lock:
            return sum(1 for _, p in self.requests if p.startswith(prefix))

    # -- helpers used by the handler
    def log(self, method: str, path: str, host: str = "") -> None:
        with self._lock:
            self.requests.append((method, path))
            self.arrivals.append((time.monotonic(), host))

    def take_retry_after(self) -> float | None:
        """The wait to answer this /search with (once), recording when it was told."""
        with self._lock:
            wait, self.retry_after_next = self.retry_after_next, None
            if wait is not None:
                self.told_at = time.monotonic()
            return wait

    def enter(self) -> None:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)

    def leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.arrivals.clear()
            self.told_at = None
            self.max_inflight = self.inflight

    def first_time(self, key: str) -> bool:
        with self._lock:
            if key in self._seen_keys:
                return False
            self._seen_keys.add(key)
            return True

    def take_rate_limit(self) -> bool:
        with self._lock:
            first = not self._rate_limited_once
            self._rate_limited_once = True
            return first

    def safe_file(self, rel: str) -> Path | None:
        """The file ``rel`` names inside photos_dir, or None (``..``, absolute, symlink out)."""
        rel = unquote(rel)
        if not rel or rel.startswith(("/", "\\")) or "\\" in rel or "\x00" in rel:
            return None
        if any(part in ("..", "") for part in rel.split("/")):
            return None
        try:
            path = (self.photos_dir / rel).resolve()
        except (OSError, RuntimeError):
            return None
        if not path.is_relative_to(self.photos_dir) or not path.is_file():
            return None
        return path

    def image_size(self, path: Path) -> tuple[int, int]:
        key = str(path)
        if key not in self._sizes:
            try:
                with Image.open(path) as im:
                    self._sizes[key] = im.size
            except OSError:
                self._sizes[key] = (0, 0)
        return self._sizes[key]

    def thumbnail(self, path: Path) -> bytes:
        key = str(path)
        with self._lock:
            cached = self._thumbs.get(key)
        if cached is not None:
            return cached
        with Image.open(path) as im:
            im.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # fast JPEG downscale on decode
            small = im.convert("RGB")
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        with self._lock:
            self._thumbs[key] = data
        return data

    def sleep_latency(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def find_person(self, query: str) -> dict | None:
        """The person whose normalised name is the longest prefix of the query's key."""
        qkey = name_key(query)
        best = None
        for p in self.people:
            k = name_key(p["name"])
            if k and qkey.startswith(k) and (best is None or len(k) > len(name_key(best["name"]))):
                best = p
        return best

    # -- search results
    def search_items(self, person: dict, limit: int) -> list[dict[str, Any]]:
        plain = [x for x in person["images"] if not x.startswith("fault:")]
        items = []
        for i, entry in enumerate(person["images"]):
            url, rel = self._entry_url(entry, i, plain[0] if plain else None)
            path = self.safe_file(rel) if rel else None
            width, height = self.image_size(path) if path else (640, 480)
            tw, th = self._thumb_dims(width, height)
            thumb = f"{self.url}/thumb/{quote(rel)}" if path and rel else None
            thumb = thumb or f"{self.url}/fault/404/t{i}"
            items.append(
                {
                    "id": hashlib.sha1(f"{person['name']}|{i}|{entry}".encode()).hexdigest()[:16],
                    "title": person.get("titles", {}).get(
                        entry, f"{person['name']} — photo {i + 1}"),
                    "url": url,
                    "width": width,
                    "height": height,
                    "thumbnail_url": thumb,
                    "thumbnail_width": tw,
                    "thumbnail_height": th,
                    "source": "simweb",
                    "source_url": f"{self.url}/page/{i}",
                    "domain": self.host,
                }
            )
        return items[: max(limit, 0)]

    @staticmethod
    def _entry_key(entry: str, i: int) -> str:
        return hashlib.sha1(f"{i}|{entry}".encode()).hexdigest()[:12]

    @staticmethod
    def _thumb_dims(w: int, h: int) -> tuple[int, int]:
        scale = min(1.0, THUMB_SIDE / max(w, h, 1))
        return max(1, round(w * scale)), max(1, round(h * scale))

    def _entry_url(self, entry: str, i: int, default_rel: str | None) -> tuple[str, str | None]:
        """URL of an ``images`` entry, and the file behind it (for size and thumbnail)."""
        if not entry.startswith("fault:"):
            return f"{self.url}/img/{quote(entry)}", entry
        kind, _, rel = entry[len("fault:") :].partition(":")
        rel = rel or default_rel or ""
        q = quote(rel)
        base = f"{self.url}/fault"
        simple = {"404": f"{base}/404/{i}", "500": f"{base}/500/{i}", "html": f"{base}/html/{i}",
                  "oversized": f"{base}/oversized/{i}", "tiny": f"{base}/tiny/{i}",
                  "oversized-nolength": f"{base}/oversized/{i}?nolength=1",
                  "redirect-private": f"{base}/redirect-private/{i}"}  # fmt: skip
        if kind in simple:
            return simple[kind], rel or None
        if kind == "500-then-ok":
            return f"{base}/500-then-ok/{self._entry_key(entry, i)}/{q}", rel
        if kind == "slow":
            return f"{base}/slow/2000/{q}", rel
        if kind == "truncated":
            return f"{base}/truncated/{q}", rel
        m = re.fullmatch(r"redirect-?(\d*)", kind)
        if m:
            return f"{base}/redirect/{m.group(1) or 3}/{q}", rel
        return f"{base}/404/{i}", rel or None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so benchmarks measure latency, not handshakes
    server: _Server
    server_version = "simweb/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; the request log is ``SimWeb.requests``

    @property
    def sim(self) -> SimWeb:
        return self.server.sim

    # -- plumbing
    def _send(
        self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", "text/plain", {"Location": location})

    def _image(self, rel: str) -> None:
        path = self.sim.safe_file(rel)
        if path is None:
            self._text(404, "not found")
            return
        self.sim.sleep_latency()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(200, path.read_bytes(), ctype, {"Cache-Control": "max-age=3600"})

    def _guard(self, fn: Any) -> None:
        path = urlsplit(self.path).path
        self.sim.log(self.command, self.path, self.headers.get("Host", ""))
        self.sim.enter()
        try:
            fn(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (size limit, timeout): fine
        except Exception as exc:  # a test server must answer, not die
            try:
                self._text(500, f"simweb error: {type(exc).__name__}: {exc}")
            except OSError:
                self.close_connection = True
        finally:
            self.sim.leave()

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    # -- routes
    def _get(self, path: str) -> None:
        if path == "/search":
            self._search()
        elif path.startswith("/img/"):
            self._image(path[len("/img/") :])
        elif path.startswith("/thumb/"):
            file = self.sim.safe_file(path[len("/thumb/") :])
            if file is None:
                self._text(404, "not found")
                return
            self.sim.sleep_latency()
            self._send(200, self.sim.thumbnail(file), "image/jpeg")
        elif path.startswith("/fault/"):
            self._fault(path[len("/fault/") :])
        elif path.startswith("/page/"):
            self._send(200, b"<html><body>a page</body></html>", "text/html; charset=utf-8")
        elif path.startswith(simwiki.PREFIXES):
            simwiki.handle(self, path)
        elif path in ("/", "/healthz"):
            self._json(200, {"ok": True, "people": len(self.sim.people)})
        else:
            self._text(404, "not found")

    def _post(self, path: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if path.rstrip("/") in ("/v1/chat/completions", "/chat/completions"):
            self._chat(raw)
        else:
            self._text(404, "not found")

    # -- (a) LLM
    def _openai_error(self, status: int, message: str, etype: str, code: str | None) -> None:
        err = {"message": message, "type": etype, "param": None, "code": code}
        self._json(status, {"error": err})

    def _chat(self, raw: bytes) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            self._openai_error(401, "Incorrect API key provided.", "invalid_request_error",
                               "invalid_api_key")  # fmt: skip
            return
        try:
            req = json.loads(raw or b"{}")
            schema_name = req["response_format"]["json_schema"]["name"]
            users = [m for m in req["messages"] if m.get("role") == "user"]
            text = _message_text(users[-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            self._openai_error(400, "expected messages and a json_schema response_format",
                               "invalid_request_error", None)  # fmt: skip
            return
        country = _line(text, "Country") or ""
        if country.lower() == "brokenjson":
            content = "Sure! Here are some famous people: Ana, Marko, and others."
        elif schema_name == "famous_people":
            occupation = (_line(text, "Occupation") or "").casefold()
            people = [
                {"name": p["name"], "occupation": occ}
                for p in self.sim.people
                if p["country"].casefold() == country.casefold()
                for occ in p["occupations"]
                if occ.casefold() == occupation
            ]
            if country.lower() == "duplicates":
                people = [p for p in people for _ in (0, 1)]
            content = json.dumps({"people": people}, ensure_ascii=False)
        elif schema_name == "verified_people":
            try:
                names = json.loads(_line(text, "Candidates") or "[]")
                if not isinstance(names, list):
                    raise TypeError("not a list")
            except (TypeError, ValueError):
                self._openai_error(400, "Candidates: must be a JSON list", "invalid_request_error",
                                   None)  # fmt: skip
                return
            content = json.dumps({"people": [self._verify(str(n), country) for n in names]},
                                 ensure_ascii=False)  # fmt: skip
        else:
            self._openai_error(400, f"unknown json_schema {schema_name!r}",
                               "invalid_request_error", None)  # fmt: skip
            return
        prompt_tokens = max(1, len(text) // 4)
        completion_tokens = max(1, len(content) // 4)
        self._json(200, {
            "id": f"chatcmpl-sim{uuid.uuid4().hex[:20]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(req.get("model") or "simweb"),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })  # fmt: skip

    def _verify(self, name: str, country: str) -> dict[str, Any]:
        key = name_key(name)
        same = self.sim.by_key.get(key, [])
        match = next((p for p in same if p["country"].casefold() == country.casefold()), None)
        match = match or (same[0] if same else None)
        if match is None:
            return {"name": name, "verified": False, "reason": "no such public figure known"}
        reason = "well-known public figure" if match["real"] else "no public record of this person"
        return {"name": name, "verified": match["real"], "reason": reason}

    # -- (b) image search
    def _search(self) -> None:
        key = self.headers.get("x-rapidapi-key", "")
        if not key or key == "bad-key":
            self._json(401, {"message": "Invalid API key. Go to https://docs.rapidapi.com"})
            return
        if key == "forbidden":
            self._json(403, {"message": "You are not subscribed to this API."})
            return
        told = self.sim.take_retry_after()
        if told is not None:
            self._json(429, {"message": "Too many requests"}, {"Retry-After": f"{told:g}"})
            return
        qs = parse_qs(urlsplit(self.path).query)
        query = (qs.get("query") or [""])[0]
        try:
            limit = int((qs.get("limit") or ["100"])[0])
        except ValueError:
            self._json(400, {"status": "ERROR", "error": {"message": "limit must be an integer"}})
            return
        qkey = name_key(query)
        if qkey.startswith(SERVER_ERROR):
            self._json(500, {"status": "ERROR", "error": {"message": "internal error"}})
            return
        if qkey.startswith(RATE_LIMITED) and self.sim.take_rate_limit():
            self._json(429, {"message": "Too many requests"}, {"Retry-After": "1"})
            return
        request_id = uuid.uuid4().hex
        person = self.sim.find_person(query)
        if qkey.startswith(BAD_SHAPE):
            data = self._bad_shape_items(person, limit)
        else:
            data = self.sim.search_items(person, limit) if person else []
        self._json(200, {"status": "OK", "request_id": request_id, "data": data})

    def _bad_shape_items(self, person: dict | None, limit: int) -> list[Any]:
        good = self.sim.search_items(person, limit) if person else []
        base = {"id": "x", "title": "t", "thumbnail_url": None, "source": "s", "domain": "d"}
        broken: list[Any] = [
            {**base, "url": None, "width": 100, "height": 100},
            {**base, "width": 100, "height": 100},  # no url at all
            {**base, "url": "not a url", "width": 100, "height": 100},
            {**base, "url": f"{self.sim.url}/fault/tiny/ws", "width": "abc", "height": [1]},
            {**base, "url": f"{self.sim.url}/fault/tiny/wn", "width": "640", "height": 480.0},
            "just a string",
            None,
        ]
        return (good + broken)[: max(limit, 0)]

    # -- (d) faults
    def _fault(self, rest: str) -> None:
        kind, _, tail = rest.partition("/")
        qs = parse_qs(urlsplit(self.path).query)
        if kind == "404":
            self._text(404, "not found")
        elif kind == "500":
            self._text(500, "internal server error")
        elif kind == "status":
            code, _, _ = tail.partition("/")
            self._text(int(code) if code.isdigit() and 200 <= int(code) < 600 else 400, "status")
        elif kind == "500-then-ok":
            key, _, rel = tail.partition("/")
            if self.sim.first_time(key):
                self._text(500, "temporary failure")
            else:
                self._image(rel)
        elif kind == "slow":
            ms, _, rel = tail.partition("/")
            time.sleep(min(float(ms) if ms.isdigit() else 1000.0, 60_000) / 1000)
            self._image(rel)
        elif kind == "truncated":
            self._truncated(tail)
        elif kind == "html":
            page = b"<!doctype html><html><head><title>Photo</title></head><body>" + b"x" * 2000
            self._send(200, page + b"</body></html>", "text/html; charset=utf-8")
        elif kind == "oversized":
            self._oversized(nolength="nolength" in qs)
        elif kind == "redirect":
            n, _, rel = tail.partition("/")
            hops = int(n) if n.isdigit() else 0
            if hops > 0:
                self._redirect(f"{self.sim.url}/fault/redirect/{hops - 1}/{rel}")
            else:
                self._image(rel)
        elif kind == "redirect-private":
            self._redirect(f"http://127.0.0.1:{self.sim.closed_port}/x")
        elif kind == "tiny":
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (200, 120, 90)).save(buf, "PNG")
            self.sim.sleep_latency()
            self._send(200, buf.getvalue(), "image/png")
        else:
            self._text(404, f"unknown fault {kind!r}")

    def _truncated(self, rel: str) -> None:
        path = self.sim.safe_file(rel)
        if path is None:
            self._text(404, "not found")
            return
        body = path.read_bytes()
        self.sim.sleep_latency()
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _oversized(self, nolength: bool) -> None:
        self.sim.sleep_latency()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if nolength:
            self.send_header("Connection", "close")  # body ends when the connection does
        else:
            self.send_header("Content-Length", str(OVERSIZED_BYTES))
        self.end_headers()
        chunk = b"\xff\xd8\xff\xe0" + b"\0" * (_CHUNK - 4)
        for _ in range(OVERSIZED_BYTES // _CHUNK):  # lazily: never 64 MB in memory
            self.wfile.write(chunk)
            chunk = b"\0" * _CHUNK
        self.close_connection = True


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of ``times`` inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def _message_text(content: Any) -> str:
    """Chat message content: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise TypeError("unsupported message content")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simweb", description=__doc__.splitlines()[0])
    parser.add_argument("--people", required=True, help="people JSON file")
    parser.add_argument("--photos", required=True, help="folder the image paths are relative to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay per image response")
    args = parser.parse_args(argv)
    try:
        web = SimWeb(args.people, args.photos, args.host, args.port, args.latency_ms)
    except (OSError, ValueError) as exc:
        parser.error(f"cannot load people: {exc}")
    if not web.photos_dir.is_dir():
        parser.error(f"photos folder not found: {web.photos_dir}")
    try:
        web.start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    print(f"simweb serving {len(web.people)} people at {web.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        web.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
