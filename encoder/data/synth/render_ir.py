"""Infrared rendering: appearance from body heat and garment materials, never from colour.

Skin is warm (bright), hair and accessories are near ambient (dark), and each garment's
intensity comes from its material and thickness (a wool coat insulates more than a cotton
t-shirt; leather has low emissivity and shows a reflected-light sheen). Two people who differ
only in garment colours therefore look the same here: RGB↔IR is a real modality gap.
Output is one channel; the layouts write it as a 3-channel-identical JPEG like SYSU-MM01.
"""

from __future__ import annotations

import cv2
import numpy as np

from .attributes import IdentityAttributes
from .camera import (
    Camera,
    Occluder,
    finish,
)
from .crop import compose_crop, occluding_person
from .draw import fill, logo_poly, shrink
from .figure import Figure

#: Emission of a garment material with body heat behind it (0-255 before camera gain).
MATERIAL_IR: dict[str, float] = {
    "cotton": 178.0,
    "synthetic": 162.0,
    "wool": 142.0,
    "denim": 150.0,
    "leather": 104.0,
}
#: Thickness offset of each garment type (thicker = better insulated = darker).
THICKNESS_IR: dict[str, float] = {
    "t-shirt": 12.0,
    "shirt": 4.0,
    "dress": 8.0,
    "sweater": -12.0,
    "hoodie": -16.0,
    "jacket": -24.0,
    "coat": -44.0,
    "trousers": 0.0,
    "jeans": -4.0,
    "shorts": 6.0,
    "skirt": 2.0,
    "none": 0.0,
}
SHOES_IR: dict[str, float] = {
    "sneakers": 96.0,
    "boots": 78.0,
    "leather shoes": 82.0,
    "sandals": 150.0,
}


def material_levels(attrs: IdentityAttributes) -> dict[str, float]:
    """IR level of every figure material for this identity (colour never enters)."""
    upper = MATERIAL_IR[attrs.upper_material] + THICKNESS_IR[attrs.upper_type]
    lower = (
        MATERIAL_IR[attrs.lower_material] + THICKNESS_IR[attrs.lower_type]
        if attrs.lower_material != "none"
        else upper
    )
    hair = {"short": 118.0, "long": 92.0, "ponytail": 100.0, "bald": 226.0}[attrs.hair_style]
    return {
        "skin": 222.0,
        "skin_face": 236.0,
        "skin_hand": 208.0,
        "hair": hair,
        "upper": upper,
        "upper_light": upper + 6.0,
        "lower": lower,
        "shoes": SHOES_IR[attrs.shoes_type],
        "bag": 64.0,
        "hat": 104.0 if attrs.hat == "beanie" else 112.0,
        "eye": 205.0,
        "mouth": 218.0,
        "glasses": 48.0,
        "sunglasses": 44.0,
        "detail_dark": upper - 12.0,
    }


def _lvl(v: float) -> int:
    return int(min(255.0, max(0.0, v)))


def draw_figure_ir(canvas: np.ndarray, fig: Figure, attrs: IdentityAttributes) -> None:
    """Paint a projected figure onto a single-channel IR canvas in place."""
    lv = material_levels(attrs)
    leather = {
        "upper": attrs.upper_material == "leather",
        "lower": attrs.lower_material == "leather",
    }
    for part in fig.parts:
        v = lv[part.material]
        if part.material in ("glasses", "sunglasses"):
            fill(canvas, part.poly, _lvl(v))
            continue
        far = -8.0 if part.depth < -0.03 else 0.0
        if part.poly.shape[0] > 4 and part.material not in ("eye", "mouth"):
            wdt = float(np.ptp(part.poly[:, 0]))
            fill(canvas, part.poly, _lvl(v * 0.88 + far))
            if leather.get(part.material, False):  # low emissivity: reflected sheen band
                fill(canvas, shrink(part.poly, 0.3, 0.9, 0.2 * wdt), _lvl(v + 30.0 + far))
            else:
                fill(canvas, shrink(part.poly, 0.6, 0.92, 0.0), _lvl(v + far))
        else:
            fill(canvas, part.poly, _lvl(v + far))
        if part.name == "torso" and attrs.upper_pattern == "logo":
            lp = logo_poly(fig, attrs.pid)
            if lp is not None:  # printed ink: slightly different emissivity
                fill(canvas, lp, _lvl(v - 10.0))


def _occluder_ir(
    canvas: np.ndarray, occ: Occluder, cam: Camera, rng: np.random.Generator, h: int
) -> None:
    if occ.kind == "person":
        other, fig = occluding_person(occ, cam, rng, h)
        draw_figure_ir(canvas, fig, other)
        return
    x0, y0, x1, y1 = occ.rect
    level = int(40 + 90 * occ.shade)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), level, -1)


def render_ir(
    attrs: IdentityAttributes,
    rng: np.random.Generator,
    camera: Camera,
    size: tuple[int, int] = (256, 128),
) -> np.ndarray:
    """A detected-person crop of ``attrs`` seen by IR ``camera``: H×W uint8 (one channel)."""

    def figure(img: np.ndarray, fig: Figure, fx: float, gy: float, height_px: float) -> None:
        draw_figure_ir(img, fig, attrs)

    img = compose_crop(
        attrs, rng, camera, size, modality="ir", occluder=_occluder_ir, figure=figure
    )
    img = cv2.GaussianBlur(img, (0, 0), 0.8)  # thermal optics are soft
    return finish(img, camera, rng, lighting=float(rng.uniform(0.88, 1.12)))
