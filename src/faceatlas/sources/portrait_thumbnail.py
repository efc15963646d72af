"""A Wikidata portrait (P18) as a small JPEG that our own server hands to the review page
(issue 24: naming a candidate shows each Wikidata hit's portrait as one types).

The review UI's CSP allows images from its own origin only, so the reviewer's browser never
calls Wikimedia itself: the server asks Commons for the file's standard 120-pixel thumbnail
through the polite client (User-Agent, pacing, disk cache), fetches it through the guarded
downloader (SSRF checks on every hop, byte cap), only from Wikimedia's file host or the
configured Commons host, decodes it and writes a fresh JPEG (nothing of the original file but
its pixels), cached on disk for a day. Which file names may be asked is the caller's business
(the UI signs the P18 names its Wikidata search returned).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from urllib.parse import urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from faceatlas.domain.errors import FaceAtlasError
from faceatlas.settings import Settings
from faceatlas.sources.commons import CommonsImageSearch
from faceatlas.sources.download import DownloadItem, download_all_sync
from faceatlas.store.files import Layout, read_cached, write_cached

log = logging.getLogger(__name__)

#: a standard Commons thumbnail width (Wikimedia asks clients to keep to its standard steps)
SIDE = 120
#: a 120-pixel thumbnail is a few KB; anything past this is not one
MAX_BYTES = 1_000_000
CACHE_SECONDS = 24 * 3600
#: a Commons file name of a photo as P18 holds it (no path, no wiki markup, no control chars)
FILE_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\#<>\[\]{}|]{1,240}\.(?:jpe?g|png|webp|tiff?)$",
                       re.IGNORECASE)
FILE_HOST = "upload.wikimedia.org"


def portrait_thumbnail(settings: Settings, file_name: str) -> bytes | None:
    """A JPEG at most ``SIDE`` pixels a side of the Commons file ``file_name``, or None (not
    a photo's name, not on Commons, Commons unreachable, not an image)."""
    if not FILE_NAME.match(file_name):
        return None
    key = hashlib.sha256(f"{SIDE}:{file_name}".encode()).hexdigest()
    path = Layout(settings.home).cache_file("portraits", key).with_suffix(".jpg")
    cached = read_cached(path, CACHE_SECONDS)
    if cached is not None:
        return cached
    try:
        with CommonsImageSearch(settings) as commons:
            url = commons.file_thumbnail_url(file_name, SIDE)
    except FaceAtlasError as exc:
        log.info("portrait %r: Commons could not be asked: %s", file_name, exc)
        return None
    if url is None or not _file_host(settings, url):
        log.info("portrait %r: no thumbnail on a Wikimedia file host (%s)", file_name, url)
        return None
    [got] = download_all_sync([DownloadItem(0, url)], settings=settings, max_bytes=MAX_BYTES,
                              timeout=10.0, retries=0, min_side=16)
    if not got.ok or got.content is None:
        log.info("portrait %r: %s", file_name, got.reason)
        return None
    data = _jpeg(got.content, settings.max_pixels)
    if data is not None:
        write_cached(path, data)
    return data


def _file_host(settings: Settings, url: str) -> bool:
    """Wikimedia's file server, or the host of the configured Commons API (a replica)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in (FILE_HOST, (urlsplit(settings.commons_api_url).hostname or "").lower())


def _jpeg(raw: bytes, max_pixels: int) -> bytes | None:
    """A fresh JPEG of at most SIDE px a side, or None for what is not a picture or is larger
    than ``max_pixels`` (checked from the header: ``faces.image`` switches Pillow's own
    decompression-bomb guard off for the process)."""
    try:
        with Image.open(io.BytesIO(raw)) as pic:
            if pic.width * pic.height > max_pixels:
                return None
            pic.draft("RGB", (SIDE, SIDE))  # a JPEG decodes straight at a reduced scale
            small = ImageOps.exif_transpose(pic).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    small.thumbnail((SIDE, SIDE))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=85)
    return out.getvalue()
