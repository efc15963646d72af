"""The identity rules on synthetic embeddings: no chaining, vote with rank prior, references,
exclusions, and collection arbitration (pure functions, no models)."""

from __future__ import annotations

import numpy as np
import pytest

from faceatlas.curation.arbitrate import Gallery, find_moves
from faceatlas.curation.decide import CurateParams, decide
from faceatlas.curation.identity import average_linkage, pairwise
from faceatlas.domain.states import Reason
from faceatlas.faces.analyse import FaceAnalysis, ImageAnalysis

DIM = 128
P = CurateParams()


def centre(rng: np.random.Generator, near: np.ndarray | None = None, gap: float = 0.9
           ) -> np.ndarray:
    """A random identity centre, ``gap`` away from ``near`` when given."""
    if near is None:
        return rng.normal(0, 0.09, DIM)
    step = rng.normal(0, 1, DIM)
    return near + step / np.linalg.norm(step) * gap


def faces(rng: np.random.Generator, c: np.ndarray, n: int, spread: float) -> list[np.ndarray]:
    """``n`` faces around ``c``; pairwise distances ≈ spread·√(2·128)."""
    return [c + rng.normal(0, spread, DIM) for _ in range(n)]


def analyses(vectors: list[np.ndarray]) -> list[ImageAnalysis]:
    """One single-face image per vector, in rank order."""
    return [ImageAnalysis(key=k, faces=[FaceAnalysis(0, (0, 0, 120, 120), 2.0, [], 300.0, None,
                                                     embedding=v.astype(np.float32))])
            for k, v in enumerate(vectors)]


def accepted(vectors: list[np.ndarray], **kw: object) -> set[int]:
    out = decide(analyses(vectors), P, **kw)  # type: ignore[arg-type]
    return {k for k, _ in out.accepted()}


def naive_average_linkage(dist: np.ndarray, cut: float) -> list[list[int]]:
    groups = [[i] for i in range(len(dist))]
    while len(groups) > 1:
        best, pair = np.inf, (0, 0)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                d = dist[np.ix_(groups[a], groups[b])].mean()
                if d < best:
                    best, pair = d, (a, b)
        if best >= cut:
            break
        a, b = pair
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    return sorted(groups, key=lambda g: g[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_average_linkage_matches_the_textbook_algorithm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(c, 0.3, (12, 4)) for c in (0, 1.5, 3)])
    dist = pairwise(points)
    assert average_linkage(dist, 1.2) == naive_average_linkage(dist, 1.2)


def test_a_compact_co_star_does_not_outnumber_a_varied_person() -> None:
    """The person's own photos are varied, the co-star's 10 are near-identical: the densest
    neighbourhood is the co-star's, but the person has more images."""
    rng = np.random.default_rng(7)
    me, costar = centre(rng), None
    costar = centre(rng, me, 0.85)
    own = faces(rng, me, 16, 0.029)  # pairs ≈ 0.46: varied
    co = faces(rng, costar, 10, 0.012)  # pairs ≈ 0.19: one photo shoot
    vectors = [v for pair in zip(own[:10], co, strict=True) for v in pair] + own[10:]
    own_keys = {i for i, v in enumerate(vectors) if any(v is o for o in own)}
    got = accepted(vectors)
    assert got <= own_keys and len(got) >= len(own) - 1


def test_look_alikes_do_not_chain_into_one_identity() -> None:
    """A and B look alike (centres 0.62 apart) and a few in-between photos link them: each
    link is short, but A and B on average are far apart."""
    rng = np.random.default_rng(11)
    a = centre(rng)
    b = centre(rng, a, 0.62)
    va, vb = faces(rng, a, 14, 0.022), faces(rng, b, 11, 0.022)
    bridge = [a + (b - a) * t + rng.normal(0, 0.01, DIM) for t in (0.35, 0.5, 0.65)]
    vectors = va + bridge + vb
    got = accepted(vectors)
    b_keys = set(range(len(va) + len(bridge), len(vectors)))
    assert not got & b_keys
    assert len(got & set(range(len(va)))) >= len(va) - 1


def test_ties_are_broken_by_search_rank() -> None:
    rng = np.random.default_rng(5)
    a = centre(rng)
    b = centre(rng, a, 0.9)
    va, vb = faces(rng, a, 8, 0.022), faces(rng, b, 8, 0.022)
    assert accepted(va + vb) == set(range(8))  # A ranked first
    assert accepted(vb + va) == set(range(8))  # B ranked first: B wins
    # a clear majority still beats rank
    vb9 = vb + faces(rng, b, 4, 0.022)
    assert accepted(va + vb9) == set(range(8, 20))


def test_a_reference_outranks_the_vote_and_no_match_fails() -> None:
    rng = np.random.default_rng(9)
    a = centre(rng)
    b = centre(rng, a, 0.9)
    va, vb = faces(rng, a, 14, 0.022), faces(rng, b, 6, 0.022)
    ref_b = b + rng.normal(0, 0.02, DIM)
    assert accepted(va + vb, references=[ref_b]) == set(range(14, 20))
    stranger = centre(rng, a, 1.0)
    out = decide(analyses(va + vb), P, references=[stranger])
    assert out.failure == Reason.NO_FACE_MATCHES_REFERENCE and not out.accepted()
    assert "reference" in out.failure_detail


def test_excluded_faces_let_the_next_identity_win() -> None:
    rng = np.random.default_rng(3)
    a = centre(rng)
    b = centre(rng, a, 0.9)
    va, vb = faces(rng, a, 12, 0.022), faces(rng, b, 7, 0.022)
    out = decide(analyses(va + vb), P, exclude={(k, 0) for k in range(12)})
    assert {k for k, _ in out.accepted()} == set(range(12, 19))
    assert all(out.faces[(k, 0)].reason == Reason.OTHER_PERSON for k in range(12))


def gallery(pid: int, name: str, vectors: list[np.ndarray], measured: int,
            shas: list[str | None] | None = None) -> Gallery:
    ids = [pid * 1000 + i for i in range(len(vectors))]
    return Gallery(pid, name, ids, np.stack(vectors), shas or [None] * len(vectors),
                   [None] * len(vectors), measured)


def test_arbitration_gives_one_identity_to_the_better_supported_person() -> None:
    rng = np.random.default_rng(21)
    costar = centre(rng)
    # person 1's gallery became the co-star (16 of their 40 measured faces); the co-star's
    # own results are mostly the co-star (30 of 40)
    wrong = gallery(1, "Lesser Known", faces(rng, costar, 16, 0.015), 40)
    right = gallery(2, "Famous Costar", faces(rng, costar, 30, 0.02), 40)
    moves, _ = find_moves(wrong, [right], P)
    assert {m.face_id for m in moves} == set(wrong.face_ids)
    assert {(m.loser, m.winner, m.winner_name) for m in moves} == {(1, 2, "Famous Costar")}
    moves, _ = find_moves(right, [wrong], P)  # the same from the other side
    assert {m.loser for m in moves} == {1}


def test_arbitration_moves_faces_nearer_another_person_and_flags_same_photos() -> None:
    rng = np.random.default_rng(22)
    me_c = centre(rng)
    other_c = centre(rng, me_c, 0.85)
    mine = faces(rng, me_c, 12, 0.022)
    intruders = faces(rng, other_c, 2, 0.015)
    me = gallery(1, "Me", mine + intruders, 30, shas=[None] * 12 + ["x", "y"])
    other_vectors = faces(rng, other_c, 10, 0.02)
    other = gallery(2, "Other", other_vectors, 20)
    moves, _ = find_moves(me, [other], P)
    assert {m.face_id for m in moves} == set(me.face_ids[12:])
    assert all(m.winner_name == "Other" for m in moves)
    # the same photo accepted under both names: the farther gallery loses it, the other notes it
    shared = other_vectors[0] + rng.normal(0, 0.002, DIM)
    me2 = gallery(1, "Me", [*mine, shared], 30, shas=[None] * 12 + ["same"])
    other2 = gallery(2, "Other", other_vectors, 20, shas=["same"] + [None] * 9)
    moves, flags = find_moves(me2, [other2], P)
    assert [(m.face_id, m.why) for m in moves] in ([(1012, "nearer")], [(1012, "same_photo")])
    assert flags == {2000: "the same photo is also a candidate of Me"}
