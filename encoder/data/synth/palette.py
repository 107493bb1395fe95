"""Named colours of the synthetic world: RGB values and the words captions may use for them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamedColour:
    """A palette colour: canonical name, RGB triple (0-255) and caption synonyms."""

    name: str
    rgb: tuple[int, int, int]
    synonyms: tuple[str, ...]

    @property
    def luminance(self) -> float:
        """Relative luminance in [0, 1] (Rec. 601 weights); drives sketch hatching."""
        r, g, b = self.rgb
        return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


#: Garment / accessory colours (12). The first synonym is the canonical caption word.
COLOURS: dict[str, NamedColour] = {
    c.name: c
    for c in (
        NamedColour("black", (28, 28, 30), ("black",)),
        NamedColour("white", (236, 236, 232), ("white", "off-white")),
        NamedColour("gray", (128, 128, 130), ("gray", "grey")),
        NamedColour("red", (196, 36, 40), ("red", "crimson")),
        NamedColour("blue", (52, 96, 200), ("blue", "light blue")),
        NamedColour("navy", (30, 40, 92), ("navy", "dark blue", "navy blue")),
        NamedColour("green", (48, 132, 64), ("green",)),
        NamedColour("yellow", (226, 200, 48), ("yellow",)),
        NamedColour("orange", (232, 118, 30), ("orange",)),
        NamedColour("pink", (230, 140, 170), ("pink",)),
        NamedColour("purple", (112, 56, 140), ("purple", "violet")),
        NamedColour("brown", (110, 70, 40), ("brown",)),
        NamedColour("beige", (208, 188, 150), ("beige", "khaki", "tan")),
    )
}

#: Hair colours, separate from garments (hair has its own vocabulary).
HAIR_COLOURS: dict[str, NamedColour] = {
    c.name: c
    for c in (
        NamedColour("black", (22, 20, 20), ("black", "dark")),
        NamedColour("brown", (86, 56, 34), ("brown", "brunette")),
        NamedColour("blond", (196, 164, 98), ("blond", "blonde", "fair")),
        NamedColour("gray", (150, 148, 146), ("gray", "grey", "silver")),
        NamedColour("red", (150, 60, 30), ("red", "ginger", "auburn")),
    )
}

#: Skin tones. Captions never mention them; they only drive RGB appearance.
SKIN_TONES: dict[str, tuple[int, int, int]] = {
    "light": (238, 204, 180),
    "medium": (210, 164, 128),
    "tan": (176, 126, 88),
    "dark": (112, 74, 50),
}


def colour_rgb(name: str, shade: float = 0.0) -> tuple[int, int, int]:
    """RGB of a garment colour, brightened (shade > 0) or darkened (< 0) by ``shade``."""
    r, g, b = COLOURS[name].rgb
    f = 1.0 + shade
    return (min(255, int(r * f)), min(255, int(g * f)), min(255, int(b * f)))


def synonyms(name: str, hair: bool = False) -> tuple[str, ...]:
    """All caption words for a colour name (garment palette unless ``hair``)."""
    table = HAIR_COLOURS if hair else COLOURS
    return table[name].synonyms
