"""Identity attributes of the synthetic world and their seeded sampler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from .palette import COLOURS, HAIR_COLOURS, SKIN_TONES

#: Salt of the per-identity attribute stream (keeps it apart from the image streams).
_ATTR_STREAM = 11

UPPER_TYPES = ("t-shirt", "shirt", "jacket", "coat", "hoodie", "sweater", "dress")
LOWER_TYPES = ("trousers", "jeans", "shorts", "skirt", "none")
PATTERNS = ("plain", "striped", "checked", "logo")
MATERIALS = ("cotton", "denim", "leather", "synthetic", "wool")
HAIR_STYLES = ("short", "long", "bald", "ponytail")
SHOE_TYPES = ("sneakers", "boots", "leather shoes", "sandals")
BAGS = ("backpack", "handbag", "shoulder bag", "none")
HATS = ("none", "cap", "beanie")
GLASSES = ("none", "glasses", "sunglasses")


@dataclass(frozen=True)
class IdentityAttributes:
    """Everything that defines what one synthetic person looks like.

    Categorical fields are caption-level attributes. The float fields are hidden body-shape
    and shade parameters (never captioned) that make two people with the same categorical
    attributes still look different. ``lower_*`` is ``"none"`` when the upper garment is a
    dress; ``*_color`` of an absent accessory is ``"none"``.
    """

    pid: int
    gender: str
    build: str
    height: str
    skin_tone: str
    hair_style: str
    hair_color: str
    upper_type: str
    upper_color: str
    upper_pattern: str
    pattern_color: str
    upper_material: str
    sleeves: str
    lower_type: str
    lower_color: str
    lower_material: str
    shoes_type: str
    shoes_color: str
    bag: str
    bag_color: str
    hat: str
    hat_color: str
    glasses: str
    height_scale: float = 1.0
    width_scale: float = 1.0
    head_scale: float = 1.0
    leg_ratio: float = 1.0
    upper_shade: float = 0.0
    lower_shade: float = 0.0
    stride: float = 1.0

    def to_dict(self) -> dict[str, str]:
        """All fields as strings (floats with 3 decimals): the manifest's attribute dict."""
        out: dict[str, str] = {}
        for k, v in asdict(self).items():
            out[k] = f"{v:.3f}" if isinstance(v, float) else str(v)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> IdentityAttributes:
        """Inverse of :meth:`to_dict`."""
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            raw = data[f.name]
            if f.type in ("int", int):
                kwargs[f.name] = int(raw)
            elif f.type in ("float", float):
                kwargs[f.name] = float(raw)
            else:
                kwargs[f.name] = str(raw)
        return cls(**kwargs)  # type: ignore[arg-type]

    @property
    def dark_upper(self) -> bool:
        """Whether the upper garment is dark (luminance below 0.35)."""
        return COLOURS[self.upper_color].luminance < 0.35


def _pick(rng: np.random.Generator, options: Sequence[str], weights: Sequence[float]) -> str:
    p = np.asarray(weights, dtype=float)
    return str(options[int(rng.choice(len(options), p=p / p.sum()))])


def _colour(rng: np.random.Generator) -> str:
    """A garment colour, the usual dark and neutral colours a little more likely."""
    names = list(COLOURS)
    base = {"black": 2.0, "white": 1.5, "gray": 1.5, "navy": 1.2}
    return _pick(rng, names, [base.get(n, 1.0) for n in names])


def _restricted_colour(rng: np.random.Generator, table: Mapping[str, float]) -> str:
    return _pick(rng, list(table), list(table.values()))


def _contrasting(rng: np.random.Generator, colour: str) -> str:
    """A second colour clearly different in luminance or hue from ``colour``."""
    lum = COLOURS[colour].luminance
    cands = [n for n in COLOURS if n != colour and abs(COLOURS[n].luminance - lum) > 0.2]
    if not cands:
        cands = [n for n in COLOURS if n != colour]
    return str(cands[int(rng.integers(len(cands)))])


def sample_identity(pid: int, seed: int) -> IdentityAttributes:
    """Sample one identity's attributes, deterministically from ``(seed, pid)``."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(pid) & 0xFFFFFFFF, _ATTR_STREAM])
    female = bool(rng.random() < 0.5)
    gender = "female" if female else "male"
    build = _pick(rng, ("slim", "average", "heavy"), (0.3, 0.45, 0.25))
    height_scale = float(rng.normal(0.94 if female else 1.0, 0.04))
    height = "short" if height_scale < 0.93 else ("tall" if height_scale > 1.03 else "average")
    width_scale = {"slim": 0.86, "average": 1.0, "heavy": 1.22}[build] * float(
        rng.uniform(0.95, 1.05)
    )
    skin_tone = _pick(rng, list(SKIN_TONES), (1, 1, 1, 1))

    if female:
        hair_style = _pick(rng, HAIR_STYLES, (0.25, 0.47, 0.03, 0.25))
    else:
        hair_style = _pick(rng, HAIR_STYLES, (0.72, 0.1, 0.13, 0.05))
    hair_color = _pick(rng, list(HAIR_COLOURS), (0.4, 0.3, 0.15, 0.1, 0.05))
    if hair_style == "bald":
        hair_color = "none"

    upper_w = (
        (0.2, 0.15, 0.15, 0.1, 0.12, 0.1, 0.18) if female else (0.26, 0.2, 0.2, 0.1, 0.14, 0.1, 0.0)
    )
    upper_type = _pick(rng, UPPER_TYPES, upper_w)
    material_table: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
        "t-shirt": (("cotton", "synthetic"), (0.8, 0.2)),
        "shirt": (("cotton", "denim", "synthetic"), (0.7, 0.15, 0.15)),
        "jacket": (("leather", "denim", "synthetic"), (0.3, 0.3, 0.4)),
        "coat": (("wool", "synthetic", "leather"), (0.6, 0.25, 0.15)),
        "hoodie": (("cotton", "synthetic"), (0.8, 0.2)),
        "sweater": (("wool", "cotton"), (0.8, 0.2)),
        "dress": (("cotton", "synthetic"), (0.6, 0.4)),
    }
    mats, mw = material_table[upper_type]
    upper_material = _pick(rng, mats, mw)
    if upper_material == "denim":
        upper_color = _restricted_colour(rng, {"blue": 0.5, "navy": 0.3, "black": 0.2})
    elif upper_material == "leather":
        upper_color = _restricted_colour(rng, {"black": 0.55, "brown": 0.35, "beige": 0.1})
    else:
        upper_color = _colour(rng)
    if upper_material in ("leather", "denim"):
        upper_pattern = "plain"
    elif upper_type in ("shirt", "coat", "dress"):
        upper_pattern = _pick(rng, ("plain", "striped", "checked"), (0.55, 0.2, 0.25))
    else:
        upper_pattern = _pick(rng, PATTERNS, (0.5, 0.2, 0.08, 0.22))
    pattern_color = _contrasting(rng, upper_color) if upper_pattern != "plain" else "none"
    if upper_type == "t-shirt":
        sleeves = "short"
    elif upper_type == "dress":
        sleeves = _pick(rng, ("short", "none"), (0.5, 0.5))
    else:
        sleeves = "long"

    if upper_type == "dress":
        lower_type, lower_color, lower_material = "none", "none", "none"
    else:
        lw = (0.3, 0.35, 0.12, 0.23, 0.0) if female else (0.45, 0.4, 0.15, 0.0, 0.0)
        lower_type = _pick(rng, LOWER_TYPES, lw)
        if lower_type == "jeans":
            lower_material = "denim"
            lower_color = _restricted_colour(
                rng, {"blue": 0.45, "navy": 0.25, "black": 0.2, "gray": 0.1}
            )
        elif lower_type == "trousers":
            lower_material = _pick(rng, ("cotton", "synthetic", "wool"), (0.5, 0.3, 0.2))
            lower_color = _restricted_colour(
                rng,
                {
                    "black": 0.3,
                    "gray": 0.2,
                    "navy": 0.15,
                    "beige": 0.15,
                    "brown": 0.1,
                    "white": 0.05,
                    "green": 0.05,
                },
            )
        elif lower_type == "shorts":
            lower_material = _pick(rng, ("cotton", "denim", "synthetic"), (0.5, 0.3, 0.2))
            lower_color = (
                _restricted_colour(rng, {"blue": 0.6, "navy": 0.2, "black": 0.2})
                if lower_material == "denim"
                else _colour(rng)
            )
        else:
            lower_material = _pick(
                rng, ("cotton", "synthetic", "denim", "leather"), (0.4, 0.35, 0.15, 0.1)
            )
            lower_color = _colour(rng)
        if lower_color == upper_color and rng.random() < 0.7:
            lower_color = _contrasting(rng, upper_color)

    bare_legs = lower_type in ("shorts", "skirt") or upper_type == "dress"
    shoes_type = _pick(rng, SHOE_TYPES, (0.5, 0.2, 0.2, 0.1 if bare_legs else 0.0))
    shoes_color = {
        "sneakers": lambda: _restricted_colour(
            rng, {"white": 0.4, "black": 0.25, "gray": 0.15, "red": 0.1, "blue": 0.1}
        ),
        "boots": lambda: _restricted_colour(rng, {"black": 0.6, "brown": 0.4}),
        "leather shoes": lambda: _restricted_colour(rng, {"black": 0.65, "brown": 0.35}),
        "sandals": lambda: _restricted_colour(rng, {"brown": 0.5, "black": 0.3, "beige": 0.2}),
    }[shoes_type]()

    bag = _pick(rng, BAGS, (0.3, 0.22 if female else 0.03, 0.15, 0.33))
    bag_color = (
        _restricted_colour(
            rng,
            {
                "black": 0.35,
                "brown": 0.15,
                "gray": 0.12,
                "navy": 0.1,
                "red": 0.08,
                "beige": 0.08,
                "green": 0.06,
                "pink": 0.06 if female else 0.0,
            },
        )
        if bag != "none"
        else "none"
    )
    hat = _pick(rng, HATS, (0.8, 0.12, 0.08))
    hat_color = _colour(rng) if hat != "none" else "none"
    glasses = _pick(rng, GLASSES, (0.7, 0.22, 0.08))

    return IdentityAttributes(
        pid=int(pid),
        gender=gender,
        build=build,
        height=height,
        skin_tone=skin_tone,
        hair_style=hair_style,
        hair_color=hair_color,
        upper_type=upper_type,
        upper_color=upper_color,
        upper_pattern=upper_pattern,
        pattern_color=pattern_color,
        upper_material=upper_material,
        sleeves=sleeves,
        lower_type=lower_type,
        lower_color=lower_color,
        lower_material=lower_material,
        shoes_type=shoes_type,
        shoes_color=shoes_color,
        bag=bag,
        bag_color=bag_color,
        hat=hat,
        hat_color=hat_color,
        glasses=glasses,
        height_scale=round(height_scale, 3),
        width_scale=round(width_scale, 3),
        head_scale=round(float(rng.uniform(0.92, 1.08)), 3),
        leg_ratio=round(float(rng.uniform(0.94, 1.06)), 3),
        upper_shade=round(float(rng.uniform(-0.12, 0.12)), 3),
        lower_shade=round(float(rng.uniform(-0.12, 0.12)), 3),
        stride=round(float(rng.uniform(0.8, 1.2)), 3),
    )
