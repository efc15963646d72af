"""Stage 1 without a key: the most famous people of an occupation and country, from Wikidata.

Words become Q-ids through ``wbsearchentities`` (only items of the right kind count: a
country is an instance of country/sovereign state, an occupation of occupation/profession;
two equally good candidates are an error that lists them, a Q-id given directly is used as
is). One SPARQL query then lists humans with that citizenship (P27) and occupation (P106,
subclasses included), most sitelinks first — the fame measure — with their labels in English
and in the country's official languages (P37 → P424). The stored name is the Latin spelling
(Serbian Cyrillic is transliterated to Serbian Latin, so Đ stays Đ and the ASCII form is Dj
as everywhere else); the original-script name and the Q-id are stored beside it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from faceatlas.domain.errors import (
    AMBIGUOUS_WORD,
    AmbiguousError,
    ConfigError,
    ProviderError,
)
from faceatlas.domain.names import InvalidNameError, clean_label, collection_key, name_key
from faceatlas.names.service import write_name_mapping
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Person
from faceatlas.store.people import get_or_create_collection, upsert_person
from faceatlas.web.wikimedia import WikimediaClient

log = logging.getLogger(__name__)

QID = re.compile(r"^Q[1-9]\d*$")
HUMAN = "Q5"
KINDS = {
    # instance-of (P31) values that make an item a country or an occupation
    "country": {"Q6256", "Q3624078", "Q7275", "Q3024240", "Q1763527", "Q15634554",
                "Q1520223", "Q112099"},
    "occupation": {"Q28640", "Q12737077", "Q4164871", "Q66715801", "Q88789639", "Q63187345"},
}  # fmt: skip
LATIN_FALLBACK = ("en", "mul")
# Serbian Cyrillic → Serbian Latin (Gaj's alphabet); to_ascii then folds Đ → Dj as before.
SR_LATIN = str.maketrans({
    "А": "A", "Б": "B", "В": "V", "Г": "G", "Д": "D", "Ђ": "Đ", "Е": "E", "Ж": "Ž", "З": "Z",
    "И": "I", "Ј": "J", "К": "K", "Л": "L", "Љ": "Lj", "М": "M", "Н": "N", "Њ": "Nj", "О": "O",
    "П": "P", "Р": "R", "С": "S", "Т": "T", "Ћ": "Ć", "У": "U", "Ф": "F", "Х": "H", "Ц": "C",
    "Ч": "Č", "Џ": "Dž", "Ш": "Š",
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž", "з": "z",
    "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "ć", "у": "u", "ф": "f", "х": "h", "ц": "c",
    "ч": "č", "џ": "dž", "ш": "š",
})  # fmt: skip


@dataclass(frozen=True)
class Entity:
    qid: str
    label: str
    description: str = ""


@dataclass(frozen=True)
class WikiPerson:
    qid: str
    name: str  # Latin spelling, stored as the person's name
    native_name: str | None  # original script, when it differs
    sitelinks: int


@dataclass
class WikidataReport:
    """What one Wikidata names run did (the shape of service.NamesReport, plus Q-ids)."""

    country: str
    collection: str
    occupations: list[str]
    created: int = 0
    existing: int = 0
    rejected: int = 0
    people: list[str] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    qids: dict[str, str] = field(default_factory=dict)  # name → Q-id
    resolved: tuple[int, int] | None = None  # LLM check: (resolved, checked)
    warnings: list[str] = field(default_factory=list)  # as service.NamesReport


def is_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(unicodedata.name(c, "").startswith("LATIN") for c in letters)


def latin_name(labels: dict[str, str], languages: Sequence[str]) -> tuple[str, str | None] | None:
    """(Latin name, original-script name or None) from one person's labels.

    Preference: a Latin label in a country language (``sr-el``, ``hr``…), Serbian Cyrillic
    transliterated, then English and ``mul``; the native name is the first country-language
    label in another script.
    """
    native = next((labels[x] for x in _lang_order(labels, languages)
                   if not is_latin(labels[x])), None)  # fmt: skip
    for lang in _lang_order(labels, languages):
        if is_latin(labels[lang]):
            return labels[lang], native
        if lang.split("-")[0] == "sr":
            return labels[lang].translate(SR_LATIN), native
    for lang in LATIN_FALLBACK:
        if lang in labels and is_latin(labels[lang]):
            return labels[lang], native
    return None


def _lang_order(labels: dict[str, str], languages: Sequence[str]) -> list[str]:
    """Country-language labels: Latin variants first (``sr-el``, ``sr-latn``), then the rest."""
    out = []
    for code in languages:
        variants = sorted((x for x in labels if x == code or x.startswith(code + "-")),
                          key=lambda x: (not x.endswith(("-el", "-latn")), x))  # fmt: skip
        out += [x for x in variants if x not in out]
    return out


class Wikidata:
    """The Wikidata questions faceatlas asks; answers come through the polite client."""

    def __init__(self, settings: Settings, client: WikimediaClient | None = None) -> None:
        self.settings = settings
        self.client = client or WikimediaClient(settings)
        self.api_url, self.sparql_url = settings.wikidata_api_url, settings.wikidata_sparql_url

    def close(self) -> None:
        self.client.close()

    # -- words → Q-ids
    def entities(self, ids: Sequence[str], props: str = "labels|descriptions|claims") -> dict:
        out: dict[str, Any] = {}
        for i in range(0, len(ids), 50):  # the API takes 50 ids a request
            body = self.client.api(self.api_url, {"action": "wbgetentities",
                                                  "ids": "|".join(ids[i : i + 50]),
                                                  "props": props})  # fmt: skip
            entities = body.get("entities")
            if not isinstance(entities, dict):
                raise ProviderError("Wikidata wbgetentities answered without entities")
            out.update({k: v for k, v in entities.items() if isinstance(v, dict)})
        return out

    def search(self, text: str, limit: int = 10, language: str | None = None) -> list[str]:
        return [h["id"] for h in self.search_hits(text, limit, language)]

    def search_hits(self, text: str, limit: int = 10, language: str | None = None
                    ) -> list[dict[str, Any]]:
        """The items ``wbsearchentities`` finds, as it answers them (id, label, description,
        match), items with a well-formed Q-id only."""
        language = language or self.settings.wikidata_language
        body = self.client.api(self.api_url, {
            "action": "wbsearchentities", "search": text, "language": language,
            "uselang": language, "type": "item", "limit": limit})  # fmt: skip
        hits = body.get("search")
        if not isinstance(hits, list):
            raise ProviderError("Wikidata wbsearchentities answered without a search list")
        return [h for h in hits if isinstance(h, dict) and QID.match(str(h.get("id")))]

    def resolve(self, word: str, kind: str) -> Entity:
        """The one item of ``kind`` ("country" or "occupation") that ``word`` names."""
        word = clean_label(word, kind)
        if QID.match(word):
            found = self.entities([word]).get(word, {})
            if "missing" in found or not found:
                raise AmbiguousError(f"{kind} {word} does not exist on Wikidata",
                                     code=AMBIGUOUS_WORD)
            return _entity(found, word)
        ids = self.search(word)
        data = self.entities(ids) if ids else {}
        items = [data[i] for i in ids if i in data and "missing" not in data[i]]
        fitting = [e for e in items if claim_ids(e, "P31") & KINDS[kind]
                   or claim_ids(e, "P279") & KINDS[kind]]  # fmt: skip
        if not fitting and kind == "occupation" and items:
            # not typed as an occupation, but someone has it as their P106: it is one
            used = self.used_as_occupation([e["id"] for e in items])
            fitting = [e for e in items if e["id"] in used]
        exact = [e for e in fitting if _label(e).casefold() == word.casefold()]
        chosen = exact if exact else fitting
        if len(chosen) == 1:
            return _entity(chosen[0], chosen[0]["id"])
        shown = chosen or items
        listing = "; ".join(f"{e['id']} {_label(e)!r} ({_description(e) or 'no description'})"
                            for e in shown[:8]) or "none"  # fmt: skip
        if not chosen:
            raise AmbiguousError(f"no {kind} called {word!r} on Wikidata (found: {listing}); "
                                 f"give the Q-id instead", code=AMBIGUOUS_WORD)  # fmt: skip
        raise AmbiguousError(f"{kind} {word!r} is ambiguous on Wikidata: {listing}; "
                             f"give one Q-id instead of the word",
                             code=AMBIGUOUS_WORD)  # fmt: skip

    def used_as_occupation(self, candidates: Sequence[str]) -> set[str]:
        """Which of ``candidates`` somebody has as occupation (P106)."""
        values = " ".join(f"wd:{q}" for q in candidates if QID.match(q))
        query = (f"SELECT ?occupation WHERE {{\n  VALUES ?occupation {{ {values} }}\n"
                 "  FILTER EXISTS { ?someone wdt:P106 ?occupation }\n}")  # fmt: skip
        rows = self.client.sparql(self.sparql_url, query)
        return {r.get("occupation", {}).get("value", "").rsplit("/", 1)[-1] for r in rows}

    def languages(self, country: str) -> list[str]:
        """Language codes of a country's official languages (P37 → P424)."""
        claims = self.entities([country], "claims").get(country, {})
        ids = sorted(claim_ids(claims, "P37"))
        codes: list[str] = []
        for entity in self.entities(ids, "claims").values() if ids else ():
            for value in _claim_values(entity, "P424"):
                if isinstance(value, str) and value not in codes:
                    codes.append(value.lower())
        return codes

    # -- the people
    def famous(self, country: str, occupation: str, limit: int, era: str = "any",
               languages: Sequence[str] = ()) -> list[WikiPerson]:
        """The ``limit`` people of ``occupation`` and ``country`` with the most sitelinks."""
        query = famous_query(country, occupation, limit, era, languages)
        rows = self.client.sparql(self.sparql_url, query)
        order: list[str] = []
        labels: dict[str, dict[str, str]] = {}
        links: dict[str, int] = {}
        for row in rows:
            qid = _qid_of(row)
            if qid is None:
                continue
            if qid not in labels:
                order.append(qid)
                labels[qid] = {}
            links[qid] = _to_int(row.get("sitelinks", {}).get("value"))
            label = row.get("label", {})
            if label.get("xml:lang") and label.get("value"):
                labels[qid].setdefault(label["xml:lang"], label["value"])
        people = []
        for qid in order:
            names = latin_name(labels[qid], languages)
            if names is None:
                log.info("wikidata: %s has no usable label; skipped", qid)
                continue
            people.append(WikiPerson(qid, names[0], names[1], links.get(qid, 0)))
        return sorted(people, key=lambda p: -p.sitelinks)

    def matching(self, candidates: Sequence[str], country: str, occupation: str) -> set[str]:
        """Which of ``candidates`` are citizens of ``country`` with ``occupation``."""
        if not candidates:
            return set()
        values = " ".join(f"wd:{q}" for q in candidates)
        query = (f"SELECT ?person WHERE {{\n  VALUES ?person {{ {values} }}\n"
                 f"  ?person wdt:P27 wd:{country} ;\n"
                 f"          wdt:P106/wdt:P279* wd:{occupation} .\n}}")  # fmt: skip
        rows = self.client.sparql(self.sparql_url, query)
        return {q for q in map(_qid_of, rows) if q}


def famous_query(country: str, occupation: str, limit: int, era: str,
                 languages: Sequence[str]) -> str:
    """The SPARQL for the most famous people; labels in English, ``mul`` and the languages."""
    for qid in (country, occupation):
        if not QID.match(qid):
            raise ValueError(f"not a Q-id: {qid!r}")
    alive = {"living": "      FILTER NOT EXISTS { ?person wdt:P570 [] }\n",
             "historical": "      ?person wdt:P570 ?died .\n"}.get(era, "")  # fmt: skip
    codes = [c for c in languages if re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", c)]
    wanted = ", ".join(f'"{c}"' for c in dict.fromkeys([*LATIN_FALLBACK, *codes]))
    prefixes = "".join(f' || STRSTARTS(LANG(?label), "{c}-")' for c in codes)
    return (
        "SELECT ?person ?sitelinks ?label WHERE {\n"
        "  {\n"
        "    SELECT DISTINCT ?person ?sitelinks WHERE {\n"
        f"      ?person wdt:P31 wd:{HUMAN} ;\n"
        f"              wdt:P27 wd:{country} ;\n"
        f"              wdt:P106/wdt:P279* wd:{occupation} ;\n"
        "              wikibase:sitelinks ?sitelinks .\n"
        f"{alive}"
        "    }\n"
        "    ORDER BY DESC(?sitelinks)\n"
        f"    LIMIT {int(limit)}\n"
        "  }\n"
        "  OPTIONAL {\n"
        "    ?person rdfs:label ?label .\n"
        f"    FILTER(LANG(?label) IN ({wanted}){prefixes})\n"
        "  }\n"
        "}"
    )


# -- the library calls (what service.py switches to)
def names_source(settings: Settings) -> str:
    """``wikidata`` or ``llm``: the setting, or by whether an LLM key is set."""
    import os

    if settings.names_source != "auto":
        return settings.names_source
    return "llm" if os.environ.get("OPENAI_API_KEY", "").strip() else "wikidata"


def generate_names_wikidata(settings: Settings, country: str, occupations: Sequence[str],
                            progress: Any = None, wikidata: Wikidata | None = None,
                            ) -> WikidataReport:
    """Queue the most famous people per occupation from Wikidata, each with its Q-id."""
    country = clean_label(country, "country")
    by_case: dict[str, str] = {}
    for occupation in occupations:
        label = clean_label(occupation, "occupation")
        by_case.setdefault(label.casefold(), label)
    wanted = list(by_case.values())
    if not wanted:
        raise InvalidNameError("no occupations given")
    if settings.wikidata_limit < 1:
        raise ConfigError("FACEATLAS_WIKIDATA_LIMIT must be at least 1")
    wd = wikidata or Wikidata(settings)
    try:
        # every word is resolved before anything is stored: a typo leaves nothing behind
        place = wd.resolve(country, "country")
        # a Q-id given for a word names things by the item's label ("Q403" → "Serbia")
        country = clean_label(place.label, "country") if QID.match(country) else country
        jobs = [(clean_label(j.label, "occupation") if QID.match(o) else o, j)
                for o, j in ((o, wd.resolve(o, "occupation")) for o in wanted)]
        report = WikidataReport(country=country, collection=collection_key(country),
                                occupations=[o for o, _ in jobs])  # fmt: skip
        languages = wd.languages(place.qid)
        for done, (occupation, job) in enumerate(jobs, start=1):
            found = wd.famous(place.qid, job.qid, settings.wikidata_limit,
                              settings.wikidata_era, languages)  # fmt: skip
            _store(settings, report, found, occupation)
            if progress is not None:
                progress(done, len(jobs), occupation)
    finally:
        if wikidata is None:
            wd.close()
    if report.people:
        write_name_mapping(settings)
    report.rejected = len(report.rejections)
    return report


def _store(settings: Settings, report: WikidataReport, found: Sequence[WikiPerson],
           occupation: str) -> None:
    with session_scope(settings) as session:
        collection = get_or_create_collection(session, report.country)
        for wp in found:
            try:
                name = clean_label(wp.name, "name")  # the same sanitising as every name
            except InvalidNameError as exc:
                report.rejections.append((wp.qid, str(exc)))
                continue
            key = name_key(name)
            same = session.scalar(select(Person).where(Person.collection_id == collection.id,
                                                       Person.key == key))  # fmt: skip
            if same is not None and same.wikidata_qid not in (None, wp.qid):
                report.rejections.append((name, f"namesake of {same.wikidata_qid}, "
                                                f"already in the collection ({wp.qid})"))
                continue
            person, created = upsert_person(
                session, collection, name, occupations=[occupation], country=report.country,
                source="wikidata", verdict=f"Wikidata {wp.qid}, {wp.sitelinks} sitelinks")
            person.wikidata_qid = wp.qid
            if wp.native_name and not person.native_name:
                native = " ".join(wp.native_name.split())
                if name_key(native):
                    person.native_name = native[:300]
            if name in report.qids:
                continue
            report.qids[name] = wp.qid
            report.people.append(name)
            if created:
                report.created += 1
            else:
                report.existing += 1


def check_llm_names(settings: Settings, country: str, occupations: Sequence[str],
                    names: Sequence[str], wikidata: Wikidata | None = None,
                    ) -> tuple[int, int, dict[str, str]]:
    """LLM names checked against Wikidata: (resolved, checked, name → Q-id); Q-ids stored.

    A name resolves when one of its ``wbsearchentities`` hits is a citizen of the country
    with one of the occupations (the first such hit wins).
    """
    wd = wikidata or Wikidata(settings)
    found: dict[str, str] = {}
    try:
        place = wd.resolve(country, "country")
        jobs = [wd.resolve(o, "occupation") for o in occupations]
        languages = wd.languages(place.qid)
        hits = {name: wd.search(name, 5) for name in names}
        for name, found_ids in hits.items():  # "Ана Ивановић" is found in Serbian, not English
            if not found_ids and languages and not is_latin(name):
                hits[name] = wd.search(name, 5, language=languages[0])
        pool = sorted({q for qs in hits.values() for q in qs})
        good: set[str] = set()
        for job in jobs:
            for i in range(0, len(pool), 100):
                good |= wd.matching(pool[i : i + 100], place.qid, job.qid)
        for name, qids in hits.items():
            match = next((q for q in qids if q in good), None)
            if match:
                found[name] = match
    finally:
        if wikidata is None:
            wd.close()
    with session_scope(settings) as session:
        for person in session.scalars(select(Person).where(Person.key.in_(
                [name_key(n) for n in found]))):  # fmt: skip
            qid = next((q for n, q in found.items() if name_key(n) == person.key), None)
            if qid and person.wikidata_qid is None:
                person.wikidata_qid = qid
    return len(found), len(names), found


# -- small readers of Wikidata JSON
def _label(entity: dict) -> str:
    labels = entity.get("labels") or {}
    for lang in ("en", "mul", *labels):
        value = labels.get(lang)
        if isinstance(value, dict) and value.get("value"):
            return str(value["value"])
    return str(entity.get("id", "?"))


def _description(entity: dict) -> str:
    value = (entity.get("descriptions") or {}).get("en")
    return str(value.get("value", "")) if isinstance(value, dict) else ""


def _entity(entity: dict, qid: str) -> Entity:
    return Entity(qid, _label(entity), _description(entity))


def _claim_values(entity: dict, prop: str) -> list[Any]:
    """Values of a property's statements, preferred first, deprecated ones left out."""
    claims = (entity.get("claims") or {}).get(prop) or []
    ranked = sorted((c for c in claims if isinstance(c, dict) and c.get("rank") != "deprecated"),
                    key=lambda c: c.get("rank") != "preferred")  # fmt: skip
    out = []
    for claim in ranked:
        snak = claim.get("mainsnak") or {}
        if snak.get("snaktype", "value") == "value":
            value = (snak.get("datavalue") or {}).get("value")
            if value is not None:
                out.append(value)
    return out


def claim_ids(entity: dict, prop: str) -> set[str]:
    """The item ids (``Q…``) an entity's claims of ``prop`` point at."""
    return {str(v["id"]) for v in _claim_values(entity, prop)
            if isinstance(v, dict) and "id" in v}  # fmt: skip


def claim_strings(entity: dict, prop: str) -> list[str]:
    return [v for v in _claim_values(entity, prop) if isinstance(v, str)]


def _qid_of(row: dict[str, dict[str, str]]) -> str | None:
    qid = row.get("person", {}).get("value", "").rsplit("/", 1)[-1]
    return qid if QID.match(qid) else None


def _to_int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
