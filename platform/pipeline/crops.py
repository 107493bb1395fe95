"""Cut detections out of frames and score their quality.

Quality (0-1) = size term x sharpness term: ``min(1, h / good_height)`` times
``min(1, laplacian_variance / good_sharpness)``. Crops below ``min_quality`` or smaller than
``min_height`` x ``min_width`` are dropped before they cost an encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detect import Box


@dataclass(frozen=True)
class CropPolicy:
    pad: float = 0.05
    min_height: int = 32
    min_width: int = 12
    min_quality: float = 0.05
    good_height: int = 128
    good_sharpness: float = 60.0


def crop(frame: np.ndarray, box: Box, pad: float = 0.05) -> tuple[np.ndarray, Box]:
    """The padded crop, clipped to the frame, and the box it really covers."""
    h, w = frame.shape[:2]
    px, py = round(box.w * pad), round(box.h * pad)
    x0, y0 = max(0, box.x - px), max(0, box.y - py)
    x1, y1 = min(w, box.x + box.w + px), min(h, box.y + box.h + py)
    return np.ascontiguousarray(frame[y0:y1, x0:x1]), Box(x0, y0, x1 - x0, y1 - y0, box.score)


def quality(img: np.ndarray, policy: CropPolicy = CropPolicy()) -> float:
    """Size x sharpness score in [0, 1]."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    size = min(1.0, img.shape[0] / policy.good_height)
    return round(size * min(1.0, sharp / policy.good_sharpness), 4)


def accept(img: np.ndarray, q: float, policy: CropPolicy = CropPolicy()) -> bool:
    h, w = img.shape[:2]
    return h >= policy.min_height and w >= policy.min_width and q >= policy.min_quality
