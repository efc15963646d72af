"""Stage 2b: safe, concurrent, recorded image downloads.

Every URL from a search hit is untrusted. So: each hop (including every redirect) passes the
SSRF guard and connects to the address that was checked; bodies stream under a byte cap; each
URL has a total deadline; transient failures (connect errors, 5xx, timeouts) retry with
backoff, 4xx do not; a failed ``url`` falls back to ``thumbnail_url``; the body must decode as
an image of a usable size. Each result carries a reason code and every HTTP attempt, so the
person's page can say why a photo is missing.

Reason codes: ``http_<status>``, ``timeout``, ``too_large``, ``not_an_image``, ``too_small``,
``truncated``, ``decode_error``, ``too_many_redirects``, ``unsafe_url``, ``connect_error``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from faceatlas.domain.errors import DownloadError, UnsafeURLError
from faceatlas.settings import Settings, get_settings
from faceatlas.web.guard import CheckedURL, pinned_target, resolve_url
from faceatlas.web.wikimedia import user_agent

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
# Many image hosts answer 403 or an HTML page to clients that do not look like a browser.
BROWSER_HEADERS = {
    "User-Agent": CHROME_UA,
    "Accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Sec-Fetch-Dest": "image",
    "Sec-Fetch-Mode": "no-cors",
}
_REDIRECTS = {301, 302, 303, 307, 308}


def _wikimedia_agent(settings: Settings) -> str:
    return user_agent(settings.wikimedia_contact)


def _wikimedia_hosts(settings: Settings) -> frozenset[str]:
    """``host:port`` of Wikimedia's file servers and of the configured Commons API."""
    hosts = {"upload.wikimedia.org:443"}
    url = urlsplit(settings.commons_api_url)
    if url.hostname:
        hosts.add(f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}")
    return frozenset(hosts)


@dataclass(frozen=True)
class DownloadItem:
    key: int | str
    url: str
    fallback_url: str | None = None


@dataclass
class DownloadAttempt:
    """One HTTP request (a redirect hop or a retry is its own attempt)."""

    url: str
    status: int | None
    bytes: int
    sha256: str | None
    error: str | None
    elapsed_ms: float


@dataclass
class DownloadResult:
    key: int | str
    ok: bool
    content: bytes | None
    sha256: str | None
    final_url: str | None
    reason: str | None  # None when ok; else the primary URL's reason code
    attempts: list[DownloadAttempt] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    duplicate_of: int | str | None = None  # same bytes as an earlier item of this call
    url_reason: str | None = None  # why ``url`` failed when the thumbnail was used instead


@dataclass(frozen=True)
class DownloadOptions:
    concurrency: int = 16
    per_host: int = 4  # per host:port, to stay polite to one image host
    max_bytes: int = 15_000_000
    timeout: float = 20.0  # total deadline per URL: all hops and retries
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # per socket read, so a stalled host fails before the deadline
    retries: int = 2
    backoff: float = 0.25
    max_redirects: int = 5
    min_side: int = 64
    max_pixels: int = 50_000_000
    full_decode: bool = False  # decode JPEGs fully too (CPU-heavy; see inspect_image)
    allow_private: bool = False
    trusted: frozenset[str] = frozenset()  # exact "host:port" let through the SSRF guard
    # Wikimedia asks automated clients for a descriptive User-Agent (issue 14): used instead
    # of the browser one for these "host:port"s
    agent: str | None = None
    agent_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted", frozenset(self.trusted))
        object.__setattr__(self, "agent_hosts", frozenset(self.agent_hosts))
        for name in ("concurrency", "per_host", "max_bytes", "min_side", "max_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"download option {name} must be at least 1")
        for name in ("timeout", "connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"download option {name} must be positive")
        if self.retries < 0 or self.max_redirects < 0 or self.backoff < 0:
            raise ValueError("download options retries, max_redirects, backoff must be >= 0")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DownloadOptions:
        base = cls(
            concurrency=settings.download_concurrency,
            per_host=settings.download_per_host,
            max_bytes=settings.download_max_bytes,
            timeout=settings.download_timeout,
            retries=settings.download_retries,
            allow_private=settings.allow_private_networks,
            max_pixels=settings.max_pixels,
            agent=_wikimedia_agent(settings), agent_hosts=_wikimedia_hosts(settings),
        )
        return base.with_(**overrides)

    def with_(self, **overrides: Any) -> DownloadOptions:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown download option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)


class _Fail(DownloadError):
    """One try of one URL failed; ``reason`` (also its ``code``) is the attempt's error."""

    def __init__(self, reason: str, detail: str = "", *, transient: bool = False) -> None:
        super().__init__(detail or reason, code=reason)
        self.reason, self.transient = reason, transient


@dataclass
class _Body:
    content: bytes
    final_url: str
    content_type: str | None
    sha256: str


@dataclass
class _Budget:
    """The per-URL deadline starts with the first request, not while queued on a semaphore."""

    seconds: float
    deadline: float | None = None


def _jpeg_scan_start(data: bytes) -> int | None:
    """Offset of the first SOS (start of scan) marker, walking the header segments (so an EXIF
    thumbnail inside APP1 is skipped whole); None if the header is broken."""
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _jpeg_complete(data: bytes) -> bool:
    """A whole JPEG has its EOI (FF D9) after the main scan starts. Inside entropy-coded data
    FF is byte-stuffed, so FF D9 there is a real marker; a body cut short lacks it."""
    scan = _jpeg_scan_start(data)
    return scan is not None and data.rfind(b"\xff\xd9") > scan


def inspect_image(
    data: bytes, min_side: int = 64, max_pixels: int = 50_000_000, full_decode: bool = False
) -> tuple[int, int]:
    """(width, height) if ``data`` is a usable image; raises DownloadError with a reason code
    (not_an_image, truncated, too_small, too_large, decode_error) otherwise.

    JPEGs get a structural check (header, verify, EOI after the scan) instead of a full
    decode: decoding costs ~10 ms per web photo, which made a 2-core downloader CPU-bound,
    and the face stage decodes each image anyway (a corrupt middle shows up there as
    decode_error). Other formats, or ``full_decode=True``, are decoded fully."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            fmt = im.format
            if width * height > max_pixels:
                raise DownloadError(f"{width}x{height} is over {max_pixels} px", code="too_large")
            im.verify()  # structure and checksums (PNG CRCs up to IEND), cheap
        if fmt == "JPEG" and not full_decode:
            if not _jpeg_complete(data):
                raise DownloadError("JPEG ends before its end marker", code="truncated")
        else:
            with Image.open(io.BytesIO(data)) as im:
                # draft(): libjpeg decodes at 1/8 scale — same bytes read, far less work.
                im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                im.load()
    except DownloadError:
        raise
    except UnidentifiedImageError:
        raise DownloadError("not an image", code="not_an_image") from None
    except Image.DecompressionBombError as exc:
        raise DownloadError(str(exc), code="too_large") from None
    except Exception as exc:  # Pillow raises many types for broken files
        code = "truncated" if "truncat" in str(exc).lower() else "decode_error"
        raise DownloadError(f"image does not decode: {exc}", code=code) from None
    if min(width, height) < min_side:
        raise DownloadError(f"{width}x{height} is under {min_side} px", code="too_small")
    return width, height


class _Downloader:
    def __init__(self, client: httpx.AsyncClient, opts: DownloadOptions) -> None:
        self.client, self.opts = client, opts
        self.slots = asyncio.Semaphore(opts.concurrency)
        self.host_slots: dict[str, asyncio.Semaphore] = {}
        self.timeout = httpx.Timeout(
            connect=opts.connect_timeout, read=opts.read_timeout, write=opts.read_timeout,
            pool=None,  # waiting for a pooled connection is bounded by our semaphores
        )  # fmt: skip

    async def item(self, item: DownloadItem) -> DownloadResult:
        attempts: list[DownloadAttempt] = []
        reasons: list[str] = []
        for url in (item.url, item.fallback_url):
            if url is None or (url == item.url and reasons):
                continue
            try:
                body = await self.fetch(url, attempts)
                width, height = await asyncio.to_thread(
                    inspect_image, body.content, self.opts.min_side, self.opts.max_pixels,
                    self.opts.full_decode,
                )
            except _Fail as exc:
                reasons.append(exc.reason)
                continue
            except DownloadError as exc:
                attempts[-1].error = exc.code  # the body arrived but is not a usable image
                reasons.append(exc.code)
                continue
            return DownloadResult(item.key, True, body.content, body.sha256, body.final_url,
                                  None, attempts, width, height, body.content_type,
                                  url_reason=reasons[0] if reasons else None)  # fmt: skip
        return DownloadResult(item.key, False, None, None, None, reasons[0], attempts)

    async def fetch(self, url: str, attempts: list[DownloadAttempt]) -> _Body:
        """One URL with retries; each try follows redirects."""
        budget = _Budget(self.opts.timeout)
        for attempt in range(self.opts.retries + 1):
            try:
                return await self.follow(url, attempts, budget)
            except _Fail as exc:
                if not exc.transient or attempt == self.opts.retries:
                    raise
            pause = self.opts.backoff * (2**attempt) * random.uniform(0.5, 1.5)
            loop_time = asyncio.get_running_loop().time()
            if budget.deadline is not None and loop_time + pause >= budget.deadline:
                raise _Fail("timeout", "deadline reached before the next retry")
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def follow(self, url: str, attempts: list[DownloadAttempt], budget: _Budget) -> _Body:
        current = url
        for _hop in range(self.opts.max_redirects + 1):
            checked = await self.check(current, attempts)
            result = await self.request(checked, attempts, budget)
            if isinstance(result, _Body):
                return result
            current = urljoin(current, result)  # a redirect's Location, maybe relative
        if attempts:
            attempts[-1].error = "too_many_redirects"
        raise _Fail("too_many_redirects", f"more than {self.opts.max_redirects} redirects")

    async def check(self, url: str, attempts: list[DownloadAttempt]) -> CheckedURL:
        t0 = time.perf_counter()
        try:
            # getaddrinfo blocks: run it off the event loop.
            return await asyncio.to_thread(
                resolve_url, url, allow_private=self.opts.allow_private, trusted=self.opts.trusted
            )
        except DownloadError as exc:
            reason = "unsafe_url" if isinstance(exc, UnsafeURLError) else "connect_error"
            elapsed = (time.perf_counter() - t0) * 1000
            attempts.append(DownloadAttempt(url, None, 0, None, reason, elapsed))
            raise _Fail(reason, str(exc), transient=reason == "connect_error") from None

    def _host_slot(self, key: str) -> asyncio.Semaphore:
        if key not in self.host_slots:
            self.host_slots[key] = asyncio.Semaphore(self.opts.per_host)
        return self.host_slots[key]

    async def request(
        self, checked: CheckedURL, attempts: list[DownloadAttempt], budget: _Budget
    ) -> _Body | str:
        """One GET: the body, or the Location of a redirect."""
        target, extra_headers, extensions = pinned_target(checked)
        # Host slot first, then a global slot: never hold a global slot while queued on a host.
        async with self._host_slot(checked.netloc_key), self.slots:
            loop = asyncio.get_running_loop()
            if budget.deadline is None:
                budget.deadline = loop.time() + budget.seconds
            t0 = time.perf_counter()
            status: int | None = None
            received = 0
            sha: str | None = None
            error: str | None = "timeout"  # stays so if the deadline cancels us mid-request
            try:
                async with asyncio.timeout_at(budget.deadline):
                    result = await self._get(target, checked, extra_headers, extensions)
                status, received = result[0], result[1]
                body_or_location = result[2]
                if isinstance(body_or_location, _Body):
                    sha = body_or_location.sha256
                error = None
                return body_or_location
            except TimeoutError:
                raise _Fail("timeout", "per-URL deadline reached", transient=True) from None
            except _Fail as exc:
                error = exc.reason
                status = getattr(exc, "status", status)
                received = getattr(exc, "received", received)
                raise
            finally:
                elapsed = (time.perf_counter() - t0) * 1000
                attempts.append(DownloadAttempt(checked.url, status, received, sha, error, elapsed))

    async def _get(
        self,
        target: str,
        checked: CheckedURL,
        extra_headers: dict[str, str],
        extensions: dict[str, str],
    ) -> tuple[int, int, _Body | str]:
        status: int | None = None
        received = 0

        def fail(reason: str, detail: str = "", transient: bool = False) -> _Fail:
            exc = _Fail(reason, detail, transient=transient)
            exc.status, exc.received = status, received  # type: ignore[attr-defined]
            return exc

        try:
            headers = {**BROWSER_HEADERS, **extra_headers}
            if self.opts.agent and checked.netloc_key in self.opts.agent_hosts:
                headers["User-Agent"] = self.opts.agent
            request = self.client.build_request(
                "GET", target, headers=headers,
                timeout=self.timeout, extensions=extensions,
            )  # fmt: skip
            response = await self.client.send(request, stream=True, follow_redirects=False)
            try:
                status = response.status_code
                if status in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise fail(f"http_{status}", "redirect without Location")
                    return status, 0, location
                if status >= 300:
                    raise fail(f"http_{status}", transient=status >= 500)
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.opts.max_bytes:
                    raise fail("too_large", f"Content-Length {length} > {self.opts.max_bytes}")
                chunks: list[bytes] = []
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > self.opts.max_bytes:
                        raise fail("too_large", f"body over {self.opts.max_bytes} bytes")
                    chunks.append(chunk)
            finally:
                await response.aclose()  # unread body: the connection is dropped, not reused
        except httpx.TimeoutException as exc:
            raise fail("timeout", str(exc), transient=True) from None
        except httpx.ConnectError as exc:
            raise fail("connect_error", str(exc), transient=True) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if status is not None:  # headers came, the body broke off
                raise fail("truncated", str(exc)) from None
            raise fail("connect_error", str(exc), transient=True) from None
        except httpx.DecodingError as exc:
            raise fail("decode_error", str(exc)) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise fail("connect_error", f"{type(exc).__name__}: {exc}") from None
        content = b"".join(chunks)
        sha = hashlib.sha256(content).hexdigest()
        body = _Body(content, checked.url, response.headers.get("content-type"), sha)
        return status, received, body


def new_client(opts: DownloadOptions) -> httpx.AsyncClient:
    """The client ``download_all`` uses when none is given."""
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    # trust_env=False: an environment proxy would fetch on our behalf, past the SSRF guard.
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)


def _check_items(items: Sequence[DownloadItem]) -> list[DownloadItem]:
    checked = []
    for i, item in enumerate(items):
        if not isinstance(item, DownloadItem):
            raise TypeError(f"item #{i} is {type(item).__name__}, expected DownloadItem")
        if not isinstance(item.url, str) or not (
            item.fallback_url is None or isinstance(item.fallback_url, str)
        ):
            raise TypeError(f"item #{i} ({item.key!r}): url and fallback_url must be strings")
        checked.append(item)
    return checked


async def download_all(
    items: Sequence[DownloadItem],
    *,
    options: DownloadOptions | None = None,
    settings: Settings | None = None,
    client: httpx.AsyncClient | None = None,
    progress: Callable[[DownloadResult], None] | None = None,
    trusted: Collection[str] = (),
    **overrides: Any,
) -> list[DownloadResult]:
    """Download every item; results in input order, one per item, never raising per URL.

    Options come from ``options``, else from ``settings`` (default: ``get_settings()``), then
    keyword ``overrides`` (any DownloadOptions field, e.g. ``concurrency=1``). ``progress`` is
    called with each result as it completes.
    """
    work = _check_items(items)
    opts = options or DownloadOptions.from_settings(settings or get_settings())
    if trusted:
        overrides["trusted"] = frozenset(opts.trusted) | frozenset(trusted)
    opts = opts.with_(**overrides) if overrides else opts
    own_client = client is None
    http = client or new_client(opts)
    downloader = _Downloader(http, opts)

    async def one(item: DownloadItem) -> DownloadResult:
        result = await downloader.item(item)
        if progress is not None:
            progress(result)
        return result

    try:
        results = list(await asyncio.gather(*(one(item) for item in work)))
    finally:
        if own_client:
            await http.aclose()
    first_by_sha: dict[str, int | str] = {}
    for result in results:
        if result.ok and result.sha256:
            if result.sha256 in first_by_sha:
                result.duplicate_of = first_by_sha[result.sha256]
            else:
                first_by_sha[result.sha256] = result.key
    return results


def download_all_sync(items: Sequence[DownloadItem], **kwargs: Any) -> list[DownloadResult]:
    """``download_all`` for synchronous callers (CLI, Celery tasks); not inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(download_all(items, **kwargs))
    raise RuntimeError("download_all_sync called inside an event loop: await download_all")
