"""Low-level drawing helpers shared by the RGB, IR and sketch renderers."""

from __future__ import annotations

import cv2
import numpy as np

from .figure import Figure

SHIFT = 2  # fixed-point bits for sub-pixel polygon drawing
_MUL = float(1 << SHIFT)


def pts(poly: np.ndarray) -> np.ndarray:
    """Float pixel polygon → int32 fixed-point points for cv2 (``shift=SHIFT``)."""
    return np.round(poly * _MUL).astype(np.int32)


def fill(canvas: np.ndarray, poly: np.ndarray, colour: tuple[int, ...] | int) -> None:
    """Anti-aliased, sub-pixel polygon fill."""
    cv2.fillPoly(canvas, [pts(poly)], colour, lineType=cv2.LINE_AA, shift=SHIFT)


def shrink(poly: np.ndarray, fx: float, fy: float, shift: float) -> np.ndarray:
    """``poly`` scaled about its centroid by (fx, fy) and moved ``shift`` pixels in x."""
    c = poly.mean(axis=0)
    out = (poly - c) * np.array([fx, fy], np.float32) + c
    out[:, 0] += shift
    return out


def logo_poly(fig: Figure, pid: int) -> np.ndarray | None:
    """Chest logo outline (its shape is fixed per identity), or None when not visible."""
    if fig.facing < 0.3:
        return None
    cx, cy = fig.anchors["chest_x"], fig.anchors["chest_y"]
    r = fig.scale * 0.035
    sx = max(0.3, fig.facing)
    kind = pid % 4
    if kind == 0:
        ts = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        shape = np.stack([np.cos(ts), np.sin(ts)], 1)
    elif kind == 1:
        shape = np.array([[-1, -0.7], [1, -0.7], [1, 0.7], [-1, 0.7]], np.float32)
    elif kind == 2:
        shape = np.array([[0, -1], [1, 0.8], [-1, 0.8]], np.float32)
    else:
        shape = np.array([[0, -1], [0.7, 0], [0, 1], [-0.7, 0]], np.float32)
    return (shape * np.array([r * sx, r], np.float32) + np.array([cx, cy], np.float32)).astype(
        np.float32
    )
