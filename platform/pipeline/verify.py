"""Does a detected box hold one whole person? Rules that keep such boxes and drop the rest.

A crop the index keeps should show one whole person: a patch of bare wall, a pair of legs or
two people in one box all come back later as noise in search results. Detectors make these
mistakes in known ways: a slow walker whose torso blends into the background leaves only
their moving legs, two walkers side by side merge into one blob. Each box of a window is
checked, in this order, against:

* **two people side by side**: inside a wide box, the foreground's column profile has a
  valley between two humps. The box is split at the valley and each half shrunk to its
  own foreground.
* **shape**: a standing or walking person is taller than wide (``min_aspect`` to
  ``max_aspect``, height over width) and at least ``min_height`` pixels tall.
* **foreground fill**: on a static camera, a box must be at least ``min_fill`` foreground
  (moving against the window's median background). A patch of empty wall is not.
* **scene scale**: in one camera, a person's height in pixels grows with how low their feet
  are in the frame (a ground plane seen from above). A line ``height = a * foot_y + c``
  fitted to the window's boxes says how tall a whole person standing there is. A box far
  shorter than that is part of a person (legs, a head and shoulders). The fit is a consensus
  over pairs of boxes, so the parts themselves do not drag it down.

The rules need only the window's frames and the boxes, so they wrap any detector
(:class:`VerifiedDetector`). ``build_detector`` returns detectors wrapped this way. The
figures behind the thresholds are in ``docs/detection.md`` (``benchmarks/bench_detectors.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .detect import BackgroundSubtractionDetector, Box, Detector, foreground_masks


@dataclass(frozen=True)
class VerifyRules:
    """Thresholds of the whole-person rules (see the module docstring).

    ``min_fill`` 0 turns the fill rule off and ``split_aspect`` 0 the split. With both off,
    no background model is computed.
    """

    min_height: int = 40
    min_aspect: float = 1.2
    max_aspect: float = 5.0
    min_fill: float = 0.2
    #: Foreground threshold (0-255) of the background model when the detector has none.
    fg_threshold: int = 16
    #: A frame with more foreground than this does not look like a static scene (a moving
    #: camera, lights switched on). If most of the window's frames look like that, the
    #: background model is meaningless and the fill and split rules are skipped.
    max_scene_foreground: float = 0.5
    #: Only boxes flatter than this (height / width) are candidates for a split. The valley
    #: must fall below ``split_valley`` of the lower hump beside it.
    split_aspect: float = 1.8
    split_valley: float = 0.6
    #: A box shorter than ``min_scale`` times the fitted whole-person height at its feet is a
    #: part of a person.
    min_scale: float = 0.7
    #: The scale line needs this many boxes within ``scale_tolerance`` of it. With fewer, the
    #: scale rule is skipped.
    scale_support: int = 6
    scale_tolerance: float = 0.15

    @property
    def needs_background(self) -> bool:
        return self.min_fill > 0 or self.split_aspect > 0


#: For learned detectors (ONNX), which also find people standing still: the rules that trust a
#: background model would reject those people, so only the shape and scale rules apply.
SHAPE_ONLY = VerifyRules(min_height=32, min_fill=0.0, split_aspect=0.0)


@dataclass
class VerifiedDetector:
    """A detector whose boxes have passed the whole-person rules."""

    inner: Detector
    rules: VerifyRules = field(default_factory=VerifyRules)

    @property
    def name(self) -> str:
        return self.inner.name

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        inner = self.inner
        if isinstance(inner, BackgroundSubtractionDetector):
            # The detector's own foreground masks serve the rules too: compute them once.
            masks = foreground_masks(frames, inner.threshold, inner.min_frames)
            if masks is None:
                return [[] for _ in frames]
            return verify_window(frames, [inner.boxes(m) for m in masks], self.rules, masks)
        return verify_window(frames, inner.detect(frames), self.rules)


def verify_window(
    frames: Sequence[np.ndarray],
    boxes: Sequence[Sequence[Box]],
    rules: VerifyRules = VerifyRules(),
    masks: Sequence[np.ndarray] | None = None,
) -> list[list[Box]]:
    """The boxes of a window that hold one whole person, two-person boxes split in two.

    ``masks`` are the window's foreground masks if the caller has them (from
    :func:`~aioreid.platform.pipeline.detect.foreground_masks`). Otherwise they are computed
    when the rules need them.
    """
    if masks is None and rules.needs_background:
        masks = foreground_masks(frames, rules.fg_threshold)
    if masks is not None and not _static(masks, rules):
        masks = None
    out: list[list[Box]] = []
    for i, frame_boxes in enumerate(boxes):
        mask = masks[i] if masks is not None else None
        out.append([b for box in frame_boxes for b in _check(box, mask, rules)])
    return drop_parts(out, frames, rules)


def _check(box: Box, mask: np.ndarray | None, rules: VerifyRules) -> list[Box]:
    """The box (or its two halves) if it passes the per-box rules."""
    parts = split_two_people(box, mask, rules) if mask is not None else [box]
    return [
        p
        for p in parts
        if holds_person_shape(p, rules)
        and (mask is None or rules.min_fill <= 0 or fill(p, mask) >= rules.min_fill)
    ]


def _static(masks: Sequence[np.ndarray], rules: VerifyRules) -> bool:
    """Whether the window looks like a static camera (most frames mostly background)."""
    moving = sum(float((m > 0).mean()) > rules.max_scene_foreground for m in masks)
    return moving <= len(masks) // 2


def holds_person_shape(box: Box, rules: VerifyRules = VerifyRules()) -> bool:
    """Tall enough and taller than wide, like a standing or walking person."""
    aspect = box.h / max(1, box.w)
    return box.h >= rules.min_height and rules.min_aspect <= aspect <= rules.max_aspect


def fill(box: Box, mask: np.ndarray) -> float:
    """Fraction of the box's pixels (inside the frame) that are foreground in ``mask``."""
    patch, _, _ = _patch(mask, box)
    return float(patch.mean()) if patch.size else 0.0


def _patch(mask: np.ndarray, box: Box) -> tuple[np.ndarray, int, int]:
    """The boolean mask under ``box`` clipped to the frame, and its top-left corner.

    Some detectors (HOG) return boxes that stick out of the frame; a negative offset would
    wrap around in numpy slicing.
    """
    h, w = mask.shape[:2]
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(w, box.x + box.w), min(h, box.y + box.h)
    return mask[y0:y1, x0:x1] > 0, x0, y0


def split_two_people(box: Box, mask: np.ndarray, rules: VerifyRules = VerifyRules()) -> list[Box]:
    """``[box]``, or the two halves of a wide box whose foreground has two humps."""
    patch, x0, y0 = _patch(mask, box)
    if box.h / max(1, box.w) >= rules.split_aspect or patch.shape[1] < 16 or patch.shape[0] < 2:
        return [box]
    # Share of foreground rows per column, smoothed so a thin gap between legs is no valley.
    profile = np.convolve(patch.mean(axis=0), np.ones(5) / 5, mode="same")
    # Look for the valley in the middle half only. Near the sides, the profile only falls
    # off at the silhouette's edge.
    width = patch.shape[1]
    lo, hi = width // 4, width - width // 4
    cut = lo + int(np.argmin(profile[lo:hi]))
    humps = min(float(profile[:cut].max()), float(profile[cut:].max()))
    if humps <= 0 or profile[cut] > rules.split_valley * humps:
        return [box]
    halves = (
        _shrink(patch, x0, y0, 0, cut, box.score),
        _shrink(patch, x0, y0, cut, width, box.score),
    )
    return [h for h in halves if h is not None]


def _shrink(patch: np.ndarray, x0: int, y0: int, c0: int, c1: int, score: float) -> Box | None:
    """The box around the foreground of columns ``c0:c1`` of ``patch`` (whose top-left
    corner is ``x0, y0`` in the frame), None if there is none."""
    sub = patch[:, c0:c1]
    rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
    if rows.size == 0:
        return None
    return Box(
        x0 + c0 + int(cols[0]),
        y0 + int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
        score,
    )


def drop_parts(
    boxes: list[list[Box]], frames: Sequence[np.ndarray], rules: VerifyRules = VerifyRules()
) -> list[list[Box]]:
    """Drop boxes far shorter than a whole person standing at their feet would be."""
    if not frames or len({f.shape[:2] for f in frames}) != 1:
        return boxes  # no single camera geometry to fit
    height = frames[0].shape[0]
    # Only boxes inside the frame show a person's real height and feet, so only they make
    # the line. A box that the frame edge cuts is still judged by it: if it is much
    # shorter than a whole person, it is not a whole person.
    inside = [b for fb in boxes for b in fb if b.y > 1 and b.y + b.h < height - 1]
    line = fit_scale(inside, rules)
    if line is None:
        return boxes
    a, c = line
    return [[b for b in fb if b.h >= rules.min_scale * (a * (b.y + b.h) + c)] for fb in boxes]


def fit_scale(
    boxes: Sequence[Box], rules: VerifyRules = VerifyRules()
) -> tuple[float, float] | None:
    """``(a, c)`` of the line ``height = a * foot_y + c`` that most boxes agree with, or None.

    Every pair of boxes proposes a line, and so does the tallest box alone (a flat line, for
    a camera looking level). The line with the most boxes within ``scale_tolerance`` of it
    wins. Ties go to the taller line, because parts of people lie *below* the true line and
    whole people on it.
    """
    if len(boxes) < rules.scale_support:
        return None
    pts = np.array([(b.y + b.h, b.h) for b in boxes], np.float64)
    feet, heights = pts[:, 0], pts[:, 1]
    best: tuple[int, float] = (0, 0.0)
    line: tuple[float, float] | None = None
    for a, c in _candidate_lines(pts, heights):
        pred = a * feet + c
        if np.any(pred <= 0):
            continue
        key = (int((np.abs(heights - pred) <= rules.scale_tolerance * pred).sum()), pred.mean())
        if key > best:
            best, line = key, (a, c)
    return line if best[0] >= rules.scale_support else None


def _candidate_lines(pts: np.ndarray, heights: np.ndarray) -> list[tuple[float, float]]:
    lines = [(0.0, float(heights.max()))]
    # At most 40 points (evenly spread) propose lines: pairs grow quadratically.
    idx = np.unique(np.linspace(0, len(pts) - 1, min(len(pts), 40)).round().astype(int))
    for (y1, h1), (y2, h2) in itertools.combinations(pts[idx].tolist(), 2):
        if abs(y2 - y1) < 8:
            continue  # too close in depth to say anything about the slope
        a = (h2 - h1) / (y2 - y1)
        if a >= 0:  # lower in the frame is nearer the camera: never smaller
            lines.append((a, h1 - a * y1))
    return lines
