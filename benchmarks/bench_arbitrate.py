"""Arbitration at a collection's size: the whole collection read and compared every round
(before) beside only the people in reach (``people_in_reach``), in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_arbitrate.py [--people 1000] [--faces 40]

A generated collection (``devtools.bigcollection``: people with clustered SFace-like
embeddings, some curated, promoted or failed) in a temporary home; for ``--rounds`` people,
one arbitration round each: read the galleries and find the moves. Printed: ms a round both
ways, the ratio, the first look at the collection (the process keeps its galleries), and
whether both ways found the same moves and flags.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from faceatlas.curation.arbitrate import find_moves, load_galleries, people_in_reach
from faceatlas.curation.decide import CurateParams
from faceatlas.devtools.bigcollection import generate
from faceatlas.settings import Settings
from faceatlas.store.db import reset_caches, session_scope
from faceatlas.store.models import Collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--faces", type=int, default=40, help="candidate faces a person")
    parser.add_argument("--rounds", type=int, default=20, help="people arbitrated, timed")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-arbitrate-"))
    try:
        settings = Settings(home=home, engine="sface")
        big = generate(settings, people=args.people, faces=args.faces, crops=8)
        params = CurateParams.from_settings(settings)
        with session_scope(settings) as s:
            coll = s.scalar(select(Collection.id).where(Collection.key == big.collection))
            everyone = load_galleries(s, coll)
            faces = sum(len(g.face_ids) for g in everyone.values())
            pids = [pid for pid, g in everyone.items() if g.face_ids][:args.rounds]
            t = time.perf_counter()
            before = []
            for pid in pids:
                galleries = load_galleries(s, coll)
                me = galleries.pop(pid)
                before.append(find_moves(me, list(galleries.values()), params))
            whole = (time.perf_counter() - t) / len(pids)
            t = time.perf_counter()
            people_in_reach(s, coll, pids[0], params)
            first = time.perf_counter() - t
            t = time.perf_counter()
            after = []
            for pid in pids:
                near = people_in_reach(s, coll, pid, params)
                galleries = load_galleries(s, coll, [pid, *near])
                me = galleries.pop(pid)
                after.append(find_moves(me, list(galleries.values()), params))
            reach = (time.perf_counter() - t) / len(pids)
        print(f"{len(everyone)} arbitrated people, {faces} accepted faces; {len(pids)} rounds")
        print(f"  whole collection   {1000 * whole:8.1f} ms a round")
        print(f"  people in reach    {1000 * reach:8.1f} ms a round  ({whole / reach:.1f}× less; "
              f"first look at the collection {1000 * first:.0f} ms)")
        print(f"  same moves and flags: {before == after}")
    finally:
        reset_caches()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
