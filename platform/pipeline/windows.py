"""What one window of a media yields: the tracks that ended in it, each with its best crops.

A video is read ``frames_in_flight`` sampled frames at a time. Each window is detected,
tracked (:mod:`~aioreid.platform.pipeline.tracking`) and cut into crops; a track keeps only its
``k`` best crops as JPEG bytes while it is open, so memory is bounded by the window and the
open tracks, never by the length of the video. Everything needed to continue — where the
decoder stands, the tracker, the open tracks — is a :class:`VideoState`, pickled into a
checkpoint after every window so an interrupted video resumes from its last committed window
with exactly the result of an uninterrupted run.

A still image is one window holding one frame; each of its boxes is a one-frame track.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import cv2
import numpy as np

from aioreid.platform.pipeline.crops import CropPolicy, accept, crop, quality
from aioreid.platform.pipeline.detect import Box, Detector
from aioreid.platform.pipeline.frames import Frame, MediaDecodeError, VideoReader
from aioreid.platform.pipeline.tracking import PersonTracker, TrackerOptions, track_window

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class PoolingOptions:
    """Which crops represent a track: the ``k`` best by quality, at least ``min_gap_s``
    apart in time (consecutive frames would give the pooled embedding one view ``k`` times)."""

    k: int = 4
    min_gap_s: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.min_gap_s < 0:
            raise ValueError(f"bad pooling options {self!r}")


@dataclass(frozen=True)
class Candidate:
    """A crop that may represent its track."""

    frame: int
    offset_s: float
    box: Box
    quality: float
    jpeg: bytes


@dataclass
class TrackAccum:
    """A track while it is being followed: its box per processed frame and its best crops."""

    number: int
    boxes: list[list[int]] = field(default_factory=list)
    first_offset: float = 0.0
    last_offset: float = 0.0
    best: list[Candidate] = field(default_factory=list)

    def add_box(self, frame: Frame, box: Box) -> None:
        if not self.boxes:
            self.first_offset = frame.offset_s
        self.last_offset = frame.offset_s
        self.boxes.append([frame.index, box.x, box.y, box.w, box.h])

    def offer(self, cand: Candidate, pooling: PoolingOptions) -> bool:
        """Keep ``cand`` if it is among the ``k`` best crops spaced ``min_gap_s`` apart;
        returns whether it was kept."""
        if not self.would_keep(cand.offset_s, cand.quality, pooling):
            return False
        near = [c for c in self.best if abs(c.offset_s - cand.offset_s) < pooling.min_gap_s]
        if near:
            self.best = [c for c in self.best if c not in near]
        elif len(self.best) >= pooling.k:
            self.best.remove(min(self.best, key=lambda c: (c.quality, -c.frame)))
        self.best.append(cand)
        self.best.sort(key=lambda c: c.frame)
        return True

    def would_keep(self, offset_s: float, quality: float, pooling: PoolingOptions) -> bool:
        """Whether a crop of this quality at this time would enter the best crops (asked
        before the crop is JPEG-encoded: most crops of a long track never enter)."""
        near = [c for c in self.best if abs(c.offset_s - offset_s) < pooling.min_gap_s]
        if near:
            return quality > max(c.quality for c in near)
        if len(self.best) < pooling.k:
            return True
        return quality > min(c.quality for c in self.best)

    @property
    def quality(self) -> float:
        """Mean quality of the representative crops (what ranks tracks for review)."""
        return round(float(np.mean([c.quality for c in self.best])), 4) if self.best else 0.0


@dataclass
class VideoState:
    """Where a video's ingestion stands between two windows."""

    tracker: PersonTracker
    window: int = 0
    next_index: int = 0
    kept: int = 0
    last_thumb: np.ndarray | None = None
    open: dict[int, TrackAccum] = field(default_factory=dict)

    @classmethod
    def fresh(cls, options: TrackerOptions, fps: float) -> VideoState:
        return cls(tracker=PersonTracker(options, fps=fps))

    def dumps(self) -> bytes:
        return pickle.dumps((CHECKPOINT_FORMAT, self), protocol=5)

    @staticmethod
    def loads(data: bytes) -> VideoState:
        # Checkpoints are written by this pipeline into its own store, never taken from users.
        version, state = pickle.loads(data)
        if version != CHECKPOINT_FORMAT or not isinstance(state, VideoState):
            raise MediaDecodeError(f"unusable checkpoint (format {version})")
        return state


def encode_jpeg(img: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise MediaDecodeError("could not encode a crop as JPEG")
    return buf.tobytes()


def _scored_crop(frame: Frame, box: Box, policy: CropPolicy) -> tuple[np.ndarray, Box, float]:
    img, real = crop(frame.image, box, policy.pad)
    return img, real, quality(img, policy)


def _candidate(frame: Frame, box: Box, policy: CropPolicy) -> Candidate | None:
    img, real, q = _scored_crop(frame, box, policy)
    if not accept(img, q, policy):
        return None
    return Candidate(frame.index, frame.offset_s, real, q, encode_jpeg(img))


def image_tracks(frame: Frame, detector: Detector, policy: CropPolicy) -> list[TrackAccum]:
    """Each accepted box of a still image as a one-frame track, numbered from 1."""
    out = []
    for box in detector.detect([frame.image])[0]:
        cand = _candidate(frame, box, policy)
        if cand is None:
            continue
        track = TrackAccum(len(out) + 1)
        track.add_box(frame, cand.box)
        track.best.append(cand)
        out.append(track)
    return out


def advance(
    state: VideoState,
    reader: VideoReader,
    detector: Detector,
    frames_in_flight: int,
    policy: CropPolicy,
    pooling: PoolingOptions,
) -> tuple[list[TrackAccum], bool]:
    """Process the next window of ``reader`` into ``state``; returns the tracks that ended
    (those with at least one usable crop) and whether the video is finished (then every open
    track has ended)."""
    frames = reader.read(frames_in_flight)
    ended: list[TrackAccum] = []
    for tf in track_window(frames, detector, state.tracker):
        for box, number in zip(tf.boxes, tf.numbers, strict=True):
            if not number:
                continue
            track = state.open.setdefault(number, TrackAccum(number))
            track.add_box(tf.frame, box)
            img, real, q = _scored_crop(tf.frame, box, policy)
            f = tf.frame
            if accept(img, q, policy) and track.would_keep(f.offset_s, q, pooling):
                track.offer(Candidate(f.index, f.offset_s, real, q, encode_jpeg(img)), pooling)
        ended.extend(state.open.pop(n) for n in tf.ended if n in state.open)
    final = reader.finished
    if final:
        ended.extend(state.open.pop(n) for n in sorted(state.open))
    state.window += 1
    state.next_index, state.kept = reader.next_index, reader.kept
    state.last_thumb = reader.last_thumb
    return [t for t in ended if t.best], final
