"""How each gallery is anchored, read from the people's references (issue 25).

An anchor is a measured (``ready``) reference: the Wikidata portrait (``source`` wikidata) is
``portrait``; any other (a sheet or API photo, a reviewer's "This is them") is ``reference``;
without one the gallery rests on the majority vote of the search results alone: ``none``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from faceatlas.domain.states import Anchor, ReferenceState
from faceatlas.store.db import chunked
from faceatlas.store.models import Person, Reference

#: the reference source of a Wikidata portrait (P18 of the person's Q-id)
PORTRAIT_SOURCE = "wikidata"


def anchors_of(session: Session, person_ids: Iterable[int]) -> dict[int, Anchor]:
    """person id → anchor, for every id given (one query per 500 ids)."""
    ids = list(dict.fromkeys(person_ids))
    out = {pid: Anchor.NONE for pid in ids}
    for chunk in chunked(ids):
        rows = session.execute(select(Reference.person_id, Reference.source).where(
            Reference.person_id.in_(chunk),
            Reference.state == ReferenceState.READY)).all()
        for pid, source in rows:
            if source == PORTRAIT_SOURCE:
                out[pid] = Anchor.PORTRAIT
            elif out[pid] == Anchor.NONE:
                out[pid] = Anchor.REFERENCE
    return out


def anchor_of(session: Session, person_id: int) -> Anchor:
    return anchors_of(session, [person_id])[person_id]


def anchored_filter(anchor: str) -> object:
    """A WHERE clause on ``Person.id`` for the people whose anchor is ``anchor``."""

    ready = select(Reference.person_id).where(Reference.state == ReferenceState.READY)
    portrait = ready.where(Reference.source == PORTRAIT_SOURCE)
    if anchor == Anchor.PORTRAIT:
        return Person.id.in_(portrait)
    if anchor == Anchor.REFERENCE:
        return Person.id.in_(ready.where(Reference.source != PORTRAIT_SOURCE)) & \
            Person.id.not_in(portrait)
    if anchor == Anchor.NONE:
        return Person.id.not_in(ready)
    raise ValueError(f"unknown anchor {anchor!r} (portrait, reference or none)")
