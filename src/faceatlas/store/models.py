"""The tables. One person is the unit of work; every image and face carries its decision."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar, overload

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from faceatlas.domain.faces import LEGACY_ENGINE, LEGACY_MODEL_HASH

# the states live in the pure layer; re-exported here for code that also uses the tables
from faceatlas.domain.states import (  # noqa: F401
    BUSY,
    PROMOTABLE,
    REASON_ORDER,
    Anchor,
    FaceState,
    ImageState,
    JobKind,
    JobState,
    Lookup,
    PersonState,
    Reason,
    ReferenceState,
    StrEnum,
    reason_sort_key,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
def aware(moment: datetime | None) -> datetime | None:
    """A stored moment with its zone: SQLite hands datetimes back naive; every one is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class StateColumn(TypeDecorator[Any]):
    """A state (or job kind) column: the enum member's plain string value in the database
    (the schema is a ``String`` as before, no CHECK constraint), the member when read back.

    Binding takes a member or a string (a filter from a query parameter); a stored value no
    member has (a hand-edited row) reads back as the plain string rather than failing the
    query."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            return self.enum(value)
        except ValueError:
            return value


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    people: Mapped[list[Person]] = relationship(back_populates="collection")


class Person(Base):
    __tablename__ = "people"
    __table_args__ = (
        UniqueConstraint("collection_id", "key", name="uq_person_key"),
        UniqueConstraint("collection_id", "folder", name="uq_person_folder"),
        # list_people (API, CLI) lists a collection by name
        Index("ix_people_collection_name", "collection_id", "name"),
        # status at 100k people: counts by state, failures (issue 21)
        Index("ix_people_collection_state", "collection_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200), index=True)  # normalize.name_key
    name: Mapped[str] = mapped_column(String(300))  # original spelling
    ascii_name: Mapped[str] = mapped_column(String(300))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    folder: Mapped[str] = mapped_column(String(120))  # Person_Name, safe path component
    occupations: Mapped[list[str]] = mapped_column(JSON, default=list)
    country: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(String(50), default="")  # llm, sheet, folder, upload
    verdict: Mapped[str | None] = mapped_column(Text, nullable=True)  # the verifier's reason
    state: Mapped[PersonState] = mapped_column(
        StateColumn(PersonState, 30), default=PersonState.QUEUED, index=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    selftest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # -- keyless sources (issue 14): who this is on Wikidata, and the name in its own script
    wikidata_qid: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    native_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # -- anchors (issue 25): how looking the name up on Wikidata ended, for a person without
    # a Q-id: {"state": Lookup, "candidates": [{"qid", "label", "description"}], "detail"}
    wikidata_lookup: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # engine whose embeddings this person's faces carry, once fully analysed with it (the
    # per-person progress mark of `faceatlas reembed`)
    engine: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    collection: Mapped[Collection] = relationship(back_populates="people")
    images: Mapped[list[Image]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )
    faces: Mapped[list[Face]] = relationship(back_populates="person", viewonly=True)


#: the collection page's default sort (queries.collection_people: lower(ascii_name), name,
#: id) read in order from an index, not sorted per request
Index("ix_people_collection_sort", Person.collection_id, func.lower(Person.ascii_name),
      Person.name, Person.id)


class Image(Base):
    """One candidate photo of a person: a search hit (maybe not yet downloaded) or a file."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("person_id", "origin", name="uq_image_origin"),
        Index("ix_images_person_reason", "person_id", "reason"),  # review pages: by reason
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str] = mapped_column(String(2000))  # url, or file:<name> for imports
    provider: Mapped[str] = mapped_column(String(50), default="folder")
    query: Mapped[str | None] = mapped_column(String(500), nullable=True)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    thumbnail_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    page_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    path: Mapped[str | None] = mapped_column(String(1000), nullable=True)  # relative to home
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[ImageState] = mapped_column(
        StateColumn(ImageState, 30), default=ImageState.PENDING
    )
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # -- keyless sources (issue 14): reuse terms of a Commons file
    licence: Mapped[str | None] = mapped_column(String(200), nullable=True)
    licence_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    author: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # -- video provenance (images cut from a clip by import-video; NULL for photos)
    video_source: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # clip
    video_track: Mapped[int | None] = mapped_column(Integer, nullable=True)
    video_start: Mapped[float | None] = mapped_column(Float, nullable=True)  # track, seconds
    video_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    video_time: Mapped[float | None] = mapped_column(Float, nullable=True)  # this frame

    person: Mapped[Person] = relationship(back_populates="images")
    faces: Mapped[list[Face]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )


class Attempt(Base):
    """One download attempt: what was asked, what came back."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    elapsed_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship(back_populates="attempts")


class Face(Base):
    __tablename__ = "faces"
    __table_args__ = (
        UniqueConstraint("image_id", "idx", name="uq_face_idx"),
        # the review pages: accepted faces per person, people with a reason
        Index("ix_faces_person_state", "person_id", "state"),
        Index("ix_faces_person_reason", "person_id", "reason"),
        Index("ix_faces_person_detail", "person_id", "detail"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    idx: Mapped[int] = mapped_column(Integer)  # face number within the image
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    landmarks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    det_score: Mapped[float] = mapped_column(Float, default=0.0)
    blur: Mapped[float] = mapped_column(Float, default=0.0)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32[128]
    phash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)  # to identity centre
    quality: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[FaceState] = mapped_column(
        StateColumn(FaceState, 20), default=FaceState.REJECTED
    )
    reason: Mapped[str] = mapped_column(String(40))
    crop_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    gallery_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # which engine and model made ``embedding`` (rows from before engine tags: dlib)
    engine: Mapped[str] = mapped_column(String(20), default=LEGACY_ENGINE,
                                        server_default=LEGACY_ENGINE)
    model_hash: Mapped[str] = mapped_column(
        String(64), default=LEGACY_MODEL_HASH, server_default=LEGACY_MODEL_HASH
    )
    # -- arbitration: the person this face belongs to instead (reason other_person), and why
    other_person_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)

    image: Mapped[Image] = relationship(back_populates="faces")
    person: Mapped[Person] = relationship(back_populates="faces", viewonly=True)


class Reference(Base):
    """A trusted photo of a person: the identity is the face group nearest to these.

    From a sheet's ``references`` column (``url`` or ``path``, embedded when the person is
    collected) or a reviewer marking a face "this is them" (``face_id``, embedded at once).
    """

    __tablename__ = "person_references"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(30), default="user")  # sheet, user, wikidata…
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    face_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None: pending
    state: Mapped[ReferenceState] = mapped_column(
        StateColumn(ReferenceState, 20), default=ReferenceState.PENDING
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A unit of work and its live state: the truth `faceatlas status` shows."""

    __tablename__ = "jobs"
    __table_args__ = (
        # a person's open collect job: enqueue (in bulk) and the claim's check (issue 21)
        Index("ix_jobs_person_kind_state", "person_id", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(StateColumn(JobKind, 30))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), nullable=True, index=True
    )
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), nullable=True
    )
    state: Mapped[JobState] = mapped_column(
        StateColumn(JobState, 20), default=JobState.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class UiSession(Base):
    """A review-UI log-in. The cookie holds a random id; this row only its SHA-256 and a
    fingerprint (HMAC) of the token used, never the token: a leaked table opens nothing."""

    __tablename__ = "ui_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --------------------------------------------------------------------------- sightings
# issue 24: what recognition saw, per collection, only where switched on (docs/security.md)


class SightingPolicy(Base):
    """A collection's choice: record sightings or not (no row: not), and for how long."""

    __tablename__ = "sighting_policies"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    retention_days: Mapped[int] = mapped_column(Integer, default=30)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SightingCluster(Base):
    """A group of unknown sightings that look like one person (average linkage)."""

    __tablename__ = "sighting_clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Sighting(Base):
    """One face recognition saw: who (None: unknown), how sure, where, when; a small crop
    and the embedding, never the photo. The token only as its fingerprint."""

    __tablename__ = "sightings"
    __table_args__ = (
        Index("ix_sightings_person_seen", "person_id", "seen_at"),
        Index("ix_sightings_collection_seen", "collection_id", "seen_at"),
        Index("ix_sightings_collection_source", "collection_id", "source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), nullable=True
    )
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("sighting_clusters.id", ondelete="SET NULL"), nullable=True, index=True
    )
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the closest gallery person (even when too far to be the answer): a candidate made of
    # a known person's missed faces is held back, not offered as someone new
    nearest_person_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    nearest_distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    crop_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    engine: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(2000), default="")
    clip: Mapped[str | None] = mapped_column(String(300), nullable=True)
    t_start: Mapped[float | None] = mapped_column(Float, nullable=True)  # clip seconds
    t_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    token_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SightingBlock(Base):
    """A face dismissed as "not a public figure": faces like it are not kept again."""

    __tablename__ = "sighting_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PersonAudit(Base):
    """People surgery (issue 24): who (a token fingerprint, never the token) moved, merged
    or split what, when."""

    __tablename__ = "person_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(20))
    by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
