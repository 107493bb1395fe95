"""Retention: delete media older than a cut-off with everything derived from them.

A media is old when its recording ``start_time`` (or, when unknown, its ``created_at``) is
before the cut-off. For each batch of old media the steps run in this order:

1. their sightings' points are deleted from every collection of every index generation
   (live, building, and retired ones kept for roll-back);
2. their crop and media objects are deleted, except objects a remaining row still references
   (content addressing: identical bytes share one key);
3. the media rows are deleted, and with them (database cascade) their sightings, assignments
   and review decisions.

A failure in 1 or 2 leaves the rows in place, so the next sweep finds the media again and
retries; deleting absent points or objects is a no-op, so every step is idempotent. Media still
being ingested are left for a later sweep unless they have not moved for ``busy_grace``.

:func:`remove_failed_media` clears what bad uploads leave behind whatever their age: media that
failed without giving a single sighting, unchanged for a grace period (time to retry them),
lose their bytes, checkpoints and row; the job keeps its failure rows with the reasons.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from aioreid.platform.db import crud
from aioreid.platform.db.enums import MediaStatus
from aioreid.platform.db.models import IndexGeneration, Media, Sighting, Track
from aioreid.platform.services import Services

log = logging.getLogger(__name__)

BUSY = (MediaStatus.PENDING, MediaStatus.PROCESSING)


class RetentionError(ValueError):
    """A retention request that would be wrong to run (naive or future cut-off...)."""


@dataclass
class RetentionReport:
    older_than: str
    dry_run: bool
    media: int = 0
    sightings: int = 0
    points: int = 0
    crop_objects: int = 0
    media_objects: int = 0
    shared_objects_kept: int = 0
    busy_media_skipped: int = 0


@dataclass(frozen=True)
class _Batch:
    media: dict[int, str]  # media id -> object key
    sightings: dict[int, tuple[int, str, str]]  # sighting id -> (media id, point id, crop key)
    track_points: list[str] = field(default_factory=list)  # pooled points of their tracks


def _check_cutoff(older_than: datetime) -> datetime:
    if not isinstance(older_than, datetime):
        raise RetentionError(f"older_than must be a datetime, got {older_than!r}")
    if older_than.tzinfo is None:
        raise RetentionError("older_than must be timezone-aware (UTC), not a naive datetime")
    if older_than > datetime.now(timezone.utc):
        raise RetentionError(f"older_than {older_than.isoformat()} is in the future")
    return older_than


def _collections(svc: Services) -> list[str]:
    """Every collection of an index generation that exists, plus the alias's target."""
    with svc.sessions() as s:
        names = set(s.scalars(sa.select(IndexGeneration.collection)))
    live = svc.index.resolve_alias(svc.alias)
    if live is not None:
        names.add(live)
    existing = set(svc.index.list_collections())
    return sorted(names & existing)


def _next_batch(
    svc: Services, older_than: datetime, after: int, size: int, busy_before: datetime
) -> tuple[_Batch, int, int]:
    """The next old media (id > ``after``) and their sightings; also the last media id seen
    and how many busy media were skipped."""
    when = sa.func.coalesce(Media.start_time, Media.created_at)
    with svc.sessions() as s:
        rows = list(
            s.execute(
                sa.select(Media.id, Media.object_key, Media.status, Media.updated_at)
                .where(when < older_than, Media.id > after)
                .order_by(Media.id)
                .limit(size)
            )
        )
        media = {
            mid: key
            for mid, key, status, updated in rows
            if status not in BUSY or updated < busy_before
        }
        sightings = {
            sid: (mid, point, key)
            for sid, mid, point, key in s.execute(
                sa.select(
                    Sighting.id, Sighting.media_id, Sighting.point_id, Sighting.object_key
                ).where(Sighting.media_id.in_(media))
            )
        }
        track_points = list(s.scalars(sa.select(Track.point_id).where(Track.media_id.in_(media))))
    last = rows[-1][0] if rows else after
    return _Batch(media, sightings, track_points), last, len(rows) - len(media)


def _unshared(svc: Services, batch: _Batch) -> tuple[set[str], set[str], int]:
    """Crop and media keys no row outside the batch references; and how many are shared."""
    crops = {key for _, _, key in batch.sightings.values()}
    media_keys = set(batch.media.values())
    ids = list(batch.media)
    with svc.sessions() as s:
        kept_crops = set(
            s.scalars(
                sa.select(Sighting.object_key).where(
                    Sighting.object_key.in_(crops), Sighting.media_id.not_in(ids)
                )
            )
        )
        kept_media = set(
            s.scalars(
                sa.select(Media.object_key).where(
                    Media.object_key.in_(media_keys), Media.id.not_in(ids)
                )
            )
        )
    shared = len(kept_crops) + len(kept_media)
    return crops - kept_crops, media_keys - kept_media, shared


def _delete_rows(svc: Services, batch: _Batch, busy_before: datetime) -> tuple[int, int]:
    """Delete the batch's media rows (sightings cascade). A media that changed meanwhile (new
    sightings, ingest restarted) is left for the next sweep; returns (media, sightings)."""
    with svc.sessions.begin() as s:
        locked = list(
            s.scalars(sa.select(Media).where(Media.id.in_(batch.media)).with_for_update())
        )
        now = {}
        for sid, mid in s.execute(
            sa.select(Sighting.id, Sighting.media_id).where(Sighting.media_id.in_(batch.media))
        ):
            now.setdefault(mid, set()).add(sid)
        planned: dict[int, set[int]] = {}
        for sid, (mid, _, _) in batch.sightings.items():
            planned.setdefault(mid, set()).add(sid)
        gone = [
            m.id
            for m in locked
            if now.get(m.id, set()) == planned.get(m.id, set())
            and (m.status not in BUSY or m.updated_at < busy_before)
        ]
        n_sightings = sum(len(planned.get(mid, ())) for mid in gone)
        if gone:
            s.execute(sa.delete(Sighting).where(Sighting.media_id.in_(gone)))
            s.execute(sa.delete(Media).where(Media.id.in_(gone)))
        return len(gone), n_sightings


def apply_retention(
    svc: Services,
    older_than: datetime,
    *,
    dry_run: bool = False,
    batch: int = 200,
    busy_grace: timedelta = timedelta(hours=1),
    actor: str = "retention",
) -> dict:
    """Delete media recorded before ``older_than`` with their sightings, index points and
    objects; returns (and logs) the counts. ``dry_run`` only counts."""
    older_than = _check_cutoff(older_than)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise RetentionError(f"batch must be a positive int, got {batch!r}")
    busy_before = datetime.now(timezone.utc) - busy_grace
    report = RetentionReport(older_than=older_than.isoformat(), dry_run=dry_run)
    collections = _collections(svc)
    after = 0
    while True:
        found, after, busy = _next_batch(svc, older_than, after, batch, busy_before)
        report.busy_media_skipped += busy
        if not found.media:
            if busy:
                continue  # a whole batch of busy media; later ids may still be old
            break
        points = [p for _, p, _ in found.sightings.values()] + found.track_points
        crops, media_keys, shared = _unshared(svc, found)
        report.shared_objects_kept += shared
        for collection in collections:
            held = svc.index.retrieve(collection, points) if points else []
            report.points += len(held)
            if held and not dry_run:
                svc.index.delete(collection, [p.id for p in held])
        if dry_run:
            report.media += len(found.media)
            report.sightings += len(found.sightings)
            report.crop_objects += sum(svc.store.exists(k) for k in crops)
            report.media_objects += sum(svc.store.exists(k) for k in media_keys)
            continue
        for key in sorted(crops | media_keys):
            if svc.store.exists(key):
                svc.store.delete(key)
                if key in crops:
                    report.crop_objects += 1
                else:
                    report.media_objects += 1
        n_media, n_sightings = _delete_rows(svc, found, busy_before)
        report.media += n_media
        report.sightings += n_sightings
    result = asdict(report)
    if report.media and not dry_run:
        with svc.sessions.begin() as s:
            crud.record_audit(s, actor=actor, action="retention", entity="media", details=result)
    log.info("retention: %s", result)
    return result


def _failed_batch(
    svc: Services, failed_before: datetime, after: int, size: int
) -> tuple[_Batch, list[str]]:
    """The next failed media without sightings, and their content hashes."""
    with svc.sessions() as s:
        rows = s.execute(
            sa.select(Media.id, Media.object_key, Media.sha256)
            .where(
                Media.status == MediaStatus.FAILED,
                Media.updated_at < failed_before,
                Media.id > after,
                ~sa.exists().where(Sighting.media_id == Media.id),
            )
            .order_by(Media.id)
            .limit(size)
        ).all()
    return _Batch({m: key for m, key, _ in rows}, {}), [sha for _, _, sha in rows]


def remove_failed_media(
    svc: Services, failed_before: datetime, *, dry_run: bool = False, batch: int = 200
) -> dict:
    """Delete failed media without sightings whose last change is before ``failed_before``:
    their objects (unless shared), checkpoints and rows. Returns the counts."""
    from aioreid.platform.pipeline.ingest import checkpoint_prefix

    failed_before = _check_cutoff(failed_before)
    report = {"failed_before": failed_before.isoformat(), "dry_run": dry_run, "media": 0}
    report |= {"media_objects": 0, "checkpoints": 0}
    after = 0
    while True:
        found, shas = _failed_batch(svc, failed_before, after, batch)
        if not found.media:
            break
        after = max(found.media)
        _, media_keys, _ = _unshared(svc, found)
        checkpoints = [k for sha in shas for k in svc.store.iter_keys(checkpoint_prefix(sha))]
        stored = [k for k in media_keys if svc.store.exists(k)]
        report["media_objects"] += len(stored)
        report["checkpoints"] += len(checkpoints)
        if dry_run:
            report["media"] += len(found.media)
            continue
        svc.store.delete_many([*stored, *checkpoints])
        report["media"] += _delete_rows(svc, found, datetime.now(timezone.utc))[0]
    if report["media"] and not dry_run:
        with svc.sessions.begin() as s:
            crud.record_audit(
                s, actor="retention", action="remove_failed_media", entity="media", details=report
            )
    log.info("failed media removed: %s", report)
    return report
