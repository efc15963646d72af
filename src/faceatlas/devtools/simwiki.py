"""Wikidata and Wikimedia Commons on loopback, for simweb: the same answers, smaller world.

Routes (mounted by simweb; point the settings at them, e.g.
``FACEATLAS_WIKIDATA_API_URL=http://127.0.0.1:8765/wikidata/w/api.php``):

- ``/wikidata/w/api.php``       ``wbsearchentities``, ``wbgetentities`` (labels, descriptions,
                                claims: P31, P27, P106, P18, P373, P570, P37, P424, P279)
- ``/wikidata/wiki/Special:EntityData/<Q>.json``
- ``/wikidata/sparql``          SPARQL 1.1 JSON results for the queries faceatlas sends: the
                                famous-people query (P27, P106/P279*, sitelinks, P570 filter,
                                LIMIT, label languages) and the ``VALUES ?person`` check
- ``/commons/w/api.php``        ``action=query``: ``prop=imageinfo`` (url, size, mime,
                                extmetadata, ``iiurlwidth`` thumbnails), ``categorymembers``
                                and ``search`` (``haswbstatement:P180=Q…``) as list or generator,
                                with continuation; formatversion 1 and 2
- ``/upload/wikipedia/commons/[thumb/]a/ab/<File>[/<w>px-<File>]``  originals and thumbnails

People come from simweb's people file; optional keys per person: ``qid``, ``labels``
(``{"sr": "Новак Ђоковић", "en": "Novak Djokovic"}``), ``sitelinks``, ``died``, ``p18`` (a
photo path, ``null`` for none; default: the first plain image), ``commons`` (category files;
default: the other plain images), ``depicts`` (files whose P180 is this person; a file listed
by several people depicts them all), ``category``. ``entities`` at the top of the file adds
countries/occupations (``{"id", "label", "kind", "languages", "subclass_of", "description"}``).

Faults: ``sim.wiki.faults["sparql"|"wikidata"|"commons"|"upload"]`` is a queue of
``timeout``, ``429``, ``503``, ``malformed``, ``maxlag``, ``403``; each request takes the
next one.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

from PIL import Image

from faceatlas.domain.names import name_key


class Host(Protocol):
    """What the Wikimedia part needs of the simweb that mounts it."""

    people: list[dict[str, Any]]

    @property
    def url(self) -> str: ...

    def safe_file(self, rel: str) -> Path | None: ...

    def image_size(self, path: Path) -> tuple[int, int]: ...

#: extra keys a people-file entry may carry for the Wikimedia simulation
WIKI_KEYS = ("qid", "labels", "sitelinks", "died", "p18", "commons", "depicts", "category")
PREFIXES = ("/wikidata/", "/commons/", "/upload/")
ENTITY = "http://www.wikidata.org/entity/"

KNOWN_IDS = {
    "serbia": "Q403", "croatia": "Q224", "united states": "Q30", "united kingdom": "Q145",
    "actor": "Q33999", "athlete": "Q2066131", "singer": "Q177220", "politician": "Q82955",
    "tennis player": "Q10833314", "writer": "Q36180", "human": "Q5",
    "serbian": "Q9299", "croatian": "Q6654", "english": "Q1860",
}  # fmt: skip
COUNTRY_LANGUAGES = {"serbia": ["sr"], "croatia": ["hr"], "united states": ["en"],
                     "united kingdom": ["en"]}  # fmt: skip
LANGUAGE_NAMES = {"sr": "Serbian", "hr": "Croatian", "en": "English"}
KIND_P31 = {"country": ["Q6256", "Q3624078"], "occupation": ["Q28640", "Q12737077"],
            "language": ["Q34770"]}  # fmt: skip
# Search noise of the right word but the wrong kind: resolution must not pick these.
DECOYS = {"country": ("{} national football team", "Q6979593", "national football team"),
          "occupation": ("{} (film)", "Q11424", "film")}  # fmt: skip
LICENCES = (("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0"),
            ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0"),
            ("Public domain", None))  # fmt: skip
FAULT_KINDS = ("timeout", "429", "503", "malformed", "maxlag", "403")


def _qid(text: str) -> str:
    """A stable made-up Q-id (10–100 million: clear of the known small ones)."""
    return f"Q{int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % 90_000_000 + 10_000_000}"


def _underscored(title: str) -> str:
    return " ".join(title.replace("_", " ").split()).replace(" ", "_")


class WikiSim:
    """The Wikimedia part of simweb: an entity registry, Commons files and fault queues."""

    def __init__(self, sim: Host, raw: Any = None) -> None:
        self.sim = sim
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.timeout_sleep = 2.0  # what a "timeout" fault stalls for (clients time out first)
        self.lag = 0.0  # database lag reported to maxlag (0: never lagging)
        self.user_agents: list[str] = []
        self._lock = threading.Lock()
        self._thumbs: dict[tuple[str, int], bytes] = {}
        self.entities: dict[str, dict[str, Any]] = {}
        self.people: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}  # underscored name (no "File:") → file
        self._build(_top_entities(raw))

    # -- the world
    def _entity(self, label: str, kind: str, **extra: Any) -> dict[str, Any]:
        key = label.casefold()
        for e in self.entities.values():
            if e["kind"] == kind and e["label"].casefold() == key and "id" not in extra:
                return e  # an explicit id makes a second item of the same label (ambiguity)
        eid = extra.pop("id", None) or KNOWN_IDS.get(key) or _qid(f"{kind}|{key}")
        entity = {"id": eid, "label": label, "kind": kind, "description": "",
                  "languages": [], "subclass_of": [], "p31": KIND_P31.get(kind, []), **extra}
        self.entities[eid] = entity
        if kind in DECOYS:
            text, p31, desc = DECOYS[kind]
            decoy = text.format(label)
            did = _qid(f"decoy|{decoy}")
            self.entities[did] = {"id": did, "label": decoy, "kind": "decoy", "description": desc,
                                  "languages": [], "subclass_of": [], "p31": [p31]}  # fmt: skip
        return entity

    def _occupation(self, label: str) -> dict[str, Any]:
        """An occupation by label; an extra entity of kind "untyped" (no P31) counts too."""
        for e in self.entities.values():
            if e["kind"] == "untyped" and e["label"].casefold() == label.casefold():
                return e
        return self._entity(label, "occupation")

    def _language(self, code: str) -> dict[str, Any]:
        name = LANGUAGE_NAMES.get(code, code)
        return self._entity(name, "language", code=code, description="language")

    def _build(self, extra_entities: list[dict[str, Any]]) -> None:
        for e in extra_entities:
            entity = self._entity(str(e["label"]), str(e.get("kind", "occupation")),
                                  **({"id": e["id"]} if e.get("id") else {}))  # fmt: skip
            entity["description"] = str(e.get("description", ""))
            entity["subclass_of"] = [str(x) for x in e.get("subclass_of", [])]
            if e.get("languages"):
                entity["languages"] = [self._language(c)["id"] for c in e["languages"]]
        for rank, p in enumerate(self.sim.people):
            country = self._entity(p["country"] or "Nowhere", "country")
            if not country["languages"]:
                codes = COUNTRY_LANGUAGES.get(country["label"].casefold(), ["en"])
                country["languages"] = [self._language(c)["id"] for c in codes]
            occupations = [self._occupation(o)["id"] for o in p["occupations"]]
            plain = [x for x in p["images"] if not x.startswith("fault:")]
            p18 = p["p18"] if "p18" in p else (plain[0] if plain else None)
            commons = p.get("commons", [x for x in plain if x != p18])
            labels = p.get("labels") or {"en": p["name"]}
            person = {
                "id": p.get("qid") or _qid(f"person|{p['name']}|{p['country']}"),
                "name": p["name"], "labels": dict(labels), "real": p["real"],
                "sitelinks": int(p.get("sitelinks", 200 - rank)), "died": p.get("died"),
                "country": country["id"], "occupations": occupations,
                "description": f"{country['label']} {', '.join(p['occupations']).lower()}",
            }  # fmt: skip
            person["p18"] = self._file(p18, labels, person["id"]) if p18 else None
            person["commons"] = [self._file(x, labels, person["id"]) for x in commons]
            person["category"] = p.get("category") or (
                next(iter(labels.values())) if person["commons"] else None)
            for x in p.get("depicts", []):
                self.files[self._file(x, labels, person["id"])]["depicts"].append(person["id"])
            if person["real"] and p.get("qid") is not False:  # invented or unlisted: no item
                self.people.append(person)

    def _file(self, rel: str, labels: dict[str, str], owner: str) -> str:
        for name, f in self.files.items():
            if f["rel"] == rel:
                return name
        base = labels.get("en") or next(iter(labels.values()))
        n = 1 + sum(1 for f in self.files.values() if f["owner"] == owner)
        ext = Path(rel).suffix.lower() or ".jpg"
        name = _underscored(f"{base} {n}{ext}")
        licence, licence_url = LICENCES[len(self.files) % len(LICENCES)]
        self.files[name] = {"rel": rel, "owner": owner, "depicts": [], "pageid": 1000 + len(
            self.files), "licence": licence, "licence_url": licence_url,
            "author": f"Photographer {len(self.files) + 1}"}  # fmt: skip
        return name

    def person(self, qid: str) -> dict[str, Any] | None:
        return next((p for p in self.people if p["id"] == qid), None)

    def take_fault(self, endpoint: str) -> str | None:
        with self._lock:
            queue = self.faults.get(endpoint)
            return queue.pop(0) if queue else None

    # -- URLs
    def upload_url(self, name: str, width: int | None = None) -> str:
        h = hashlib.md5(name.encode()).hexdigest()
        q = quote(name)
        if width:
            return f"{self.sim.url}/upload/wikipedia/commons/thumb/{h[0]}/{h[:2]}/{q}/{width}px-{q}"
        return f"{self.sim.url}/upload/wikipedia/commons/{h[0]}/{h[:2]}/{q}"

    # -- entity JSON (wbgetentities / Special:EntityData)
    def entity_json(self, eid: str, props: set[str], languages: set[str] | None) -> dict:
        person = self.person(eid)
        entity = self.entities.get(eid)
        if person is None and entity is None:
            return {"id": eid, "missing": ""}
        out: dict[str, Any] = {"type": "item", "id": eid}
        if person is not None:
            labels, desc = person["labels"], person["description"]
            claims: dict[str, list[Any]] = {"P31": [_item("P31", "Q5")],
                                            "P27": [_item("P27", person["country"])],
                                            "P106": [_item("P106", o) for o in
                                                     person["occupations"]]}  # fmt: skip
            if person["p18"]:
                claims["P18"] = [_claim("P18", "commonsMedia", person["p18"].replace("_", " "),
                                        "string")]  # fmt: skip
            if person["category"]:
                claims["P373"] = [_claim("P373", "string", person["category"], "string")]
            if person["died"]:
                claims["P570"] = [_claim("P570", "time", {
                    "time": f"+{person['died']}T00:00:00Z" if isinstance(person["died"], str)
                    else "+2000-01-01T00:00:00Z", "precision": 11, "timezone": 0, "before": 0,
                    "after": 0, "calendarmodel": "http://www.wikidata.org/entity/Q1985727"},
                    "time")]  # fmt: skip
        else:
            assert entity is not None
            labels, desc = {"en": entity["label"]}, entity["description"]
            claims = {"P31": [_item("P31", q) for q in entity["p31"]]}
            if entity["subclass_of"]:
                claims["P279"] = [_item("P279", q) for q in entity["subclass_of"]]
            if entity["languages"]:
                claims["P37"] = [_item("P37", q) for q in entity["languages"]]
            if entity.get("code"):
                claims["P424"] = [_claim("P424", "string", entity["code"], "string")]
        if "labels" in props:
            out["labels"] = {lang: {"language": lang, "value": v} for lang, v in labels.items()
                             if languages is None or lang in languages}  # fmt: skip
        if "descriptions" in props:
            out["descriptions"] = {"en": {"language": "en", "value": desc}} if desc else {}
        if "claims" in props:
            out["claims"] = claims
        return out

    # -- search (wbsearchentities)
    def search_entities(self, text: str, limit: int, language: str = "en",
                        ) -> list[dict[str, Any]]:
        """Labels in ``language`` (and its variants) with the fallbacks ``mul`` and ``en``."""
        want = text.casefold().strip()
        wkey = name_key(text)
        found: list[tuple[int, int, str, str, str]] = []  # (exactness, -sitelinks, id, label)
        for p in self.people:
            for lang, label in p["labels"].items():
                if lang not in (language, "mul", "en") and not lang.startswith(language + "-"):
                    continue
                if label.casefold().startswith(want) or (wkey and name_key(label) == wkey):
                    found.append((0 if name_key(label) == wkey else 1, -p["sitelinks"], p["id"],
                                  label, p["description"]))  # fmt: skip
                    break
        for e in self.entities.values():
            if e["label"].casefold().startswith(want):
                exact = 0 if e["label"].casefold() == want else 1
                found.append((exact, 0, e["id"], e["label"], e["description"]))
        found.sort(key=lambda f: (f[0], f[1]))
        return [{"id": eid, "title": eid, "pageid": int(eid[1:]) % 10**8, "display": {
                    "label": {"value": label, "language": "en"}},
                 "repository": "wikidata", "url": f"//www.wikidata.org/wiki/{eid}",
                 "concepturi": f"{ENTITY}{eid}", "label": label, "description": desc,
                 "match": {"type": "label", "language": "en", "text": label}}
                for _, _, eid, label, desc in found[:limit]]  # fmt: skip

    # -- SPARQL
    def sparql(self, query: str) -> dict[str, Any] | None:
        """Rows for a query faceatlas sends; None when the query is not understood (400)."""
        used = re.search(r"VALUES\s+\?occupation\s*\{([^}]*)\}", query)
        if used and re.search(r"FILTER\s+EXISTS\s*\{\s*\?\w+\s+wdt:P106\s+\?occupation", query):
            held = {o for p in self.people for o in p["occupations"]}
            return _results(["occupation"], [{"occupation": _uri(q)} for q in
                                             re.findall(r"wd:(Q\d+)", used.group(1)) if q in held])
        country = re.search(r"wdt:P27\s+wd:(Q\d+)", query)
        occupation = re.search(r"wdt:P106/wdt:P279\*\s+wd:(Q\d+)", query)
        values = re.search(r"VALUES\s+\?person\s*\{([^}]*)\}", query)
        if country and values and not occupation:  # humans of a citizenship (name lookups)
            wanted = re.findall(r"wd:(Q\d+)", values.group(1))
            return _results(["person"], [{"person": _uri(p["id"])} for p in self.people
                                         if p["country"] == country.group(1)
                                         and p["id"] in wanted])
        if not country or not occupation:
            return None
        matching = [p for p in self.people if p["country"] == country.group(1)
                    and any(self._is_a(o, occupation.group(1)) for o in p["occupations"])]
        if values:
            wanted = re.findall(r"wd:(Q\d+)", values.group(1))
            rows = [{"person": _uri(p["id"])} for p in matching if p["id"] in wanted]
            return _results(["person"], rows)
        if re.search(r"FILTER\s+NOT\s+EXISTS\s*\{\s*\?person\s+wdt:P570", query):
            matching = [p for p in matching if not p["died"]]
        elif re.search(r"\?person\s+wdt:P570\s+\?", query):
            matching = [p for p in matching if p["died"]]
        matching.sort(key=lambda p: -p["sitelinks"])
        limit = re.search(r"LIMIT\s+(\d+)", query)
        if limit:
            matching = matching[: int(limit.group(1))]
        langs_in = re.search(r"LANG\(\?label\)\s+IN\s*\(([^)]*)\)", query)
        langs = set(re.findall(r'"([^"]+)"', langs_in.group(1))) if langs_in else set()
        prefixes = re.findall(r'STRSTARTS\(LANG\(\?label\),\s*"([^"]+)"\)', query)
        rows: list[dict[str, Any]] = []
        for p in matching:
            base = {"person": _uri(p["id"]), "sitelinks": {
                "datatype": "http://www.w3.org/2001/XMLSchema#integer", "type": "literal",
                "value": str(p["sitelinks"])}}  # fmt: skip
            labels = [(lang, v) for lang, v in p["labels"].items()
                      if lang in langs or any(lang.startswith(x) for x in prefixes)]
            if not labels:
                rows.append(base)
            for lang, v in labels:
                rows.append({**base, "label": {"xml:lang": lang, "type": "literal", "value": v}})
        return _results(["person", "sitelinks", "label"], rows)

    def _is_a(self, occupation: str, target: str, depth: int = 0) -> bool:
        if occupation == target:
            return True
        entity = self.entities.get(occupation)
        if entity is None or depth > 10:
            return False
        return any(self._is_a(parent, target, depth + 1) for parent in entity["subclass_of"])

    # -- Commons
    def file_pages(self, titles: list[str], qs: dict[str, list[str]]) -> list[dict[str, Any]]:
        iiprop = set(_one(qs, "iiprop", "timestamp|user").split("|"))
        width = _int(_one(qs, "iiurlwidth", ""), 0)
        pages = []
        for i, title in enumerate(titles):
            name = _underscored(title.split(":", 1)[1] if ":" in title else title)
            shown = "File:" + name.replace("_", " ")
            f = self.files.get(name)
            path = self.sim.safe_file(f["rel"]) if f else None
            if f is None or path is None:
                pages.append({"ns": 6, "title": shown, "missing": True, "known": False,
                              "_id": -(i + 1)})  # fmt: skip
                continue
            w, h = self.sim.image_size(path)
            info: dict[str, Any] = {}
            if "size" in iiprop:
                info.update(size=path.stat().st_size, width=w, height=h)
            if "url" in iiprop:
                if width:
                    tw = min(width, w)
                    info.update(thumburl=self.upload_url(name, tw) if tw < w
                                else self.upload_url(name), thumbwidth=tw,
                                thumbheight=round(h * tw / max(w, 1)))  # fmt: skip
                info.update(url=self.upload_url(name),
                            descriptionurl=f"{self.sim.url}/commons/wiki/File:{quote(name)}",
                            descriptionshorturl=f"{self.sim.url}/commons/w/index.php?curid="
                                                f"{f['pageid']}")  # fmt: skip
            if "mime" in iiprop:
                info["mime"] = "image/png" if name.lower().endswith(".png") else "image/jpeg"
            if "extmetadata" in iiprop:
                meta = {"LicenseShortName": f["licence"],
                        "Artist": f'<a href="//commons.wikimedia.org/wiki/User:Sim" '
                                  f'title="User:Sim">{f["author"]}</a>',
                        "UsageTerms": f["licence"], "Credit": "Own work"}  # fmt: skip
                if f["licence_url"]:
                    meta["LicenseUrl"] = f["licence_url"]
                info["extmetadata"] = {k: {"value": v, "source": "commons-desc-page",
                                           "hidden": ""} for k, v in meta.items()}  # fmt: skip
            pages.append({"pageid": f["pageid"], "ns": 6, "title": shown,
                          "imagerepository": "local", "imageinfo": [info], "_id": f["pageid"]})
        return pages

    def category_files(self, category: str) -> list[str]:
        cat = _underscored(category.split(":", 1)[1] if ":" in category else category)
        out = []
        for p in self.people:
            if p["category"] and _underscored(p["category"]) == cat:
                out += p["commons"]
        return [f"File:{n.replace('_', ' ')}" for n in out]

    def search_files(self, text: str) -> list[str]:
        m = re.fullmatch(r"\s*haswbstatement:P180=(Q\d+)\s*", text)
        if m:
            names = [n for n, f in self.files.items() if m.group(1) in f["depicts"]]
        else:
            names = [n for n in self.files if text.casefold() in n.replace("_", " ").casefold()]
        return [f"File:{n.replace('_', ' ')}" for n in names]

    def saw_user_agent(self, agent: str) -> None:
        """Remember a request's User-Agent (tests check that every request sent one)."""
        with self._lock:
            self.user_agents.append(agent)

    def thumbnail(self, path: Path, width: int) -> bytes:
        key = (str(path), width)
        with self._lock:
            if key in self._thumbs:
                return self._thumbs[key]
        with Image.open(path) as im:
            small = im.convert("RGB")
            if small.width > width:
                small = small.resize((width, max(1, round(small.height * width / small.width))))
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=88)
        with self._lock:
            self._thumbs[key] = buf.getvalue()
        return buf.getvalue()


# -- JSON pieces
def _uri(qid: str) -> dict[str, str]:
    return {"type": "uri", "value": f"{ENTITY}{qid}"}


def _results(names: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"head": {"vars": names}, "results": {"bindings": rows}}


def _claim(prop: str, datatype: str, value: Any, vtype: str) -> dict[str, Any]:
    return {"mainsnak": {"snaktype": "value", "property": prop,
                         "datavalue": {"value": value, "type": vtype}, "datatype": datatype},
            "type": "statement", "id": f"sim${hashlib.sha1(repr(value).encode()).hexdigest()[:8]}",
            "rank": "normal"}  # fmt: skip


def _item(prop: str, qid: str) -> dict[str, Any]:
    return _claim(prop, "wikibase-item", {"entity-type": "item", "numeric-id": int(qid[1:]),
                                         "id": qid}, "wikibase-entityid")  # fmt: skip


def _one(qs: dict[str, list[str]], key: str, default: str = "") -> str:
    return (qs.get(key) or [default])[0]


def _int(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default


def _top_entities(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, (str, Path)):
        try:
            raw = json.loads(Path(raw).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
    if isinstance(raw, dict) and isinstance(raw.get("entities"), list):
        return [e for e in raw["entities"] if isinstance(e, dict) and e.get("label")]
    return []


# -- the routes (``h`` is simweb's request handler)
def handle(h: Any, path: str) -> None:
    wiki: WikiSim = h.sim.wiki
    qs = parse_qs(urlsplit(h.path).query)
    wiki.saw_user_agent(h.headers.get("User-Agent", ""))
    endpoint = path.strip("/").split("/")[0]
    endpoint = "sparql" if path.startswith("/wikidata/sparql") else endpoint
    fault = wiki.take_fault(endpoint)
    if fault == "timeout":
        time.sleep(wiki.timeout_sleep)
    elif fault == "403":
        h._text(403, "Please set a user-agent and respect our robot policy")
        return
    elif fault in ("429", "503"):
        h._send(int(fault), b"Too many requests. Please retry later.", "text/plain",
                {"Retry-After": "1"})
        return
    elif fault == "malformed":
        h._send(200, b'{"results": {"bindings": [{"person": ', "application/json")
        return
    lagging = fault == "maxlag" or (wiki.lag > 0 and _int(_one(qs, "maxlag"), 10**6) < wiki.lag)
    if lagging and path.endswith("/api.php") and "maxlag" in qs:
        lag = max(wiki.lag, 1.0)
        h._json(200, {"error": {"code": "maxlag", "info": f"Waiting for a database server: "
                                f"{lag:.0f} seconds lagged.", "host": "db1", "lag": lag,
                                "type": "db"}},
                {"Retry-After": "1", "X-Database-Lag": f"{lag:.0f}"})  # fmt: skip
        return
    if path == "/wikidata/sparql":
        result = wiki.sparql(_one(qs, "query"))
        if result is None:
            h._text(400, "MalformedQueryException: simweb understands faceatlas's queries only")
        else:
            h._send(200, json.dumps(result, ensure_ascii=False).encode(),
                    "application/sparql-results+json; charset=utf-8")
    elif path == "/wikidata/w/api.php":
        _wikidata_api(h, wiki, qs)
    elif m := re.fullmatch(r"/wikidata/wiki/Special:EntityData/(Q\d+)\.json", path):
        entity = wiki.entity_json(m.group(1), {"labels", "descriptions", "claims"}, None)
        if "missing" in entity:
            h._text(404, "Not Found: no such entity")
        else:
            h._json(200, {"entities": {m.group(1): entity}})
    elif path == "/commons/w/api.php":
        _commons_api(h, wiki, qs)
    elif path.startswith("/commons/wiki/"):
        h._send(200, b"<html><body>a file description page</body></html>", "text/html")
    elif path.startswith("/upload/wikipedia/commons/"):
        _upload(h, wiki, path[len("/upload/wikipedia/commons/"):])
    else:
        h._text(404, "not found")


def _wikidata_api(h: Any, wiki: WikiSim, qs: dict[str, list[str]]) -> None:
    action = _one(qs, "action")
    if action == "wbsearchentities":
        text = _one(qs, "search")
        if not text:
            h._json(200, {"error": {"code": "missingparam",
                                    "info": "The \"search\" parameter must be set."}})
            return
        limit = min(_int(_one(qs, "limit", "7"), 7), 50)
        found = wiki.search_entities(text, limit, _one(qs, "language", "en"))
        h._json(200, {"searchinfo": {"search": text}, "search": found, "success": 1})
    elif action == "wbgetentities":
        ids = [x for x in _one(qs, "ids").split("|") if x]
        if not ids or len(ids) > 50:
            h._json(200, {"error": {"code": "param-illegal", "info": "1 to 50 ids"}})
            return
        props = set(_one(qs, "props", "info|sitelinks|aliases|labels|descriptions|claims")
                    .split("|"))
        langs = _one(qs, "languages")
        languages = set(langs.split("|")) if langs else None
        h._json(200, {"entities": {i: wiki.entity_json(i, props, languages) for i in ids},
                      "success": 1})  # fmt: skip
    else:
        h._json(200, {"error": {"code": "badvalue",
                                "info": f"Unrecognized value for parameter \"action\": {action}"}})


def _commons_api(h: Any, wiki: WikiSim, qs: dict[str, list[str]]) -> None:
    if _one(qs, "action") != "query":
        h._json(200, {"error": {"code": "badvalue", "info": "simweb: action=query only"}})
        return
    fv2 = _one(qs, "formatversion") == "2"
    generator, lst = _one(qs, "generator"), _one(qs, "list")
    out: dict[str, Any] = {"batchcomplete": True if fv2 else ""}
    titles: list[str] = []
    for kind, prefix in ((generator, "g"), (lst, "")):
        if not kind:
            continue
        if kind == "categorymembers":
            found = wiki.category_files(_one(qs, f"{prefix}cmtitle"))
            cont_key, limit_key = f"{prefix}cmcontinue", f"{prefix}cmlimit"
        elif kind == "search":
            found = wiki.search_files(_one(qs, f"{prefix}srsearch"))
            cont_key, limit_key = f"{prefix}sroffset", f"{prefix}srlimit"
        else:
            h._json(200, {"error": {"code": "badvalue", "info": f"simweb: no {kind!r}"}})
            return
        start = _int(_one(qs, cont_key).rpartition("|")[2], 0)
        limit = min(_int(_one(qs, limit_key, "10"), 10), 500)
        page = found[start : start + limit]
        if start + limit < len(found):
            token = f"file|{start + limit}" if kind == "categorymembers" else start + limit
            out["continue"] = {cont_key: token, "continue": f"{'g' if prefix else '-'}"
                               f"{cont_key}||"}  # fmt: skip
        if prefix:
            titles = page
        elif kind == "categorymembers":
            out.setdefault("query", {})["categorymembers"] = [
                {"pageid": wiki.files[_underscored(t[5:])]["pageid"], "ns": 6, "title": t}
                for t in page]  # fmt: skip
        else:
            out.setdefault("query", {})["searchinfo"] = {"totalhits": len(found)}
            out["query"]["search"] = [{"ns": 6, "title": t, "pageid": wiki.files[
                _underscored(t[5:])]["pageid"], "size": 0, "wordcount": 0, "snippet": "",
                "timestamp": "2020-01-01T00:00:00Z"} for t in page]  # fmt: skip
    if not generator:
        titles = [t for t in _one(qs, "titles").split("|") if t]
    if titles and (_one(qs, "prop") == "imageinfo" or not generator):
        pages = wiki.file_pages(titles, qs) if _one(qs, "prop") == "imageinfo" else [
            {"ns": 6, "title": t, "_id": i} for i, t in enumerate(titles)]  # fmt: skip
        for index, p in enumerate(pages, start=1):
            if generator == "search":
                p["index"] = index
        query = out.setdefault("query", {})
        if fv2:
            query["pages"] = [{k: v for k, v in p.items() if k != "_id"} for p in pages]
        else:
            query["pages"] = {str(p["_id"]): {k: ("" if v is True else v) for k, v in p.items()
                                              if k != "_id"} for p in pages}  # fmt: skip
    h._json(200, out)


def _upload(h: Any, wiki: WikiSim, rest: str) -> None:
    m = re.fullmatch(r"thumb/[0-9a-f]/[0-9a-f]{2}/([^/]+)/(\d+)px-([^/]+)", rest)
    width = None
    if m:
        name, width = unquote(m.group(1)), int(m.group(2))
    else:
        m = re.fullmatch(r"[0-9a-f]/[0-9a-f]{2}/([^/]+)", rest)
        if not m:
            h._text(404, "not found")
            return
        name = unquote(m.group(1))
    f = wiki.files.get(name)
    path = wiki.sim.safe_file(f["rel"]) if f else None
    if path is None:
        h._text(404, "not found")
        return
    wiki.sim.sleep_latency()
    if width:
        h._send(200, wiki.thumbnail(path, width), "image/jpeg")
    else:
        h._image(f["rel"])  # type: ignore[index]


# -- a replica world for demos, tests and benchmarks
REPLICA = (  # (folder under people/, Serbian Cyrillic, Serbian Latin or None, extras)
    ("person_01", "Милош Ђорђевић", None, {}),
    ("person_02", "Јована Петровић", "Jovana Petrović", {"noise": "person_05"}),
    ("person_03", "Драгана Љубић", None, {}),
    ("person_04", "Никола Шабић", None, {"depicts_group": "group/couple.jpg"}),
    ("person_05", "Марија Чолић", "Marija Čolić", {}),
    ("person_06", "Стефан Ђукић", None, {"noise": "person_07"}),
    ("person_07", "Ивана Жарковић", None, {}),
    ("person_08", "Урош Џаковић", None, {}),
    ("person_09", "Милица Ћосић", None, {"no_p18": True}),
    # a historical figure with two photos whose category is mostly a co-star's (3 photos):
    # the densest face there is not his, only the P18 portrait says who he is
    ("person_10", "Душан Његош", None, {"died": "1990-05-04", "costar": "person_08"}),
)


def replica(faces_dir: str | Path, occupation: str = "Actor") -> dict[str, Any]:
    """A people file: ten Serbian "actors" made of the test faces (``people/person_NN``).

    Each has Cyrillic and Latin labels, a P18 portrait (but one), a Commons category, some a
    co-star's photo in their category or a group photo that depicts them (as real Commons
    has), one historical whose category holds more of a co-star than of him. ``identity``
    says whose face each path really is.
    """
    from faceatlas.names.wikidata import SR_LATIN

    root = Path(faces_dir)
    people = []
    for n, (folder, cyrillic, latin, extra) in enumerate(REPLICA):
        photos = sorted(f"people/{folder}/{p.name}" for p in (root / "people" / folder).iterdir()
                        if p.suffix.lower() in (".jpg", ".jpeg", ".png"))  # fmt: skip
        name = latin or cyrillic.translate(SR_LATIN)
        labels = {"sr": cyrillic, "en": name_key(name) and _ascii(name)}
        if latin:
            labels["sr-el"] = latin
        commons = photos[1:]
        if extra.get("costar"):
            commons += sorted(f"people/{extra['costar']}/{p.name}" for p in
                              (root / "people" / extra["costar"]).iterdir())[:3]
        if extra.get("noise"):
            commons.append(sorted(f"people/{extra['noise']}/{p.name}" for p in
                                  (root / "people" / extra["noise"]).iterdir())[-1])
        person: dict[str, Any] = {
            "name": name, "country": "Serbia", "occupations": [occupation], "labels": labels,
            "sitelinks": 100 - 5 * n, "images": photos, "p18": None if extra.get("no_p18")
            else photos[0], "commons": commons if not extra.get("no_p18") else photos,
            "identity": folder,
        }  # fmt: skip
        if extra.get("depicts_group"):
            person["depicts"] = [extra["depicts_group"]]
        if extra.get("died"):
            person["died"] = extra["died"]
        people.append(person)
    return {"people": people}


def _ascii(name: str) -> str:
    from faceatlas.domain.names import to_ascii

    return to_ascii(name)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="simwiki", description="Write a replica people file.")
    parser.add_argument("--photos", required=True, help="the test faces folder")
    parser.add_argument("--out", required=True, help="people JSON to write")
    args = parser.parse_args(argv)
    data = replica(args.photos)
    Path(args.out).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {len(data['people'])} people to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
