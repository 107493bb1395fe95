"""Registering media: an ingest item's bytes put in the object store and its media row made.

One implementation for every way media arrives (a local path, an object already in the store
such as an API upload, bytes in memory), for the in-process runner and the workers alike.
Content is streamed into the store (a multi-GB archive file is never read into memory) and
checked before anything is stored: a known image/video type, not empty, within the size
limit. A refused item fails alone, named, with its reason, on its job.

Identical bytes are one media (content addressing). A second registration keeps the first's
provenance (camera, job) and says so: it is skipped when that media is already done, refused
when it names a different camera, and a failed media is taken up again by the new job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from aioreid.platform.db import crud
from aioreid.platform.db.enums import MediaStatus
from aioreid.platform.db.errors import AlreadyExistsError
from aioreid.platform.db.models import IngestJob, JobFailure, Media
from aioreid.platform.pipeline.failures import is_transient, reason
from aioreid.platform.pipeline.frames import MediaDecodeError, media_kind
from aioreid.platform.services import Services
from aioreid.platform.storage import InvalidKey, StorageError
from aioreid.platform.storage.base import normalise_ext

MAX_MEDIA_BYTES = 2 * 1024**3

#: Where an item's content comes from: exactly one of these keys. ``refused`` carries the
#: reason an item was turned away before it was stored (an API upload over the size limit).
ITEM_SOURCES = ("path", "key", "data", "refused")
ITEM_FIELDS = {"name", "camera", "modality", "start_time", "source_label", "attributes"}


class IngestError(ValueError):
    """Media refused before it is stored (too large, unknown type, empty)."""


class StageInputError(ValueError):
    """A step was handed data it cannot use (a malformed message, not a bad media file)."""


@dataclass
class MediaResult:
    """What became of one item. ``note`` says why an item was skipped (identical bytes)."""

    media_id: int
    status: str
    sightings: int = 0
    error: str | None = None
    skipped: bool = False
    tracks: int = 0
    name: str = ""
    note: str | None = None


@dataclass(frozen=True)
class MediaTask:
    """One registered media to process, with what a dataset import knows about it."""

    media_id: int
    source_label: str | None = None
    attributes: dict[str, str] | None = None


def record_failure(svc: Services, job_id: int | None, item: str, why: str) -> None:
    """Add a job failure row unless this item already has one (steps may run twice)."""
    if job_id is None:
        return
    item = str(item)[:1024]
    with svc.sessions.begin() as s:
        seen = s.scalar(
            select(JobFailure.id).where(JobFailure.job_id == job_id, JobFailure.item == item)
        )
        if seen is None and s.get(IngestJob, job_id) is not None:
            crud.add_job_failure(s, job_id, item, why)


def refused(svc: Services, job_id: int | None, item: str, why: str | Exception) -> MediaResult:
    """The failed result of an item that never became media, recorded on its job."""
    text = reason(why, Path(item).name) if isinstance(why, Exception) else why
    record_failure(svc, job_id, item, text)
    return MediaResult(-1, "failed", error=text, name=item)


def item_label(item: object) -> str:
    """How an item is named in failures: its name, path or key."""
    if isinstance(item, dict):
        for k in ("name", "path", "key"):
            if isinstance(item.get(k), str | Path) and str(item[k]):
                return str(item[k])
    return "item"


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _ext(name: str) -> str:
    try:
        return normalise_ext(Path(name).suffix)
    except InvalidKey:
        return ""


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise IngestError(f"{Path(name).name}: empty file")
    if size > max_bytes:
        raise IngestError(
            f"{Path(name).name}: {size} bytes is over the {max_bytes}-byte limit per file"
        )


def store_item(svc: Services, item: dict[str, Any], max_bytes: int) -> tuple[str, int]:
    """Put the item's content in the store (a path is streamed) and return (key, size).
    Its type and size are checked first, so a refused item stores nothing."""
    name = item_label(item)
    media_kind(name)
    if "data" in item:
        data = item["data"]
        if not isinstance(data, bytes | bytearray):
            raise StageInputError("item data must be bytes")
        _check_size(name, len(data), max_bytes)
        return svc.store.put_bytes(bytes(data), kind="media", ext=_ext(name)), len(data)
    if "key" in item:
        key = item["key"]
        if not isinstance(key, str):
            raise StageInputError(f"item key must be a string, got {key!r}")
        size = svc.store.stat(key).size
        _check_size(name, size, max_bytes)
        return key, size
    path = Path(item["path"])
    _check_size(name, path.stat().st_size, max_bytes)
    with open(path, "rb") as f:  # the limit holds even if the file grows meanwhile
        return svc.store.put_stream(
            f, kind="media", ext=_ext(str(path)), source=str(path), max_bytes=max_bytes
        )


def _existing(
    media: Media, name: str, camera: str | None, job_id: int | None
) -> MediaTask | MediaResult | str:
    """A second registration of known bytes: keep the first one's camera and job (a str:
    why the item is refused)."""
    first = media.original_name or f"media {media.id}"
    known = media.camera.name if media.camera is not None else None
    if camera and known and camera != known:
        return (
            f"{Path(name).name}: identical to media {media.id} ({first}) from camera "
            f"{known!r}; its camera and job are kept, not changed to {camera!r}"
        )
    if media.status == MediaStatus.FAILED:  # a retry: the new job takes it up from where it stopped
        media.status, media.error, media.job_id = MediaStatus.PENDING, None, job_id
        return MediaTask(media.id)
    if media.status == MediaStatus.DONE:
        note = f"identical to media {media.id} ({first}), already ingested"
        return MediaResult(media.id, "done", skipped=True, name=name, note=note)
    return MediaTask(media.id)  # in flight in another job: windows are applied once


def _media_row(
    svc: Services, key: str, size: int, name: str, item: dict[str, Any], job_id: int | None
) -> MediaTask | MediaResult | str:
    sha = key.rsplit("/", 1)[-1].split(".", 1)[0]
    camera = item.get("camera")
    with svc.sessions.begin() as s:
        existing = crud.get_media_by_sha(s, sha)
        if existing is not None:
            return _existing(existing, name, camera, job_id)
        modality = item.get("modality") or "rgb"
        cam = crud.get_or_create_camera(s, camera, modality=modality) if camera else None
        start = item.get("start_time")
        media = crud.create_media(
            s,
            sha256=sha,
            kind=media_kind(name),
            object_key=key,
            original_name=Path(name).name,
            size_bytes=size,
            camera_id=cam.id if cam else None,
            start_time=_utc(datetime.fromisoformat(start) if isinstance(start, str) else start),
            job_id=job_id,
        )
        return MediaTask(media.id)


def _check_item(item: object) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise StageInputError(f"an item must be a dict, got {type(item).__name__}")
    sources = [k for k in ITEM_SOURCES if k in item]
    if len(sources) != 1:
        raise StageInputError(f"an item needs exactly one of path, key or data; got {sources}")
    unknown = set(item) - ITEM_FIELDS - set(ITEM_SOURCES)
    if unknown:
        raise StageInputError(f"unknown item fields {sorted(unknown)}")
    return item


def register_item(
    svc: Services, item: object, max_bytes: int, job_id: int | None
) -> MediaTask | MediaResult:
    """Store one item and make (or find) its media: the task to process it, or the result
    saying why not (refused: failed, recorded on the job; identical to done media: skipped).

    Transient store or database errors propagate (the caller retries); everything else about
    one item, including a malformed item, fails that item only.
    """
    name = item_label(item)
    try:
        item = _check_item(item)
        if "refused" in item:
            return refused(svc, job_id, name, f"{Path(name).name}: {item['refused']}")
        key, size = store_item(svc, item, max_bytes)
        try:
            out = _media_row(svc, key, size, name, item, job_id)
        except AlreadyExistsError:  # registered by a concurrent worker in between
            out = _media_row(svc, key, size, name, item, job_id)
    except (OSError, IngestError, MediaDecodeError, StorageError, ValueError) as exc:
        if is_transient(exc):
            raise
        return refused(svc, job_id, name, exc)
    if isinstance(out, str):
        return refused(svc, job_id, name, out)
    if isinstance(out, MediaTask):
        return MediaTask(out.media_id, item.get("source_label"), item.get("attributes"))
    return out


def register_media(
    svc: Services,
    data: bytes,
    name: str,
    *,
    job_id: int | None = None,
    max_bytes: int = MAX_MEDIA_BYTES,
    **fields: Any,
) -> int:
    """Register bytes as media and return its id (:class:`IngestError` when refused)."""
    out = register_item(svc, {"data": data, "name": name, **fields}, max_bytes, job_id)
    if isinstance(out, MediaResult) and out.status == "failed":
        raise IngestError(out.error)
    return out.media_id
