"""RGB rendering: colours, garment patterns and two-tone shading of a posed figure over the
camera's scene, then the camera's lighting and degradation."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .attributes import IdentityAttributes, sample_identity
from .camera import (
    Camera,
    Occluder,
    background,
    finish,
    sample_pose,
)
from .crop import compose_crop, occluding_person
from .draw import SHIFT, fill, logo_poly, pts, shrink
from .figure import Figure, Part, build_figure
from .palette import COLOURS, HAIR_COLOURS, SKIN_TONES, colour_rgb

_SHADED = {"upper", "lower", "skin", "hair", "bag", "shoes", "hat"}


def _scaled(c: tuple[int, ...], f: float) -> tuple[int, ...]:
    return tuple(min(255, max(0, int(v * f))) for v in c)


def material_colours(attrs: IdentityAttributes) -> dict[str, tuple[int, ...]]:
    """RGB colour of every figure material for this identity."""
    skin = SKIN_TONES[attrs.skin_tone]
    upper = colour_rgb(attrs.upper_color, attrs.upper_shade)
    lower = (
        colour_rgb(attrs.lower_color, attrs.lower_shade) if attrs.lower_color != "none" else upper
    )
    hair = HAIR_COLOURS[attrs.hair_color].rgb if attrs.hair_color != "none" else skin
    return {
        "skin": skin,
        "skin_face": skin,
        "skin_hand": _scaled(skin, 0.95),
        "hair": hair,
        "upper": upper,
        "upper_light": _scaled(upper, 1.25) if sum(upper) < 600 else _scaled(upper, 0.85),
        "lower": lower,
        "shoes": COLOURS[attrs.shoes_color].rgb,
        "bag": COLOURS[attrs.bag_color].rgb if attrs.bag_color != "none" else (0, 0, 0),
        "hat": COLOURS[attrs.hat_color].rgb if attrs.hat_color != "none" else (0, 0, 0),
        "eye": (35, 28, 26),
        "mouth": (int(skin[0] * 0.75), int(skin[1] * 0.55), int(skin[2] * 0.55)),
        "glasses": (30, 30, 34),
        "sunglasses": (18, 18, 22),
        "detail_dark": _scaled(upper, 0.65),
        "pattern": (COLOURS[attrs.pattern_color].rgb if attrs.pattern_color != "none" else upper),
    }


def _pattern(
    canvas: np.ndarray, part: Part, fig: Figure, attrs: IdentityAttributes, colour: tuple[int, ...]
) -> None:
    """Stripes or checks clipped to ``part``'s polygon."""
    h, w = canvas.shape[:2]
    x0, y0 = np.floor(part.poly.min(axis=0)).astype(int)
    x1, y1 = np.ceil(part.poly.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = canvas[y0:y1, x0:x1]
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [pts(part.poly - np.array([x0, y0], np.float32))], 255, shift=SHIFT)
    layer = roi.copy()
    period = max(3.0, fig.scale * 0.03)
    thick = max(1, round(period * 0.38))
    y_anchor = fig.anchors["shoulder_y"]
    k0 = math.floor((y0 - y_anchor) / period)
    k1 = math.ceil((y1 - y_anchor) / period)
    for k in range(k0, k1 + 1):
        y = round(y_anchor + k * period) - y0
        cv2.line(layer, (0, y), (x1 - x0, y), colour, thick)
    if attrs.upper_pattern == "checked":
        x_anchor = fig.anchors["chest_x"]
        xp = period * max(0.35, abs(fig.facing))
        for k in range(math.floor((x0 - x_anchor) / xp), math.ceil((x1 - x_anchor) / xp) + 1):
            x = round(x_anchor + k * xp) - x0
            cv2.line(layer, (x, 0), (x, y1 - y0), colour, thick)
    np.copyto(roi, layer, where=mask[:, :, None] > 0)


def draw_figure_rgb(canvas: np.ndarray, fig: Figure, attrs: IdentityAttributes) -> None:
    """Paint a projected figure onto an RGB canvas in place (painter's order)."""
    cols = material_colours(attrs)
    patterned = attrs.upper_pattern in ("striped", "checked")
    for part in fig.parts:
        col = cols[part.material]
        if part.material == "glasses":
            cv2.polylines(canvas, [pts(part.poly)], True, col, 1, cv2.LINE_AA, SHIFT)
            continue
        far = 0.86 if part.depth < -0.03 else 1.0
        if part.material in _SHADED and part.poly.shape[0] > 4:
            wdt = float(np.ptp(part.poly[:, 0]))
            fill(canvas, part.poly, _scaled(col, 0.72 * far))
            fill(canvas, shrink(part.poly, 0.62, 0.94, -0.1 * wdt), _scaled(col, 1.0 * far))
        else:
            fill(canvas, part.poly, _scaled(col, far))
        if part.material == "upper" and patterned:
            _pattern(canvas, part, fig, attrs, _scaled(cols["pattern"], far))
        if part.name == "torso" and attrs.upper_pattern == "logo":
            lp = logo_poly(fig, attrs.pid)
            if lp is not None:
                fill(canvas, lp, cols["pattern"])


def _shadow(canvas: np.ndarray, fx: float, gy: float, rx: float) -> None:
    h, w = canvas.shape[:2]
    ry = max(2.0, rx * 0.18)
    x0, x1 = int(max(0, fx - rx)), int(min(w, fx + rx + 1))
    y0, y1 = int(max(0, gy - ry)), int(min(h, gy + ry + 1))
    if x1 <= x0 or y1 <= y0:
        return
    roi = canvas[y0:y1, x0:x1]
    m = np.zeros(roi.shape[:2], np.uint8)
    cv2.ellipse(m, (int(fx - x0), int(gy - y0)), (int(rx), int(ry)), 0, 0, 360, 1, -1)
    roi[m > 0] = (roi[m > 0] * 0.7).astype(np.uint8)


def _occluder_rgb(
    canvas: np.ndarray, occ: Occluder, cam: Camera, rng: np.random.Generator, h: int
) -> None:
    if occ.kind == "person":
        other, fig = occluding_person(occ, cam, rng, h)
        draw_figure_rgb(canvas, fig, other)
        return
    names = list(COLOURS)
    col = COLOURS[names[int(occ.shade * len(names)) % len(names)]].rgb
    x0, y0, x1, y1 = occ.rect
    cv2.rectangle(canvas, (x0, y0), (x1, y1), _scaled(col, 0.8), -1)
    cv2.rectangle(canvas, (x0, y0), (x1, y0 + 3), col, -1)


def render_rgb(
    attrs: IdentityAttributes,
    rng: np.random.Generator,
    camera: Camera,
    size: tuple[int, int] = (256, 128),
) -> np.ndarray:
    """A detected-person crop of ``attrs`` seen by RGB ``camera``: H×W×3 uint8, RGB order."""

    def figure(img: np.ndarray, fig: Figure, fx: float, gy: float, height_px: float) -> None:
        _shadow(img, fx, gy, height_px * 0.16)
        draw_figure_rgb(img, fig, attrs)

    img = compose_crop(
        attrs, rng, camera, size, modality="rgb", occluder=_occluder_rgb, figure=figure
    )
    return finish(img, camera, rng, lighting=float(rng.uniform(0.85, 1.15)))


def render_distractor(
    camera: Camera, rng: np.random.Generator, junk: bool = False, size: tuple[int, int] = (256, 128)
) -> np.ndarray:
    """A Market-style non-identity crop from RGB ``camera``.

    ``junk=False`` (pid 0): a false detection (background only, a far-away passer-by or a
    sliver of one at the border). ``junk=True`` (pid -1): a badly aligned box cutting a
    passer-by (upper body only, legs only, or half outside the crop).
    """
    h, w = size
    off = int(rng.integers(0, 2 * w + 1))
    img = np.ascontiguousarray(background(camera, h, 3 * w)[:, off : off + w])
    other = sample_identity(2_000_000 + int(rng.integers(0, 1_000_000)), camera.seed)
    pose = sample_pose(camera, rng)
    if junk:
        mode = int(rng.integers(3))
        if mode == 0:  # upper body only
            fig = build_figure(
                other,
                pose,
                h * float(rng.uniform(1.3, 1.8)),
                w / 2,
                h * float(rng.uniform(1.5, 2.0)),
            )
        elif mode == 1:  # legs only
            fig = build_figure(
                other,
                pose,
                h * float(rng.uniform(1.6, 2.0)),
                w / 2,
                h * float(rng.uniform(0.9, 1.0)),
            )
        else:  # half outside
            fig = build_figure(other, pose, h * 0.9, w * float(rng.choice([-0.05, 1.05])), h * 0.97)
        draw_figure_rgb(img, fig, other)
    else:
        mode = int(rng.integers(3))
        if mode == 1:  # a small far-away person
            fig = build_figure(
                other,
                pose,
                h * float(rng.uniform(0.25, 0.4)),
                w * float(rng.uniform(0.2, 0.8)),
                h * float(rng.uniform(0.6, 0.8)),
            )
            draw_figure_rgb(img, fig, other)
        elif mode == 2:  # a sliver at the border
            fig = build_figure(
                other, pose, h * 0.95, w * float(rng.choice([-0.22, 1.22])), h * 0.98
            )
            draw_figure_rgb(img, fig, other)
    return finish(img, camera, rng, lighting=float(rng.uniform(0.85, 1.15)))
