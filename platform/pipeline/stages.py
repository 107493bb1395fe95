"""What queued ingest jobs need around the pipeline's steps (:mod:`.ingest`): options and
items as JSON, registering a chunk's items, and job bookkeeping.

Chunk bookkeeping for queued jobs is here too (:func:`finish_chunk`): a job's ``options`` JSON
holds ``chunks_total`` and the sorted list ``chunks_done``; a chunk is counted in the same
locked transaction that adds it to that list, so a redelivered chunk is never counted twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aioreid.platform.db import crud
from aioreid.platform.db.enums import JobStatus, MediaStatus
from aioreid.platform.db.errors import InvalidValueError, NotFoundError
from aioreid.platform.db.models import IngestJob, Media
from aioreid.platform.pipeline.crops import CropPolicy
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, fail_media, once_per_media
from aioreid.platform.pipeline.register import (
    MediaResult,
    MediaTask,
    StageInputError,
    item_label,
    record_failure,
    register_item,
)
from aioreid.platform.pipeline.tracking import TrackerOptions
from aioreid.platform.pipeline.windows import PoolingOptions
from aioreid.platform.services import Services

log = logging.getLogger(__name__)

__all__ = ["StageInputError", "fail_media", "record_failure"]

# --- options -----------------------------------------------------------------------------------


def options_to_dict(options: IngestOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)


def options_from_dict(data: dict[str, Any] | None) -> IngestOptions:
    """The inverse of :func:`options_to_dict`; unknown fields are a StageInputError."""
    if data is None:
        return IngestOptions()
    if not isinstance(data, dict):
        raise StageInputError(f"ingest options must be a dict, got {type(data).__name__}")
    try:
        rest = dict(data)
        nested = {
            "sampling": SamplingOptions,
            "crops": CropPolicy,
            "tracker": TrackerOptions,
            "pooling": PoolingOptions,
        }
        for name, cls in nested.items():
            rest[name] = cls(**(rest.pop(name, None) or {}))
        return IngestOptions(**rest)
    except (TypeError, ValueError) as exc:
        raise StageInputError(f"bad ingest options {data!r}: {exc}") from None


# --- registration ------------------------------------------------------------------------------


def register_items(
    svc: Services, items: Sequence[Any], options: IngestOptions, job_id: int | None
) -> list[MediaTask | MediaResult]:
    """:func:`.register.register_item` over a chunk's items, identical bytes once."""
    registered = [register_item(svc, item, options.max_bytes, job_id) for item in items]
    return once_per_media(registered, [item_label(item) for item in items])


def media_progress(svc: Services, media_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """Each media's status and the next window its ingestion will apply."""
    ids = sorted(set(media_ids))
    if not ids:
        return {}
    with svc.sessions() as s:
        rows = s.execute(select(Media.id, Media.status, Media.progress).where(Media.id.in_(ids)))
        return {m: (str(st), int((p or {}).get("window", 0))) for m, st, p in rows}


def all_finished(svc: Services, media_ids: Sequence[int | None]) -> bool:
    """True when every media of a chunk is done or failed (refused items, None, count as
    finished): only then is the chunk counted."""
    ids = [m for m in media_ids if isinstance(m, int)]
    status = media_statuses(svc, ids)
    return all(status.get(m, "failed") in ("done", "failed") for m in ids)


def media_statuses(svc: Services, media_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(media_ids))
    if not ids:
        return {}
    with svc.sessions() as s:
        rows = s.execute(select(Media.id, Media.status).where(Media.id.in_(ids)))
        return {mid: str(status) for mid, status in rows}


# --- chunk bookkeeping for queued jobs ---------------------------------------------------------


def job_is_open(svc: Services, job_id: int) -> bool:
    """False when the job is gone or finished (cancelled, failed, done): skip its chunks."""
    with svc.sessions() as s:
        job = s.get(IngestJob, job_id)
        return job is not None and not JobStatus(job.status).terminal


def release_media(svc: Services, media_ids: Iterable[int | None]) -> None:
    """Put claimed media of a skipped chunk back to ``pending`` (a later job picks them up)."""
    ids = [m for m in media_ids if isinstance(m, int)]
    if not ids:
        return
    with svc.sessions.begin() as s:
        for media in s.scalars(select(Media).where(Media.id.in_(ids))):
            if media.status == MediaStatus.PROCESSING:
                media.status = MediaStatus.PENDING


def plan_chunks(
    svc: Services, job_id: int, chunks: int, extra: dict[str, Any], *, total: int
) -> bool:
    """Record a job's item and chunk counts and mark it running before its chunks are sent.

    False when there is nothing to send: the job is gone or finished, or an earlier delivery
    of the fan-out already sent the chunks. Chunks already counted are kept.
    """
    with svc.sessions.begin() as s:
        job = s.get(IngestJob, job_id, with_for_update=True, populate_existing=True)
        if job is None or JobStatus(job.status).terminal or (job.options or {}).get("fanned_out"):
            return False
        # update_job_progress re-reads the row, so change options after it.
        crud.update_job_progress(s, job_id, status=JobStatus.RUNNING, total=total)
        opts = {**(job.options or {}), **extra, "chunks_total": chunks}
        opts.setdefault("chunks_done", [])
        job.options = opts
        if chunks == 0:
            _finish(s, job)
    return True


def set_job_option(svc: Services, job_id: int, key: str, value: Any) -> None:
    with svc.sessions.begin() as s:
        job = s.get(IngestJob, job_id, with_for_update=True, populate_existing=True)
        if job is not None:
            job.options = {**(job.options or {}), key: value}


def _finish(s: Session, job: IngestJob) -> None:
    """Mark the job done and keep its wall time and throughput in ``options``."""
    if JobStatus(job.status).terminal:
        return
    crud.update_job_progress(s, job.id, status=JobStatus.DONE)
    started = job.started_at or job.created_at
    if started is not None and job.finished_at is not None:
        seconds = max((job.finished_at - started).total_seconds(), 1e-3)
        job.options = {
            **(job.options or {}),
            "seconds": round(seconds, 3),
            "files_per_s": round(job.processed / seconds, 2),
        }


def finish_chunk(svc: Services, job_id: int, chunk: int, media_ids: Sequence[int | None]) -> bool:
    """Count a finished chunk once: ``processed`` += its items, ``failed`` += those whose media
    is missing or not done. The job is done when every chunk is counted. Returns False when
    the chunk was already counted (a redelivery) or the job is gone."""
    status = media_statuses(svc, (m for m in media_ids if isinstance(m, int)))
    failed = sum(1 for m in media_ids if status.get(m) != "done")  # type: ignore[arg-type]
    with svc.sessions.begin() as s:
        job = s.get(IngestJob, job_id, with_for_update=True, populate_existing=True)
        if job is None:
            return False
        opts = dict(job.options or {})
        done = set(opts.get("chunks_done") or [])
        if chunk in done:
            return False
        done.add(chunk)
        crud.update_job_progress(s, job_id, processed_delta=len(media_ids), failed_delta=failed)
        job.options = {**opts, "chunks_done": sorted(done)}
        total = opts.get("chunks_total")
        if isinstance(total, int) and len(done) >= total:
            _finish(s, job)
    return True


def cancel_job(svc: Services | sessionmaker[Session], job_id: int) -> bool:
    """Cancel a job: chunks not yet started skip, claimed media go back to ``pending``.
    False when the job had already finished (done, failed or cancelled). Needs only the
    database, so ``svc`` may be a sessionmaker."""
    sessions = svc.sessions if isinstance(svc, Services) else svc
    with sessions.begin() as s:
        job = s.get(IngestJob, job_id, with_for_update=True, populate_existing=True)
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist")
        if JobStatus(job.status).terminal:
            return False
        crud.update_job_progress(s, job_id, status=JobStatus.CANCELLED)
    return True


def fail_job(svc: Services, job_id: int, reason: str) -> bool:
    """Mark a job failed with the reason; False when it had already finished or is gone."""
    with svc.sessions.begin() as s:
        if s.get(IngestJob, job_id) is None:
            return False
        try:
            crud.update_job_progress(s, job_id, status=JobStatus.FAILED, error=reason[:2000])
        except InvalidValueError:
            return False
    return True
