"""States and reasons are enums whose members are their stored strings; one reason order."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import faceatlas
from faceatlas.cli.base import REJECT_ORDER
from faceatlas.domain.states import (
    PROMOTABLE,
    REASON_ORDER,
    FaceState,
    ImageState,
    JobKind,
    JobState,
    PersonState,
    Reason,
    ReferenceState,
    StrEnum,
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
                                Reason.NO_FACE_MATCHES_REFERENCE, Reason.UNANCHORED}
    assert set(REASON_ORDER) == rejections and len(REASON_ORDER) == len(rejections)
    assert REJECT_ORDER is REASON_ORDER  # the CLI summaries
    assert GROUP_ORDER[:len(REASON_ORDER)] == REASON_ORDER  # the review page's groups
    shuffled = ["zzz_unknown", *reversed(REASON_ORDER)]
    assert sorted(shuffled, key=reason_sort_key) == [*REASON_ORDER, "zzz_unknown"]


# -- no raw state literals in src: the rule stays true ------------------------------------

SRC = Path(faceatlas.__file__).parent
#: the stored vocabularies whose raw strings must not appear where a state is meant
STATE_ENUMS: tuple[type[StrEnum], ...] = (
    PersonState, ImageState, FaceState, ReferenceState, JobState, JobKind, Reason)
STATE_VALUES = frozenset(m.value for enum in STATE_ENUMS for m in enum)
#: names (``x.state``, ``state =``, ``state=``) that hold a state, reason or job kind
STATE_NAMES = frozenset({"state", "reason", "job_state"})


def _is_state_target(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in STATE_NAMES or (node.attr == "kind" and _is_job(node.value))
    return isinstance(node, ast.Name) and node.id in STATE_NAMES


def _is_job(node: ast.expr) -> bool:
    """``Job``, ``job``, ``other`` (an aliased Job): the objects whose ``kind`` is a JobKind."""
    return isinstance(node, ast.Name) and node.id in {"Job", "job", "other"}


def _literals(node: ast.expr | None) -> list[ast.Constant]:
    """The state-valued string constants ``node`` is, or holds as a tuple/list/set."""
    if isinstance(node, ast.Constant) and node.value in STATE_VALUES:
        return [node]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [c for e in node.elts for c in _literals(e)]
    return []


def _raw_states(tree: ast.AST) -> list[ast.Constant]:
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):  # x.state == "failed", state in ("a", "b")
            sides = [node.left, *node.comparators]
            if any(_is_state_target(side) for side in sides):
                found += [c for side in sides for c in _literals(side)]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs = zip(target.elts, node.value.elts, strict=False)
                    found += [c for t, v in pairs if _is_state_target(t) for c in _literals(v)]
                elif _is_state_target(target):
                    found += _literals(node.value)
        elif isinstance(node, ast.Call):
            for kw in node.keywords:  # Job(state="queued"), .values(state="running")
                if kw.arg in STATE_NAMES or (kw.arg == "kind" and _is_job(node.func)):
                    found += _literals(kw.value)
            func = node.func  # Job.state.in_(("queued", "running"))
            if isinstance(func, ast.Attribute) and func.attr in {"in_", "not_in"} and \
                    _is_state_target(func.value):
                found += [c for arg in node.args for c in _literals(arg)]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
            # a collection of states of one kind: TERMINAL_JOB = ("done", "failed")
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) and any(
                    all(v in {m.value for m in enum} for v in values) for enum in STATE_ENUMS
                    if enum is not Reason):
                found += [e for e in node.elts if isinstance(e, ast.Constant)]
    return found


def test_no_raw_state_literals_in_src() -> None:
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts or path == SRC / "domain" / "states.py":
            continue
        for c in _raw_states(ast.parse(path.read_text(encoding="utf-8"))):
            offences.append(f"{path.relative_to(SRC)}:{c.lineno}: {c.value!r}")
    assert not offences, "use the enum members of faceatlas.domain.states:\n" + "\n".join(
        sorted(set(offences)))


def test_the_rule_sees_raw_states() -> None:
    code = '''
TERMINAL_JOB = ("done", "failed")
img.state, img.reason = "failed", Reason.DOWNLOAD_FAILED
if person.state == "curated" or Job.state.in_(("queued", "running")): pass
job = Job(kind="collect", state="queued")
reason = "blurry"
'''
    assert sorted({(c.lineno, c.value) for c in _raw_states(ast.parse(code))}) == [
        (2, "done"), (2, "failed"), (3, "failed"), (4, "curated"), (4, "queued"),
        (4, "running"), (5, "collect"), (5, "queued"), (6, "blurry")]
    # labels and messages that merely spell a state are not states
    assert not _raw_states(ast.parse('table.add_column("accepted")\nflash("promoted")'))


# -- the state columns: plain strings in the database, members in Python -------------------


def test_state_columns_store_the_value_and_read_back_members() -> None:
    from sqlalchemy import create_engine, select, text
    from sqlalchemy.orm import Session

    from faceatlas.store.models import Base, Collection, Job, Person

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        coll = Collection(key="c", name="C")
        s.add(coll)
        s.flush()
        s.add(Person(collection_id=coll.id, key="ann", name="Ann", ascii_name="Ann",
                     folder="Ann", state=PersonState.CURATED))
        s.add(Job(kind=JobKind.COLLECT, state=JobState.RUNNING))
        s.commit()
        # what the database holds is the plain string, as before the enums
        assert s.execute(text("SELECT state FROM people")).scalar_one() == "curated"
        assert s.execute(text("SELECT kind, state FROM jobs")).one() == ("collect", "running")
        # a row written as a string (before the enums, or by hand) reads back as the member
        s.execute(text("UPDATE people SET state = 'too_few_faces'"))
        s.execute(text("INSERT INTO jobs (kind, state, attempts, progress, created_at, "
                       "updated_at) VALUES ('odd_kind', 'odd_state', 0, 0, "
                       "'2024-01-01', '2024-01-01')"))
        s.commit()
        s.expire_all()
        state = s.scalar(select(Person.state))
        assert state is PersonState.TOO_FEW_FACES
        # filters take members and strings alike
        assert s.scalar(select(Person.id).where(Person.state == "too_few_faces")) is not None
        assert s.scalar(select(Person.id).where(Person.state.in_(PROMOTABLE))) is not None
        jobs = {job.kind: job.state for job in s.scalars(select(Job))}
        assert jobs[JobKind.COLLECT] is JobState.RUNNING
        # a value no member has reads back unchanged, as the plain string
        odd = jobs["odd_kind"]
        assert type(odd) is str and odd == "odd_state"
