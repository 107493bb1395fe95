"""Person detectors: every detector maps a window of frames to boxes per frame.

* ``crops`` — :class:`WholeFrameDetector`: the frame already is a person crop (datasets).
* ``background`` — :class:`BackgroundSubtractionDetector`: static cameras; the background is
  the per-pixel median of the window, foreground blobs of person shape become boxes.
* ``hog`` — :class:`HogDetector`: OpenCV's HOG + linear SVM people detector, for moving or
  unknown cameras (slow, and it needs people at least ~96 px tall).
* ``onnx:PATH`` — :class:`~aioreid.platform.pipeline.detect_onnx.OnnxDetector`: a YOLO-style
  ONNX model run by onnxruntime.

:func:`build_detector` wraps all but ``crops`` in the whole-person rules of
:mod:`aioreid.platform.pipeline.verify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from aioreid.platform.pipeline.detector_names import DETECTOR_HELP, ONNX_PREFIX


@dataclass(frozen=True)
class Box:
    """Pixel box ``x, y, w, h`` with a detector confidence in [0, 1]."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


class Detector(Protocol):
    name: str

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        """Boxes for each frame of a window (frames of one camera, in time order)."""
        ...


class WholeFrameDetector:
    """The whole image is one sighting (already-cropped dataset images)."""

    name = "crops"

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        return [[Box(0, 0, f.shape[1], f.shape[0], 1.0)] for f in frames]


@dataclass
class BackgroundSubtractionDetector:
    """Median background of the window, absolute difference, morphology, contours.

    Needs at least ``min_frames`` frames of one size in a window (a single image has no
    background; it gets no boxes). Boxes must be taller than wide (``min_aspect``) and at
    least ``min_height`` pixels tall. The contours come from a dilated mask (it joins a
    person's pieces); ``tight`` then shrinks each box back to the undilated foreground in it,
    which the dilation had grown by a few pixels on every side.
    """

    threshold: int = 28
    min_height: int = 40
    min_aspect: float = 1.1
    max_aspect: float = 6.0
    min_frames: int = 3
    tight: bool = False
    name: str = "background"

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        masks = foreground_masks(frames, self.threshold, self.min_frames)
        if masks is None:
            return [[] for _ in frames]
        return [self.boxes(mask) for mask in masks]

    def boxes(self, mask: np.ndarray) -> list[Box]:
        """Person-shaped boxes of one foreground mask (from :func:`foreground_masks`)."""
        joined = cv2.dilate(mask, _KERNEL)
        contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            fill = float(cv2.contourArea(c)) / float(w * h)
            if self.tight:
                x, y, w, h = _shrink(mask, x, y, w, h)
            if h < self.min_height or w < 4:
                continue
            if not self.min_aspect <= h / w <= self.max_aspect:
                continue
            boxes.append(Box(int(x), int(y), int(w), int(h), min(1.0, fill * 1.5)))
        return boxes


_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def foreground_masks(
    frames: Sequence[np.ndarray], threshold: int = 28, min_frames: int = 3
) -> list[np.ndarray] | None:
    """Foreground masks (uint8 0/255) of a window against its per-pixel median background.

    ``None`` when the window cannot have a background: fewer than ``min_frames`` frames or
    frames of different sizes.
    """
    if len(frames) < min_frames or len({f.shape[:2] for f in frames}) != 1:
        return None
    # Colour difference (max over channels): a red coat on a grey wall has the wall's
    # brightness but not its colour.
    stack = np.stack([f if f.ndim == 3 else f[..., None] for f in frames])
    background = np.median(stack, axis=0).astype(np.uint8)
    masks = []
    for frame in stack:
        diff = cv2.absdiff(frame, background).max(axis=2)
        _, mask = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL)
        masks.append(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _KERNEL, iterations=3))
    return masks


def _shrink(mask: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """The rectangle around the foreground of ``mask`` inside ``(x, y, w, h)``."""
    pts = cv2.findNonZero(mask[y : y + h, x : x + w])
    if pts is None:
        return x, y, w, h
    bx, by, bw, bh = cv2.boundingRect(pts)
    return x + bx, y + by, bw, bh


@dataclass
class HogDetector:
    """OpenCV's default HOG people detector with non-maximum suppression."""

    min_score: float = 0.3
    nms_iou: float = 0.4
    name: str = "hog"

    def __post_init__(self) -> None:
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        out = []
        for f in frames:
            rects, weights = self._hog.detectMultiScale(
                _grey(f), winStride=(8, 8), padding=(8, 8), scale=1.05
            )
            boxes = [
                Box(int(x), int(y), int(w), int(h), float(1 / (1 + np.exp(-float(s)))))
                for (x, y, w, h), s in zip(rects, np.ravel(weights), strict=False)
            ]
            out.append(nms([b for b in boxes if b.score >= self.min_score], self.nms_iou))
        return out


def nms(boxes: list[Box], iou: float) -> list[Box]:
    """Greedy non-maximum suppression, highest score first."""
    kept: list[Box] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(b.iou(k) < iou for k in kept):
            kept.append(b)
    return kept


#: The raw detectors by name, as shipped before verification (``benchmarks/bench_detectors.py``
#: measures them against what :func:`build_detector` returns).
RAW_DETECTORS = {
    "crops": WholeFrameDetector,
    "background": BackgroundSubtractionDetector,
    "hog": HogDetector,
}


def build_detector(name: str) -> Detector:
    """A detector by name: ``crops``, ``background``, ``hog`` or ``onnx:PATH[?options]``.

    Every one except ``crops`` comes wrapped in the whole-person rules of
    :mod:`aioreid.platform.pipeline.verify`: boxes with no whole person (bare wall, legs
    only, two people in one box) never reach the crops. ``background`` also runs with a
    lower foreground threshold, lets wide blobs through for the two-person split and hugs
    its boxes to the foreground. ``docs/detection.md`` has the measured gain.
    ``onnx:PATH`` loads a YOLO-style ONNX person detector (see
    :mod:`aioreid.platform.pipeline.detect_onnx` for the options).
    """
    # Imported here: both modules import this one.
    from .verify import SHAPE_ONLY, VerifiedDetector, VerifyRules

    if name.startswith(ONNX_PREFIX):
        from .detect_onnx import build_onnx_detector

        return VerifiedDetector(build_onnx_detector(name.removeprefix(ONNX_PREFIX)), SHAPE_ONLY)
    if name == "crops":
        return WholeFrameDetector()
    if name == "background":
        threshold = 16
        inner = BackgroundSubtractionDetector(threshold=threshold, min_aspect=0.3, tight=True)
        return VerifiedDetector(inner, VerifyRules(fg_threshold=threshold))
    if name == "hog":
        return VerifiedDetector(HogDetector(), VerifyRules())
    raise ValueError(f"unknown detector {name!r}; choose {DETECTOR_HELP}")


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
