"""Which group of faces is the person: clustering that does not chain, and the choice of group.

Pure functions on embeddings (no database, no models), used by ``decide.decide``.

Why average linkage: "densest face + everything within a radius" (and single-linkage
clustering) joins two people as soon as a chain of look-alike photos leads from one to the
other — A₁ near A₂ near B₁ near B₂ — and the centre then falls between them and accepts both.
Average linkage merges two groups only while the *mean* distance over all their pairs is under
the link distance, so a few borderline pairs cannot outvote the many clearly-different pairs.
Complete linkage resists chaining too, but splits one person's varied photos (ages, styles)
into many small groups, which lets a compact co-star outnumber them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np


def pairwise(v: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between the rows of ``v`` (with ``w``: from each row of ``v`` to
    each row of ``w``), in float64."""
    v = v.astype(np.float64)
    w = v if w is None else w.astype(np.float64)
    d2 = (v * v).sum(axis=1)[:, None] + (w * w).sum(axis=1)[None, :] - 2 * v @ w.T
    return np.sqrt(np.maximum(d2, 0.0))


def average_linkage(dist: np.ndarray, cut: float) -> list[list[int]]:
    """Agglomerative clustering (UPGMA) of a distance matrix, stopped at ``cut``.

    Groups are merged, closest first, while their average pairwise distance is below ``cut``.
    Each row keeps its nearest group (a cache), so a merge costs O(n) plus the rows whose
    nearest group was one of the two merged: O(n²) in practice, not O(n³).
    Returns groups of row indices, each sorted, ordered by their first row.
    """
    n = len(dist)
    if n == 0:
        return []
    d = dist.astype(np.float64).copy()
    np.fill_diagonal(d, np.inf)
    size = np.ones(n)
    active = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    nearest = d.argmin(axis=1)
    near_d = d[np.arange(n), nearest]
    while True:
        masked = np.where(active, near_d, np.inf)
        i = int(masked.argmin())
        if not masked[i] < cut:
            break
        j = int(nearest[i])
        i, j = min(i, j), max(i, j)  # the merged group keeps the lower (better-ranked) row
        merged = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])  # Lance–Williams
        d[i, :] = merged
        d[:, i] = merged
        d[i, i] = np.inf
        d[j, :] = np.inf
        d[:, j] = np.inf
        active[j] = False
        size[i] += size[j]
        members[i] += members[j]
        members[j] = []
        stale = active & ((nearest == i) | (nearest == j))
        stale[i] = True
        for r in np.flatnonzero(stale):
            nearest[r] = int(d[r].argmin())
            near_d[r] = d[r, nearest[r]]
        closer = active & (d[:, i] < near_d)
        closer[i] = False
        nearest[closer] = i
        near_d[closer] = d[closer, i]
    groups = [sorted(m) for m in members if m]
    return sorted(groups, key=lambda g: g[0])


def robust_centre(vectors: np.ndarray, dist: np.ndarray | None = None,
                  trim: float = 0.2) -> np.ndarray:
    """The medoid's neighbourhood mean: the mean of the ``1 - trim`` members nearest the
    medoid. A mean over all members drifts towards stragglers; the medoid alone is noisy."""
    if len(vectors) <= 2:
        return vectors.mean(axis=0)
    dist = pairwise(vectors) if dist is None else dist
    medoid = int(dist.sum(axis=1).argmin())
    keep = max(2, int(np.ceil(len(vectors) * (1 - trim))))
    nearest = np.argsort(dist[medoid], kind="stable")[:keep]
    return vectors[nearest].mean(axis=0)


@dataclass
class Group:
    rows: list[int]  # indices into the face pool
    images: int  # distinct images among them
    rank: float  # median pool position (search rank order): lower is better
    centre: np.ndarray
    against: int = 0  # of those images, results whose text names another person instead

    @property
    def vote(self) -> int:
        """Images for the group, less two for each whose text names someone else: such a
        result does not vote for the group, it votes against it."""
        return self.images - 2 * self.against


def groups_of(vectors: np.ndarray, image_keys: Sequence[int], cut: float,
              trim: float = 0.2, against: Collection[int] = ()) -> list[Group]:
    """Cluster the faces and describe each group (vote, rank, centre); ``against``: image
    keys of results whose text names another person of the collection, not this one."""
    dist = pairwise(vectors)
    out = []
    for rows in average_linkage(dist, cut):
        sub = dist[np.ix_(rows, rows)]
        keys = {image_keys[r] for r in rows}
        out.append(Group(rows, len(keys), float(np.median(rows)),
                         robust_centre(vectors[rows], sub, trim), len(keys & set(against))))
    return out


def by_vote(groups: Sequence[Group], rank_tie: float) -> Group | None:
    """The group with the best vote (images, less the text's evidence against it); groups
    within ``rank_tie`` (a fraction) of the best are tied, and the one ranked higher by the
    search wins (the search is a weak prior: its first hits are more often the person than
    its last). None when no two faces agree, or when the text speaks against every group."""
    if not groups:
        return None
    if max(g.images for g in groups) < 2 and sum(g.images for g in groups) > 1:
        return None
    top = max(g.vote for g in groups)
    if top <= 0 and any(g.against for g in groups):
        return None  # every group is mostly someone else's, by their own captions
    tied = [g for g in groups if g.vote >= top - abs(top) * rank_tie]
    return min(tied, key=lambda g: (g.rank, -g.vote))


def by_reference(groups: Sequence[Group], references: np.ndarray
                 ) -> tuple[Group | None, float]:
    """The group whose centre is nearest to any reference photo, and that distance."""
    if not groups or len(references) == 0:
        return None, float("inf")
    centres = np.stack([g.centre for g in groups]).astype(np.float64)
    d = np.linalg.norm(centres[:, None, :] - references[None, :, :].astype(np.float64), axis=2)
    nearest = d.min(axis=1)
    best = int(nearest.argmin())
    return groups[best], float(nearest[best])
