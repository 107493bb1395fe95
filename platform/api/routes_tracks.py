"""Track routes: list and open person tracks, and show a sighting on its full source frame.

A track is one person followed through one media; its sightings are its representative crops.
Links into the source media are signed object-store links; for a video, ``clip_url_at`` adds a
``#t=<seconds>`` media fragment so a browser's video element starts where the person appears.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path as FilePath
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from sqlalchemy import ColumnElement, func, select

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    TrackList,
    TrackOut,
    TrackSighting,
    TrackSummary,
    error_responses,
)
from aioreid.platform.db import crud
from aioreid.platform.db.models import Camera, Media, Sighting, Track
from aioreid.platform.pipeline.frames import (
    MediaDecodeError,
    decode_image_frame,
    frame_jpeg,
    read_frame,
)
from aioreid.platform.services import Services
from aioreid.platform.storage import ObjectNotFound

router = APIRouter(prefix="/v1", tags=["tracks"])

_JPEG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "the frame as a JPEG"},
    # 409: the source media is no longer stored; 503: the object store is not answering
    **error_responses(404, 409, 503),
}


# ---------------------------------------------------------------------------- shared helpers


def with_fragment(url: str, offset_s: float) -> str:
    """``url`` with a ``#t=`` media fragment (W3C Media Fragments), e.g. ``...#t=2.5``."""
    seconds = f"{max(0.0, offset_s):.3f}".rstrip("0").rstrip(".")
    return f"{url.split('#', 1)[0]}#t={seconds}"


def _utc(t: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC, as search filters do (the database refuses naive).
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------- listing


def _track_filters(
    camera: int | None, media: int | None, time_from: datetime | None, time_to: datetime | None
) -> list[ColumnElement[bool]]:
    """WHERE clauses; a time filter keeps tracks overlapping ``[time_from, time_to]``."""
    where: list[ColumnElement[bool]] = []
    if camera is not None:
        where.append(Track.camera_id == camera)
    if media is not None:
        where.append(Track.media_id == media)
    if time_to is not None:
        where.append(Track.start_time <= time_to)
    if time_from is not None:
        # A track without an end time is a single moment (a still image).
        where.append(func.coalesce(Track.end_time, Track.start_time) >= time_from)
    return where


def _summary_fields(
    svc: Services, t: Track, camera: str | None, crops: Sequence[Sighting]
) -> dict[str, Any]:
    best = crud.representative(crops)
    return {
        "id": t.id,
        "media_id": t.media_id,
        "camera_id": t.camera_id,
        "camera": camera,
        "number": t.number,
        "modality": str(t.modality),
        "start_time": t.start_time,
        "end_time": t.end_time,
        "start_offset_s": t.start_offset_s,
        "end_offset_s": t.end_offset_s,
        "first_frame": t.first_frame,
        "last_frame": t.last_frame,
        "frames": t.frames,
        "quality": t.quality,
        "sighting_count": len(crops),
        "crop_url": svc.store.presigned_url(best.object_key) if best is not None else None,
    }


@router.get("/tracks", response_model=TrackList)
def tracks(
    camera: int | None = Query(default=None, ge=1, le=MAX_SMALL_ID, description="camera id"),
    media: int | None = Query(default=None, ge=1, le=MAX_SMALL_ID, description="media id"),
    time_from: datetime | None = Query(
        default=None, description="ISO 8601; tracks still going on at or after it"
    ),
    time_to: datetime | None = Query(
        default=None, description="ISO 8601; tracks that started at or before it"
    ),
    offset: int = Query(default=0, ge=0, le=MAX_ID),
    limit: int = Query(default=50, ge=1, le=500),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> TrackList:
    """Person tracks, ordered by start time then id, with a total for paging."""
    time_from, time_to = _utc(time_from), _utc(time_to)
    if time_from is not None and time_to is not None and time_to < time_from:
        raise HTTPException(422, "time_to is before time_from")
    where = _track_filters(camera, media, time_from, time_to)
    with svc.sessions() as s:
        total = s.scalar(select(func.count()).select_from(Track).where(*where)) or 0
        rows = s.execute(
            select(Track, Camera.name)
            .outerjoin(Camera, Camera.id == Track.camera_id)
            .where(*where)
            .order_by(Track.start_time.asc().nulls_last(), Track.id.asc())
            .offset(offset)
            .limit(limit)
        ).all()
        crops = crud.sightings_by_track(s, [t.id for t, _ in rows])
        items = [
            TrackSummary(**_summary_fields(svc, t, name, crops.get(t.id, []))) for t, name in rows
        ]
    return TrackList(items=items, offset=offset, limit=limit, total=total)


# ---------------------------------------------------------------------------- one track


def _track_sighting(svc: Services, row: Sighting, media: Media) -> TrackSighting:
    return TrackSighting(
        sighting_id=row.id,
        frame_index=row.frame_index,
        time=row.frame_time,
        offset_s=round(crud.sighting_offset_s(row, media), 3),
        box=(row.box_x, row.box_y, row.box_w, row.box_h),
        quality=row.quality,
        url=svc.store.presigned_url(row.object_key),
    )


@router.get("/tracks/{track_id}", response_model=TrackOut, responses=error_responses(404))
def track(
    track_id: int = Path(ge=1, le=MAX_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> TrackOut:
    """One track: its boxes, its crops, and a signed link into its source clip."""
    with svc.sessions() as s:
        t = s.get(Track, track_id)
        if t is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"track {track_id} does not exist")
        media = t.media
        crops = sorted(
            crud.sightings_by_track(s, [t.id]).get(t.id, []), key=lambda r: (r.frame_index, r.id)
        )
        camera = t.camera.name if t.camera is not None else None
        clip_url = svc.store.presigned_url(media.object_key)
        is_video = media.kind == "video"
        return TrackOut(
            **_summary_fields(svc, t, camera, crops),
            boxes=[tuple(int(v) for v in b) for b in t.boxes],
            sightings=[_track_sighting(svc, r, media) for r in crops],
            media_kind=str(media.kind),
            clip_url=clip_url,
            clip_offset_s=t.start_offset_s if is_video else 0.0,
            clip_url_at=with_fragment(clip_url, t.start_offset_s) if is_video else None,
        )


# ---------------------------------------------------------------------------- source frames


@dataclass(frozen=True)
class _FrameSource:
    """What the frame route needs of a sighting, read before its session closes (decoding
    a video takes a while and must not hold a database connection)."""

    media_id: int
    kind: str
    object_key: str
    frame_index: int
    box: tuple[int, int, int, int]


def _frame_source(svc: Services, sighting_id: int) -> _FrameSource:
    with svc.sessions() as s:
        row = s.get(Sighting, sighting_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"sighting {sighting_id} does not exist")
        media = row.media
        return _FrameSource(
            media_id=media.id,
            kind=str(media.kind),
            object_key=media.object_key,
            frame_index=row.frame_index,
            box=(row.box_x, row.box_y, row.box_w, row.box_h),
        )


def _source_frame(svc: Services, src: _FrameSource) -> np.ndarray:
    """The full frame a sighting was cropped from, as RGB."""
    if src.kind != "video":
        return decode_image_frame(svc.store.get_bytes(src.object_key)).image
    local = svc.store.local_path(src.object_key)
    if local is not None:  # read in place: stored objects are never rewritten
        return read_frame(local, src.frame_index).image
    suffix = FilePath(src.object_key).suffix or ".mp4"
    # OpenCV reads videos from files only; the folder (and the copy in it) goes on return.
    with tempfile.TemporaryDirectory(prefix="aioreid-frame-") as tmp:
        path = svc.store.download_to(src.object_key, FilePath(tmp) / f"media{suffix}")
        return read_frame(path, src.frame_index).image


@router.get("/sightings/{sighting_id}/frame", response_class=Response, responses=_JPEG_RESPONSE)
def sighting_frame(
    sighting_id: int = Path(ge=1, le=MAX_ID),
    box: bool = Query(default=True, description="outline the sighting's box"),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Response:
    """The full source frame of a sighting (JPEG), with its box drawn unless ``box=false``."""
    src = _frame_source(svc, sighting_id)
    try:
        data = frame_jpeg(_source_frame(svc, src), src.box if box else None)
    except ObjectNotFound:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the source media of sighting {sighting_id} (media {src.media_id}) "
            "is no longer stored",
        ) from None
    except (MediaDecodeError, cv2.error) as exc:
        raise HTTPException(
            422, f"sighting {sighting_id}: its source media {src.media_id} cannot be read: {exc}"
        ) from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private"})
