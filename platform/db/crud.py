"""Plain functions over a Session for what the services need; each flushes so ids are set.

None of them commits: the caller owns the transaction (``session_scope`` or
``sessionmaker.begin()``). Bad input raises :mod:`aioreid.platform.db.errors` exceptions
before anything is written; a taken unique value is detected inside a savepoint, so the
caller's other pending work survives it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aioreid.platform.db.enums import (
    CameraModality,
    CaseItemKind,
    CaseStatus,
    Decision,
    GenerationStatus,
    JobStatus,
    KeyRole,
    MediaKind,
    Modality,
    Provenance,
)
from aioreid.platform.db.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from aioreid.platform.db.models import (
    ApiKey,
    Assignment,
    AuditEvent,
    Base,
    Camera,
    Case,
    CaseItem,
    EncoderVersion,
    Identity,
    IndexGeneration,
    IngestJob,
    JobFailure,
    Media,
    ReviewDecision,
    Sighting,
    Track,
)
from aioreid.platform.db.types import utcnow

R = TypeVar("R", bound=Base)
E = TypeVar("E", bound=Enum)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
API_KEY_PREFIX = "aio_"
_UNSET: Any = object()


# --- validation ------------------------------------------------------------------------------


def _enum(cls: type[E], value: Any, field: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)
        raise InvalidValueError(f"{field} must be one of {allowed}; got {value!r}") from None


def _req(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{field} must be a non-empty string; got {value!r}")
    if len(value) > max_len:
        raise InvalidValueError(f"{field} is {len(value)} characters, the limit is {max_len}")
    return value


def _opt(value: Any, field: str, max_len: int) -> str | None:
    return None if value is None else _req(value, field, max_len)


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise InvalidValueError(f"{field} must be a timezone-aware datetime; got {value!r}")
    return value


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(f"{field} must be a non-negative integer; got {value!r}")
    return value


def _positive(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidValueError(f"{field} must be a positive number; got {value!r}")
    return float(value)


def _finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidValueError(f"{field} must be a finite number; got {value!r}")
    return float(value)


def _json(value: Any, field: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidValueError(f"{field} must be a dict; got {type(value).__name__}")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"{field} is not JSON-serialisable: {exc}") from None
    return value


def _get(session: Session, model: type[R], row_id: Any, *, lock: bool = False) -> R:
    row = session.get(model, row_id, with_for_update=lock, populate_existing=lock)
    if row is None:
        raise NotFoundError(f"{model.__tablename__} row {row_id!r} does not exist")
    return row


def _flushed(session: Session, row: R) -> R:
    session.add(row)
    session.flush()
    return row


def _insert_in_savepoint(session: Session, row: Base) -> IntegrityError | None:
    """Insert ``row``; on a constraint violation undo only this insert and return the error."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        return exc
    return None


# --- cameras and media -----------------------------------------------------------------------


def get_or_create_camera(
    session: Session,
    name: str,
    *,
    description: str | None = None,
    location: str | None = None,
    modality: CameraModality | str = CameraModality.RGB,
) -> Camera:
    """The camera called ``name``; created with the given fields when new (an existing one is
    returned unchanged). Safe when two transactions create the same camera at once."""
    name = _req(name, "camera name", 128)
    mod = _enum(CameraModality, modality, "camera modality")
    found = session.scalar(sa.select(Camera).where(Camera.name == name))
    if found is not None:
        return found
    row = Camera(
        name=name,
        description=description,
        location=_opt(location, "location", 256),
        modality=mod,
    )
    err = _insert_in_savepoint(session, row)
    if err is None:
        return row
    found = session.scalar(sa.select(Camera).where(Camera.name == name))
    if found is None:
        raise InvalidValueError(f"camera {name!r} refused by the database: {err.orig}") from err
    return found


def get_media_by_sha(session: Session, sha256: str) -> Media | None:
    return session.scalar(sa.select(Media).where(Media.sha256 == sha256.lower()))


def create_media(
    session: Session,
    *,
    sha256: str,
    kind: MediaKind | str,
    object_key: str,
    size_bytes: int,
    original_name: str | None = None,
    content_type: str | None = None,
    camera_id: int | None = None,
    start_time: dt.datetime | None = None,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    frame_count: int | None = None,
    job_id: int | None = None,
) -> Media:
    """A new pending media row. Raises AlreadyExistsError (with ``existing_id``) when the same
    bytes (same SHA-256) are already registered."""
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
        raise InvalidValueError(f"sha256 must be 64 hex digits; got {sha256!r}")
    sha256 = sha256.lower()
    row = Media(
        sha256=sha256,
        kind=_enum(MediaKind, kind, "media kind"),
        object_key=_req(object_key, "object_key", 1024),
        size_bytes=_count(size_bytes, "size_bytes"),
        original_name=_opt(original_name, "original_name", 512),
        content_type=_opt(content_type, "content_type", 128),
        camera_id=camera_id if camera_id is None else _get(session, Camera, camera_id).id,
        start_time=_aware(start_time, "start_time"),
        width=None if width is None else _count(width, "width"),
        height=None if height is None else _count(height, "height"),
        fps=None if fps is None else _positive(fps, "fps"),
        frame_count=None if frame_count is None else _count(frame_count, "frame_count"),
        job_id=job_id if job_id is None else _get(session, IngestJob, job_id).id,
    )
    existing = get_media_by_sha(session, sha256)
    if existing is None:
        err = _insert_in_savepoint(session, row)
        if err is None:
            return row
        existing = get_media_by_sha(session, sha256)
        if existing is None:
            raise InvalidValueError(f"media {sha256} refused by the database: {err.orig}") from err
    raise AlreadyExistsError(
        f"media {sha256} is already stored as media {existing.id}", existing.id
    )


def set_camera_position(
    session: Session, camera_id: int, latitude: float | None, longitude: float | None
) -> Camera:
    """Place a camera at WGS 84 ``latitude``/``longitude`` degrees (both None: unplaced)."""
    camera = _get(session, Camera, camera_id)
    if (latitude is None) != (longitude is None):
        raise InvalidValueError("latitude and longitude go together: give both or neither")
    if latitude is not None and longitude is not None:
        latitude = _finite(latitude, "latitude")
        longitude = _finite(longitude, "longitude")
        if not -90 <= latitude <= 90:
            raise InvalidValueError(f"latitude must be within -90..90 degrees; got {latitude}")
        if not -180 <= longitude <= 180:
            raise InvalidValueError(f"longitude must be within -180..180 degrees; got {longitude}")
    camera.latitude, camera.longitude = latitude, longitude
    session.flush()
    return camera


# --- sightings, identities, assignments ------------------------------------------------------


def add_sighting(
    session: Session,
    *,
    media_id: int,
    box: tuple[int, int, int, int],
    object_key: str,
    modality: Modality | str,
    frame_index: int = 0,
    quality: float = 0.0,
    point_id: str | None = None,
    camera_id: int | None = None,
    frame_time: dt.datetime | None = None,
    attributes: dict[str, Any] | None = None,
    source_label: str | None = None,
    track_id: int | None = None,
) -> Sighting:
    """A crop of ``media`` at ``box`` = (x, y, w, h); ``camera_id`` defaults to the media's,
    ``point_id`` (the vector-index id) to a new UUID; ``track_id``: the track it represents."""
    media = _get(session, Media, media_id)
    if len(box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in box):
        raise InvalidValueError(f"box must be four integers (x, y, w, h); got {box!r}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise InvalidValueError(f"box width and height must be positive; got {box!r}")
    point_id = _req(point_id or str(uuid.uuid4()), "point_id", 36)
    if session.scalar(sa.select(Sighting.id).where(Sighting.point_id == point_id)) is not None:
        raise AlreadyExistsError(f"point_id {point_id} is already used by another sighting")
    if camera_id is not None:
        _get(session, Camera, camera_id)
    row = Sighting(
        media_id=media.id,
        camera_id=camera_id if camera_id is not None else media.camera_id,
        frame_index=_count(frame_index, "frame_index"),
        frame_time=_aware(frame_time, "frame_time"),
        box_x=x,
        box_y=y,
        box_w=w,
        box_h=h,
        quality=_finite(quality, "quality"),
        object_key=_req(object_key, "object_key", 1024),
        modality=_enum(Modality, modality, "modality"),
        point_id=point_id,
        attributes=_json(attributes, "attributes"),
        source_label=_opt(source_label, "source_label", 128),
        track_id=track_id,
    )
    return _flushed(session, row)


def sightings_by_track(session: Session, track_ids: Sequence[int]) -> dict[int, list[Sighting]]:
    """Each track's sightings (its representative crops), in id order."""
    out: dict[int, list[Sighting]] = {}
    if track_ids:
        rows = session.scalars(
            sa.select(Sighting).where(Sighting.track_id.in_(list(track_ids))).order_by(Sighting.id)
        )
        for row in rows:
            out.setdefault(row.track_id, []).append(row)  # type: ignore[arg-type]
    return out


def representative(sightings: Sequence[Sighting]) -> Sighting | None:
    """The sighting that stands for its track: the best quality, the first on a tie."""
    return max(sightings, key=lambda r: (r.quality, -r.id)) if sightings else None


def sighting_offset_s(row: Sighting, media: Media) -> float:
    """Seconds into the source media where ``row`` was cropped (0 for an image).

    The frame time is exact when the media has a start time; otherwise the frame index over
    the file's frame rate gives the same offset.
    """
    if media.kind != "video":
        return 0.0
    if row.frame_time is not None and media.start_time is not None:
        return max(0.0, (row.frame_time - media.start_time).total_seconds())
    if media.fps:
        return row.frame_index / media.fps
    return 0.0


def create_identity(
    session: Session,
    *,
    label: str | None = None,
    notes: str | None = None,
    created_by: str | None = None,
) -> Identity:
    row = Identity(
        label=_opt(label, "label", 256),
        notes=notes,
        created_by=_opt(created_by, "created_by", 128),
    )
    return _flushed(session, row)


def resolve_identity(session: Session, identity_id: int) -> Identity:
    """The identity that ``identity_id`` ended up as, following merges."""
    row = _get(session, Identity, identity_id)
    seen = {row.id}
    while row.merged_into_id is not None:
        row = _get(session, Identity, row.merged_into_id)
        if row.id in seen:
            raise InvalidValueError(f"identity {identity_id} is in a merge cycle")
        seen.add(row.id)
    return row


def get_or_create_labelled_identity(
    session: Session, label: str, *, created_by: str = "import"
) -> Identity:
    """The identity carrying a dataset label (after merges), created when the label is new."""
    label = _req(label, "label", 256)
    first = session.scalar(
        sa.select(Identity).where(Identity.label == label).order_by(Identity.id).limit(1)
    )
    if first is not None:
        return resolve_identity(session, first.id)
    return create_identity(session, label=label, created_by=created_by)


def assign(
    session: Session,
    sighting_id: int,
    identity_id: int,
    provenance: Provenance | str,
    actor: str,
    score: float | None = None,
) -> Assignment:
    """Make ``identity_id`` the sighting's identity; the previous active assignment (if any) is
    deactivated in the same transaction and kept as history."""
    prov = _enum(Provenance, provenance, "provenance")
    actor = _req(actor, "actor", 128)
    sighting = _get(session, Sighting, sighting_id, lock=True)  # serialises reassignments
    identity = _get(session, Identity, identity_id)
    if identity.merged_into_id is not None:
        raise InvalidValueError(
            f"identity {identity_id} was merged into {identity.merged_into_id}; assign to that one"
        )
    session.execute(
        sa.update(Assignment)
        .where(Assignment.sighting_id == sighting.id, Assignment.active.is_(True))
        .values(active=False)
    )
    row = Assignment(
        sighting_id=sighting.id,
        identity_id=identity.id,
        provenance=prov,
        score=None if score is None else _finite(score, "score"),
        actor=actor,
        active=True,
    )
    return _flushed(session, row)


def unassign(session: Session, sighting_id: int) -> bool:
    """Deactivate the sighting's assignment; False when it had none."""
    sighting = _get(session, Sighting, sighting_id, lock=True)
    result = session.execute(
        sa.update(Assignment)
        .where(Assignment.sighting_id == sighting.id, Assignment.active.is_(True))
        .values(active=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def active_identity_of(session: Session, sighting_id: int) -> Identity | None:
    return session.scalar(
        sa.select(Identity)
        .join(Assignment, Assignment.identity_id == Identity.id)
        .where(Assignment.sighting_id == sighting_id, Assignment.active.is_(True))
    )


# --- reviews and audit -----------------------------------------------------------------------


class ReviewState(NamedTuple):
    """A sighting's identity and review state as search reports and filters them; the field
    names are the index payload keys they are mirrored to."""

    identity: int | None
    review: str


def review_states(session: Session, sighting_ids: Iterable[int]) -> dict[int, ReviewState]:
    """Each sighting's active identity and review state: ``confirmed`` when an analyst put it
    on that identity (confirm, assign, merge, split), ``rejected`` when an analyst rejected that
    identity (or, with none assigned, any identity), else ``unreviewed`` (matcher and import
    assignments await review). Ids without rows read as unassigned and unreviewed."""
    ids = sorted(set(sighting_ids))
    if not ids:
        return {}
    active = {
        a.sighting_id: a
        for a in session.scalars(
            sa.select(Assignment).where(
                Assignment.sighting_id.in_(ids), Assignment.active.is_(True)
            )
        )
    }
    rejected: dict[int, set[int | None]] = {}
    for sid, ident in session.execute(
        sa.select(ReviewDecision.sighting_id, ReviewDecision.identity_id).where(
            ReviewDecision.sighting_id.in_(ids),
            ReviewDecision.decision == Decision.REJECT,
            ReviewDecision.undone_at.is_(None),
        )
    ):
        rejected.setdefault(sid, set()).add(ident)
    return {sid: _review_state(active.get(sid), rejected.get(sid, set())) for sid in ids}


def _review_state(active: Assignment | None, rejected: set[int | None]) -> ReviewState:
    ident = active.identity_id if active is not None else None
    if active is not None and active.provenance == Provenance.ANALYST:
        return ReviewState(ident, "confirmed")
    if rejected and (ident is None or ident in rejected):
        return ReviewState(ident, "rejected")
    return ReviewState(ident, "unreviewed")


def track_review(states: Iterable[str]) -> str:
    """A track's review state from its sightings': the strongest analyst decision on any of
    them, ``confirmed`` over ``rejected`` over ``unreviewed``. An analyst who acted on any crop
    of a track has looked at that person, so the track leaves the ``unreviewed`` queue."""
    found = set(states)
    return next((s for s in ("confirmed", "rejected") if s in found), "unreviewed")


def record_decision(
    session: Session,
    *,
    sighting_id: int,
    decision: Decision | str,
    actor: str,
    identity_id: int | None = None,
    query_key: str | None = None,
    note: str | None = None,
) -> ReviewDecision:
    """An analyst's confirm/reject of a sighting for an identity and/or a query."""
    if identity_id is None and query_key is None:
        raise InvalidValueError("a review decision needs an identity_id or a query_key")
    row = ReviewDecision(
        sighting_id=_get(session, Sighting, sighting_id).id,
        identity_id=None if identity_id is None else _get(session, Identity, identity_id).id,
        query_key=_opt(query_key, "query_key", 256),
        decision=_enum(Decision, decision, "decision"),
        actor=_req(actor, "actor", 128),
        note=note,
    )
    return _flushed(session, row)


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | str | None = None,
    details: dict[str, Any] | None = None,
    key_id: int | None = None,
) -> AuditEvent:
    """An audit event; ``key_id`` is the API key that caused it (None outside the API)."""
    if key_id is not None and (not isinstance(key_id, int) or isinstance(key_id, bool)):
        raise InvalidValueError(f"key_id must be an integer or None; got {key_id!r}")
    row = AuditEvent(
        actor=_req(actor, "actor", 128),
        action=_req(action, "action", 64),
        entity=_req(entity, "entity", 64),
        entity_id=None if entity_id is None else _req(str(entity_id), "entity_id", 64),
        details=_json(details, "details"),
        key_id=key_id,
    )
    return _flushed(session, row)


def list_audit(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    entity: str | None = None,
    entity_id: int | str | None = None,
    key_id: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AuditEvent], int]:
    """Audit events matching every given filter, newest first, and how many match in all.
    ``since`` is inclusive, ``until`` exclusive."""
    where: list[sa.ColumnElement[bool]] = []
    for column, value in (
        (AuditEvent.actor, actor),
        (AuditEvent.action, action),
        (AuditEvent.entity, entity),
        (AuditEvent.entity_id, None if entity_id is None else str(entity_id)),
        (AuditEvent.key_id, key_id),
    ):
        if value is not None:
            where.append(column == value)
    if since is not None:
        where.append(AuditEvent.created_at >= _aware(since, "since"))
    if until is not None:
        where.append(AuditEvent.created_at < _aware(until, "until"))
    total = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(*where)) or 0
    rows = session.scalars(
        sa.select(AuditEvent)
        .where(*where)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .offset(_count(offset, "offset"))
        .limit(_count(limit, "limit"))
    )
    return list(rows), int(total)


# --- ingest jobs -----------------------------------------------------------------------------

_JOB_NEXT = {
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED},
    JobStatus.RUNNING: {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED},
}


def create_job(
    session: Session,
    *,
    kind: str,
    source: str = "",
    total: int = 0,
    options: dict[str, Any] | None = None,
    created_by: str | None = None,
) -> IngestJob:
    row = IngestJob(
        kind=_req(kind, "job kind", 32),
        source=source if source == "" else _req(source, "source", 1024),
        total=_count(total, "total"),
        options=_json(options, "options"),
        created_by=_opt(created_by, "created_by", 128),
    )
    return _flushed(session, row)


def update_job_progress(
    session: Session,
    job_id: int,
    *,
    processed_delta: int = 0,
    failed_delta: int = 0,
    total: int | None = None,
    status: JobStatus | str | None = None,
    error: str | None = None,
) -> IngestJob:
    """Add to the counters (``processed`` counts every finished item, ``failed`` the failed
    ones) and/or move the job on: queued → running → done | failed | cancelled.

    The row is locked for the transaction, so concurrent workers never lose an increment.
    Counters still move on a finished job (late reports); its status does not.
    """
    processed_delta = _count(processed_delta, "processed_delta")
    failed_delta = _count(failed_delta, "failed_delta")
    new = None if status is None else _enum(JobStatus, status, "job status")
    job = _get(session, IngestJob, job_id, lock=True)
    if new is not None and new is not job.status and new not in _JOB_NEXT.get(job.status, ()):
        raise InvalidValueError(f"job {job_id} cannot go from {job.status} to {new}")
    job.processed += processed_delta
    job.failed += failed_delta
    if total is not None:
        job.total = _count(total, "total")
    if error is not None:
        job.error = error
    if new is not None and new is not job.status:
        job.status = new
        if new is JobStatus.RUNNING:
            job.started_at = utcnow()
        if new.terminal:
            job.finished_at = utcnow()
    session.flush()
    return job


def add_job_failure(session: Session, job_id: int, item: str, reason: str) -> JobFailure:
    """Why ``item`` failed. Counters are not touched: report it with ``update_job_progress``."""
    job = _get(session, IngestJob, job_id)
    row = JobFailure(job_id=job.id, item=str(item)[:1024], reason=str(reason))
    return _flushed(session, row)


# --- encoder versions and index generations --------------------------------------------------


def register_encoder_version(
    session: Session, version: str, backbone: str, checkpoint: str | None, dim: int
) -> EncoderVersion:
    """Register an encoder version; registering the same one again returns the stored row,
    registering a different encoder under a taken version string raises AlreadyExistsError."""
    version = _req(version, "version", 128)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise InvalidValueError(f"dim must be a positive integer; got {dim!r}")
    wanted = {"backbone": backbone, "checkpoint": checkpoint, "dim": dim}
    found = session.scalar(sa.select(EncoderVersion).where(EncoderVersion.version == version))
    if found is None:
        row = EncoderVersion(
            version=version,
            backbone=_req(backbone, "backbone", 256),
            checkpoint=_opt(checkpoint, "checkpoint", 1024),
            dim=dim,
        )
        if _insert_in_savepoint(session, row) is None:
            return row
        found = session.scalar(sa.select(EncoderVersion).where(EncoderVersion.version == version))
        assert found is not None
    stored = {k: getattr(found, k) for k in wanted}
    if stored != wanted:
        raise AlreadyExistsError(
            f"encoder version {version!r} is registered as {stored}, not {wanted}", found.id
        )
    return found


def activate_encoder_version(session: Session, version: str) -> EncoderVersion:
    """Make ``version`` the one active encoder version."""
    row = session.scalar(sa.select(EncoderVersion).where(EncoderVersion.version == version))
    if row is None:
        raise NotFoundError(f"encoder version {version!r} is not registered")
    session.execute(
        sa.update(EncoderVersion)
        .where(EncoderVersion.id != row.id, EncoderVersion.is_active.is_(True))
        .values(is_active=False)
    )
    row.is_active = True
    session.flush()
    return row


def create_generation(
    session: Session, *, encoder_version_id: int, collection: str
) -> IndexGeneration:
    """A new ``building`` generation; AlreadyExistsError when the collection is taken."""
    collection = _req(collection, "collection", 255)
    version = _get(session, EncoderVersion, encoder_version_id)
    row = IndexGeneration(encoder_version_id=version.id, collection=collection)
    if _insert_in_savepoint(session, row) is None:
        return row
    found = session.scalar(
        sa.select(IndexGeneration).where(IndexGeneration.collection == collection)
    )
    raise AlreadyExistsError(
        f"collection {collection!r} already has generation {found.id if found else '?'}",
        found.id if found else None,
    )


_GEN_NEXT = {
    GenerationStatus.BUILDING: {
        GenerationStatus.LIVE,
        GenerationStatus.FAILED,
        GenerationStatus.RETIRED,
    },
    GenerationStatus.FAILED: {GenerationStatus.BUILDING, GenerationStatus.RETIRED},
    GenerationStatus.LIVE: {GenerationStatus.RETIRED},
    GenerationStatus.RETIRED: {GenerationStatus.LIVE},  # roll back to an older generation
}


def set_generation_status(
    session: Session,
    generation_id: int,
    status: GenerationStatus | str,
    *,
    points: int | None = None,
    cursor: dict[str, Any] | None = _UNSET,
) -> IndexGeneration:
    """Move a generation on (building → live → retired, retired → live to roll back, failed →
    building to resume) and/or record its point count and resume cursor. Going live retires
    the generation that was live, in the same transaction."""
    new = _enum(GenerationStatus, status, "generation status")
    gen = _get(session, IndexGeneration, generation_id, lock=True)
    if new is not gen.status and new not in _GEN_NEXT[gen.status]:
        raise InvalidValueError(f"generation {generation_id} cannot go from {gen.status} to {new}")
    if points is not None:
        gen.points = _count(points, "points")
    if cursor is not _UNSET:
        gen.cursor = _json(cursor, "cursor")
    if new is GenerationStatus.LIVE and gen.status is not GenerationStatus.LIVE:
        session.execute(
            sa.update(IndexGeneration)
            .where(IndexGeneration.id != gen.id, IndexGeneration.status == GenerationStatus.LIVE)
            .values(status=GenerationStatus.RETIRED)
        )
        gen.live_at = utcnow()
    gen.status = new
    session.flush()
    return gen


def live_generation(session: Session) -> IndexGeneration | None:
    return session.scalar(
        sa.select(IndexGeneration).where(IndexGeneration.status == GenerationStatus.LIVE)
    )


# --- cases -----------------------------------------------------------------------------------


def create_case(
    session: Session,
    *,
    title: str,
    created_by: str,
    description: str | None = None,
    key_id: int | None = None,
) -> Case:
    row = Case(
        title=_req(title, "title", 256).strip(),
        description=description,
        created_by=_req(created_by, "created_by", 128),
        key_id=key_id,
    )
    return _flushed(session, row)


def get_case(session: Session, case_id: int, *, lock: bool = False) -> Case:
    return _get(session, Case, case_id, lock=lock)


def list_cases(
    session: Session,
    *,
    status: CaseStatus | str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[tuple[Case, int]], int]:
    """Cases (newest first) with their item counts, and how many match in all."""
    where = [] if status is None else [Case.status == _enum(CaseStatus, status, "status")]
    total = session.scalar(sa.select(sa.func.count()).select_from(Case).where(*where)) or 0
    counts = (
        sa.select(CaseItem.case_id, sa.func.count().label("n"))
        .group_by(CaseItem.case_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(Case, sa.func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.case_id == Case.id)
        .where(*where)
        .order_by(Case.id.desc())
        .offset(_count(offset, "offset"))
        .limit(_count(limit, "limit"))
    ).all()
    return [(c, int(n)) for c, n in rows], int(total)


def update_case(
    session: Session,
    case_id: int,
    *,
    title: str | None = None,
    description: str | None = _UNSET,
    status: CaseStatus | str | None = None,
) -> tuple[Case, dict[str, Any]]:
    """Change a case's title, description and/or status; returns the case and what changed
    (``{field: [old, new]}``, empty when nothing did)."""
    case = _get(session, Case, case_id, lock=True)
    changed: dict[str, Any] = {}
    if title is not None:
        title = _req(title, "title", 256).strip()
        if title != case.title:
            changed["title"] = [case.title, title]
            case.title = title
    if description is not _UNSET and description != case.description:
        changed["description"] = [case.description, description]
        case.description = description
    if status is not None:
        new = _enum(CaseStatus, status, "status")
        if new is not case.status:
            changed["status"] = [str(case.status), str(new)]
            case.status = new
            case.closed_at = utcnow() if new is CaseStatus.CLOSED else None
    session.flush()
    return case, changed


def add_case_item(
    session: Session,
    case_id: int,
    *,
    kind: CaseItemKind | str,
    pinned_by: str,
    ref_id: int | None = None,
    query: dict[str, Any] | None = None,
    note: str | None = None,
    key_id: int | None = None,
) -> CaseItem:
    """Pin a track or sighting (``ref_id``, which must exist) or a query (``query``) to an
    open case. Pinning the same track or sighting twice raises AlreadyExistsError."""
    kind = _enum(CaseItemKind, kind, "kind")
    case = _get(session, Case, case_id, lock=True)
    if case.status is not CaseStatus.OPEN:
        raise InvalidValueError(f"case {case_id} is {case.status}: reopen it to pin items")
    if kind is CaseItemKind.QUERY:
        if query is None or ref_id is not None:
            raise InvalidValueError("a query item holds a query and no ref_id")
    else:
        if ref_id is None or query is not None:
            raise InvalidValueError(f"a {kind} item needs the {kind} id (ref_id) and no query")
        _get(session, Track if kind is CaseItemKind.TRACK else Sighting, ref_id)
        found = session.scalar(
            sa.select(CaseItem.id).where(
                CaseItem.case_id == case.id, CaseItem.kind == kind, CaseItem.ref_id == ref_id
            )
        )
        if found is not None:
            raise AlreadyExistsError(
                f"{kind} {ref_id} is already pinned to case {case.id} (item {found})", found
            )
    row = CaseItem(
        case_id=case.id,
        kind=kind,
        ref_id=ref_id,
        query=_json(query, "query"),
        note=note,
        pinned_by=_req(pinned_by, "pinned_by", 128),
        key_id=key_id,
    )
    case.updated_at = utcnow()
    return _flushed(session, row)


def get_case_item(session: Session, case_id: int, item_id: int) -> CaseItem:
    row = session.get(CaseItem, item_id)
    if row is None or row.case_id != case_id:
        raise NotFoundError(f"case {case_id} has no item {item_id}")
    return row


# --- API keys --------------------------------------------------------------------------------


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _key_name(name: Any) -> str:
    """A key name: the actor its key's actions are recorded under, and how the CLI finds it
    (so it is never all digits, which would read as an id)."""
    name = _req(name, "key name", 128)
    if name != name.strip() or any(not c.isprintable() for c in name):
        raise InvalidValueError(
            f"a key name must be printable with no leading or trailing spaces; got {name!r}"
        )
    if name.isdigit():
        raise InvalidValueError(f"a key name cannot be all digits (it would read as an id): {name}")
    return name


def _new_secret(plaintext: str | None) -> str:
    if plaintext is None:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)
    if not isinstance(plaintext, str) or len(plaintext) < 16:
        raise InvalidValueError("an API key must be a string of at least 16 characters")
    return plaintext


def _key_taken(session: Session, key_hash: str, plaintext: str) -> AlreadyExistsError:
    taken = session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == key_hash))
    state = "revoked" if taken is not None and taken.revoked_at is not None else "active"
    return AlreadyExistsError(
        f"that key is already registered ({state}, prefix {plaintext[:8]!r})",
        taken.id if taken is not None else None,
    )


def api_key_by_name(session: Session, name: str) -> ApiKey | None:
    return session.scalar(sa.select(ApiKey).where(ApiKey.name == name))


def create_api_key(
    session: Session,
    name: str,
    *,
    role: KeyRole | str = KeyRole.ANALYST,
    plaintext: str | None = None,
) -> tuple[str, ApiKey]:
    """A new key: returns the plaintext (shown once, never stored) and the row, which keeps
    only its SHA-256 and first 8 characters. ``plaintext`` imports a given key (bootstrap).

    ``role`` defaults to the least one (analyst); names are unique, revoked keys included, so
    a name always means one key in the audit trail.
    """
    name = _key_name(name)
    role = _enum(KeyRole, role, "role")
    plaintext = _new_secret(plaintext)
    row = ApiKey(name=name, role=role, prefix=plaintext[:8], key_hash=hash_api_key(plaintext))
    if _insert_in_savepoint(session, row) is not None:
        named = api_key_by_name(session, name)
        if named is not None and named.key_hash != row.key_hash:
            raise AlreadyExistsError(f"an API key named {name!r} exists (id {named.id})", named.id)
        raise _key_taken(session, row.key_hash, plaintext)
    return plaintext, row


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(sa.select(ApiKey).order_by(ApiKey.id)))


def rotate_api_key(session: Session, key_id: int, *, plaintext: str | None = None) -> str:
    """A new secret for the key (same id, name and role); the old one stops working now.
    Returns the new plaintext. A revoked key stays revoked: create a new one instead."""
    row = _get(session, ApiKey, key_id, lock=True)
    if row.revoked_at is not None:
        raise InvalidValueError(f"API key {row.id} ({row.name}) is revoked; create a new one")
    plaintext = _new_secret(plaintext)
    key_hash = hash_api_key(plaintext)
    if session.scalar(sa.select(ApiKey.id).where(ApiKey.key_hash == key_hash)) is not None:
        raise _key_taken(session, key_hash, plaintext)
    row.prefix, row.key_hash, row.rotated_at = plaintext[:8], key_hash, utcnow()
    session.flush()
    return plaintext


def verify_api_key(session: Session, plaintext: Any) -> ApiKey | None:
    """The key's row when ``plaintext`` is a registered, unrevoked key (its ``last_used_at``
    is updated); None otherwise."""
    if not isinstance(plaintext, str) or not plaintext or len(plaintext) > 512:
        return None
    row = session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == hash_api_key(plaintext)))
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = utcnow()
    session.flush()
    return row


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    row = _get(session, ApiKey, key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row
