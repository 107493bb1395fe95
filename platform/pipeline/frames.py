"""Decode media into frames: one frame for an image, sampled frames for a video.

Videos are read with OpenCV, sampled at ``sample_fps`` (never faster than the file's own rate),
and a frame that differs from the last *kept* frame by less than ``dedup_threshold`` (mean
absolute difference of 32×32 grey thumbnails, 0-255) is skipped: static scenes then cost one
frame, not hundreds. Frames are read a window at a time (:class:`VideoReader`), so memory is
bounded by the window whatever the length of the video.
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
    # 5 fps and a 0.5 threshold: on synthetic footage, 2 fps or a 2.0 threshold lost a fifth
    # of the people a tracker can follow (docs/tracking.md, "Sampling").
    sample_fps: float = 5.0
    dedup_threshold: float = 0.5
    max_frames: int = 1_000_000  # kept frames per video: a safety cap, not a window
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


class VideoReader:
    """Sampled, de-duplicated frames of a video file, read a window at a time.

    ``start`` and ``last_thumb`` resume a read where an earlier reader stopped (its
    :attr:`next_index` and :attr:`last_thumb`): the decoder seeks to ``start``, so the resumed
    reader yields exactly the frames the first one would have yielded next.
    """

    def __init__(
        self,
        path: Path,
        options: SamplingOptions = SamplingOptions(),
        *,
        start: int = 0,
        last_thumb: np.ndarray | None = None,
        kept: int = 0,
    ) -> None:
        self.path, self.options = path, options
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            # Messages leave the file name out: the reader may be reading a temporary copy or a
            # content-addressed object; whoever reports the failure names the user's file.
            raise MediaDecodeError("not a readable video")
        fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if self.width * self.height > options.max_video_pixels:
            self.close()
            raise MediaDecodeError(
                f"video frames too large ({self.width}x{self.height}; "
                f"limit {options.max_video_pixels} pixels)"
            )
        self.fps = fps if 0 < fps <= 1000 else 25.0
        rate = options.sample_fps
        self.step = max(1, round(self.fps / rate)) if rate > 0 else 1
        self.next_index = 0
        self.last_thumb = last_thumb
        self.kept = kept
        self.finished = False
        if start > 0:
            self._seek(start)

    def _seek(self, start: int) -> None:
        """Position the decoder at frame ``start``: a keyframe seek when the backend lands
        exactly there (FFmpeg decodes forward from the previous keyframe), else ``grab``
        from the beginning."""
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, start) and (
            int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) == start
        ):
            self.next_index = start
            return
        self._cap.release()
        self._cap = cv2.VideoCapture(str(self.path))
        while self.next_index < start:
            if not self._cap.grab():
                self.finished = True
                break
            self.next_index += 1

    def read(self, n: int) -> list[Frame]:
        """Up to ``n`` more kept frames; fewer (maybe none) at the end of the file."""
        out: list[Frame] = []
        while len(out) < n and not self.finished:
            if self.kept >= self.options.max_frames or not self._cap.grab():
                self.finished = True
                break
            index = self.next_index
            self.next_index += 1
            if index % self.step:
                continue
            ok, bgr = self._cap.retrieve()
            if not ok or bgr is None:
                self.finished = True
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            thumb = _thumb(rgb)
            last = self.last_thumb
            if last is None or float(np.abs(thumb - last).mean()) >= self.options.dedup_threshold:
                self.last_thumb = thumb
                self.kept += 1
                out.append(Frame(index, index / self.fps, rgb))
        if self.finished and self.next_index == 0:
            raise MediaDecodeError("the video has no decodable frames")
        return out

    def close(self) -> None:
        self._cap.release()


def read_frame(path: Path, index: int) -> Frame:
    """Frame ``index`` of the video at ``path`` exactly (counted as ingestion counts them)."""
    reader = VideoReader(path, SamplingOptions(sample_fps=0, dedup_threshold=0.0), start=index)
    try:
        frames = reader.read(1)
    finally:
        reader.close()
    if not frames or frames[0].index != index:
        raise MediaDecodeError(f"the video has no frame {index}")
    return frames[0]


def iter_video_frames(path: Path, options: SamplingOptions = SamplingOptions()) -> Iterator[Frame]:
    """Sampled, de-duplicated frames of the video at ``path``."""
    reader = VideoReader(path, options)
    try:
        while frames := reader.read(64):
            yield from frames
    finally:
        reader.close()


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


#: The drawn box: pure green stands out on most footage; 2 px stays visible after JPEG.
BOX_COLOUR_RGB = (0, 255, 0)
BOX_THICKNESS = 2
JPEG_QUALITY = 92


def frame_jpeg(rgb: np.ndarray, box: tuple[int, int, int, int] | None = None) -> bytes:
    """A frame as JPEG, ``box`` (x, y, w, h) outlined inside its edges when given.

    cv2 centres a thick line on its coordinates (a 2 px line comes out 3 px wide), so the
    outline is drawn as nested 1 px rectangles: exactly BOX_THICKNESS px, never outside. The
    JPEG keeps full-resolution colour (4:4:4): with the usual 4:2:0 the thin outline bleeds
    into its neighbours and loses its colour.
    """
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if box is not None:
        x, y, w, h = box
        colour = BOX_COLOUR_RGB[::-1]
        for i in range(min(BOX_THICKNESS, (min(w, h) + 1) // 2)):
            cv2.rectangle(bgr, (x + i, y + i), (x + w - 1 - i, y + h - 1 - i), colour, 1)
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        JPEG_QUALITY,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    ok, buf = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise MediaDecodeError("the frame could not be encoded as JPEG")
    return buf.tobytes()
