"""Hand-drawn-style sketches: a front view drawn from the figure geometry (not from an RGB
image's edges) as wobbly dark strokes on white, with hatching for dark garments and pattern
marks. Each call samples its own "artist" (ink, stroke width, wobble, hatch angle)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .attributes import IdentityAttributes
from .draw import SHIFT, fill, logo_poly, pts
from .figure import Figure, Part, Pose, build_figure
from .palette import COLOURS, HAIR_COLOURS


@dataclass(frozen=True)
class Artist:
    """Stroke style of one sketch."""

    ink: int
    width: int
    wobble: float
    hatch_angle: float
    hatch_gap: float
    double: float


def _artist(rng: np.random.Generator) -> Artist:
    return Artist(
        ink=int(rng.integers(10, 60)),
        width=int(rng.choice([1, 1, 2])),
        wobble=float(rng.uniform(0.35, 1.1)),
        hatch_angle=float(
            rng.uniform(math.radians(25), math.radians(65)) * (1 if rng.random() < 0.7 else -1)
        ),
        hatch_gap=float(rng.uniform(2.6, 3.6)),
        double=float(rng.uniform(0.0, 0.5)),
    )


def _luminance(attrs: IdentityAttributes, material: str) -> float:
    """How light a material is (1 white): decides the hatching density."""
    name = {
        "upper": attrs.upper_color,
        "upper_light": attrs.upper_color,
        "lower": attrs.lower_color,
        "shoes": attrs.shoes_color,
        "bag": attrs.bag_color,
        "hat": attrs.hat_color,
    }.get(material)
    if material == "hair":
        return HAIR_COLOURS[attrs.hair_color].luminance if attrs.hair_color != "none" else 1.0
    if name is None or name == "none":
        return 1.0
    return COLOURS[name].luminance


def _wobbly(
    poly: np.ndarray, rng: np.random.Generator, amp: float, step: float = 4.0, closed: bool = True
) -> np.ndarray:
    """Resample an outline every ``step`` px and jitter it smoothly by about ``amp`` px."""
    ring = np.concatenate([poly, poly[:1]]) if closed else poly
    seg = np.hypot(*np.diff(ring, axis=0).T)
    total = float(seg.sum())
    if total < 1.0:
        return ring
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(4, int(total / step))
    t = np.linspace(0.0, total, n)
    out = np.stack([np.interp(t, cum, ring[:, 0]), np.interp(t, cum, ring[:, 1])], axis=1)
    noise = rng.normal(0.0, amp, (n, 2))
    noise = (noise + np.roll(noise, 1, 0) + np.roll(noise, -1, 0)) / 1.8
    return (out + noise).astype(np.float32)


def _stroke(canvas: np.ndarray, line: np.ndarray, ink: int, width: int) -> None:
    cv2.polylines(canvas, [pts(line)], False, ink, width, cv2.LINE_AA, SHIFT)


def _clip_layer(
    canvas: np.ndarray, poly: np.ndarray, draw: Callable[[np.ndarray, np.ndarray], None]
) -> None:
    """Run ``draw(layer, offset)`` on a white layer and darken the canvas inside ``poly``."""
    h, w = canvas.shape[:2]
    x0, y0 = np.floor(poly.min(axis=0)).astype(int)
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = canvas[y0:y1, x0:x1]
    mask = np.zeros(roi.shape, np.uint8)
    cv2.fillPoly(mask, [pts(poly - np.array([x0, y0], np.float32))], 255, shift=SHIFT)
    layer = np.full(roi.shape, 255, np.uint8)
    draw(layer, np.array([x0, y0], np.float32))
    np.copyto(roi, np.minimum(roi, layer), where=mask > 0)


def _hatch(
    canvas: np.ndarray, poly: np.ndarray, art: Artist, lum: float, rng: np.random.Generator
) -> None:
    if lum >= 0.62:
        return
    gap = art.hatch_gap * (1.0 if lum < 0.3 else (1.5 if lum < 0.45 else 2.4))
    cross = lum < 0.2
    ink = min(200, art.ink + 50)

    def draw(layer: np.ndarray, off: np.ndarray) -> None:
        lh, lw = layer.shape
        angles = [art.hatch_angle] + ([-art.hatch_angle] if cross else [])
        for ang in angles:
            dx, dy = math.cos(ang), math.sin(ang)
            nx, ny = -dy, dx
            span = lh + lw
            k = -span
            while k < span:
                cx, cy = lw / 2 + nx * k, lh / 2 + ny * k
                a = (cx - dx * span, cy - dy * span)
                b = (cx + dx * span, cy + dy * span)
                jitter = float(rng.normal(0.0, 0.3))
                cv2.line(
                    layer,
                    (int(a[0]), int(a[1] + jitter)),
                    (int(b[0]), int(b[1])),
                    ink,
                    1,
                    cv2.LINE_AA,
                )
                k += gap

    _clip_layer(canvas, poly, draw)


def _pattern(
    canvas: np.ndarray,
    part: Part,
    fig: Figure,
    attrs: IdentityAttributes,
    art: Artist,
    rng: np.random.Generator,
) -> None:
    period = max(4.0, fig.scale * 0.034)
    ink = min(160, art.ink + 30)
    y_anchor = fig.anchors["shoulder_y"]
    x_anchor = fig.anchors["chest_x"]
    checked = attrs.upper_pattern == "checked"

    def draw(layer: np.ndarray, off: np.ndarray) -> None:
        lh, lw = layer.shape
        y = y_anchor - off[1]
        y -= math.floor(y / period) * period
        while y < lh:
            line = np.array([[0, y], [lw, y]], np.float32)
            _stroke(layer, _wobbly(line, rng, art.wobble * 0.6, closed=False), ink, 1)
            y += period
        if checked:
            x = x_anchor - off[0]
            x -= math.floor(x / period) * period
            while x < lw:
                line = np.array([[x, 0], [x, lh]], np.float32)
                _stroke(layer, _wobbly(line, rng, art.wobble * 0.6, closed=False), ink, 1)
                x += period

    _clip_layer(canvas, part.poly, draw)


def render_sketch(
    attrs: IdentityAttributes, rng: np.random.Generator, size: tuple[int, int] = (256, 128)
) -> np.ndarray:
    """A front-view sketch of ``attrs``: H×W uint8, white paper, dark strokes."""
    h, w = size
    art = _artist(rng)
    pose = Pose(
        phase=float(rng.uniform(0.0, 2 * math.pi)),
        yaw=float(rng.normal(0.0, 0.12)),
        amplitude=float(rng.uniform(0.0, 0.3)),
        arm_out=float(rng.uniform(0.0, 0.12)),
    )
    height_px = h * float(rng.uniform(0.84, 0.92)) / attrs.height_scale**0.7
    fig = build_figure(
        attrs,
        pose,
        height_px,
        w / 2 + float(rng.normal(0.0, 2.0)),
        h * float(rng.uniform(0.955, 0.98)),
    )
    canvas = np.full((h, w), 255, np.uint8)
    for part in fig.parts:
        mat = part.material
        if mat in ("eye", "sunglasses"):
            fill(canvas, part.poly, art.ink)
            continue
        if mat == "mouth":
            c = part.poly.mean(axis=0)
            rx = float(np.ptp(part.poly[:, 0])) / 2
            _stroke(
                canvas,
                np.array([[c[0] - rx, c[1]], [c[0] + rx, c[1]]], np.float32),
                art.ink + 40,
                1,
            )
            continue
        if mat == "glasses":
            _stroke(canvas, _wobbly(part.poly, rng, 0.2, step=2.0), art.ink, 1)
            continue
        fill(canvas, part.poly, 255)
        if mat == "upper" and attrs.upper_pattern in ("striped", "checked"):
            _pattern(canvas, part, fig, attrs, art, rng)
        elif mat not in ("skin", "skin_face", "skin_hand"):
            _hatch(canvas, part.poly, art, _luminance(attrs, mat), rng)
        if part.name == "torso" and attrs.upper_pattern == "logo":
            lp = logo_poly(fig, attrs.pid)
            if lp is not None:
                _stroke(canvas, _wobbly(lp, rng, 0.3, step=2.0), art.ink, 1)
        width = art.width if part.poly.shape[0] > 4 else 1
        _stroke(canvas, _wobbly(part.poly, rng, art.wobble), art.ink, width)
        if rng.random() < art.double:
            _stroke(canvas, _wobbly(part.poly, rng, art.wobble * 1.4), min(200, art.ink + 70), 1)
    if art.width == 1:
        canvas = cv2.GaussianBlur(canvas, (3, 3), 0.5)
    return canvas
