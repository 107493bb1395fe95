"""SQLAlchemy models of the metadata database (Postgres in production, SQLite embedded).

Changing a model needs a migration: ``alembic revision --autogenerate -m "..."`` from the
repository root, then review it; ``aioreid.platform.db.migrate.check`` fails until it exists.
Every timestamp is timezone-aware UTC (see :class:`~aioreid.platform.db.types.UTCDateTime`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column, relationship

from aioreid.platform.db.enums import (
    CameraModality,
    CaseItemKind,
    CaseStatus,
    Decision,
    GenerationStatus,
    JobStatus,
    KeyRole,
    MediaKind,
    MediaStatus,
    Modality,
    Provenance,
)
from aioreid.platform.db.types import BigIntKey, JSONType, UTCDateTime, str_enum, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ACTOR = sa.String(128)
KEY = sa.String(1024)  # object-store keys and source paths


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


def _created() -> MappedColumn[Any]:
    return mapped_column(default=utcnow, server_default=sa.func.now())


def _updated() -> MappedColumn[Any]:
    return mapped_column(default=utcnow, onupdate=utcnow, server_default=sa.func.now())


class Camera(Base):
    __tablename__ = "cameras"
    __table_args__ = (
        sa.CheckConstraint(
            "(latitude IS NULL AND longitude IS NULL) OR (latitude IS NOT NULL AND longitude"
            " IS NOT NULL AND latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180)",
            name="position",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    location: Mapped[str | None] = mapped_column(sa.String(256))
    modality: Mapped[CameraModality] = mapped_column(
        str_enum(CameraModality, "camera_modality"),
        default=CameraModality.RGB,
        server_default="rgb",
    )
    # Where the camera stands, WGS 84 degrees (both set or both null); ``location`` is a label.
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    created_at: Mapped[dt.datetime] = _created()


class IngestJob(Base):
    """A batch of media to ingest. ``processed`` counts finished items, failed ones included;
    ``failed`` counts the failed ones; the reasons are in ``job_failures``."""

    __tablename__ = "ingest_jobs"
    __table_args__ = (
        sa.CheckConstraint("total >= 0 AND processed >= 0 AND failed >= 0", name="counters"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    source: Mapped[str] = mapped_column(KEY, default="", server_default="")
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus, "job_status"),
        default=JobStatus.QUEUED,
        server_default="queued",
        index=True,
    )
    total: Mapped[int] = mapped_column(default=0, server_default="0")
    processed: Mapped[int] = mapped_column(default=0, server_default="0")
    failed: Mapped[int] = mapped_column(default=0, server_default="0")
    options: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str | None] = mapped_column(ACTOR)
    created_at: Mapped[dt.datetime] = _created()
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    failures: Mapped[list[JobFailure]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )


class JobFailure(Base):
    __tablename__ = "job_failures"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        sa.ForeignKey("ingest_jobs.id", ondelete="CASCADE"), index=True
    )
    item: Mapped[str] = mapped_column(KEY)
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()

    job: Mapped[IngestJob] = relationship(back_populates="failures")


class Media(Base):
    """One uploaded image or video, content-addressed by its SHA-256."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[MediaKind] = mapped_column(str_enum(MediaKind, "media_kind"))
    object_key: Mapped[str] = mapped_column(KEY)
    original_name: Mapped[str | None] = mapped_column(sa.String(512))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    content_type: Mapped[str | None] = mapped_column(sa.String(128))
    camera_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("cameras.id", ondelete="SET NULL"), index=True
    )
    start_time: Mapped[dt.datetime | None]
    status: Mapped[MediaStatus] = mapped_column(
        str_enum(MediaStatus, "media_status"),
        default=MediaStatus.PENDING,
        server_default="pending",
        index=True,
    )
    error: Mapped[str | None] = mapped_column(sa.Text)
    width: Mapped[int | None]
    height: Mapped[int | None]
    fps: Mapped[float | None]
    frame_count: Mapped[int | None]
    # Where a video's ingestion stands: the next window to process and the checkpoint (an
    # object-store key) that resumes it. Set in the same transaction as the window's rows.
    progress: Mapped[dict[str, Any] | None]
    job_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ingest_jobs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()

    camera: Mapped[Camera | None] = relationship()
    job: Mapped[IngestJob | None] = relationship()
    sightings: Mapped[list[Sighting]] = relationship(
        back_populates="media", cascade="all, delete-orphan", passive_deletes=True
    )


class Track(Base):
    """One person followed through one media by the tracker (a still image: one frame).

    ``boxes`` holds ``[frame, x, y, w, h]`` for every processed frame the track was seen in;
    its representative crops are its sightings. ``point_id`` is the track's pooled point in
    the vector index (derived from the media's SHA-256 and ``number``).
    """

    __tablename__ = "tracks"
    __table_args__ = (
        sa.UniqueConstraint("media_id", "number", name="uq_tracks_media_number"),
        sa.CheckConstraint("last_frame >= first_frame AND frames > 0", name="span"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    media_id: Mapped[int] = mapped_column(sa.ForeignKey("media.id", ondelete="CASCADE"), index=True)
    camera_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("cameras.id", ondelete="SET NULL"), index=True
    )
    number: Mapped[int]
    modality: Mapped[Modality] = mapped_column(str_enum(Modality, "modality"))
    start_time: Mapped[dt.datetime | None] = mapped_column(index=True)
    end_time: Mapped[dt.datetime | None]
    start_offset_s: Mapped[float] = mapped_column(default=0.0, server_default="0")
    end_offset_s: Mapped[float] = mapped_column(default=0.0, server_default="0")
    first_frame: Mapped[int] = mapped_column(default=0, server_default="0")
    last_frame: Mapped[int] = mapped_column(default=0, server_default="0")
    frames: Mapped[int] = mapped_column(default=1, server_default="1")
    boxes: Mapped[list[Any]] = mapped_column(JSONType)
    quality: Mapped[float] = mapped_column(default=0.0, server_default="0")
    point_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    created_at: Mapped[dt.datetime] = _created()

    media: Mapped[Media] = relationship()
    camera: Mapped[Camera | None] = relationship()
    sightings: Mapped[list[Sighting]] = relationship(back_populates="track")


class Sighting(Base):
    """One person crop, a representative frame of its track; ``point_id`` is its point in
    the vector index."""

    __tablename__ = "sightings"
    __table_args__ = (
        sa.CheckConstraint("box_w > 0 AND box_h > 0", name="box_size"),
        sa.CheckConstraint("frame_index >= 0", name="frame_index"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    media_id: Mapped[int] = mapped_column(sa.ForeignKey("media.id", ondelete="CASCADE"), index=True)
    camera_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("cameras.id", ondelete="SET NULL"), index=True
    )
    track_id: Mapped[int | None] = mapped_column(
        BigIntKey, sa.ForeignKey("tracks.id", ondelete="CASCADE"), index=True
    )
    frame_index: Mapped[int] = mapped_column(default=0, server_default="0")
    frame_time: Mapped[dt.datetime | None] = mapped_column(index=True)
    box_x: Mapped[int]
    box_y: Mapped[int]
    box_w: Mapped[int]
    box_h: Mapped[int]
    quality: Mapped[float] = mapped_column(default=0.0, server_default="0")
    object_key: Mapped[str] = mapped_column(KEY)
    modality: Mapped[Modality] = mapped_column(str_enum(Modality, "modality"))
    point_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    attributes: Mapped[dict[str, Any] | None]
    source_label: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[dt.datetime] = _created()

    media: Mapped[Media] = relationship(back_populates="sightings")
    camera: Mapped[Camera | None] = relationship()
    track: Mapped[Track | None] = relationship(back_populates="sightings")


class Identity(Base):
    """A person. Merging points the absorbed identity at the survivor (``merged_into_id``)."""

    __tablename__ = "identities"
    __table_args__ = (
        sa.CheckConstraint("merged_into_id IS NULL OR merged_into_id <> id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str | None] = mapped_column(sa.String(256), index=True)
    notes: Mapped[str | None] = mapped_column(sa.Text)
    merged_into_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="SET NULL"), index=True
    )
    created_by: Mapped[str | None] = mapped_column(ACTOR)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()

    merged_into: Mapped[Identity | None] = relationship(remote_side=[id])


class Assignment(Base):
    """Sighting → identity. History is kept; at most one row per sighting is ``active``."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    sighting_id: Mapped[int] = mapped_column(
        BigIntKey, sa.ForeignKey("sightings.id", ondelete="CASCADE"), index=True
    )
    identity_id: Mapped[int] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    provenance: Mapped[Provenance] = mapped_column(str_enum(Provenance, "provenance"))
    score: Mapped[float | None]
    actor: Mapped[str] = mapped_column(ACTOR)
    created_at: Mapped[dt.datetime] = _created()
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())

    sighting: Mapped[Sighting] = relationship()
    identity: Mapped[Identity] = relationship()


sa.Index(
    "uq_assignments_one_active",
    Assignment.sighting_id,
    unique=True,
    postgresql_where=Assignment.active.is_(True),
    sqlite_where=Assignment.active.is_(True),
)


class ReviewDecision(Base):
    """An analyst's verdict on a sighting for an identity (or for a query, ``query_key``)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    sighting_id: Mapped[int] = mapped_column(
        BigIntKey, sa.ForeignKey("sightings.id", ondelete="CASCADE"), index=True
    )
    identity_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="SET NULL"), index=True
    )
    query_key: Mapped[str | None] = mapped_column(sa.String(256), index=True)
    decision: Mapped[Decision] = mapped_column(str_enum(Decision, "decision"))
    actor: Mapped[str] = mapped_column(ACTOR)
    note: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()
    # Set when an analyst undid the decision (its ``undo`` audit event says who); an undone
    # decision is kept as history but no longer counts.
    undone_at: Mapped[dt.datetime | None]


class AuditEvent(Base):
    """Who did what to which row (merges, splits, deletions, key changes...)."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    actor: Mapped[str] = mapped_column(ACTOR)
    action: Mapped[str] = mapped_column(sa.String(64))
    entity: Mapped[str] = mapped_column(sa.String(64))
    entity_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any] | None]
    # The API key that caused the event (None: the CLI, workers, retention). Keys are revoked,
    # never deleted, so the link holds; SET NULL only guards a manual clean-up.
    key_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = _created()


class Case(Base):
    """An investigation: analysts pin tracks, sightings and searches to it with notes, and
    export it as an evidence ZIP. Every change is an audit event (entity ``case``)."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[CaseStatus] = mapped_column(
        str_enum(CaseStatus, "case_status"),
        default=CaseStatus.OPEN,
        server_default="open",
        index=True,
    )
    created_by: Mapped[str] = mapped_column(ACTOR)
    # The API key that opened the case (None: the command line).
    key_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()
    closed_at: Mapped[dt.datetime | None]

    items: Mapped[list[CaseItem]] = relationship(
        back_populates="case",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CaseItem.id",
    )


class CaseItem(Base):
    """One thing pinned to a case. ``ref_id`` is the track or sighting id; it has no foreign
    key on purpose, so the item and its note outlive a retention that deletes the media (the
    export then reports it missing). A query item keeps, in ``query``, what was searched (the
    text, the object keys of the query images, filters, options), the encoder version and the
    hits with their scores at pin time."""

    __tablename__ = "case_items"
    __table_args__ = (
        sa.CheckConstraint(
            "(kind = 'query' AND ref_id IS NULL) OR (kind <> 'query' AND ref_id IS NOT NULL)",
            name="ref",
        ),
        sa.UniqueConstraint("case_id", "kind", "ref_id", name="uq_case_items_case_kind_ref"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[CaseItemKind] = mapped_column(str_enum(CaseItemKind, "case_item_kind"))
    ref_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    query: Mapped[dict[str, Any] | None]
    note: Mapped[str | None] = mapped_column(sa.Text)
    pinned_by: Mapped[str] = mapped_column(ACTOR)
    key_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = _created()

    case: Mapped[Case] = relationship(back_populates="items")


class EncoderVersion(Base):
    """An encoder checkpoint vectors were made with; at most one is active."""

    __tablename__ = "encoder_versions"
    __table_args__ = (sa.CheckConstraint("dim > 0", name="dim"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(128), unique=True)
    backbone: Mapped[str] = mapped_column(sa.String(256))
    checkpoint: Mapped[str | None] = mapped_column(KEY)
    dim: Mapped[int]
    registered_at: Mapped[dt.datetime] = _created()
    is_active: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


sa.Index(
    "uq_encoder_versions_one_active",
    EncoderVersion.is_active,
    unique=True,
    postgresql_where=EncoderVersion.is_active.is_(True),
    sqlite_where=EncoderVersion.is_active.is_(True),
)


class IndexGeneration(Base):
    """One vector-index collection; at most one is ``live`` (behind the search alias).

    ``cursor`` is where an interrupted (re)build resumes.
    """

    __tablename__ = "index_generations"
    __table_args__ = (sa.CheckConstraint("points >= 0", name="points"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encoder_version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("encoder_versions.id", ondelete="RESTRICT"), index=True
    )
    collection: Mapped[str] = mapped_column(sa.String(255), unique=True)
    status: Mapped[GenerationStatus] = mapped_column(
        str_enum(GenerationStatus, "generation_status"),
        default=GenerationStatus.BUILDING,
        server_default="building",
    )
    points: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    cursor: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = _created()
    live_at: Mapped[dt.datetime | None]

    encoder_version: Mapped[EncoderVersion] = relationship()


sa.Index(
    "uq_index_generations_one_live",
    IndexGeneration.status,
    unique=True,
    postgresql_where=IndexGeneration.status == "live",
    sqlite_where=IndexGeneration.status == "live",
)


class ApiKey(Base):
    """An API key; only its SHA-256 is stored, ``prefix`` is shown to tell keys apart.

    ``name`` is unique and is the actor recorded on what the key does; rotating a key replaces
    its secret in place (same id, name and role), so audit events keep pointing at one key.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    role: Mapped[KeyRole] = mapped_column(
        str_enum(KeyRole, "key_role"), default=KeyRole.ANALYST, server_default="analyst"
    )
    prefix: Mapped[str] = mapped_column(sa.String(8))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = _created()
    rotated_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
