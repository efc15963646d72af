"""Wikimedia Commons as a keyless image source, by Wikidata Q-id.

For one person: the Wikidata portrait (P18) first — curated, so it is the person's trusted
reference — then the files of the person's Commons category (P373) and the files whose
"depicts" (P180) statement is the person. Every file comes as the official thumbnail at the
width the face engine works at (``iiurlwidth``), with its licence and author
(``extmetadata``). A person without a Q-id is looked up by name (the first human Wikidata
finds). The P18 hit is stored as the person's rank-0 candidate with provider ``commons``,
query ``P18 of Q…`` and detail ``p18``; :func:`portrait_image_id` finds it again.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from sqlalchemy import select

from faceatlas.names.wikidata import HUMAN, QID, Wikidata, claim_ids, claim_strings
from faceatlas.settings import Settings, get_settings
from faceatlas.sources.base import PersonQuery, SearchHit
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Image
from faceatlas.web.wikimedia import WikimediaClient

log = logging.getLogger(__name__)

PROVIDER = "commons"
PORTRAIT = "p18"  # Image.detail of the Wikidata portrait when stored
PORTRAIT_QUERY = "P18 of "  # Image.query prefix of the portrait (detail may change later)
# Photos only: drawings (SVG), documents and media have no faces worth curating.
MIMES = {"image/jpeg", "image/png", "image/webp", "image/tiff"}
IIPROP = "url|size|mime|extmetadata"
EXTMETA = "LicenseShortName|LicenseUrl|Artist|UsageTerms"


class CommonsImageSearch:
    """Image provider over Wikidata + Commons; also answers plain queries (file search)."""

    name = PROVIDER

    def __init__(self, settings: Settings, client: WikimediaClient | None = None) -> None:
        self.settings = settings
        self.client = client or WikimediaClient(settings)
        self._own = client is None
        self.wikidata = Wikidata(settings, self.client)
        self.api_url = settings.commons_api_url

    def close(self) -> None:
        if self._own:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CommonsImageSearch(api={self.api_url!r})"

    # -- the provider protocols
    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search in the File namespace (for chains that only have a query)."""
        return self._files({"generator": "search", "gsrsearch": query, "gsrnamespace": "6"},
                           "gsrlimit", limit, query)  # fmt: skip

    def search_person(self, person: PersonQuery, limit: int) -> list[SearchHit]:
        qid = person.qid or self.find_qid(person.name)
        if qid is None:
            log.info("commons: no Wikidata item found for %r", person.name)
            return []
        entity = self.wikidata.entities([qid], "claims").get(qid, {})
        hits: list[SearchHit] = []
        portrait = next(iter(claim_strings(entity, "P18")), None)
        if portrait:
            hits += self._files({"titles": f"File:{portrait}"}, None, 1, f"{PORTRAIT_QUERY}{qid}",
                                detail=PORTRAIT)  # fmt: skip
        for category in claim_strings(entity, "P373")[:1]:
            hits += self._files({"generator": "categorymembers", "gcmtype": "file",
                                 "gcmtitle": f"Category:{category}"}, "gcmlimit",
                                self.settings.commons_category_files, f"Category:{category}")
        hits += self._files({"generator": "search", "gsrnamespace": "6",
                             "gsrsearch": f"haswbstatement:P180={qid}"}, "gsrlimit",
                            self.settings.commons_depicts_files, f"haswbstatement:P180={qid}")
        unique: list[SearchHit] = []
        seen: set[str] = set()
        for hit in hits:
            if hit.url not in seen:
                seen.add(hit.url)
                unique.append(_ranked(hit, len(unique)))
        return unique[:limit]

    # -- pieces
    def find_qid(self, name: str) -> str | None:
        """The first human Wikidata finds for ``name`` (people without a stored Q-id)."""
        ids = self.wikidata.search(name, 5)
        if not ids:
            return None
        data = self.wikidata.entities(ids, "claims")
        return next((q for q in ids if HUMAN in claim_ids(data.get(q, {}), "P31")), None)

    def portrait_url(self, qid: str) -> str | None:
        """The thumbnail URL of the person's Wikidata portrait (P18), or None."""
        if not QID.match(qid):
            raise ValueError(f"not a Q-id: {qid!r}")
        entity = self.wikidata.entities([qid], "claims").get(qid, {})
        portrait = next(iter(claim_strings(entity, "P18")), None)
        if not portrait:
            return None
        return self.file_thumbnail_url(portrait, self.settings.commons_thumb_width)

    def file_thumbnail_url(self, file_name: str, width: int) -> str | None:
        """The URL of Commons' ``width``-pixel thumbnail of one file (a photo), or None."""
        hits = self._files({"titles": f"File:{file_name}", "iiurlwidth": str(width)}, None, 1,
                           file_name)
        return hits[0].url if hits else None

    def _files(self, params: dict[str, str], limit_key: str | None, limit: int, query: str,
               detail: str | None = None) -> list[SearchHit]:
        hits: list[SearchHit] = []
        for page in self._pages(params, limit_key, limit):
            hit = _hit(page, query, len(hits), detail)
            if hit is not None:
                hits.append(hit)
        return hits[:limit]

    def _pages(self, params: dict[str, str], limit_key: str | None,
               limit: int) -> Iterator[dict[str, Any]]:
        """Pages with imageinfo (thumbnails the engine's width unless ``params`` say
        ``iiurlwidth``), following ``continue`` until ``limit`` pages were seen."""
        base = {"action": "query", "prop": "imageinfo", "iiprop": IIPROP,
                "iiextmetadatafilter": EXTMETA,
                "iiurlwidth": str(self.settings.commons_thumb_width), **params}  # fmt: skip
        if limit_key:
            base[limit_key] = str(min(max(limit, 1), 50))
        seen, cont = 0, {}
        for _ in range(20):  # a bound on continuation, whatever the server says
            body = self.client.api(self.api_url, {**base, **cont})
            pages = (body.get("query") or {}).get("pages") or []
            if isinstance(pages, dict):  # formatversion 1
                pages = list(pages.values())
            pages = sorted((p for p in pages if isinstance(p, dict)),
                           key=lambda p: p.get("index", 0))  # search order, when given
            for page in pages:
                if seen >= limit:
                    return
                seen += 1
                yield page
            nxt = body.get("continue")
            if not isinstance(nxt, dict) or seen >= limit or not limit_key:
                return
            cont = {str(k): str(v) for k, v in nxt.items()}


def _hit(page: dict[str, Any], query: str, rank: int, detail: str | None) -> SearchHit | None:
    if page.get("missing") is not None and page.get("missing") is not False:
        log.info("commons: %s is missing", page.get("title"))
        return None
    infos = page.get("imageinfo")
    if not isinstance(infos, list) or not infos or not isinstance(infos[0], dict):
        return None
    info = infos[0]
    if info.get("mime") not in MIMES:
        return None
    url = info.get("thumburl") or info.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "//")):
        return None
    meta = info.get("extmetadata") or {}
    original = info.get("url") if isinstance(info.get("url"), str) else None
    return SearchHit(
        url=_absolute(url),
        thumbnail_url=_absolute(original) if original and original != url else None,
        width=_int(info.get("thumbwidth") or info.get("width")),
        height=_int(info.get("thumbheight") or info.get("height")),
        source_url=_absolute(info["descriptionurl"]) if info.get("descriptionurl") else None,
        title=str(page.get("title") or "")[:500] or None, rank=rank, query=query,
        provider=PROVIDER, licence=_meta(meta, "LicenseShortName") or _meta(meta, "UsageTerms"),
        licence_url=_meta(meta, "LicenseUrl"), author=_meta(meta, "Artist"), detail=detail,
    )  # fmt: skip


def _ranked(hit: SearchHit, rank: int) -> SearchHit:
    from dataclasses import replace

    return replace(hit, rank=rank)


def _meta(meta: dict[str, Any], key: str) -> str | None:
    """A plain-text extmetadata value: Commons sends HTML (links around the author's name)."""
    value = meta.get(key)
    text = value.get("value") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return None
    plain = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
    return plain[:500] or None


def _absolute(url: str) -> str:
    return "https:" + url if url.startswith("//") else url


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


# -- for curation's trusted reference (see faceatlas.curation.references once merged)
def portrait_url(qid: str, settings: Settings | None = None) -> str | None:
    """The thumbnail URL of the Wikidata portrait (P18) of ``qid``, or None when it has none."""
    with CommonsImageSearch(settings or get_settings()) as commons:
        return commons.portrait_url(qid)


def portrait_image_id(settings: Settings, person_id: int) -> int | None:
    """The person's downloaded P18 portrait (an ``images`` row id), or None."""
    with session_scope(settings) as s:
        return s.scalar(select(Image.id).where(
            Image.person_id == person_id, Image.provider == PROVIDER,
            Image.query.like(f"{PORTRAIT_QUERY}%"), Image.path.is_not(None),
        ).order_by(Image.rank).limit(1))  # fmt: skip


def portrait_path(settings: Settings, person_id: int) -> Path | None:
    """The stored file of the person's downloaded P18 portrait (absolute), or None."""
    with session_scope(settings) as s:
        rel = s.scalar(select(Image.path).where(
            Image.person_id == person_id, Image.provider == PROVIDER,
            Image.query.like(f"{PORTRAIT_QUERY}%"), Image.path.is_not(None),
        ).order_by(Image.rank).limit(1))  # fmt: skip
    return Layout(settings.home).absolute(rel) if rel else None


__all__ = ["PORTRAIT", "PROVIDER", "CommonsImageSearch", "portrait_image_id", "portrait_path",
           "portrait_url"]
