"""Person tracks within one camera: the detector's boxes linked over time.

The association is Roboflow ``trackers``' ByteTrack (Kalman motion + two-stage IoU matching,
the detector's confidence splitting the stages); see ``docs/tracking.md`` for why this
library and why motion only. This module adapts it to the pipeline: boxes in, one track
number per box out, and the numbers of tracks that ended.

Track numbers count from 1 per media in the order tracks are confirmed, so the same frames
give the same numbers: a track's ids elsewhere are derived from (media sha, number).
The tracker is plain Python state, so the pipeline pickles it into a window checkpoint and a
resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from aioreid.platform.pipeline.detect import Box, Detector
from aioreid.platform.pipeline.frames import Frame, SamplingOptions, iter_video_frames

# trackers expresses its lost-track budget in frames of a 30 fps reference clock.
_REFERENCE_FPS = 30.0


@dataclass(frozen=True)
class TrackerOptions:
    """How boxes become tracks.

    ``lost_s``: a track unseen this long (seconds of video) has ended. ``activation``: the
    detector score a new track needs. ``high_conf``: boxes at or above it are matched first,
    weaker ones only revive tracks (ByteTrack's second stage). ``min_hits``: consecutive
    matches before a track counts (one-frame flickers never become tracks). ``min_iou``:
    the overlap a box needs with a track's predicted box to continue it.
    """

    lost_s: float = 2.0
    activation: float = 0.3
    high_conf: float = 0.4
    min_hits: int = 2
    min_iou: float = 0.1

    def __post_init__(self) -> None:
        if self.lost_s < 0 or self.min_hits < 1 or not 0 <= self.min_iou <= 1:
            raise ValueError(f"bad tracker options {self!r}")


class PersonTracker:
    """One camera's tracker: :meth:`update` once per processed frame, in time order."""

    def __init__(self, options: TrackerOptions | None = None, fps: float = 5.0) -> None:
        options = options or TrackerOptions()
        self.options = options
        self._tracker = ByteTrackTracker(
            lost_track_buffer=round(options.lost_s * _REFERENCE_FPS),
            frame_rate=max(fps, 1e-3),
            track_activation_threshold=options.activation,
            minimum_consecutive_frames=options.min_hits,
            minimum_iou_threshold=options.min_iou,
            high_conf_det_threshold=options.high_conf,
        )
        self._seen: set[int] = set()

    def update(self, boxes: Sequence[Box], t: float) -> tuple[list[int], list[int]]:
        """Associate one frame's boxes (taken at ``t`` seconds into the video).

        Returns the track number of each box (0: not part of a confirmed track yet) and the
        numbers of tracks that ended at this frame (lost for longer than ``lost_s``).
        """
        if boxes:
            xyxy = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in boxes], np.float32)
            conf = np.array([b.score for b in boxes], np.float32)
            dets = sv.Detections(xyxy=xyxy, confidence=conf, data={"i": np.arange(len(boxes))})
        else:
            dets = sv.Detections.empty()
        with warnings.catch_warnings():
            # Deduplicated frames can leave equal timestamps; the tracker warns and skips.
            warnings.simplefilter("ignore", UserWarning)
            out = self._tracker.update(dets, timestamp=t)
        numbers = [0] * len(boxes)
        if len(out):
            for i, tid in zip(out.data["i"], out.tracker_id, strict=True):
                if tid >= 0:
                    numbers[int(i)] = int(tid) + 1
        alive = {t.tracker_id + 1 for t in self._tracker.tracks if t.tracker_id >= 0}
        current = {n for n in numbers if n}
        self._seen |= current
        ended = sorted(self._seen - alive - current)
        self._seen -= set(ended)
        return numbers, ended

    def open_tracks(self) -> list[int]:
        """Numbers of the tracks that have not ended yet (all end with the video)."""
        return sorted(self._seen)


@dataclass(frozen=True)
class TrackedFrame:
    """One processed frame: its boxes, the track number of each (0: none yet) and the
    tracks that ended here."""

    frame: Frame
    boxes: list[Box]
    numbers: list[int]
    ended: list[int] = field(default_factory=list)


def track_window(
    frames: Sequence[Frame], detector: Detector, tracker: PersonTracker
) -> list[TrackedFrame]:
    """Detect people in a window of consecutive frames and continue the tracks through it."""
    out = []
    for frame, boxes in zip(frames, detector.detect([f.image for f in frames]), strict=True):
        numbers, ended = tracker.update(boxes, frame.offset_s)
        out.append(TrackedFrame(frame, list(boxes), numbers, ended))
    return out


def track_video(
    path: Path,
    detector: Detector,
    sampling: SamplingOptions | None = None,
    options: TrackerOptions | None = None,
    window: int = 32,
) -> Iterator[TrackedFrame]:
    """Every processed frame of a video file with its tracked boxes, window by window (the
    same decode, detection windows and tracker as ingestion)."""
    sampling = sampling or SamplingOptions()
    options = options or TrackerOptions()
    tracker = PersonTracker(options, fps=sampling.sample_fps)
    buf: list[Frame] = []
    for frame in iter_video_frames(path, sampling):
        buf.append(frame)
        if len(buf) >= window:
            yield from track_window(buf, detector, tracker)
            buf = []
    if buf:
        yield from track_window(buf, detector, tracker)
