"""``decide.decide`` on synthetic embeddings: pure, every face and image gets a reason.

No models: 128-d vectors around made-up identity centres, at the distances dlib's thresholds
speak (same person ≲ 0.5 apart, another person ≳ 0.9). The identity rules themselves
(clustering, votes, references) are tested in tests/test_identity.py; here, what decide does
around them: quality reasons kept, group photos, duplicates, the cap, the seed rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from faceatlas.curation.decide import CurateParams, decide
from faceatlas.domain.states import Reason
from faceatlas.faces.analyse import FaceAnalysis, ImageAnalysis

DIM = 128
P = CurateParams()  # dlib's distances: link 0.5, accept 0.6, duplicates 0.3, cap 40
RNG = np.random.default_rng(16)
ME = RNG.normal(0, 0.09, DIM)
OTHER = ME + 1.0 * (v := RNG.normal(0, 1, DIM)) / np.linalg.norm(v)  # 1.0 away: someone else


def near(centre: np.ndarray, spread: float = 0.012) -> np.ndarray:
    """A face of ``centre``'s person: ≈ spread·√128 ≈ 0.14 from the centre."""
    return (centre + RNG.normal(0, spread, DIM)).astype(np.float32)


def phash() -> str:
    return f"{int(RNG.integers(0, 2**63)):016x}"  # random: ~32 bits from any other


def face(idx: int, vec: np.ndarray | None, *, size: int = 200, reason: str | None = None,
         ph: str | None = None) -> FaceAnalysis:
    return FaceAnalysis(idx, (0, 0, size, size), 2.0, [], 300.0, reason, embedding=vec,
                        phash=ph or phash(), phash_mirror=phash())


def image(key: int, *faces: FaceAnalysis, error: str | None = None) -> ImageAnalysis:
    return ImageAnalysis(key=key, faces=list(faces), error=error)


def mine(n: int, start: int = 0) -> list[ImageAnalysis]:
    return [image(start + i, face(0, near(ME))) for i in range(n)]


def test_every_face_and_image_gets_a_reason() -> None:
    analyses = [
        *mine(5),
        image(10, face(0, near(OTHER))),  # an impostor among the search hits
        image(11, face(0, None, size=20, reason=Reason.FACE_TOO_SMALL)),
        image(12, face(0, None, reason=Reason.BLURRY)),
        image(13),  # no face found
        image(14, error=Reason.DECODE_ERROR),
    ]
    out = decide(analyses, P)
    assert set(out.images) == {a.key for a in analyses}
    assert set(out.faces) == {(a.key, f.idx) for a in analyses for f in a.faces}
    assert sorted(k for k, _ in out.accepted()) == [0, 1, 2, 3, 4]
    assert out.images == {0: Reason.ACCEPTED, 1: Reason.ACCEPTED, 2: Reason.ACCEPTED,
                          3: Reason.ACCEPTED, 4: Reason.ACCEPTED,
                          10: Reason.NOT_THIS_PERSON, 11: Reason.FACE_TOO_SMALL,
                          12: Reason.BLURRY, 13: Reason.NO_FACE, 14: Reason.DECODE_ERROR}
    assert out.faces[(10, 0)].distance is not None and out.faces[(10, 0)].distance > 0.6
    assert all(out.faces[(k, 0)].distance < 0.3 for k in range(5))  # type: ignore[operator]
    assert out.centre is not None and np.linalg.norm(out.centre - ME) < 0.1
    assert decide(analyses, P).images == out.images  # pure: same input, same answer


def test_a_group_photo_gives_its_face_of_the_person() -> None:
    group = image(9, face(0, near(OTHER)), face(1, near(ME)), face(2, near(OTHER + 0.5)))
    out = decide([*mine(4), group], P)
    assert out.faces[(9, 1)].accepted and out.faces[(9, 1)].reason == Reason.ACCEPTED
    assert not out.faces[(9, 0)].accepted and not out.faces[(9, 2)].accepted
    assert out.images[9] == Reason.ACCEPTED


def test_near_duplicates_keep_the_better_copy() -> None:
    twin = near(ME)
    same = phash()
    big = image(7, face(0, twin, size=300, ph=same))
    small = image(8, face(0, twin + 0.001, size=100, ph=same))  # the same photo, smaller
    out = decide([*mine(4), big, small], P)
    assert out.faces[(7, 0)].accepted
    assert out.faces[(8, 0)].reason == Reason.DUPLICATE and not out.faces[(8, 0)].accepted
    assert out.images[8] == Reason.DUPLICATE
    # a look-alike perceptual hash alone is not enough: the embeddings must agree too
    other_photo = image(8, face(0, near(ME, 0.03), size=100, ph=same))
    assert decide([*mine(4), big, other_photo], P).faces[(8, 0)].accepted


def test_the_cap_keeps_the_best_faces() -> None:
    sizes = [300, 40, 280, 45, 260, 50]  # size dominates the quality score here
    analyses = [image(i, face(0, near(ME), size=s)) for i, s in enumerate(sizes)]
    out = decide(analyses, replace(P, max_faces=3))
    assert sorted(k for k, _ in out.accepted()) == [0, 2, 4]
    assert {out.faces[(k, 0)].reason for k in (1, 3, 5)} == {Reason.OVER_LIMIT}
    kept = [out.faces[(k, 0)].quality for k in (0, 2, 4)]
    dropped = [out.faces[(k, 0)].quality for k in (1, 3, 5)]
    assert min(kept) > max(dropped)


def test_nobody_agreeing_keeps_nothing() -> None:
    strangers = [image(i, face(0, (RNG.normal(0, 1, DIM)).astype(np.float32)))
                 for i in range(5)]
    out = decide(strangers, P)
    assert out.accepted() == []
    assert set(out.images.values()) == {Reason.NOT_THIS_PERSON}


def test_seed_rule_trusts_the_first_photos_and_drops_group_photos() -> None:
    seed = replace(P, strategy="seed", seed_references=2)
    # the old system's failure: when the first photos show someone else, that is who it keeps
    analyses = [image(0, face(0, near(OTHER))), image(1, face(0, near(OTHER))),
                image(2, face(0, near(ME)), face(1, near(OTHER))),
                *mine(4, start=3), image(7, face(0, near(OTHER)))]
    out = decide(analyses, seed)
    assert sorted(k for k, _ in out.accepted()) == [0, 1, 7]
    assert out.images[2] == Reason.MULTIPLE_FACES
    assert {out.images[k] for k in (3, 4, 5, 6)} == {Reason.NOT_THIS_PERSON}
    # consensus, on the same photos, finds the person most photos show (5 against 4), and
    # takes the right face of the group photo
    assert sorted(k for k, _ in decide(analyses, P).accepted()) == [2, 3, 4, 5, 6]
