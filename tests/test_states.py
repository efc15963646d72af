"""States and reasons are enums whose members are their stored strings; one reason order."""

from __future__ import annotations

import json

from faceatlas.cli.base import REJECT_ORDER
from faceatlas.domain.states import (
    REASON_ORDER,
    FaceState,
    ImageState,
    JobState,
    PersonState,
    Reason,
    reason_sort_key,
)
from faceatlas.store.queries import GROUP_ORDER


def test_members_are_their_stored_strings() -> None:
    # rows written before the enums hold these strings: no migration, and a member compares,
    # hashes, prints and serialises as the string
    assert [s.value for s in PersonState] == [
        "queued", "searching", "downloading", "curating", "curated", "failed",
        "too_few_faces", "promoted"]
    assert {s.value for s in ImageState} == {"pending", "fetched", "analysed", "failed"}
    assert {s.value for s in FaceState} == {"accepted", "rejected"}
    assert {s.value for s in JobState} == {"queued", "running", "done", "failed"}
    for member in (PersonState.CURATED, FaceState.ACCEPTED, JobState.RUNNING, Reason.BLURRY):
        assert member == member.value and hash(member) == hash(member.value)
        assert str(member) == f"{member}" == member.value
        assert json.dumps(member) == json.dumps(member.value)


def test_one_reason_order_everywhere() -> None:
    # every reason an image or face can be rejected for (a person-level failure is not one)
    rejections = set(Reason) - {Reason.ACCEPTED, Reason.ACCEPTED_BY_USER,
                                Reason.NO_FACE_MATCHES_REFERENCE}
    assert set(REASON_ORDER) == rejections and len(REASON_ORDER) == len(rejections)
    assert REJECT_ORDER is REASON_ORDER  # the CLI summaries
    assert GROUP_ORDER[:len(REASON_ORDER)] == REASON_ORDER  # the review page's groups
    shuffled = ["zzz_unknown", *reversed(REASON_ORDER)]
    assert sorted(shuffled, key=reason_sort_key) == [*REASON_ORDER, "zzz_unknown"]
