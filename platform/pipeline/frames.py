"""Decode media into frames: one frame for an image, sampled frames for a video.

Videos are read with OpenCV, sampled at ``sample_fps`` (never faster than the file's own rate),
and a frame that differs from the last *kept* frame by less than ``dedup_threshold`` (mean
absolute difference of 32×32 grey thumbnails, 0-255) is skipped: static scenes then cost one
frame, not hundreds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aioreid.encoder.inference import EncoderInputError, decode_image

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class MediaDecodeError(ValueError):
    """The bytes are not a readable image or video (corrupt, truncated, too large...)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB ``uint8`` H×W×3, its index in the file and offset in seconds."""

    index: int
    offset_s: float
    image: np.ndarray


@dataclass(frozen=True)
class SamplingOptions:
    sample_fps: float = 2.0
    dedup_threshold: float = 2.0
    max_frames: int = 10_000
    max_video_pixels: int = 4096 * 2160


def media_kind(name: str) -> str:
    """``image`` or ``video`` from a file name; :class:`MediaDecodeError` otherwise."""
    ext = Path(name).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    raise MediaDecodeError(f"unsupported media type {ext or '(no extension)'!r} for {name!r}")


def decode_image_frame(data: bytes) -> Frame:
    """The single frame of an image file."""
    try:
        return Frame(0, 0.0, decode_image(data))
    except EncoderInputError as exc:
        raise MediaDecodeError(str(exc)) from None


def _thumb(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def iter_video_frames(path: Path, options: SamplingOptions = SamplingOptions()) -> Iterator[Frame]:
    """Sampled, de-duplicated frames of the video at ``path``."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MediaDecodeError(f"not a readable video: {path.name}")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > options.max_video_pixels:
            raise MediaDecodeError(
                f"video frames too large ({w}x{h}; limit {options.max_video_pixels} pixels)"
            )
        if fps <= 0 or fps > 1000:
            fps = 25.0
        step = max(1, round(fps / options.sample_fps)) if options.sample_fps > 0 else 1
        last: np.ndarray | None = None
        index = kept = 0
        while kept < options.max_frames:
            ok = cap.grab()
            if not ok:
                break
            if index % step == 0:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                thumb = _thumb(rgb)
                if last is None or float(np.abs(thumb - last).mean()) >= options.dedup_threshold:
                    last = thumb
                    kept += 1
                    yield Frame(index, index / fps, rgb)
            index += 1
        if index == 0:
            raise MediaDecodeError(f"video has no decodable frames: {path.name}")
    finally:
        cap.release()


def iter_frames(
    data: bytes, kind: str, name: str = "", options: SamplingOptions = SamplingOptions()
) -> Iterator[Frame]:
    """Frames of media given as bytes (videos go through a temporary file for OpenCV)."""
    if kind == "image":
        yield decode_image_frame(data)
        return
    if kind != "video":
        raise MediaDecodeError(f"unknown media kind {kind!r}")
    suffix = Path(name).suffix.lower() or ".mp4"
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        yield from iter_video_frames(Path(tmp.name), options)
