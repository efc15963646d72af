"""Bulk actions of the collection page: promote, collect now, retry failed — for the people a
reviewer ticked, or for everyone matching the page's filter.

Two steps, so the page can ask once before doing anything: :func:`plan` says who the action
would change (and who, though chosen, it would leave alone and why), :func:`run` does it for
exactly the planned people, re-checking each one, and reports every outcome by person.

Promotion runs in the request for at most ``INLINE_SECONDS`` (a few people: the answer says
how each went); whoever is left continues as one background job, so promoting thousands
never outlives a proxy's timeout, and the job's closing message says how it ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, select

from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.gallery.index import IndexStore
from faceatlas.gallery.promote import BLOCKED, promote_person
from faceatlas.jobs.background import collect_now
from faceatlas.jobs.runner import short_error, submit
from faceatlas.settings import Settings
from faceatlas.store import queries
from faceatlas.store.db import session_scope
from faceatlas.store.jobs import begin_job, finish_job, update_job
from faceatlas.store.models import (
    BUSY,
    Collection,
    Face,
    FaceState,
    Job,
    JobKind,
    JobState,
    Person,
    PersonState,
)

log = logging.getLogger(__name__)

PROMOTE_DOES = ("Promote them: their accepted faces go to the gallery and the index, after the "
                "recognition self-test. Past ten seconds the rest goes on in the background "
                "(the Jobs page shows how it ends).")
COLLECT_DOES = ("Collect them again now: search, download and curate anew, on the server's "
                "background worker (or the Celery workers); follow them on the Jobs page.")


@dataclass(frozen=True)
class Action:
    code: str
    kind: str  # promote | collect
    everyone: bool  # all matching the filter (else the ticked people)
    label: str  # the button
    does: str  # what happens, for the confirmation
    eligible: str  # who it applies to, for the confirmation


ACTIONS: dict[str, Action] = {a.code: a for a in (
    Action("promote", "promote", False, "Promote selected",
           PROMOTE_DOES, "curated people with enough accepted faces"),
    Action("collect", "collect", False, "Collect selected now", COLLECT_DOES,
           "people not being collected right now"),
    Action("promote_eligible", "promote", True, "Promote all eligible",
           PROMOTE_DOES, "curated people with enough accepted faces"),
    Action("retry_failed", "collect", True, "Retry all failed", COLLECT_DOES, "failed people"),
)}

#: at most this many people per bulk action (a collection page's filter, not a whole site)
MAX_PEOPLE = 10_000
#: promotion in the request stops after this long; the rest goes on as a background job
INLINE_SECONDS = 10.0


@dataclass(frozen=True)
class Named:
    id: int
    name: str


@dataclass
class BulkPlan:
    action: Action
    collection: str
    people: list[Named]  # the action changes exactly these
    skipped: list[tuple[Named, str]] = field(default_factory=list)  # chosen, left: why


@dataclass
class BulkOutcome:
    action: Action
    done: list[Named] = field(default_factory=list)  # promoted / queued and started
    blocked: list[Named] = field(default_factory=list)  # promotion: the self-test failed
    too_few: list[Named] = field(default_factory=list)  # promotion: too few faces now
    failed: list[tuple[Named, str]] = field(default_factory=list)  # not done: why
    busy: list[Named] = field(default_factory=list)  # collect: being collected already
    runner: str | None = None  # collect: "server" or "celery"
    later: list[Named] = field(default_factory=list)  # promotion: left to a background job
    job_id: int | None = None  # that job

    @property
    def complete(self) -> bool:
        return not (self.blocked or self.too_few or self.failed or self.busy or self.later)

    def summary(self, names: int = 5) -> str:
        """One line of how it went, naming the first people of each group that was not done
        (a job's closing message)."""
        def some(people: Sequence[Named]) -> str:
            more = len(people) - names
            return ", ".join(p.name for p in people[:names]) + (f" and {more} more"
                                                                if more > 0 else "")
        verb = "promoted" if self.action.kind == "promote" else "started"
        parts = [f"{len(self.done)} {verb}"]
        for words, people in (("blocked by the self-test", self.blocked),
                              ("too few faces", self.too_few),
                              ("not done", [p for p, _ in self.failed]),
                              ("busy", self.busy)):
            if people:
                parts.append(f"{len(people)} {words}: {some(people)}")
        return "; ".join(parts)


def _eligible(action: Action, min_faces: int) -> ColumnElement[bool]:
    if action.kind == "promote":
        accepted = (select(func.count()).select_from(Face)
                    .where(Face.person_id == Person.id, Face.state == FaceState.ACCEPTED)
                    .correlate(Person).scalar_subquery())
        return (Person.state == PersonState.CURATED) & (accepted >= min_faces)
    if action.everyone:  # retry failed
        return Person.state == PersonState.FAILED
    return Person.state.not_in(BUSY)


def plan(settings: Settings, key: str, code: str, *, ids: Sequence[int] | None = None,
         q: str | None = None, state: str | None = None, reason: str | None = None,
         anchor: str | None = None) -> BulkPlan:
    """Who action ``code`` would change in collection ``key``: among ``ids`` when given (the
    ticked people; ids of other collections are ignored), else among everyone matching the
    filter (``q``, ``state``, ``reason`` as on the collection page)."""
    action = ACTIONS.get(code)
    if action is None:
        raise FaceAtlasError(f"no bulk action {code!r}: choose one of {', '.join(ACTIONS)}")
    with session_scope(settings) as session:
        coll = queries.collection_row(session, key)
        if ids is not None:
            where = [Person.collection_id == coll.id, Person.id.in_(list(ids)[:MAX_PEOPLE])]
        else:
            where = queries.people_filter(coll.id, q=q, state=state, reason=reason,
                                          anchor=anchor)
        ok = _eligible(action, settings.min_faces_to_promote)
        rows = session.execute(
            select(Person.id, Person.name, Person.state, ok.label("ok")).where(*where)
            .order_by(func.lower(Person.ascii_name), Person.id).limit(MAX_PEOPLE)).all()
    out = BulkPlan(action, key, [])
    for pid, name, st, good in rows:
        if good:
            out.people.append(Named(pid, name))
        elif ids is not None:  # the filter's others were never chosen: only ticks are news
            out.skipped.append((Named(pid, name), _why_not(action, st)))
    return out


def _why_not(action: Action, state: str) -> str:
    label = state.replace("_", " ")
    if action.kind == "promote":
        return (f"{label}: only curated people are promoted" if state != PersonState.CURATED
                else "too few accepted faces")
    return f"{label}: being collected right now"


def run(settings: Settings, planned: BulkPlan, *, store: IndexStore | None = None
        ) -> BulkOutcome:
    """Do the planned action for exactly the planned people (each re-checked: someone who
    stopped being eligible since the plan is reported, not changed)."""
    fresh = plan(settings, planned.collection, planned.action.code,
                 ids=[p.id for p in planned.people])
    outcome = BulkOutcome(planned.action)
    outcome.failed += [(who, why) for who, why in fresh.skipped]
    if not fresh.people:
        return outcome
    if planned.action.kind == "collect":
        started = collect_now(settings, [p.id for p in fresh.people])
        busy = set(started.busy)
        outcome.runner = started.runner
        for who in fresh.people:
            (outcome.busy if who.id in busy else outcome.done).append(who)
        return outcome
    left = promote_people(settings, fresh.people, outcome, store=store,
                          until=time.monotonic() + INLINE_SECONDS)
    if left:
        outcome.later = left
        outcome.job_id = promote_later(settings, planned.collection, left, store=store)
    return outcome


def promote_people(settings: Settings, people: Sequence[Named], outcome: BulkOutcome, *,
                   store: IndexStore | None = None, until: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[Named]:
    """Promote each in turn, recording how it went in ``outcome``; returns the people not
    reached when ``until`` (a ``time.monotonic()`` moment) passed."""
    for i, who in enumerate(people):
        if until is not None and i and time.monotonic() > until:
            return list(people[i:])
        try:
            result = promote_person(settings, who.id, store=store)
        except NotFoundError:
            outcome.failed.append((who, "erased meanwhile"))
            continue
        except FaceAtlasError as exc:
            outcome.failed.append((who, str(exc)))
            continue
        finally:
            if progress:
                progress(i + 1, len(people))
        if result.state == PersonState.PROMOTED:
            outcome.done.append(who)
        elif result.state == BLOCKED:
            outcome.blocked.append(who)
        elif result.state == PersonState.TOO_FEW_FACES:
            outcome.too_few.append(who)
        else:  # re-decided into failure (references unmatched)
            outcome.failed.append((who, f"now {result.state.replace('_', ' ')}"))
    return []


def promote_later(settings: Settings, collection: str, people: Sequence[Named],
                  *, store: IndexStore | None = None) -> int:
    """Promote ``people`` one after another on the background thread, as one job of the
    collection (progress on the Jobs page; the closing message says how it went)."""
    with session_scope(settings) as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.key == collection))
        job = Job(kind=JobKind.PROMOTE, collection_id=coll_id, state=JobState.QUEUED,
                  attempts=0, message=f"{len(people)} people to promote")
        s.add(job)
        s.flush()
        job_id = job.id

    def work() -> None:
        outcome = BulkOutcome(ACTIONS["promote"])
        try:
            begin_job(settings, job_id)

            def progress(done: int, total: int) -> None:
                update_job(settings, job_id, progress=done / total,
                           message=f"promoting: {done} of {total}")

            promote_people(settings, people, outcome, store=store, progress=progress)
        except Exception as exc:  # the job row is where a background failure is reported
            log.exception("promoting in the background failed")
            finish_job(settings, job_id,
                       error=f"{short_error(exc)} (after {outcome.summary()})")
        else:
            finish_job(settings, job_id, message=outcome.summary())

    submit(work)
    return job_id
