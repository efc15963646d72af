"""Candidates: unknown faces seen again and again, grouped into people nobody has named yet.

Unknown sightings are clustered as they are written, with curation's non-chaining rule
(``curation.identity``: average linkage), cut at the engine's recognise distance — two
groups are one person when, on average, recognition would call their faces the same
(bench_sightings: at the link distance 0.95 one person of ten seen 5 times split in three,
recall 0.87; at 1.05, recall 0.96 with precision still 1.0): a new face joins the
cluster whose *mean* distance to it is smallest and under the cut — the UPGMA distance of a
one-face group, Lance–Williams — or starts a cluster; a cluster that grew is merged with any
other whose mean pairwise distance to it fell under the cut, as average linkage would. A few
borderline pairs cannot chain two people together: the many clearly-different pairs outvote
them. :func:`recluster` runs ``identity.average_linkage`` itself over all of a collection's
unknown faces (the same groups, whatever order the faces came in).

A cluster seen at least ``sightings_min_sightings`` times in at least
``sightings_min_sources`` different sources is a candidate person, unless its centre (the
mean of its faces, steadier than any one of them) is recognised as a gallery person: those
are a known person's missed faces, shown as ``resembles``, not as someone new.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from faceatlas.curation.identity import average_linkage, pairwise
from faceatlas.domain.errors import NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.gallery.index import best_person, index_store
from faceatlas.gallery.promote import SEARCH_K
from faceatlas.settings import Settings
from faceatlas.store.db import chunked, session_scope
from faceatlas.store.models import (
    Collection,
    Sighting,
    SightingBlock,
    SightingCluster,
    aware,
)

#: faces shown per candidate
BEST_FACES = 6



@dataclass
class _State:
    """A collection's clustered unknown faces of one engine, kept by the writer thread."""

    stamp: tuple[int, int]  # (rows, max id) in the database when last in step
    vectors: np.ndarray
    labels: np.ndarray  # cluster id per row


_cache: dict[tuple[str, int, str], _State] = {}
_cache_lock = threading.Lock()


def forget_cache(settings: Settings) -> None:
    """Erasure, purge and naming change clusters behind the writer's back: read again."""
    with _cache_lock:
        for key in [k for k in _cache if k[0] == settings.db_url]:
            del _cache[key]


def _unknown(coll_id: int, engine: str) -> Any:
    return ((Sighting.collection_id == coll_id) & Sighting.person_id.is_(None)
            & Sighting.cluster_id.is_not(None) & (Sighting.engine == engine))


def _state(s: Session, settings: Settings, coll_id: int, engine: str) -> _State:
    """The cached state if the database still has what it had, else read again (another
    process recorded, or something was erased)."""
    count, top = s.execute(select(func.count(), func.max(Sighting.id))
                           .where(_unknown(coll_id, engine))).one()
    stamp = (int(count or 0), int(top or 0))
    key = (settings.db_url, coll_id, engine)
    with _cache_lock:
        state = _cache.get(key)
    if state is not None and state.stamp == stamp:
        return state
    rows = s.execute(select(Sighting.embedding, Sighting.cluster_id)
                     .where(_unknown(coll_id, engine)).order_by(Sighting.id)).all()
    vectors = (np.stack([np.frombuffer(e, dtype=np.float32) for e, _ in rows]) if rows
               else np.zeros((0, 0), dtype=np.float32))
    state = _State(stamp, vectors, np.array([c for _, c in rows], dtype=np.int64))
    with _cache_lock:
        _cache[key] = state
    return state


def _cut(settings: Settings, engine: str) -> float:
    if settings.sightings_cluster_distance is not None:
        return settings.sightings_cluster_distance
    return settings.thresholds(engine).recognize


def assign(s: Session, settings: Settings, coll_id: int, engine: str,
           rows: list[Sighting]) -> None:
    """Put each new unknown sighting (flushed, no cluster yet) into a cluster."""
    if not rows:
        return
    state = _state(s, settings, coll_id, engine)
    cut = _cut(settings, engine)
    vectors, labels = state.vectors, state.labels
    for row in rows:
        e = np.frombuffer(row.embedding, dtype=np.float32)
        target = None
        if len(labels):
            d = np.linalg.norm(vectors - e, axis=1)
            ids, inverse = np.unique(labels, return_inverse=True)
            means = np.bincount(inverse, d) / np.bincount(inverse)
            best = int(means.argmin())
            if means[best] < cut:
                target = int(ids[best])
        if target is None:
            cluster = SightingCluster(collection_id=coll_id)
            s.add(cluster)
            s.flush()
            target = cluster.id
        row.cluster_id = target
        vectors = e[None, :].copy() if not len(labels) else np.vstack([vectors, e])
        labels = np.append(labels, target)
        labels = _merge_into(s, target, vectors, labels, cut)
    s.flush()
    stamp = (state.stamp[0] + len(rows), max(state.stamp[1], max(r.id for r in rows)))
    with _cache_lock:
        _cache[(settings.db_url, coll_id, engine)] = _State(stamp, vectors, labels)


def _merge_into(s: Session, target: int, vectors: np.ndarray, labels: np.ndarray,
                cut: float) -> np.ndarray:
    """Merge into ``target`` every cluster whose mean distance to it is under the cut
    (closest first, as average linkage would; the mean is taken again after each merge)."""
    while True:
        mine = labels == target
        others = ~mine
        if not others.any():
            return labels
        col = _cross(vectors[mine], vectors[others]).mean(axis=0)
        ids, inverse = np.unique(labels[others], return_inverse=True)
        means = np.bincount(inverse, col) / np.bincount(inverse)
        best = int(means.argmin())
        if not means[best] < cut:
            return labels
        gone = int(ids[best])
        s.execute(update(Sighting).where(Sighting.cluster_id == gone)
                  .values(cluster_id=target))
        s.execute(delete(SightingCluster).where(SightingCluster.id == gone))
        labels = np.where(labels == gone, target, labels)


def blocked(s: Session, settings: Settings, coll_id: int, engine: str,
            vectors: np.ndarray) -> np.ndarray:
    """Which faces look like one dismissed as "not a public figure" (within link)."""
    blocks = [np.frombuffer(e, dtype=np.float32) for e in s.scalars(
        select(SightingBlock.embedding).where(SightingBlock.collection_id == coll_id))]
    blocks = [b for b in blocks if b.shape[0] == vectors.shape[1]]
    if not blocks:
        return np.zeros(len(vectors), dtype=bool)
    return np.asarray(_cross(vectors, np.stack(blocks)).min(axis=1) < _cut(settings, engine))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b`` (len(a) × len(b) floats,
    never a len(a) × len(b) × dim difference array)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d2 = (a64 * a64).sum(axis=1)[:, None] + (b64 * b64).sum(axis=1)[None, :] - 2 * a64 @ b64.T
    return np.sqrt(np.maximum(d2, 0.0))


def recluster(settings: Settings, collection: str) -> int:
    """Cluster all of a collection's unknown faces again with ``average_linkage`` (the
    incremental result, whatever order faces came in). Returns the number of clusters."""
    key = collection_key(collection)
    total = 0
    with session_scope(settings) as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.key == key))
        if coll_id is None:
            raise NotFoundError(f"no collection {collection!r}")
        engines = s.scalars(select(Sighting.engine).distinct().where(
            (Sighting.collection_id == coll_id) & Sighting.person_id.is_(None))).all()
        for engine in engines:
            rows = s.execute(select(Sighting.id, Sighting.embedding).where(
                (Sighting.collection_id == coll_id) & Sighting.person_id.is_(None)
                & (Sighting.engine == engine)).order_by(Sighting.id)).all()
            vectors = np.stack([np.frombuffer(e, dtype=np.float32) for _, e in rows])
            for group in average_linkage(pairwise(vectors), _cut(settings, engine)):
                cluster = SightingCluster(collection_id=coll_id)
                s.add(cluster)
                s.flush()
                ids = [rows[i][0] for i in group]
                for chunk in chunked(ids):
                    s.execute(update(Sighting).where(Sighting.id.in_(chunk))
                              .values(cluster_id=cluster.id))
                total += 1
        used = select(Sighting.cluster_id).where(Sighting.cluster_id.is_not(None))
        s.execute(delete(SightingCluster).where((SightingCluster.collection_id == coll_id)
                                                & SightingCluster.id.not_in(used)))
    forget_cache(settings)
    return total


# --------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    cluster_id: int
    sightings: int
    sources: int
    first_seen: datetime
    last_seen: datetime
    where: list[dict[str, Any]]  # the most frequent sources: {source, count}
    faces: list[int]  # sighting ids of its best faces (nearest its centre)
    resembles: int | None = None  # a gallery person most of its faces are near
    members: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "sightings": self.sightings,
                "sources": self.sources, "first_seen": aware(self.first_seen).isoformat(),
                "last_seen": aware(self.last_seen).isoformat(), "where": self.where,
                "faces": self.faces, "resembles": self.resembles}


def candidates(settings: Settings, collection: str, *, min_sightings: int | None = None,
               min_sources: int | None = None, resembling: bool = False,
               limit: int = 100) -> list[Candidate]:
    """The collection's candidate people, most seen first. ``resembling``: also those most
    of whose faces are near one gallery person (held back by default)."""
    n = min_sightings or settings.sightings_min_sightings
    m = min_sources or settings.sightings_min_sources
    key = collection_key(collection)
    out = []
    with session_scope(settings) as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.key == key))
        if coll_id is None:
            raise NotFoundError(f"no collection {collection!r}")
        groups = s.execute(
            select(Sighting.cluster_id, func.count(), func.count(Sighting.source.distinct()),
                   func.min(Sighting.seen_at), func.max(Sighting.seen_at))
            .where((Sighting.collection_id == coll_id) & Sighting.person_id.is_(None)
                   & Sighting.cluster_id.is_not(None))
            .group_by(Sighting.cluster_id)
            .having((func.count() >= n) & (func.count(Sighting.source.distinct()) >= m))
            .order_by(func.count().desc(), Sighting.cluster_id)
        ).all()
        index = index_store(settings).get(key) if groups else None
        for cluster_id, count, sources, first, last in groups:
            rows = s.execute(select(Sighting.id, Sighting.embedding, Sighting.source,
                                    Sighting.engine, Sighting.crop_path)
                             .where(Sighting.cluster_id == cluster_id)).all()
            vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            centre = vectors.mean(axis=0)
            resembles = _resembles(index, centre, vectors,
                                   settings.thresholds(rows[0][3]).recognize)
            if resembles is not None and not resembling:
                continue
            d = np.linalg.norm(vectors - centre, axis=1)
            best = [rows[i][0] for i in np.argsort(d, kind="stable") if rows[i][4]]
            where = Counter(r[2] for r in rows).most_common(5)
            out.append(Candidate(cluster_id, count, sources, aware(first), aware(last),
                                 [{"source": w, "count": c} for w, c in where],
                                 best[:BEST_FACES], resembles, [r[0] for r in rows]))
            if len(out) >= limit:
                break
    return out


def _resembles(index: Any, centre: np.ndarray, vectors: np.ndarray,
               threshold: float) -> int | None:
    """The gallery person the cluster's centre is recognised as, if any (the centre is put
    back on the unit sphere when the faces are unit vectors, as the index's are)."""
    if index is None or not len(index):
        return None
    norms = np.linalg.norm(vectors, axis=1)
    if np.allclose(norms, 1.0, atol=1e-3):
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    found = best_person(index.search(centre[None, :].astype(np.float32), SEARCH_K)[0],
                        threshold)
    return None if found is None else found[0]


# --------------------------------------------------------------------------- naming


#: faces of a named candidate that become the new person's trusted references
REFERENCES = 5


@dataclass
class Named:
    person_id: int
    person: str
    created: bool
    references: int  # trusted references added
    sightings: int  # sightings now the person's appearances


def _cluster_rows(s: Session, cluster_id: int) -> tuple[SightingCluster, list[Sighting]]:
    cluster = s.get(SightingCluster, cluster_id)
    if cluster is None:
        raise NotFoundError(f"no cluster with id {cluster_id}")
    rows = list(s.scalars(select(Sighting).where(Sighting.cluster_id == cluster_id)
                          .order_by(Sighting.id)))
    return cluster, rows


def _adopt(s: Session, cluster: SightingCluster, rows: list[Sighting], person_id: int) -> None:
    """The cluster's sightings become the person's appearances; the cluster goes."""
    for r in rows:
        r.person_id, r.cluster_id = person_id, None
    s.flush()
    s.delete(cluster)


def name_candidate(settings: Settings, cluster_id: int, name: str, *,
                   wikidata_qid: str | None = None) -> Named:
    """Confirm a candidate as a person: a new person of the cluster's collection (queued for
    collection), the cluster's best faces (nearest its centre) as trusted references, its
    sightings as the person's appearances. A name already in the collection is that person
    (``created`` False): the faces are added to them the same way."""
    from faceatlas.domain.states import ReferenceState
    from faceatlas.store.models import Reference
    from faceatlas.store.people import upsert_person

    with session_scope(settings) as s:
        cluster, rows = _cluster_rows(s, cluster_id)
        collection = s.get(Collection, cluster.collection_id)
        assert collection is not None
        person, created = upsert_person(s, collection, name, source="sightings")
        if wikidata_qid and not person.wikidata_qid:
            person.wikidata_qid = wikidata_qid
        vectors = np.stack([np.frombuffer(r.embedding, dtype=np.float32) for r in rows])
        order = np.argsort(np.linalg.norm(vectors - vectors.mean(axis=0), axis=1),
                           kind="stable")[:REFERENCES]
        for i in order:
            s.add(Reference(person_id=person.id, source="sighting",
                            embedding=rows[int(i)].embedding, state=ReferenceState.READY))
        _adopt(s, cluster, rows, person.id)
        out = Named(person.id, person.name, created, len(order), len(rows))
    forget_cache(settings)
    return out


def merge_candidate(settings: Settings, cluster_id: int, person_id: int) -> Named:
    """The candidate is a person already in the collection: its sightings become their
    appearances (their gallery and references are left as they are)."""
    from faceatlas.store.models import Person

    with session_scope(settings) as s:
        cluster, rows = _cluster_rows(s, cluster_id)
        person = s.get(Person, person_id)
        if person is None or person.collection_id != cluster.collection_id:
            raise NotFoundError(f"no person with id {person_id} in the candidate's collection")
        _adopt(s, cluster, rows, person.id)
        out = Named(person.id, person.name, False, 0, len(rows))
    forget_cache(settings)
    return out
