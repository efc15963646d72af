"""Every name to Wikidata: the Q-id whose portrait anchors the person's gallery (issue 25).

Names from Wikidata arrive with their Q-id and LLM names are checked against Wikidata when
they are generated; names from a sheet, the API (``POST /api/v1/people``) and migrated
storage arrive bare. They are looked up here, at collection time (``jobs/collect.py``, just
before the portrait step) — not at import, which must stay offline and linear for 200k-row
sheets — the same way an LLM name is checked: ``wbsearchentities`` for the name, kept only
when a hit's label or alias *is* the name (same name key), then one SPARQL question per
occupation: which of those are citizens of the collection's country with the occupation
(a country-only question, humans of that citizenship, when no occupation is known to
Wikidata). One fitting item stores its Q-id (so its portrait becomes the anchor); several
store their candidates for a reviewer (person page, ``faceatlas show``); none stores that.

Wikidata down never fails a person: the lookup is recorded ``unavailable`` and tried again at
the next collection. After one unreachable answer the endpoint is not asked again for
``BREAKER_SECONDS`` in this process, so an offline run of 1000 people waits once, not 1000
times. Answers are cached on disk by the polite client (``web/wikimedia.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from faceatlas.domain.errors import AmbiguousError, FaceAtlasError
from faceatlas.domain.names import collection_key, name_key
from faceatlas.domain.states import Lookup
from faceatlas.names.wikidata import QID, Wikidata, claim_ids, claim_strings, is_latin
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Person

log = logging.getLogger(__name__)

#: an unreachable Wikidata is not asked again for this long (per API URL, per process)
BREAKER_SECONDS = 300.0
#: wbsearchentities hits looked at per name
SEARCH_LIMIT = 7
#: candidates kept for a reviewer
MAX_CANDIDATES = 8

_down: dict[str, float] = {}  # API URL → monotonic time until which it is not asked
_down_lock = threading.Lock()


@dataclass
class NameLookup:
    """How looking one name up ended."""

    state: Lookup
    qid: str | None = None
    candidates: list[dict[str, str]] = field(default_factory=list)  # qid, label, description
    detail: str = ""

    def stored(self) -> dict[str, Any]:
        """The form kept in ``Person.wikidata_lookup``."""
        return {"state": str(self.state), "qid": self.qid, "candidates": self.candidates,
                "detail": self.detail[:500],
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def lookup_client(settings: Settings) -> Wikidata:
    """A Wikidata client for lookups: at most one retry, so a collection never stalls on it."""
    quick = settings.model_copy(update={"wikimedia_retries": min(settings.wikimedia_retries, 1)})
    return Wikidata(quick)


def wikidata_down(settings: Settings) -> bool:
    with _down_lock:
        return _down.get(settings.wikidata_api_url, 0.0) > time.monotonic()


def _trip(settings: Settings) -> None:
    with _down_lock:
        _down[settings.wikidata_api_url] = time.monotonic() + BREAKER_SECONDS


def reset_breaker() -> None:
    """Forget that Wikidata was down (tests; ``faceatlas names resolve`` asks again)."""
    with _down_lock:
        _down.clear()


def lookup_name(wd: Wikidata, name: str, country: str, occupations: Sequence[str],
                ) -> NameLookup:
    """Look ``name`` up among the citizens of ``country`` with one of ``occupations``.

    Raises ProviderError (and subclasses) when Wikidata cannot be asked."""
    try:
        place = wd.resolve(country, "country")
    except AmbiguousError as exc:
        return NameLookup(Lookup.NOT_FOUND, detail=f"the country is not clear: {exc}")
    jobs = []
    for occupation in occupations:
        try:
            jobs.append(wd.resolve(occupation, "occupation"))
        except AmbiguousError as exc:  # a sheet's own word ("glumac"): the others still count
            log.info("wikidata lookup of %r: %s", name, exc)
    hits = _search(wd, name, "")
    if not hits and not is_latin(name):  # "Ана Ивановић" is found in Serbian, not English
        languages = wd.languages(place.qid)
        if languages:
            hits = _search(wd, name, languages[0])
    key = name_key(name)
    named = [h for h in hits if key and key in (name_key(h["label"]), name_key(h["match"]))]
    if not named:
        return NameLookup(Lookup.NOT_FOUND, detail=f"no Wikidata item is called {name!r}")
    pool = [h["qid"] for h in named]
    good: set[str] = set()
    for job in jobs:
        good |= wd.matching(pool, place.qid, job.qid)
    if not jobs:
        good = citizens(wd, pool, place.qid)
    fitting = [h for h in named if h["qid"] in good]
    shown = [{k: h[k] for k in ("qid", "label", "description")} for h in
             (fitting or named)[:MAX_CANDIDATES]]
    what = (f"citizens of {place.label} with occupation "
            f"{' or '.join(j.label for j in jobs)}" if jobs else f"citizens of {place.label}")
    if len(fitting) == 1:
        return NameLookup(Lookup.MATCHED, fitting[0]["qid"], shown, f"the one {what}")
    if fitting:
        return NameLookup(Lookup.AMBIGUOUS, None, shown,
                          f"{len(fitting)} items called {name!r} are {what}: choose one")
    return NameLookup(Lookup.NOT_FOUND, None, shown,
                      f"{len(named)} items are called {name!r}, none of them {what}")


def citizens(wd: Wikidata, candidates: Sequence[str], country: str) -> set[str]:
    """Which of ``candidates`` are humans with citizenship ``country`` (no occupation)."""
    values = " ".join(f"wd:{q}" for q in candidates if QID.match(q))
    if not values or not QID.match(country):
        return set()
    query = (f"SELECT ?person WHERE {{\n  VALUES ?person {{ {values} }}\n"
             f"  ?person wdt:P31 wd:Q5 ;\n          wdt:P27 wd:{country} .\n}}")
    rows = wd.client.sparql(wd.sparql_url, query)
    found = {r.get("person", {}).get("value", "").rsplit("/", 1)[-1] for r in rows}
    return {q for q in found if QID.match(q)}


def _search(wd: Wikidata, text: str, language: str) -> list[dict[str, str]]:
    out = []
    for h in wd.search_hits(text, SEARCH_LIMIT, language or None):
        match = h.get("match") if isinstance(h.get("match"), dict) else {}
        out.append({"qid": str(h["id"]), "label": str(h.get("label") or ""),
                    "description": str(h.get("description") or "")[:200],
                    "match": str(match.get("text") or "")})
    return out


def search_people(settings: Settings, text: str, *, limit: int = SEARCH_LIMIT
                  ) -> list[dict[str, str]]:
    """Humans on Wikidata that ``text`` finds (search as one types, e.g. naming a candidate
    of issue 24): Q-id, label, description and the portrait's Commons file name (P18, or
    ""). Nothing for under 2 characters, or while Wikidata is unreachable (the breaker);
    answers come through the polite client and its cache."""
    text = " ".join(text.split())[:100]
    if len(text) < 2 or wikidata_down(settings):
        return []
    wd = lookup_client(settings)
    try:
        hits = _search(wd, text, "")[:limit]
        entities = wd.entities([h["qid"] for h in hits], "claims") if hits else {}
    except FaceAtlasError as exc:  # unreachable, refused: an empty list, not an error page
        log.warning("Wikidata search unavailable: %s", exc)
        _trip(settings)
        return []
    finally:
        wd.close()
    out = []
    for h in hits:
        entity = entities.get(h["qid"], {})
        if "Q5" not in claim_ids(entity, "P31"):  # people only
            continue
        portraits = claim_strings(entity, "P18")
        out.append({"qid": h["qid"], "label": h["label"], "description": h["description"],
                    "portrait": portraits[0] if portraits else ""})
    return out


def needs_lookup(person: Person) -> bool:
    """No Q-id, and no lookup that settled it (matched, ambiguous or not found)."""
    if person.wikidata_qid:
        return False
    state = (person.wikidata_lookup or {}).get("state")
    return state not in (Lookup.MATCHED, Lookup.AMBIGUOUS, Lookup.NOT_FOUND)


def resolve_person(settings: Settings, person_id: int, *, wikidata: Wikidata | None = None,
                   force: bool = False) -> NameLookup | None:
    """Look the person's name up and store the outcome; None when nothing was asked (a
    Q-id already, a settled lookup without ``force``). Never raises for Wikidata's sake."""
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        if person is None or person.wikidata_qid or not (force or needs_lookup(person)):
            return None
        name, occupations = person.name, list(person.occupations or [])
        country = person.country or person.collection.name
    if wikidata_down(settings):
        found = NameLookup(Lookup.UNAVAILABLE, detail="Wikidata was unreachable a moment ago")
    else:
        wd = wikidata or lookup_client(settings)
        try:
            found = lookup_name(wd, name, country, occupations)
        except FaceAtlasError as exc:  # unreachable, refused, lagging: never the person's fault
            _trip(settings)
            found = NameLookup(Lookup.UNAVAILABLE, detail=f"Wikidata could not be asked: {exc}")
            log.info("wikidata lookup of %r: %s", name, exc)
        finally:
            if wikidata is None:
                wd.close()
    with session_scope(settings) as s:
        person = s.get(Person, person_id)
        if person is None:
            return found
        if found.qid is not None:
            namesake = s.scalar(select(Person.name).where(
                Person.collection_id == person.collection_id, Person.id != person.id,
                Person.wikidata_qid == found.qid))
            if namesake is not None:  # one item cannot be two people of a collection
                found = NameLookup(Lookup.AMBIGUOUS, None, found.candidates,
                                   f"{found.qid} is already {namesake} in this collection")
        person.wikidata_qid = found.qid or person.wikidata_qid
        person.wikidata_lookup = found.stored()
    return found


@dataclass
class ResolveReport:
    checked: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    ambiguous: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)


def resolve_people(settings: Settings, collection: str | None = None, *, force: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> ResolveReport:
    """Look up every person without a Q-id (of one collection): the cheap step after an
    import or a migration, so anchors exist before anything is collected."""
    with session_scope(settings) as s:
        query = select(Person.id).where(Person.wikidata_qid.is_(None)).order_by(Person.id)
        if collection:
            query = query.join(Collection).where(Collection.key == collection_key(collection))
        ids = list(s.scalars(query))
    if force:
        reset_breaker()
    report = ResolveReport()
    wd = lookup_client(settings)
    try:
        for done, pid in enumerate(ids, start=1):
            found = resolve_person(settings, pid, wikidata=wd, force=force)
            if found is not None:
                report.checked += 1
                report.by_state[str(found.state)] = report.by_state.get(str(found.state), 0) + 1
                if found.state == Lookup.AMBIGUOUS:
                    with session_scope(settings) as s:
                        report.ambiguous.append((s.get(Person, pid).name,  # type: ignore[union-attr]
                                                 found.candidates))
            if progress:
                progress(done, len(ids))
    finally:
        wd.close()
    return report
