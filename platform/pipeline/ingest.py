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

from aioreid.encoder.inference import EncoderInputError
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


def process_media(
    svc: Services,
    media_id: int,
    options: IngestOptions = IngestOptions(),
    *,
    source_label: str | None = None,
    attributes: dict[str, str] | None = None,
    collection: str | None = None,
) -> MediaResult:
    """Run one registered media through the pipeline (a no-op when it is already done)."""
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        if media is None:
            raise KeyError(f"media {media_id} does not exist")
        if media.status == "done":
            return MediaResult(media_id, "done", skipped=True)
        media.status = "processing"
        snapshot = {
            "sha": media.sha256,
            "key": media.object_key,
            "kind": media.kind,
            "name": media.original_name or "",
            "camera_id": media.camera_id,
            "modality": media.camera.modality if media.camera is not None else "rgb",
            "start": _utc(media.start_time),
            "job_id": media.job_id,
        }
    try:
        n = _run(svc, media_id, snapshot, options, source_label, attributes, collection)
    except (MediaDecodeError, EncoderInputError, StorageError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("media %s failed: %s", media_id, reason)
        with svc.sessions.begin() as s:
            media = s.get(Media, media_id)
            assert media is not None
            media.status, media.error = "failed", reason[:2000]
            if snapshot["job_id"] is not None:
                crud.add_job_failure(
                    s, snapshot["job_id"], snapshot["name"] or str(media_id), reason
                )
        return MediaResult(media_id, "failed", error=reason)
    return MediaResult(media_id, "done", sightings=n)


def _run(
    svc: Services,
    media_id: int,
    m: dict,
    opts: IngestOptions,
    source_label: str | None,
    attributes: dict[str, str] | None,
    collection: str | None,
) -> int:
    data = svc.store.get_bytes(m["key"])
    detector = build_detector(opts.detector)
    frames = iter_frames(data, m["kind"], m["name"], opts.sampling)
    pending = list(_detect_and_crop(frames, detector, opts))
    for p in pending:
        p.key = svc.store.put_bytes(_encode_jpeg(p.image), kind="crops", ext=".jpg")
        b = p.box
        p.point = point_id(m["sha"], p.frame.index, b.x, b.y, b.w, b.h)
    modality = m["modality"]
    vectors = (
        svc.encoder.embed([p.image for p in pending], modality)
        if pending
        else np.zeros((0, 1), np.float32)
    )
    target = collection or svc.live_collection()
    identity_id: int | None = None
    with svc.sessions.begin() as s:
        if source_label is not None:
            identity_id = crud.get_or_create_labelled_identity(s, source_label).id
        existing = {
            row.point_id: row
            for row in s.scalars(select(Sighting).where(Sighting.media_id == media_id))
        }
        rows: list[Sighting] = []
        for p in pending:
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
                    modality=modality,
                    point_id=p.point,
                    attributes=attributes,
                    source_label=source_label,
                )
                if identity_id is not None:
                    crud.assign(s, row.id, identity_id, provenance="import", actor="import")
            rows.append(row)
        s.flush()
        points = [
            IndexPoint(row.point_id, vec, sighting_payload(row, identity_id))
            for row, vec in zip(rows, vectors, strict=True)
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
    """Ingest ``items`` as one job: keyword dicts for :func:`ingest_file` (with a ``path``)
    or :func:`ingest_bytes` (with ``data`` and ``name``).

    Returns the job id and the per-file results; progress and failures are kept on the job
    (a new one unless ``job_id`` names an existing job).
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
    bar = tqdm(items, desc=f"ingest {source or job_kind}", unit="file", disable=not progress)
    for item in bar:
        if "data" in item:
            item = dict(item)
            res = ingest_bytes(
                svc, item.pop("data"), item.pop("name"), options=options, job_id=job_id, **item
            )
        else:
            res = ingest_file(svc, options=options, job_id=job_id, **item)
        results.append(res)
        with svc.sessions.begin() as s:
            crud.update_job_progress(
                s, job_id, processed_delta=1, failed_delta=int(res.status == "failed")
            )
    with svc.sessions.begin() as s:
        crud.update_job_progress(s, job_id, status="done")
    return job_id, results
