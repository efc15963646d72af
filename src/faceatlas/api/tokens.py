"""Who is calling: API tokens, each either an admin token or bound to some collections.

``FACEATLAS_API_TOKENS`` is today's comma list (every token an admin token) or the old
system's ``{token: domain}`` JSON (inline or a file; see ``settings.parse_token_mapping``):
a token bound to ``serbia`` reads, changes and recognises in ``serbia`` only.

A bound token asking about something outside its collections gets the same 404 as for
something that does not exist, with the same words: a 403 would tell it that the person,
job or collection exists, which is exactly what another collection's token must not learn.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select

from faceatlas.domain.errors import FaceAtlasError, NotFoundError
from faceatlas.domain.names import collection_key
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Collection, Face, Image, Job, Person


@dataclass(frozen=True)
class Principal:
    """The caller: ``collections`` None is an admin (everything), else the keys it may use."""

    collections: frozenset[str] | None = None

    @property
    def admin(self) -> bool:
        return self.collections is None

    def allows(self, collection: str | None) -> bool:
        if self.collections is None:
            return True
        return collection is not None and collection_key(collection) in self.collections

    def check(self, collection: str | None, missing: str) -> None:
        """Raise NotFoundError(``missing``) unless the collection is this caller's."""
        if not self.allows(collection):
            raise NotFoundError(missing)

    def choose(self, requested: str | None, default: str) -> str:
        """The collection a request works on: the one asked for (if allowed), else the
        token's own one (old clients never name it: the token did), else the default."""
        if requested:
            self.check(requested, f"no collection {requested!r}")
            return requested
        if self.collections is None or collection_key(default) in self.collections:
            return default
        if len(self.collections) == 1:
            return next(iter(self.collections))
        raise FaceAtlasError(
            "this token may use several collections: say which one (collection=…)",
            code="collection_required",
        )

    def filter(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if self.allows(k)]


ADMIN = Principal(None)


def principal_for(settings: Settings, token: str) -> Principal | None:
    """The principal of ``token``, or None when it is no configured token. Compares with
    every token, no early exit: timing does not tell which one nearly matched."""
    given = token.encode("utf-8", "surrogateescape")
    found: str | None = None
    for known in settings.api_tokens:
        if hmac.compare_digest(given, known.encode("utf-8")):
            found = known
    if found is None:
        return None
    return principal_of_known(settings, found)


def principal_of_known(settings: Settings, token: str) -> Principal:
    """The principal of a token already known to be configured."""
    bound = settings.token_collections.get(token)
    return ADMIN if bound is None else Principal(frozenset(collection_key(c) for c in bound))


# --------------------------------------------------------------------------- ownership checks
# Each looks up the collection of one row; a missing row and a row of another collection
# raise the same NotFoundError.


def _collection_of(settings: Settings, query: object) -> str | None:
    with session_scope(settings) as session:
        return session.scalar(query)  # type: ignore[arg-type]


def check_person(principal: Principal, settings: Settings, person_id: int) -> None:
    _check_owner(principal, settings, Person.id == person_id, f"no person with id {person_id}")


def check_face(principal: Principal, settings: Settings, face_id: int) -> None:
    _check_owner(principal, settings, Person.faces.any(Face.id == face_id),
                 f"no face with id {face_id}")


def check_image(principal: Principal, settings: Settings, image_id: int) -> None:
    _check_owner(principal, settings, Person.images.any(Image.id == image_id),
                 f"no image with id {image_id}")


def _check_owner(principal: Principal, settings: Settings, owns: ColumnElement[bool],
                 missing: str) -> None:
    """A bound token may touch a person (or their face or image) only in its collections;
    otherwise the same 404 as a thing that does not exist."""
    if principal.admin:
        return
    key = _collection_of(settings, select(Collection.key).join(Person).where(owns))
    principal.check(key, missing)


def collection_ids(principal: Principal, settings: Settings) -> list[int] | None:
    """The ids of the caller's collections (None: all)."""
    if principal.collections is None:
        return None
    with session_scope(settings) as session:
        return list(session.scalars(
            select(Collection.id).where(Collection.key.in_(sorted(principal.collections)))
        ))


def visible_jobs(query: object, principal: Principal, settings: Settings) -> object:
    """Restrict a ``select(Job)`` to jobs of the caller's collections: the job's own
    collection or its person's. Jobs of no collection are an admin's."""
    from sqlalchemy import or_

    ids = collection_ids(principal, settings)
    if ids is None:
        return query
    people = select(Person.id).where(Person.collection_id.in_(ids))
    return query.where(or_(Job.collection_id.in_(ids),  # type: ignore[attr-defined]
                           Job.person_id.in_(people)))


def check_job(principal: Principal, settings: Settings, job_id: int) -> None:
    if principal.admin:
        return
    query = visible_jobs(select(Job.id).where(Job.id == job_id), principal, settings)
    if _collection_of(settings, query) is None:
        raise NotFoundError(f"no job with id {job_id}")
