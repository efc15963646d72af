"""Evidence from the results' text: a hit whose title or page names someone else.

An image search returns a title and a page URL with each photo. When that text names another
person of the collection and not this one ("Tom Cruise at the premiere" in the results for
his lesser-known co-star), the photo is more likely the other person's: the vote counts it
against its face group (``identity.Group.vote``), so a vote without an anchor is not blind.
Names are matched by name key (``domain.names.name_key``: accents, case and punctuation
folded) as whole words; this person counts as named by their full name or their surname.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.domain.names import name_key
from faceatlas.store.db import chunked
from faceatlas.store.models import Person

#: longest name (in words) looked for in a text
MAX_WORDS = 6


def word_runs(text: str) -> set[str]:
    """Every run of 1..MAX_WORDS consecutive words of the text, as name keys."""
    words = name_key(text).split()
    return {" ".join(words[i:i + n]) for n in range(1, MAX_WORDS + 1)
            for i in range(len(words) - n + 1)}


def names_me(runs: set[str], key: str) -> bool:
    """The text names the person: their whole name, or their surname (4+ letters)."""
    words = key.split()
    return key in runs or (len(words) > 1 and len(words[-1]) >= 4 and words[-1] in runs)


def against(texts: Mapping[int, str], me: str, others: Mapping[str, str]) -> dict[int, str]:
    """image key → the other people its text names, for texts that do not name ``me``
    (a name key); ``others``: name key → display name of the collection's other people."""
    out = {}
    for key, text in texts.items():
        runs = word_runs(text)
        if not runs or names_me(runs, me):
            continue
        named = sorted(others[r] for r in runs & others.keys())
        if named:
            out[key] = ", ".join(named[:3])
    return out


def text_evidence(session: Session, person: Person,
                  images: Iterable[tuple[int, str | None, str | None]]) -> dict[int, str]:
    """image key → the other people of the collection its (title, page URL) names instead
    of ``person``; one indexed query for the names the texts could hold."""
    texts = {key: " ".join(t for t in (title, page) if t) for key, title, page in images}
    texts = {k: t for k, t in texts.items() if t}
    if not texts:
        return {}
    runs = sorted(set().union(*(word_runs(t) for t in texts.values())) - {person.key})
    others: dict[str, str] = {}
    for chunk in chunked(runs):
        others.update((key, name) for key, name in session.execute(
            select(Person.key, Person.name).where(
                Person.collection_id == person.collection_id, Person.id != person.id,
                Person.key.in_(chunk))))
    return against(texts, person.key, others) if others else {}
