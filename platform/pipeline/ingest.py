"""The ingestion pipeline as plain functions over :class:`~aioreid.platform.services.Services`.

register media → decode (image, or sampled video frames) → detect people → crop + quality
filter → store crops → encode in batches → upsert into the vector index → mark done.

Idempotent by construction: media are keyed by the sha256 of their bytes, crops by theirs,
sightings and index points by a UUIDv5 of (media sha, frame, box). Re-running a media that
crashed half-way finds its existing sightings and re-upserts the same points. A media that
cannot be decoded is marked ``failed`` with the reason; nothing else is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from aioreid.encoder.inference import Encoder, EncoderInputError
from aioreid.platform.db import crud
from aioreid.platform.db.models import Media, Sighting
from aioreid.platform.index import IndexPoint, point_id
from aioreid.platform.pipeline.crops import CropPolicy, accept, crop, quality
from aioreid.platform.pipeline.detect import Box, Detector, build_detector
from aioreid.platform.pipeline.frames import (
    Frame,
    MediaDecodeError,
    SamplingOptions,
    iter_frames,
    media_kind,
)
from aioreid.platform.services import Services
from aioreid.platform.storage import StorageError

log = logging.getLogger(__name__)

MAX_MEDIA_BYTES = 2 * 1024**3


class IngestError(ValueError):
    """Media refused before it is stored (too large, unknown type, empty)."""


@dataclass(frozen=True)
class IngestOptions:
    detector: str = "crops"
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    crops: CropPolicy = field(default_factory=CropPolicy)
    window: int = 24
    batch_media: int = 32
    max_bytes: int = MAX_MEDIA_BYTES


@dataclass
class MediaResult:
    media_id: int
    status: str
    sightings: int = 0
    error: str | None = None
    skipped: bool = False


@dataclass
class _Pending:
    frame: Frame
    box: Box
    image: np.ndarray
    quality: float
    key: str = ""
    point: str = ""
    extra: dict = field(default_factory=dict)


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def register_media(
    svc: Services,
    data: bytes,
    name: str,
    *,
    camera: str | None = None,
    modality: str = "rgb",
    start_time: datetime | None = None,
    job_id: int | None = None,
    max_bytes: int = MAX_MEDIA_BYTES,
) -> int:
    """Store the bytes and create (or find) the media row; returns its id.

    The same bytes registered twice give the same media (a failed one is reset to pending).
    """
    if not data:
        raise IngestError(f"{name}: empty file")
    if len(data) > max_bytes:
        raise IngestError(f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit")
    kind = media_kind(name)
    ext = Path(name).suffix.lower()
    key = svc.store.put_bytes(data, kind="media", ext=ext)
    sha = key.rsplit("/", 1)[-1].removesuffix(ext)
    with svc.sessions.begin() as s:
        existing = crud.get_media_by_sha(s, sha)
        if existing is not None:
            if existing.status == "failed":
                existing.status, existing.error = "pending", None
            if job_id is not None:
                existing.job_id = job_id
            return existing.id
        cam = crud.get_or_create_camera(s, camera, modality=modality) if camera else None
        media = crud.create_media(
            s,
            sha256=sha,
            kind=kind,
            object_key=key,
            original_name=Path(name).name,
            size_bytes=len(data),
            camera_id=cam.id if cam else None,
            start_time=_utc(start_time),
            job_id=job_id,
        )
        return media.id


def _windows(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    buf: list[Frame] = []
    for f in frames:
        buf.append(f)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _detect_and_crop(
    frames: Iterator[Frame], detector: Detector, opts: IngestOptions
) -> Iterator[_Pending]:
    for window in _windows(frames, opts.window):
        for frame, boxes in zip(window, detector.detect([f.image for f in window]), strict=True):
            for box in boxes:
                img, real = crop(frame.image, box, opts.crops.pad)
                q = quality(img, opts.crops)
                if accept(img, q, opts.crops):
                    yield _Pending(frame, real, img, q)


def _encode_jpeg(img: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise MediaDecodeError("could not encode a crop as JPEG")
    return buf.tobytes()


_FAILURES = (MediaDecodeError, EncoderInputError, StorageError, ValueError)


@dataclass(frozen=True)
class MediaTask:
    """One registered media to process, with what a dataset import knows about it."""

    media_id: int
    source_label: str | None = None
    attributes: dict[str, str] | None = None


@dataclass
class _Prepared:
    slot: int
    task: MediaTask
    snap: dict
    pending: list[_Pending]
    vectors: np.ndarray | None = None


def process_media(
    svc: Services,
    media_id: int,
    options: IngestOptions = IngestOptions(),
    *,
    source_label: str | None = None,
    attributes: dict[str, str] | None = None,
) -> MediaResult:
    """Run one registered media through the pipeline (a no-op when it is already done)."""
    task = MediaTask(media_id, source_label, attributes)
    return process_batch(svc, [task], options)[0]


def process_batch(
    svc: Services,
    tasks: Sequence[MediaTask],
    options: IngestOptions = IngestOptions(),
) -> list[MediaResult]:
    """Process several media with ONE encoder pass per modality over all their crops.

    Each media still succeeds or fails on its own: a media whose decode, crops or rows fail
    is marked failed with the reason; the others are indexed.
    """
    results: dict[int, MediaResult] = {}
    prepared: list[_Prepared] = []
    for slot, task in enumerate(tasks):
        snap = _claim(svc, task.media_id)
        if snap is None:
            results[slot] = MediaResult(task.media_id, "done", skipped=True)
            continue
        try:
            prepared.append(_Prepared(slot, task, snap, _prepare(svc, snap, options)))
        except _FAILURES as exc:
            results[slot] = _mark_failed(svc, task.media_id, snap, exc)
    if not prepared:
        return [results[i] for i in range(len(tasks))]
    target, encoder = svc.live()
    _encode(encoder, svc, prepared, results)
    for prep in prepared:
        if prep.slot in results:
            continue
        try:
            n = _commit(svc, prep, target)
            results[prep.slot] = MediaResult(prep.task.media_id, "done", sightings=n)
        except _FAILURES as exc:
            results[prep.slot] = _mark_failed(svc, prep.task.media_id, prep.snap, exc)
    return [results[i] for i in range(len(tasks))]


def _claim(svc: Services, media_id: int) -> dict | None:
    """Mark the media processing and snapshot what the later steps need (None: done)."""
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        if media is None:
            raise KeyError(f"media {media_id} does not exist")
        if media.status == "done":
            return None
        media.status = "processing"
        return {
            "sha": media.sha256,
            "key": media.object_key,
            "kind": media.kind,
            "name": media.original_name or "",
            "camera_id": media.camera_id,
            "modality": str(media.camera.modality) if media.camera is not None else "rgb",
            "start": _utc(media.start_time),
            "job_id": media.job_id,
        }


def _mark_failed(svc: Services, media_id: int, snap: dict, exc: Exception) -> MediaResult:
    reason = f"{type(exc).__name__}: {exc}"
    log.warning("media %s failed: %s", media_id, reason)
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        assert media is not None
        media.status, media.error = "failed", reason[:2000]
        if snap["job_id"] is not None:
            crud.add_job_failure(s, snap["job_id"], snap["name"] or str(media_id), reason)
    return MediaResult(media_id, "failed", error=reason)


def _prepare(svc: Services, m: dict, opts: IngestOptions) -> list[_Pending]:
    """Decode, detect, crop, filter and store the crops of one media."""
    data = svc.store.get_bytes(m["key"])
    detector = build_detector(opts.detector)
    frames = iter_frames(data, m["kind"], m["name"], opts.sampling)
    pending = list(_detect_and_crop(frames, detector, opts))
    for p in pending:
        p.key = svc.store.put_bytes(_encode_jpeg(p.image), kind="crops", ext=".jpg")
        b = p.box
        p.point = point_id(m["sha"], p.frame.index, b.x, b.y, b.w, b.h)
    return pending


def _encode(
    encoder: Encoder, svc: Services, prepared: list[_Prepared], results: dict[int, MediaResult]
) -> None:
    """Embed every crop of every prepared media, one batched call per modality; when a batch
    fails, retry media by media so only the culprit fails."""
    by_modality: dict[str, list[_Prepared]] = {}
    for prep in prepared:
        by_modality.setdefault(prep.snap["modality"], []).append(prep)
    for modality, group in by_modality.items():
        images = [p.image for prep in group for p in prep.pending]
        try:
            vectors = encoder.embed(images, modality) if images else np.zeros((0, 1), np.float32)
        except EncoderInputError:
            for prep in group:
                try:
                    prep.vectors = encoder.embed([p.image for p in prep.pending], modality)
                except EncoderInputError as exc:
                    results[prep.slot] = _mark_failed(svc, prep.task.media_id, prep.snap, exc)
            continue
        start = 0
        for prep in group:
            prep.vectors = vectors[start : start + len(prep.pending)]
            start += len(prep.pending)


def _commit(svc: Services, prep: _Prepared, target: str) -> int:
    """Sighting rows (reusing ones a crashed run left), index points, media done."""
    m, task, media_id = prep.snap, prep.task, prep.task.media_id
    identity_id: int | None = None
    with svc.sessions.begin() as s:
        # Two workers committing the same media (a redelivered task) take turns, so the second
        # finds the first one's rows instead of inserting the same point ids again.
        s.get(Media, media_id, with_for_update=True)
        if task.source_label is not None:
            identity_id = crud.get_or_create_labelled_identity(s, task.source_label).id
        existing = {
            row.point_id: row
            for row in s.scalars(select(Sighting).where(Sighting.media_id == media_id))
        }
        rows: list[Sighting] = []
        for p in prep.pending:
            row = existing.get(p.point)
            if row is None:
                t = m["start"] + timedelta(seconds=p.frame.offset_s) if m["start"] else None
                row = crud.add_sighting(
                    s,
                    media_id=media_id,
                    camera_id=m["camera_id"],
                    frame_index=p.frame.index,
                    frame_time=t,
                    box=(p.box.x, p.box.y, p.box.w, p.box.h),
                    quality=p.quality,
                    object_key=p.key,
                    modality=m["modality"],
                    point_id=p.point,
                    attributes=task.attributes,
                    source_label=task.source_label,
                )
                if identity_id is not None:
                    crud.assign(s, row.id, identity_id, provenance="import", actor="import")
            rows.append(row)
        s.flush()
        assert prep.vectors is not None
        points = [
            IndexPoint(row.point_id, vec, sighting_payload(row, identity_id))
            for row, vec in zip(rows, prep.vectors, strict=True)
        ]
    if points:
        svc.index.upsert(target, points)
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        assert media is not None
        media.status, media.error = "done", None
    return len(points)


def sighting_payload(row: Sighting, identity_id: int | None) -> dict:
    """The index payload of a sighting (what search filters on without the database)."""
    payload: dict = {
        "sighting": row.id,
        "media": row.media_id,
        "camera": row.camera_id if row.camera_id is not None else -1,
        "modality": str(row.modality),
        "identity": identity_id,
        "attributes": row.attributes or {},
    }
    if row.frame_time is not None:
        payload["time"] = _utc(row.frame_time).timestamp()  # type: ignore[union-attr]
    return payload


def ingest_bytes(
    svc: Services,
    data: bytes,
    name: str,
    *,
    camera: str | None = None,
    modality: str = "rgb",
    start_time: datetime | None = None,
    options: IngestOptions = IngestOptions(),
    job_id: int | None = None,
    source_label: str | None = None,
    attributes: dict[str, str] | None = None,
) -> MediaResult:
    """Register and process one file's bytes; refused files come back as ``failed``."""
    try:
        media_id = register_media(
            svc,
            data,
            name,
            camera=camera,
            modality=modality,
            start_time=start_time,
            job_id=job_id,
            max_bytes=options.max_bytes,
        )
    except (IngestError, MediaDecodeError, StorageError) as exc:
        return _refused(svc, job_id, name, exc)
    return process_media(svc, media_id, options, source_label=source_label, attributes=attributes)


def _refused(svc: Services, job_id: int | None, item: str, exc: Exception) -> MediaResult:
    reason = f"{type(exc).__name__}: {exc}"
    if job_id is not None:
        with svc.sessions.begin() as s:
            crud.add_job_failure(s, job_id, item, reason)
    return MediaResult(-1, "failed", error=reason)


def ingest_file(svc: Services, path: str | Path, **kwargs: object) -> MediaResult:
    """:func:`ingest_bytes` on a file; an unreadable or oversized file is a ``failed`` result."""
    path = Path(path)
    opts = kwargs.get("options", IngestOptions())
    try:
        size = path.stat().st_size
        if size > opts.max_bytes:  # type: ignore[union-attr]
            raise IngestError(f"{path.name}: {size} bytes is over the {opts.max_bytes}-byte limit")  # type: ignore[union-attr]
        data = path.read_bytes()
    except (OSError, IngestError) as exc:
        return _refused(svc, kwargs.get("job_id"), str(path), exc)  # type: ignore[arg-type]
    return ingest_bytes(svc, data, path.name, **kwargs)  # type: ignore[arg-type]


def _register_item(
    svc: Services, item: dict, options: IngestOptions, job_id: int | None
) -> MediaTask | MediaResult:
    """Store one item and create its media row, or the failed result saying why not."""
    item = dict(item)
    label, attrs = item.pop("source_label", None), item.pop("attributes", None)
    if "data" in item:
        data, name = item.pop("data"), item.pop("name")
    else:
        path = Path(item.pop("path"))
        name = str(path)
        try:
            size = path.stat().st_size
            if size > options.max_bytes:
                raise IngestError(
                    f"{path.name}: {size} bytes is over the {options.max_bytes}-byte limit"
                )
            data = path.read_bytes()
        except (OSError, IngestError) as exc:
            return _refused(svc, job_id, name, exc)
    try:
        media_id = register_media(
            svc, data, name, job_id=job_id, max_bytes=options.max_bytes, **item
        )
    except (IngestError, MediaDecodeError, StorageError) as exc:
        return _refused(svc, job_id, name, exc)
    return MediaTask(media_id, label, attrs)


def ingest_many(
    svc: Services,
    items: Sequence[dict],
    *,
    options: IngestOptions = IngestOptions(),
    job_kind: str = "files",
    source: str = "",
    actor: str = "system",
    progress: bool = True,
    job_id: int | None = None,
) -> tuple[int, list[MediaResult]]:
    """Ingest ``items`` as one job, ``options.batch_media`` media per encoder pass.

    Items are keyword dicts: a ``path`` or ``data`` + ``name``, and optionally ``camera``,
    ``modality``, ``start_time``, ``source_label``, ``attributes``. Returns the job id and
    the per-item results; progress and failures are kept on the job (a new one unless
    ``job_id`` names an existing job).
    """
    from tqdm.auto import tqdm

    with svc.sessions.begin() as s:
        if job_id is None:
            job = crud.create_job(
                s, kind=job_kind, source=source, total=len(items), created_by=actor
            )
            job_id = job.id
        crud.update_job_progress(s, job_id, status="running")
    results: list[MediaResult] = []
    bar = tqdm(
        total=len(items), desc=f"ingest {source or job_kind}", unit="file", disable=not progress
    )
    step = max(1, options.batch_media)
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        registered = [_register_item(svc, item, options, job_id) for item in chunk]
        tasks = [r for r in registered if isinstance(r, MediaTask)]
        done = iter(process_batch(svc, tasks, options))
        chunk_results = [r if isinstance(r, MediaResult) else next(done) for r in registered]
        results.extend(chunk_results)
        with svc.sessions.begin() as s:
            crud.update_job_progress(
                s,
                job_id,
                processed_delta=len(chunk_results),
                failed_delta=sum(r.status == "failed" for r in chunk_results),
            )
        bar.update(len(chunk))
    bar.close()
    with svc.sessions.begin() as s:
        crud.update_job_progress(s, job_id, status="done")
    return job_id, results
