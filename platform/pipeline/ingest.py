"""The ingestion pipeline: one implementation, run in-process or as queue steps.

A media is processed window by window, each window in three steps over JSON-able dicts (so
queue workers on different machines can run them):

1. :func:`prepare` — claim the media, read its next window (a still image is one window):
   decode → detect → track → crop; the tracks that ended keep their best crops, stored in the
   object store, and the video's state after the window is stored as a checkpoint;
2. :func:`embed` — the crops read back from the store, one encoder pass per modality;
3. :func:`commit` — track and sighting rows, sighting points and one pooled point per track
   upserted, and the media's progress moved to the next window, in one transaction.

:func:`process_batch` runs the steps in a loop in this process; the Celery tasks run them
as a chain per window. Every step can run again after a crash with the same result: crops and
checkpoints are content-addressed, point ids are UUIDv5 of (media sha, frame, box) and
(media sha, track number), and commit applies a window only once (the media row is locked
and its progress names the next window). Failures follow :mod:`.failures`: a permanent one
fails its media alone, with the file named; a transient one propagates to be retried.
"""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from aioreid.encoder.inference import Encoder, EncoderInputError
from aioreid.platform.db import crud
from aioreid.platform.db.enums import MediaStatus
from aioreid.platform.db.models import Media, Sighting, Track
from aioreid.platform.index import IndexPoint, point_id
from aioreid.platform.pipeline.crops import CropPolicy
from aioreid.platform.pipeline.detect import Detector, build_detector
from aioreid.platform.pipeline.failures import is_permanent, is_transient, reason, with_retries
from aioreid.platform.pipeline.frames import (
    SamplingOptions,
    VideoReader,
    decode_image_frame,
)
from aioreid.platform.pipeline.register import (
    MAX_MEDIA_BYTES,
    IngestError,
    MediaResult,
    MediaTask,
    StageInputError,
    item_label,
    record_failure,
    register_item,
)
from aioreid.platform.pipeline.tracking import TrackerOptions
from aioreid.platform.pipeline.windows import (
    PoolingOptions,
    TrackAccum,
    VideoState,
    advance,
    image_tracks,
)
from aioreid.platform.services import Services
from aioreid.platform.storage import ObjectNotFound, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOptions:
    """``frames_in_flight``: sampled video frames decoded, detected and tracked at a time
    (the memory window); ``batch_media``: media per encoder pass (images)."""

    detector: str = "crops"
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    crops: CropPolicy = field(default_factory=CropPolicy)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    pooling: PoolingOptions = field(default_factory=PoolingOptions)
    frames_in_flight: int = 32
    batch_media: int = 32
    max_bytes: int = MAX_MEDIA_BYTES

    def __post_init__(self) -> None:
        if self.frames_in_flight < 3 or self.batch_media < 1 or self.max_bytes < 1:
            raise ValueError(
                "frames_in_flight must be >= 3 (the background detector needs 3 frames), "
                "batch_media and max_bytes >= 1"
            )


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


# --- failures ----------------------------------------------------------------------------------


def fail_media(svc: Services, media_id: int, exc: BaseException | str) -> MediaResult:
    """Mark a media failed with the reason (naming its file) and record it on its job once."""
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        if media is None:
            text = exc if isinstance(exc, str) else reason(exc)
            return MediaResult(media_id, "failed", error=text)
        name = media.original_name or f"media {media_id}"
        text = exc if isinstance(exc, str) else reason(exc, name)
        if not text.startswith(name):
            text = f"{name}: {text}"
        log.warning("media %s failed: %s", media_id, text)
        media.status, media.error = MediaStatus.FAILED, text[:2000]
        job_id = media.job_id
    record_failure(svc, job_id, name, text)
    return MediaResult(media_id, "failed", error=text)


# --- step 1: prepare ---------------------------------------------------------------------------


@dataclass
class _OpenVideo:
    """A video this process is reading: the file (a temporary copy when ``owned``), the
    reader positioned after the last window it read, and the state that window left."""

    path: Path
    owned: bool
    reader: VideoReader
    state: VideoState

    def close(self) -> None:
        self.reader.close()
        if self.owned:
            shutil.rmtree(self.path.parent, ignore_errors=True)


class _OpenVideos:
    """Videos this process is reading, so consecutive windows of a video neither fetch it
    nor seek in it again. Bounded: the least recently used is closed first."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[int, _OpenVideo] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, media_id: int, window: int) -> _OpenVideo | None:
        """The open video if it stands exactly at ``window`` (else it is closed)."""
        with self._lock:
            item = self._items.pop(media_id, None)
        if item is None:
            return None
        if item.state.window == window and item.reader.next_index == item.state.next_index:
            return item
        item.close()
        return None

    def keep(self, media_id: int, item: _OpenVideo) -> None:
        with self._lock:
            self._items[media_id] = item
            old = [self._items.popitem(last=False)[1] for _ in range(len(self._items) - self.size)]
        for o in old:
            o.close()

    def drop(self, media_id: int) -> None:
        with self._lock:
            item = self._items.pop(media_id, None)
        if item is not None:
            item.close()


_OPEN = _OpenVideos()


def _claim(svc: Services, media_id: int) -> dict[str, Any] | None:
    """Mark the media processing and snapshot what the steps need (None: done or gone)."""
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id)
        if media is None or media.status == MediaStatus.DONE:
            return None
        if (media.progress or {}).get("finished"):  # its last window is applied
            media.status, media.error = MediaStatus.DONE, None
            return None
        media.status = MediaStatus.PROCESSING
        return {
            "media_id": media.id,
            "sha": media.sha256,
            "key": media.object_key,
            "kind": str(media.kind),
            "name": media.original_name or "",
            "camera_id": media.camera_id,
            "modality": str(media.camera.modality) if media.camera is not None else "rgb",
            "start": _utc(media.start_time),
            "job_id": media.job_id,
            "progress": dict(media.progress or {}),
        }


def _open_video(svc: Services, snap: dict[str, Any], opts: IngestOptions) -> _OpenVideo:
    window = int(snap["progress"].get("window", 0))
    cached = _OPEN.take(snap["media_id"], window)
    if cached is not None:
        return cached
    state = (
        VideoState.loads(svc.store.get_bytes(snap["progress"]["checkpoint"])) if window else None
    )
    path, owned = svc.store.local_path(snap["key"]), False
    if path is None:  # a remote store: one local copy per process, removed when closed
        tmp = Path(tempfile.mkdtemp(prefix="aioreid-video-"))
        path, owned = tmp / f"media{Path(snap['name']).suffix.lower() or '.mp4'}", True
    try:
        if owned:
            svc.store.download_to(snap["key"], path)
        reader = VideoReader(
            path,
            opts.sampling,
            start=state.next_index if state else 0,
            last_thumb=state.last_thumb if state else None,
            kept=state.kept if state else 0,
        )
    except BaseException:
        if owned:
            shutil.rmtree(path.parent, ignore_errors=True)
        raise
    if state is None:
        state = VideoState.fresh(opts.tracker, fps=min(opts.sampling.sample_fps, reader.fps))
    return _OpenVideo(path, owned, reader, state)


def _crop_dicts(svc: Services, sha: str, track: TrackAccum) -> list[dict[str, Any]]:
    out = []
    for c in track.best:
        b = c.box
        out.append(
            {
                "key": svc.store.put_bytes(c.jpeg, kind="crops", ext=".jpg"),
                "frame": c.frame,
                "offset_s": c.offset_s,
                "box": [b.x, b.y, b.w, b.h],
                "quality": c.quality,
                "point": point_id(sha, c.frame, b.x, b.y, b.w, b.h),
            }
        )
    return out


def _track_dicts(svc: Services, sha: str, tracks: Sequence[TrackAccum]) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "point": point_id(sha, "track", t.number),
            "start_offset_s": t.first_offset,
            "end_offset_s": t.last_offset,
            "boxes": t.boxes,
            "quality": t.quality,
            "crops": _crop_dicts(svc, sha, t),
        }
        for t in tracks
    ]


def checkpoint_prefix(sha: str) -> str:
    return f"checkpoints/{sha}/"


def _store_checkpoint(svc: Services, sha: str, state: VideoState) -> str:
    """The state after a window, named by the window: preparing that window again (after a
    crash) replaces it instead of leaving an orphan beside it."""
    return svc.store.put_at(f"{checkpoint_prefix(sha)}{state.window:08d}.pkl", state.dumps())


@lru_cache(maxsize=8)
def _detector(name: str) -> Detector:
    """Detectors by name, built once per process (an ONNX model is loaded once, not per
    window); they keep no state between windows."""
    return build_detector(name)


def _prepare_one(svc: Services, snap: dict[str, Any], opts: IngestOptions) -> dict[str, Any]:
    detector = _detector(opts.detector)
    work = {k: v for k, v in snap.items() if k not in ("key", "progress")}
    work["start"] = snap["start"].isoformat() if snap["start"] else None
    window = int(snap["progress"].get("window", 0))
    work |= {"window": window, "previous_checkpoint": snap["progress"].get("checkpoint")}
    if snap["kind"] == "image":
        frame = decode_image_frame(svc.store.get_bytes(snap["key"]))
        h, w = frame.image.shape[:2]
        if h < opts.crops.min_height or w < opts.crops.min_width:
            raise IngestError(
                f"the image is {w}x{h} px, too small to hold a person "
                f"(a crop needs at least {opts.crops.min_width}x{opts.crops.min_height})"
            )
        tracks = image_tracks(frame, detector, opts.crops)
        work |= {"final": True, "checkpoint": None, "info": {"width": w, "height": h}}
        return work | {"tracks": _track_dicts(svc, snap["sha"], tracks)}
    video = _open_video(svc, snap, opts)
    reader, state = video.reader, video.state
    try:
        ended, final = advance(
            state, reader, detector, opts.frames_in_flight, opts.crops, opts.pooling
        )
        tracks = _track_dicts(svc, snap["sha"], ended)
        checkpoint = None if final else _store_checkpoint(svc, snap["sha"], state)
    except BaseException:
        video.close()
        raise
    if final:
        video.close()
    else:
        _OPEN.keep(snap["media_id"], video)
    info = {
        "width": reader.width,
        "height": reader.height,
        "fps": reader.fps,
        "frame_count": reader.frame_count,
    }
    work |= {"final": final, "checkpoint": checkpoint, "info": info, "frames_read": state.kept}
    return work | {"tracks": tracks}


def prepare(
    svc: Services, media: Sequence[int | MediaTask], options: IngestOptions | None = None
) -> list[dict[str, Any]]:
    """The next window of each media (a still image: its only one), as a dict to embed.

    Media already done are left out; media that fail permanently are marked failed, recorded
    on their job, and left out; a transient error propagates (the caller retries).
    """
    opts = options or IngestOptions()
    out = []
    for m in media:
        task = m if isinstance(m, MediaTask) else MediaTask(int(m))
        snap = _claim(svc, task.media_id)
        if snap is None:
            continue
        try:
            work = _prepare_one(svc, snap, opts)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            fail_media(svc, task.media_id, exc)
            continue
        out.append(work | {"source_label": task.source_label, "attributes": task.attributes})
    return out


# --- step 2: embed -----------------------------------------------------------------------------


def pack_vectors(vectors: np.ndarray) -> str:
    """Vectors as base64 of little-endian float32 rows (what travels between the steps)."""
    return base64.b64encode(np.ascontiguousarray(vectors, "<f4").tobytes()).decode("ascii")


def _crops_of(work: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for t in work["tracks"] for c in t["crops"]]


def unpack_vectors(work: dict[str, Any]) -> np.ndarray:
    """The ``crops x dim`` vectors of an embedded window; StageInputError if malformed."""
    n = len(_crops_of(work))
    try:
        raw = base64.b64decode(work["vectors"], validate=True)
        vectors = np.frombuffer(raw, "<f4").reshape(n, -1) if n else np.zeros((0, 1), "<f4")
    except (ValueError, TypeError, KeyError) as exc:
        raise StageInputError(f"media {work.get('media_id')}: bad vectors: {exc}") from None
    if n and vectors.shape[1] != work.get("dim"):
        raise StageInputError(f"media {work['media_id']}: vectors are not {work.get('dim')}-d")
    return vectors.astype(np.float32)


def check_works(works: object) -> list[dict[str, Any]]:
    """``works`` as a list of window dicts; StageInputError when a message is malformed."""
    if not isinstance(works, list):
        raise StageInputError(f"prepared media must be a list, got {type(works).__name__}")
    for w in works:
        if not isinstance(w, dict) or not isinstance(w.get("media_id"), int):
            raise StageInputError(f"not a prepared media: {str(w)[:200]}")
        tracks = w.get("tracks")
        if not isinstance(tracks, list) or not all(
            isinstance(t, dict) and isinstance(t.get("crops"), list) for t in tracks
        ):
            raise StageInputError(f"prepared media {w['media_id']} has no track list")
    return works


def embed_with(encoder: Encoder, svc: Services, works: list[dict[str, Any]]) -> list[dict]:
    """:func:`embed` with a given encoder. Media whose crops cannot be read or embedded are
    marked failed and left out; the others keep their order."""
    loaded: dict[int, list[bytes]] = {}
    for i, w in enumerate(works):
        try:
            loaded[i] = [svc.store.get_bytes(c["key"]) for c in _crops_of(w)]
        except (ObjectNotFound, StorageError, KeyError) as exc:
            if is_transient(exc):
                raise
            fail_media(svc, w["media_id"], f"a stored crop is unreadable: {exc}")
    by_modality: dict[str, list[int]] = {}
    for i in loaded:
        by_modality.setdefault(works[i].get("modality") or "rgb", []).append(i)
    out: dict[int, dict[str, Any]] = {}
    for modality, group in by_modality.items():
        images = [c for i in group for c in loaded[i]]
        try:
            vectors = encoder.embed(images, modality) if images else np.zeros((0, encoder.dim))
        except EncoderInputError:
            for i in group:  # find the culprit: embed media by media
                try:
                    vecs = encoder.embed(loaded[i], modality) if loaded[i] else None
                except EncoderInputError as exc:
                    fail_media(svc, works[i]["media_id"], exc)
                    continue
                out[i] = _with_vectors(works[i], vecs, encoder)
            continue
        start = 0
        for i in group:
            out[i] = _with_vectors(works[i], vectors[start : start + len(loaded[i])], encoder)
            start += len(loaded[i])
    return [out[i] for i in sorted(out)]


def _with_vectors(work: dict, vectors: np.ndarray | None, encoder: Encoder) -> dict[str, Any]:
    if vectors is None:
        vectors = np.zeros((0, encoder.dim), np.float32)
    return {
        **work,
        "encoder": encoder.version,
        "dim": encoder.dim,
        "vectors": pack_vectors(vectors),
    }


def embed(svc: Services, works: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the crops' vectors (base64 float32 rows) and the encoder version to each window:
    one pass per modality with the live encoder; when a batch is refused, media are retried
    one by one and only the culprit fails."""
    works = check_works(works)
    if not works:
        return []
    _, encoder = svc.live()
    return embed_with(encoder, svc, works)


# --- step 3: commit ----------------------------------------------------------------------------


def pool(vectors: np.ndarray) -> np.ndarray:
    """A track's embedding: the mean of its crops' L2-normalised embeddings, re-normalised
    (set pooling as in video ReID)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    mean = unit.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def sighting_payload(row: Sighting, identity_id: int | None, *, review: str = "unreviewed") -> dict:
    """The index payload of a sighting (what search filters on without the database). A fresh
    sighting is ``unreviewed`` (an import label is no analyst decision); re-index passes the
    state :func:`crud.review_states` reads."""
    payload: dict = {
        "sighting": row.id,
        "media": row.media_id,
        "camera": row.camera_id if row.camera_id is not None else -1,
        "modality": str(row.modality),
        "identity": identity_id,
        "review": review,
        "attributes": row.attributes or {},
    }
    if row.track_id is not None:
        payload["track"] = row.track_id
    if row.frame_time is not None:
        payload["time"] = _utc(row.frame_time).timestamp()  # type: ignore[union-attr]
    return payload


def track_payload(
    row: Track,
    identity_id: int | list[int] | None,
    attributes: dict | None,
    sighting_ids: list[int],
    *,
    review: str = "unreviewed",
) -> dict:
    """The index payload of a track's pooled point (``level`` tells it from sightings). Its
    ``sightings`` list holds the track's sightings, so excluding a sighting (rejected in
    review, the query itself) excludes its track too; ``review`` is its sightings' combined
    state (:func:`crud.track_review`)."""
    payload: dict = {
        "level": "track",
        "track": row.id,
        "sightings": sighting_ids,
        "media": row.media_id,
        "camera": row.camera_id if row.camera_id is not None else -1,
        "modality": str(row.modality),
        "identity": identity_id,
        "review": review,
        "attributes": attributes or {},
        "frames": row.frames,
    }
    if row.start_time is not None:
        payload["time"] = _utc(row.start_time).timestamp()  # type: ignore[union-attr]
        payload["end"] = _utc(row.end_time or row.start_time).timestamp()  # type: ignore[union-attr]
    return payload


def track_points(svc: Services, collection: str, track_ids: Sequence[int]) -> list[IndexPoint]:
    """The pooled points of ``track_ids`` from their sightings' vectors in ``collection`` (a
    re-index builds sighting points first); tracks with a sighting not there yet are left out.
    A track's identity is its sightings' when they all agree (an import label)."""
    ids = sorted({t for t in track_ids if t is not None})
    if not ids:
        return []
    with svc.sessions() as s:
        tracks = list(s.scalars(select(Track).where(Track.id.in_(ids))))
        members = crud.sightings_by_track(s, ids)
        reviews = _track_reviews(s, members)
        s.expunge_all()
    points = [r.point_id for mine in members.values() for r in mine]
    found = {p.id: p.vector for p in svc.index.retrieve(collection, points, with_vectors=True)}
    out = []
    for t in tracks:
        mine = members.get(t.id, [])
        if not mine or any(r.point_id not in found for r in mine):
            continue
        identity, review = reviews[t.id]
        vecs = np.stack([np.asarray(found[r.point_id], np.float32) for r in mine])
        sighting_ids = [r.id for r in mine]
        payload = track_payload(t, identity, mine[0].attributes, sighting_ids, review=review)
        out.append(IndexPoint(t.point_id, pool(vecs), payload))
    return out


def track_identity(identities: set[int | None]) -> int | list[int] | None:
    """A track point's ``identity`` payload from its sightings' identities: the one identity
    they share, all of them when review split them (so an identity filter finds the track
    through any of its sightings), None when none is assigned."""
    known = sorted(i for i in identities if i is not None)
    if not known:
        return None
    return known[0] if len(known) == 1 else known


def _track_reviews(
    s: Any, members: dict[int, list[Sighting]]
) -> dict[int, tuple[int | list[int] | None, str]]:
    """Each track's ``identity`` (:func:`track_identity`) and ``review``
    (:func:`crud.track_review`) payload from its sightings' (``members``) review states."""
    states = crud.review_states(s, (r.id for mine in members.values() for r in mine))
    return {
        track_id: (
            track_identity({states[r.id].identity for r in mine}),
            crud.track_review(states[r.id].review for r in mine),
        )
        for track_id, mine in members.items()
    }


def sync_track_reviews(svc: Services, collection: str, sighting_points: Sequence[str]) -> int:
    """Re-derive the ``identity`` and ``review`` payload of the tracks these sighting points
    belong to, in ``collection`` (points it does not hold are skipped); returns how many were
    written."""
    if not sighting_points:
        return 0
    with svc.sessions() as s:
        track_ids = set(
            s.scalars(
                select(Sighting.track_id).where(
                    Sighting.point_id.in_(list(sighting_points)), Sighting.track_id.is_not(None)
                )
            )
        )
        if not track_ids:
            return 0
        reviews = _track_reviews(s, crud.sightings_by_track(s, sorted(track_ids)))
        points = {
            tid: pid
            for tid, pid in s.execute(
                select(Track.id, Track.point_id).where(Track.id.in_(track_ids))
            )
        }
    held = {p.id for p in svc.index.retrieve(collection, list(points.values()))}
    payloads = {
        point: {"identity": reviews[tid][0], "review": reviews[tid][1]}
        for tid, point in points.items()
        if point in held and tid in reviews
    }
    svc.index.set_payloads(collection, payloads)
    return len(payloads)


def write_reviews(svc: Services, collection: str, states: Mapping[str, crud.ReviewState]) -> None:
    """Write sighting points' review payloads (point id -> state) into ``collection``, then
    their tracks' (a track's state is derived from its sightings')."""
    svc.index.set_payloads(collection, {point: st._asdict() for point, st in states.items()})
    sync_track_reviews(svc, collection, list(states))


@dataclass
class WindowResult:
    media_id: int
    status: str  # done, pending (more windows), failed, or skipped (already applied)
    sightings: int = 0
    tracks: int = 0
    error: str | None = None


def _at(start: datetime | None, offset_s: float) -> datetime | None:
    return start + timedelta(seconds=offset_s) if start is not None else None


def _write_rows(
    s: Any, work: dict[str, Any], vectors: np.ndarray, identity_id: int | None
) -> list[IndexPoint]:
    start = datetime.fromisoformat(work["start"]) if work.get("start") else None
    media_id, attrs = work["media_id"], work.get("attributes")
    points: list[IndexPoint] = []
    at = 0
    for t in work["tracks"]:
        boxes = t["boxes"]
        row = Track(
            media_id=media_id,
            camera_id=work.get("camera_id"),
            number=int(t["number"]),
            modality=work.get("modality") or "rgb",
            start_time=_at(start, float(t["start_offset_s"])),
            end_time=_at(start, float(t["end_offset_s"])),
            start_offset_s=float(t["start_offset_s"]),
            end_offset_s=float(t["end_offset_s"]),
            first_frame=int(boxes[0][0]),
            last_frame=int(boxes[-1][0]),
            frames=len(boxes),
            boxes=boxes,
            quality=float(t["quality"]),
            point_id=str(t["point"]),
        )
        s.add(row)
        s.flush()
        vecs = vectors[at : at + len(t["crops"])]
        at += len(t["crops"])
        members: list[int] = []
        for c, vec in zip(t["crops"], vecs, strict=True):
            sighting = crud.add_sighting(
                s,
                media_id=media_id,
                camera_id=work.get("camera_id"),
                frame_index=int(c["frame"]),
                frame_time=_at(start, float(c["offset_s"])),
                box=tuple(int(v) for v in c["box"]),  # type: ignore[arg-type]
                quality=float(c["quality"]),
                object_key=str(c["key"]),
                modality=work.get("modality") or "rgb",
                point_id=str(c["point"]),
                attributes=attrs,
                source_label=work.get("source_label"),
                track_id=row.id,
            )
            members.append(sighting.id)
            if identity_id is not None:
                crud.assign(s, sighting.id, identity_id, provenance="import", actor="import")
            points.append(
                IndexPoint(sighting.point_id, vec, sighting_payload(sighting, identity_id))
            )
        if len(vecs):
            payload = track_payload(row, identity_id, attrs, members)
            points.append(IndexPoint(row.point_id, pool(vecs), payload))
    return points


def _apply(svc: Services, work: dict[str, Any], target: str) -> WindowResult:
    """Apply one embedded window: rows, points and progress in one transaction (the upsert
    inside it, so a crash leaves either nothing or everything of the window)."""
    media_id, window = work["media_id"], int(work.get("window", 0))
    vectors = unpack_vectors(work)
    with svc.sessions.begin() as s:
        media = s.get(Media, media_id, with_for_update=True, populate_existing=True)
        if media is None or media.status in (MediaStatus.DONE, MediaStatus.FAILED):
            return WindowResult(media_id, "skipped")
        if int((media.progress or {}).get("window", 0)) != window:
            return WindowResult(media_id, "skipped")  # applied by an earlier delivery
        identity_id = None
        if work.get("source_label") is not None:
            identity_id = crud.get_or_create_labelled_identity(s, work["source_label"]).id
        points = _write_rows(s, work, vectors, identity_id)
        if points:
            svc.index.upsert(target, points)
        info = work.get("info") or {}
        for key in ("width", "height", "fps", "frame_count"):
            if info.get(key) and getattr(media, key) is None:
                setattr(media, key, info[key])
        frames = int(work.get("frames_read") or 0)
        if work.get("final"):
            media.status, media.error = MediaStatus.DONE, None
            media.progress = {"window": window + 1, "frames": frames, "finished": True}
        else:
            media.progress = {
                "window": window + 1,
                "checkpoint": work["checkpoint"],
                "frames": frames,
            }
    previous = work.get("previous_checkpoint")
    if previous and previous != work.get("checkpoint"):
        svc.store.delete(previous)  # the new checkpoint supersedes it
    n_sightings = sum(len(t["crops"]) for t in work["tracks"])
    status = "done" if work.get("final") else "pending"
    return WindowResult(media_id, status, sightings=n_sightings, tracks=len(work["tracks"]))


def commit(svc: Services, works: list[dict[str, Any]]) -> list[WindowResult]:
    """Apply each embedded window once; one result per window, in order.

    Vectors made by another encoder than the live one (a re-index swapped the alias
    meanwhile) are made again first, so a collection never holds mixed vector spaces.
    """
    works = check_works(works)
    if not works:
        return []
    target, encoder = svc.live()
    stale = [w for w in works if w.get("encoder") != encoder.version or "vectors" not in w]
    if stale:
        log.info("re-embedding %d windows with the live encoder %s", len(stale), encoder.version)
        fresh = {w["media_id"]: w for w in embed_with(encoder, svc, stale)}
        works = [fresh.get(w["media_id"], w) if w in stale else w for w in works]
    out = []
    for w in works:
        if "vectors" not in w or w.get("encoder") != encoder.version:
            out.append(WindowResult(w["media_id"], "failed", error="re-embedding failed"))
            continue
        try:
            out.append(_apply(svc, w, target))
        except Exception as exc:
            if not is_permanent(exc):
                raise
            res = fail_media(svc, w["media_id"], exc)
            out.append(WindowResult(w["media_id"], "failed", error=res.error))
    return out


# --- in-process runner -------------------------------------------------------------------------


def _retrying(svc: Services, what: str, step: Any) -> Any:
    b = svc.settings.broker
    return with_retries(step, retries=b.task_max_retries, backoff_s=b.retry_backoff_s, what=what)


def process_batch(
    svc: Services, tasks: Sequence[MediaTask], options: IngestOptions | None = None
) -> list[MediaResult]:
    """Run media through the pipeline in this process, window by window: the images of the
    batch together (sharing encoder passes), then each video on its own (one open video at a
    time bounds memory). Each media succeeds or fails on its own; a transient outage is
    retried with back-off, and one that outlasts the retries fails the media in flight (their
    committed windows stay: the next run resumes them)."""
    opts = options or IngestOptions()
    totals = {t.media_id: MediaResult(t.media_id, "done", skipped=True) for t in tasks}
    with svc.sessions() as s:
        ids = [t.media_id for t in tasks]
        videos = set(s.scalars(select(Media.id).where(Media.id.in_(ids), Media.kind == "video")))
    images = [t for t in tasks if t.media_id not in videos]
    for group in [images, *([t] for t in tasks if t.media_id in videos)]:
        if group:
            _run_windows(svc, group, opts, totals)
    return [totals[t.media_id] for t in tasks]


def _run_windows(
    svc: Services, tasks: list[MediaTask], opts: IngestOptions, totals: dict[int, MediaResult]
) -> None:
    pending = tasks
    while pending:
        try:
            works = _retrying(svc, "prepare", lambda p=pending: prepare(svc, p, opts))
            works = _retrying(svc, "embed", lambda w=works: embed(svc, w))
            results = _retrying(svc, "commit", lambda w=works: commit(svc, w))
        except Exception as exc:
            if not is_transient(exc):
                raise
            for t in pending:
                _OPEN.drop(t.media_id)
                totals[t.media_id] = fail_media(
                    svc, t.media_id, f"gave up after retries: {reason(exc)}"
                )
            return
        applied = {r.media_id: r for r in results if r.status in ("done", "pending")}
        for r in applied.values():
            total = totals[r.media_id]
            total.skipped = False
            total.sightings += r.sightings
            total.tracks += r.tracks
        still_open = []
        for t in pending:
            r = applied.get(t.media_id)
            if r is not None and r.status == "pending":
                still_open.append(t)
                continue
            status, error = _state(svc, t.media_id)
            if r is not None or status != "done":  # a media already done stays "skipped"
                totals[t.media_id].status, totals[t.media_id].error = status, error
                totals[t.media_id].skipped = False
        pending = still_open


def _state(svc: Services, media_id: int) -> tuple[str, str | None]:
    """A media's status and error as the database has them (gone: failed)."""
    with svc.sessions() as s:
        media = s.get(Media, media_id)
        if media is None:
            return "failed", f"media {media_id} was deleted"
        return str(media.status), media.error


def process_media(
    svc: Services,
    media_id: int,
    options: IngestOptions | None = None,
    *,
    source_label: str | None = None,
    attributes: dict[str, str] | None = None,
) -> MediaResult:
    """Run one registered media through the pipeline (a no-op when it is already done)."""
    return process_batch(svc, [MediaTask(media_id, source_label, attributes)], options)[0]


def ingest_bytes(
    svc: Services, data: bytes, name: str, *, options: IngestOptions | None = None, **fields: Any
) -> MediaResult:
    """Register and process one file's bytes; refused files come back as ``failed``.
    ``fields``: ``camera``, ``modality``, ``start_time``, ``source_label``, ``attributes``
    as in :func:`ingest_many`, and ``job_id``."""
    return _ingest_one(svc, {"data": data, "name": name}, options, **fields)


def ingest_file(
    svc: Services, path: str | Path, *, options: IngestOptions | None = None, **fields: Any
) -> MediaResult:
    """:func:`ingest_bytes` on a file, streamed into the store."""
    return _ingest_one(svc, {"path": Path(path)}, options, **fields)


def _ingest_one(
    svc: Services,
    item: dict[str, Any],
    options: IngestOptions | None,
    job_id: int | None = None,
    **fields: Any,
) -> MediaResult:
    opts = options or IngestOptions()
    item |= {k: v for k, v in fields.items() if v is not None}
    out = register_item(svc, item, opts.max_bytes, job_id)
    if isinstance(out, MediaResult):
        return out
    result = process_batch(svc, [out], opts)[0]
    result.name = item_label(item)
    return result


def once_per_media(
    registered: list[MediaTask | MediaResult], names: list[str]
) -> list[MediaTask | MediaResult]:
    """Identical bytes twice in one batch are one media: the later items are skipped, with a
    note, so the media is processed once and its sightings counted once."""
    first: dict[int, str] = {}
    out: list[MediaTask | MediaResult] = []
    for r, name in zip(registered, names, strict=True):
        if isinstance(r, MediaTask) and r.media_id in first:
            note = f"identical to {first[r.media_id]} in the same batch"
            r = MediaResult(r.media_id, "done", skipped=True, name=name, note=note)
        elif isinstance(r, MediaTask):
            first[r.media_id] = name
        out.append(r)
    return out


def ingest_many(
    svc: Services,
    items: Sequence[dict],
    *,
    options: IngestOptions | None = None,
    job_kind: str = "files",
    source: str = "",
    actor: str = "system",
    progress: bool = True,
    job_id: int | None = None,
) -> tuple[int, list[MediaResult]]:
    """Ingest ``items`` as one job, ``options.batch_media`` media per encoder pass.

    Items are keyword dicts: a ``path``, a stored ``key`` or ``data``, a ``name``, and
    optionally ``camera``,
    ``modality``, ``start_time``, ``source_label``, ``attributes``. Returns the job id and
    the per-item results; progress and failures are kept on the job (a new one unless
    ``job_id`` names an existing job).
    """
    from tqdm.auto import tqdm

    opts = options or IngestOptions()
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
    step = max(1, opts.batch_media)
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        names = [item_label(item) for item in chunk]
        registered = once_per_media(
            [register_item(svc, item, opts.max_bytes, job_id) for item in chunk], names
        )
        tasks = [r for r in registered if isinstance(r, MediaTask)]
        done = iter(process_batch(svc, tasks, opts))
        chunk_results = [r if isinstance(r, MediaResult) else next(done) for r in registered]
        for r, name in zip(chunk_results, names, strict=True):
            r.name = r.name or name
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
