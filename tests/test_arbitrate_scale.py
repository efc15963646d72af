"""Arbitration at a collection's size: only the people a rule can reach are read in full, and
the moves and flags are exactly those against the whole collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select, update

from faceatlas.curation import arbitrate
from faceatlas.curation.arbitrate import find_moves, load_galleries, people_in_reach
from faceatlas.curation.decide import CurateParams
from faceatlas.devtools.bigcollection import generate
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Face, FaceState, Image, Person


def _accepted(s, pid: int) -> list[Face]:  # type: ignore[no-untyped-def]
    return list(s.scalars(select(Face).where(Face.person_id == pid,
                                             Face.state == FaceState.ACCEPTED)
                          .order_by(Face.id)))


def test_people_in_reach_give_the_same_moves_as_the_whole_collection(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, engine="sface")
    generate(settings, people=60, faces=12, collection="big", crops=4)
    rng = np.random.default_rng(5)
    p = CurateParams.from_settings(settings)
    with session_scope(settings) as s:
        cid = s.scalar(select(Collection.id).where(Collection.key == "big"))
        galleries = load_galleries(s, cid)
        ids = sorted(pid for pid, g in galleries.items() if len(g.face_ids) >= 3)
        a, twin, lookalike = ids[:3]
        # the twin: the same identity under another name; the look-alike: one photo of a's
        # (the same bytes, the same face) among their own
        source = _accepted(s, a)
        for face, src in zip(_accepted(s, twin), source * 10, strict=False):
            vec = np.frombuffer(src.embedding or b"", np.float32)
            near = vec + rng.normal(0, 0.01, vec.shape).astype(np.float32)
            face.embedding = (near / np.linalg.norm(near)).astype(np.float32).tobytes()
        shared = _accepted(s, lookalike)[0]
        shared.embedding = source[0].embedding
        s.execute(update(Image).where(Image.id == shared.image_id)
                  .values(sha256=s.get(Image, source[0].image_id).sha256))  # type: ignore[union-attr]
    with session_scope(settings) as s:
        everyone = load_galleries(s, cid)
        compared = 0
        for pid, me in everyone.items():
            others = [g for q, g in everyone.items() if q != pid]
            reach = people_in_reach(s, cid, pid, p)
            assert pid not in reach and reach == sorted(reach)
            near = [everyone[q] for q in reach]
            assert find_moves(me, others, p) == find_moves(me, near, p), pid
            compared += bool(me.face_ids)
        assert compared >= 40
        # the twin and the look-alike are within a's reach; a stranger reaches few
        assert {twin, lookalike} <= set(people_in_reach(s, cid, a, p))
        assert find_moves(everyone[a], [everyone[twin]], p)[0]  # a rule does fire
        reaches = [len(people_in_reach(s, cid, pid, p)) for pid in ids[3:]]
        assert np.median(reaches) < len(everyone) / 4
    # a changed gallery is seen at once: the process's copy follows the database
    with session_scope(settings) as s:
        s.execute(update(Person).where(Person.id == twin).values(state="failed"))
    with session_scope(settings) as s:
        assert twin not in people_in_reach(s, cid, a, p)
        assert arbitrate._KEPT[cid]  # kept for the next person
