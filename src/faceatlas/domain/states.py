"""States, reasons and job kinds: the stored vocabularies, as enums.

Each member *is* its stored string (``StrEnum``): it compares, hashes, prints, formats and
serialises as the plain value, so rows written before the enums read back unchanged and
user-visible output is the same. The ORM columns (``store.models``) store the value and read
back the member; code compares and assigns members, never the raw strings
(tests/test_states.py walks ``src`` to keep it so).
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, Enum):
        """``enum.StrEnum`` before 3.11: members are their value in str(), format() and JSON."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = [
    "BUSY", "PROMOTABLE", "REASON_ORDER", "Anchor", "FaceState", "ImageState", "JobKind",
    "JobState", "Lookup", "PersonState", "Reason", "ReferenceState", "StrEnum",
    "reason_sort_key",
]


class PersonState(StrEnum):
    QUEUED = "queued"
    SEARCHING = "searching"
    DOWNLOADING = "downloading"
    CURATING = "curating"
    CURATED = "curated"
    FAILED = "failed"
    TOO_FEW_FACES = "too_few_faces"
    PROMOTED = "promoted"


#: the pipeline is working on these people right now: a review would race with curation
BUSY = (PersonState.SEARCHING, PersonState.DOWNLOADING, PersonState.CURATING)
#: curation has finished: the person can be promoted (again)
PROMOTABLE = (PersonState.CURATED, PersonState.PROMOTED, PersonState.TOO_FEW_FACES)


class ImageState(StrEnum):
    PENDING = "pending"  # a search hit not yet downloaded
    FETCHED = "fetched"  # the file is on disk
    ANALYSED = "analysed"  # curated: ``reason`` says why it was kept or not
    FAILED = "failed"  # the download failed


class FaceState(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ReferenceState(StrEnum):
    PENDING = "pending"  # not measured yet
    READY = "ready"  # its embedding is stored
    FAILED = "failed"  # no usable face (``error`` says why)


class Anchor(StrEnum):
    """What a gallery's identity rests on (derived from the person's ready references)."""

    PORTRAIT = "portrait"  # the Wikidata portrait (P18) of the person's Q-id
    REFERENCE = "reference"  # a sheet/API photo or a reviewer's "This is them"
    NONE = "none"  # nothing: the majority vote of the search results alone


class Lookup(StrEnum):
    """How looking a person's name up on Wikidata ended (``Person.wikidata_lookup``)."""

    MATCHED = "matched"  # one item fits: its Q-id is stored
    AMBIGUOUS = "ambiguous"  # several fit: the candidates wait for a reviewer
    NOT_FOUND = "not_found"  # none fits the name, country and occupation
    UNAVAILABLE = "unavailable"  # Wikidata could not be asked: tried again next collection


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobKind(StrEnum):
    """What a job row does (``jobs.kind``)."""

    COLLECT = "collect"  # search, download and curate one person
    NAMES = "names"  # generate a collection's names
    PROMOTE = "promote"  # promote a collection's curated people
    ENROL = "enrol"  # add uploaded photos of one person (the API)
    REEMBED = "reembed"  # analyse one person again with another face engine
    VIDEO = "video"  # collect faces from a video clip


class Reason(StrEnum):
    """Decision codes stored on images and faces."""

    DECODE_ERROR = "decode_error"
    NOT_AN_IMAGE = "not_an_image"
    NO_FACE = "no_face"
    FACE_TOO_SMALL = "face_too_small"
    BLURRY = "blurry"
    MULTIPLE_FACES = "multiple_faces"
    NOT_THIS_PERSON = "not_this_person"
    DUPLICATE = "duplicate"
    OVER_LIMIT = "over_limit"
    ACCEPTED = "accepted"
    DOWNLOAD_FAILED = "download_failed"
    REJECTED_BY_USER = "rejected_by_user"
    ACCEPTED_BY_USER = "accepted_by_user"
    # -- collection-level arbitration and trusted references
    OTHER_PERSON = "other_person"  # the face is another person of the collection (named)
    NO_FACE_MATCHES_REFERENCE = "no_face_matches_reference"  # person: references unmatched
    UNANCHORED = "unanchored"  # person held from promotion: no anchor (FACEATLAS_REQUIRE_ANCHOR)


#: the one order in which rejection reasons are shown (CLI summaries, the review pages, the
#: API): decisions about the person first, then image quality, then files that never decoded
REASON_ORDER: tuple[Reason, ...] = (
    Reason.REJECTED_BY_USER, Reason.NOT_THIS_PERSON, Reason.OTHER_PERSON, Reason.DUPLICATE,
    Reason.MULTIPLE_FACES, Reason.OVER_LIMIT, Reason.BLURRY, Reason.FACE_TOO_SMALL,
    Reason.NO_FACE, Reason.DECODE_ERROR, Reason.NOT_AN_IMAGE, Reason.DOWNLOAD_FAILED,
)


def reason_sort_key(reason: str) -> tuple[int, str]:
    """Sort key putting reasons in `REASON_ORDER`; unknown codes last, alphabetically."""
    try:
        return REASON_ORDER.index(reason), reason  # type: ignore[arg-type]
    except ValueError:
        return len(REASON_ORDER), reason
