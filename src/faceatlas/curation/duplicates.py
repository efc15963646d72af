"""Near-duplicates on a person's page: each under the accepted face it copies.

Curation stores no "duplicate of" link, so it is found again here, by embedding, the way
curation measured it (the store reads the rows and bytes: ``store.queries.read_person_review``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from faceatlas.faces.engines import ENGINES
from faceatlas.settings import Settings
from faceatlas.store.models import Reason
from faceatlas.store.queries import (
    FaceCard,
    ImageCard,
    PersonReview,
    ReasonGroup,
    read_person_review,
)


def person_review(settings: Settings, person_id: int) -> PersonReview:
    """Everything a person's page shows: accepted faces best first, each with the duplicates
    curation set aside for it (see `attach_duplicates`), the rest by reason."""
    return fold_duplicates(settings, read_person_review(settings, person_id))


def fold_duplicates(settings: Settings, review: PersonReview) -> PersonReview:
    """Move the duplicate group's faces and byte copies under the accepted faces they copy
    (in place); the group keeps the rest and counts the moved ones (``attached``)."""
    rows = review.duplicate_rows
    group = next((g for g in review.rejected if g.reason == Reason.DUPLICATE), None)
    if rows is None or group is None:
        return review
    vectors = {f: np.frombuffer(raw, dtype=np.float32) for f, (_, raw) in rows.embeddings.items()}
    engines = {f: engine for f, (engine, _) in rows.embeddings.items()}
    left_faces, left_images = attach_duplicates(
        review.accepted, group.faces, vectors, rows.copies, rows.faces_of_bytes,
        engines=engines, limits=duplicate_distances(settings, set(engines.values())))
    # the group's images are the byte copies: those left unattached stay
    attached = len(group.faces) + len(rows.copies) - len(left_faces) - len(left_images)
    review.rejected[review.rejected.index(group)] = ReasonGroup(
        Reason.DUPLICATE, left_faces, left_images, attached)
    return review


def attach_duplicates(
    accepted: list[FaceCard],
    duplicates: list[FaceCard],
    vectors: dict[int, np.ndarray],
    copies: list[tuple[str | None, ImageCard]],
    faces_of_bytes: dict[str, list[int]],
    *,
    engines: Mapping[int, str],
    limits: Mapping[str, float],
) -> tuple[list[FaceCard], list[ImageCard]]:
    """Put each duplicate under the accepted face it copies; return those that have none.

    A near-duplicate face goes under the accepted face nearest by embedding (Euclidean, as
    curation measured it; only faces of one engine — ``engines``: face id → engine — and one
    vector length compare), if it is within that engine's duplicate distance (``limits``:
    engine → distance; a composite engine's vectors by their searched part, as the index
    searches them: the ensemble's SFace half). Otherwise it stays in the duplicate group: the
    face it copied was rejected since, and the nearest accepted face is another photo. A byte
    copy of a photo (never analysed) goes under the accepted face of the photo it copies
    (``faces_of_bytes``: sha256 → that photo's face ids), or under the face that photo's own
    duplicate face went to.
    """
    by_id = {c.id: c for c in accepted}
    home: dict[int, int] = {c.id: c.id for c in accepted}  # face id → accepted face shown
    rank = {c.id: i for i, c in enumerate(accepted)}  # best first

    # engine and vector length: only faces of the same kind compare
    kinds = {f: (engines[f], len(v)) for f, v in vectors.items() if engines.get(f) in limits}
    measured = [c for c in accepted if c.id in kinds]
    for group in {kinds[c.id] for c in measured}:
        engine = group[0]
        same = [c for c in measured if kinds[c.id] == group]
        matrix = _comparable(engine, np.stack([vectors[c.id] for c in same]))
        for d in duplicates:
            if d.id in home or kinds.get(d.id) != group:
                continue
            distances = np.linalg.norm(matrix - _comparable(engine, vectors[d.id][None]),
                                       axis=1)
            nearest = int(np.argmin(distances))
            if distances[nearest] <= limits[engine]:
                host = same[nearest]
                host.duplicates.append(d)
                home[d.id] = host.id
    left_faces = [d for d in duplicates if d.id not in home]
    left_images: list[ImageCard] = []
    for sha, card in copies:
        hosts = [home[f] for f in faces_of_bytes.get(sha or "", []) if f in home]
        if hosts:
            # several faces in the copied photo: under the best of them (accepted is sorted)
            best = min(hosts, key=rank.__getitem__)
            by_id[best].copies.append(card)
        else:
            left_images.append(card)
    return left_faces, left_images


def _comparable(engine: str, vectors: np.ndarray) -> np.ndarray:
    """The part of stored vectors that duplicate distances measure: a composite engine's
    searched part (its duplicate distance is that part's); an unknown engine's whole."""
    spec = ENGINES.get(engine)
    return vectors if spec is None else spec.search_part(vectors)


def duplicate_distances(settings: Settings, engines: Iterable[str]) -> dict[str, float]:
    """Each engine's near-duplicate distance, that of the part it is compared by (an engine
    this installation does not know has none: its faces are compared with nothing)."""
    out = {}
    for engine in engines:
        spec = ENGINES.get(engine)
        if spec is not None:
            out[engine] = settings.thresholds(spec.search.name).duplicate
    return out
