"""The ingestion pipeline as three steps over JSON-able dicts, so queue workers on different
machines can run them: :func:`prepare` (claim, decode, detect, crop, store crops) →
:func:`embed` (crops read back from the store, one encoder pass per modality) →
:func:`commit` (sighting rows, index upsert, media done).

Every step can be re-run after a crash with the same result: crops are content-addressed,
point ids are UUIDv5 of (media sha, frame, box), commit reuses the sightings a crashed run left
and locks the media row so two deliveries of one step take turns. A media that cannot be
processed is marked ``failed`` with the reason (one job failure row per item, however often
the step runs) and left out of the next step; a store that is down raises
:class:`~aioreid.platform.storage.StorageUnavailable` instead, so the caller can retry.

Chunk bookkeeping for queued jobs is here too (:func:`finish_chunk`): a job's ``options`` JSON
holds ``chunks_total`` and the sorted list ``chunks_done``; a chunk is counted in the same
locked transaction that adds it to that list, so a redelivered chunk is never counted twice.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aioreid.encoder.inference import Encoder, EncoderInputError
from aioreid.platform.db import crud
from aioreid.platform.db.enums import JobStatus
from aioreid.platform.db.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from aioreid.platform.db.models import IngestJob, JobFailure, Media
from aioreid.platform.pipeline.crops import CropPolicy
from aioreid.platform.pipeline.detect import Box
from aioreid.platform.pipeline.frames import Frame, MediaDecodeError, SamplingOptions
from aioreid.platform.pipeline.ingest import (
    _FAILURES,
    IngestError,
    IngestOptions,
    MediaResult,
    MediaTask,
    _claim,
    _commit,
    _Pending,
    _prepare,
    _Prepared,
    register_media,
)
from aioreid.platform.services import Services
from aioreid.platform.storage import ObjectNotFound, StorageError, StorageUnavailable

log = logging.getLogger(__name__)

_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)  # commit needs boxes and keys, not pixels
_ITEM_SOURCES = ("path", "key", "data")
_ITEM_FIELDS = {"name", "camera", "modality", "start_time", "source_label", "attributes"}


class StageInputError(ValueError):
    """A step was handed data it cannot use (a malformed message, not a bad media file)."""


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
        sampling = SamplingOptions(**(rest.pop("sampling", None) or {}))
        crops = CropPolicy(**(rest.pop("crops", None) or {}))
        return IngestOptions(sampling=sampling, crops=crops, **rest)
    except TypeError as exc:
        raise StageInputError(f"bad ingest options {data!r}: {exc}") from None


# --- failures ----------------------------------------------------------------------------------


def record_failure(svc: Services, job_id: int | None, item: str, reason: str) -> None:
    """Add a job failure row unless this item already has one (steps may run twice)."""
    if job_id is None:
        return
    item = str(item)[:1024]
    with svc.sessions.begin() as s:
        seen = s.scalar(
            select(JobFailure.id).where(JobFailure.job_id == job_id, JobFailure.item == item)
        )
        if seen is None and s.get(IngestJob, job_id) is not None:
            crud.add_job_failure(s, job_id, item, reason)


def fail_media(svc: Services, media_id: int, exc: Exception | str) -> MediaResult:
    """Mark a media failed with the reason and record it on its job."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    log.warning("media %s failed: %s", media_id, reason)
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        if media is None:
            return MediaResult(media_id, "failed", error=reason)
        media.status, media.error = "failed", reason[:2000]
        job_id, item = media.job_id, media.original_name or str(media_id)
    record_failure(svc, job_id, item, reason)
    return MediaResult(media_id, "failed", error=reason)


# --- registration ------------------------------------------------------------------------------


def _read_item(svc: Services, item: dict[str, Any], max_bytes: int) -> tuple[bytes, str]:
    sources = [k for k in _ITEM_SOURCES if k in item]
    if len(sources) != 1:
        raise StageInputError(f"an item needs exactly one of path, key or data; got {sources}")
    unknown = set(item) - _ITEM_FIELDS - set(_ITEM_SOURCES)
    if unknown:
        raise StageInputError(f"unknown item fields {sorted(unknown)}")
    if "data" in item:
        data = item["data"]
        if not isinstance(data, bytes):
            raise StageInputError("item data must be bytes")
        return data, str(item.get("name") or "upload")
    if "key" in item:
        key = item["key"]
        if not isinstance(key, str):
            raise StageInputError(f"item key must be a string, got {key!r}")
        size = svc.store.stat(key).size
        if size > max_bytes:
            raise IngestError(f"{key}: {size} bytes is over the {max_bytes}-byte limit")
        return svc.store.get_bytes(key), str(item.get("name") or key)
    path = Path(item["path"])
    size = path.stat().st_size
    if size > max_bytes:
        raise IngestError(f"{path.name}: {size} bytes is over the {max_bytes}-byte limit")
    return path.read_bytes(), str(item.get("name") or path)


def item_label(item: object) -> str:
    """How an item is named in failures: its path, key or name."""
    if isinstance(item, dict):
        for k in ("path", "key", "name"):
            if item.get(k):
                return str(item[k])
    return repr(item)[:200]


def register_items(
    svc: Services, items: Sequence[Any], options: IngestOptions, job_id: int | None
) -> list[MediaTask | None]:
    """Store each item (a local ``path``, an object-store ``key`` or ``data`` bytes) and create
    its media row; None where the item is refused (the reason is recorded on the job).

    Transient store errors propagate (the caller retries); everything else about one item,
    including a malformed item, fails that item only.
    """
    out: list[MediaTask | None] = []
    for item in items:
        name = item_label(item)
        try:
            if not isinstance(item, dict):
                raise StageInputError(f"an item must be a dict, got {type(item).__name__}")
            data, name = _read_item(svc, item, options.max_bytes)
            start = item.get("start_time")
            if isinstance(start, str):
                start = datetime.fromisoformat(start)
            kwargs = {
                "camera": item.get("camera"),
                "modality": item.get("modality") or "rgb",
                "start_time": start,
                "job_id": job_id,
                "max_bytes": options.max_bytes,
            }
            try:
                media_id = register_media(svc, data, name, **kwargs)
            except AlreadyExistsError:  # registered by a concurrent worker in between
                media_id = register_media(svc, data, name, **kwargs)
        except StorageUnavailable:
            raise
        except (OSError, IngestError, MediaDecodeError, StorageError, ValueError) as exc:
            record_failure(svc, job_id, name, f"{type(exc).__name__}: {exc}")
            out.append(None)
            continue
        out.append(MediaTask(media_id, item.get("source_label"), item.get("attributes")))
    return out


# --- the three steps ---------------------------------------------------------------------------


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _describe(task: MediaTask, snap: dict, pending: list[_Pending]) -> dict[str, Any]:
    return {
        "media_id": task.media_id,
        "name": snap["name"],
        "job_id": snap["job_id"],
        "modality": snap["modality"],
        "camera_id": snap["camera_id"],
        "start": _iso(snap["start"]),
        "source_label": task.source_label,
        "attributes": task.attributes,
        "crops": [
            {
                "key": p.key,
                "frame": p.frame.index,
                "offset_s": p.frame.offset_s,
                "box": [p.box.x, p.box.y, p.box.w, p.box.h],
                "quality": p.quality,
                "point": p.point,
            }
            for p in pending
        ],
    }


def prepare(
    svc: Services, media: Sequence[int | MediaTask], options: IngestOptions | dict | None = None
) -> list[dict[str, Any]]:
    """Claim, decode, detect, crop and store the crops of each media.

    Returns one dict per media to embed (its crops by object key, frame index and offset,
    box, quality and point id). Media already done are left out; media that fail are marked
    failed, recorded on their job, and left out.
    """
    opts = options if isinstance(options, IngestOptions) else options_from_dict(options)
    out = []
    for m in media:
        task = m if isinstance(m, MediaTask) else MediaTask(int(m))
        try:
            snap = _claim(svc, task.media_id)
        except KeyError:
            log.warning("media %s vanished before it was prepared", task.media_id)
            continue
        if snap is None:
            continue
        try:
            pending = _prepare(svc, snap, opts)
        except StorageUnavailable:
            raise
        except _FAILURES as exc:
            fail_media(svc, task.media_id, exc)
            continue
        out.append(_describe(task, snap, pending))
    return out


def pack_vectors(vectors: np.ndarray) -> str:
    """Vectors as base64 of little-endian float32 rows (what travels between the steps)."""
    return base64.b64encode(np.ascontiguousarray(vectors, "<f4").tobytes()).decode("ascii")


def unpack_vectors(p: dict[str, Any]) -> np.ndarray:
    """The ``len(crops) x dim`` vectors of an embedded media; StageInputError if malformed."""
    n = len(p["crops"])
    try:
        raw = base64.b64decode(p["vectors"], validate=True)
        vectors = np.frombuffer(raw, "<f4").reshape(n, -1) if n else np.zeros((0, 1), "<f4")
    except (ValueError, TypeError) as exc:
        raise StageInputError(f"media {p.get('media_id')}: bad vectors: {exc}") from None
    if n and vectors.shape[1] != p.get("dim"):
        raise StageInputError(f"media {p['media_id']}: vectors are not {p.get('dim')}-d")
    return vectors.astype(np.float32)


def _check_prepared(prepared: object) -> list[dict[str, Any]]:
    if not isinstance(prepared, list):
        raise StageInputError(f"prepared media must be a list, got {type(prepared).__name__}")
    for p in prepared:
        if not isinstance(p, dict) or not isinstance(p.get("media_id"), int):
            raise StageInputError(f"not a prepared media: {str(p)[:200]}")
        if not isinstance(p.get("crops"), list):
            raise StageInputError(f"prepared media {p['media_id']} has no crop list")
    return prepared


def _crop_bytes(svc: Services, p: dict[str, Any]) -> list[bytes]:
    return [svc.store.get_bytes(c["key"]) for c in p["crops"]]


def embed_with(
    svc: Services, encoder: Encoder, prepared: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """:func:`embed` with a given encoder (commit uses it when the live encoder changed).
    Media whose crops cannot be read or embedded are marked failed and left out; the others
    keep their order."""
    loaded: dict[int, list[bytes]] = {}
    for i, p in enumerate(prepared):
        try:
            loaded[i] = _crop_bytes(svc, p)
        except StorageUnavailable:
            raise
        except (ObjectNotFound, StorageError, KeyError) as exc:
            fail_media(svc, p["media_id"], f"a stored crop is unreadable: {exc}")
    by_modality: dict[str, list[int]] = {}
    for i in loaded:
        by_modality.setdefault(prepared[i].get("modality") or "rgb", []).append(i)
    out: dict[int, dict[str, Any]] = {}
    for modality, group in by_modality.items():
        images = [c for i in group for c in loaded[i]]
        try:
            vectors = encoder.embed(images, modality) if images else np.zeros((0, 1))
        except EncoderInputError:
            for i in group:  # find the culprit: embed media by media
                try:
                    vecs = encoder.embed(loaded[i], modality) if loaded[i] else np.zeros((0, 1))
                except EncoderInputError as exc:
                    fail_media(svc, prepared[i]["media_id"], exc)
                    continue
                out[i] = _with_vectors(prepared[i], vecs, encoder)
            continue
        start = 0
        for i in group:
            out[i] = _with_vectors(prepared[i], vectors[start : start + len(loaded[i])], encoder)
            start += len(loaded[i])
    return [out[i] for i in sorted(out)]


def _with_vectors(p: dict[str, Any], vectors: np.ndarray, encoder: Encoder) -> dict[str, Any]:
    return {**p, "encoder": encoder.version, "dim": encoder.dim, "vectors": pack_vectors(vectors)}


def embed(svc: Services, prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add vectors (base64 float32 rows, one per crop) and the encoder version to each
    prepared media: crops are read back from the store, ONE encoder pass per modality with
    the live encoder; when a batch is refused, media are retried one by one and only the
    culprit fails."""
    prepared = _check_prepared(prepared)
    if not prepared:
        return []
    _, encoder = svc.live()
    return embed_with(svc, encoder, prepared)


def media_statuses(svc: Services, media_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(media_ids))
    if not ids:
        return {}
    with svc.sessions() as s:
        rows = s.execute(select(Media.id, Media.status).where(Media.id.in_(ids)))
        return {mid: str(status) for mid, status in rows}


def _as_prepared(p: dict[str, Any]) -> _Prepared:
    start = p.get("start")
    snap = {
        "start": datetime.fromisoformat(start) if start else None,
        "camera_id": p.get("camera_id"),
        "modality": p.get("modality") or "rgb",
    }
    pending = [
        _Pending(
            Frame(int(c["frame"]), float(c["offset_s"]), _NO_PIXELS),
            Box(*(int(v) for v in c["box"])),
            _NO_PIXELS,
            float(c["quality"]),
            str(c["key"]),
            str(c["point"]),
        )
        for c in p["crops"]
    ]
    task = MediaTask(p["media_id"], p.get("source_label"), p.get("attributes"))
    return _Prepared(0, task, snap, pending, unpack_vectors(p))


def commit(svc: Services, prepared: list[dict[str, Any]]) -> list[MediaResult]:
    """Write sighting rows (reusing rows a crashed run left), upsert the points into the live
    collection and mark each media done; one result per prepared media, in order.

    Vectors made by another encoder than the live one (a re-index swapped the alias
    meanwhile) are made again first, so a collection never holds mixed vector spaces. Media
    already done (an earlier delivery committed them) are skipped.
    """
    prepared = _check_prepared(prepared)
    status = media_statuses(svc, (p["media_id"] for p in prepared))
    results: dict[int, MediaResult] = {}
    todo: dict[int, dict[str, Any]] = {}
    for i, p in enumerate(prepared):
        state = status.get(p["media_id"])
        if state in ("done", None):  # committed by an earlier delivery, or deleted since
            results[i] = MediaResult(p["media_id"], state or "failed", skipped=True)
        else:
            todo[i] = p
    if todo:
        target, encoder = svc.live()
        stale = {
            i: p
            for i, p in todo.items()
            if p.get("encoder") != encoder.version or "vectors" not in p
        }
        if stale:
            log.info("re-embedding %d media with the live encoder %s", len(stale), encoder.version)
            fresh = {p["media_id"]: p for p in embed_with(svc, encoder, list(stale.values()))}
            for i, p in stale.items():
                if p["media_id"] in fresh:
                    todo[i] = fresh[p["media_id"]]
                else:  # its crops could not be embedded again: marked failed by embed_with
                    del todo[i]
                    results[i] = MediaResult(p["media_id"], "failed", error="re-embedding failed")
        for i, p in todo.items():
            try:
                n = _commit(svc, _as_prepared(p), target)
            except StorageUnavailable:
                raise
            except _FAILURES as exc:
                results[i] = fail_media(svc, p["media_id"], exc)
                continue
            results[i] = MediaResult(p["media_id"], "done", sightings=n)
    return [results[i] for i in range(len(prepared))]


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
            if media.status == "processing":
                media.status = "pending"


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
