"""Basic colour terms shared by the pixel classifier and the caption parser.

Pixels are named by their nearest prototype in CIE Lab, so an image and a caption can be put
into the same "which colour where" histogram without any learning.
"""

from __future__ import annotations

import cv2
import numpy as np

# Eleven basic colour terms (Berlin & Kay) with sRGB prototypes.
COLOUR_PROTOTYPES: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (235, 235, 235),
    "gray": (128, 128, 128),
    "red": (200, 30, 35),
    "orange": (235, 130, 30),
    "yellow": (235, 215, 50),
    "green": (40, 140, 60),
    "blue": (35, 70, 170),
    "purple": (120, 50, 140),
    "pink": (235, 140, 175),
    "brown": (120, 75, 40),
}
COLOUR_TERMS: tuple[str, ...] = tuple(COLOUR_PROTOTYPES)

# Words a caption may use for each basic term.
COLOUR_SYNONYMS: dict[str, str] = {
    "grey": "gray",
    "silver": "gray",
    "charcoal": "gray",
    "navy": "blue",
    "teal": "blue",
    "cyan": "blue",
    "turquoise": "blue",
    "maroon": "red",
    "crimson": "red",
    "burgundy": "red",
    "scarlet": "red",
    "olive": "green",
    "khaki": "brown",
    "beige": "brown",
    "tan": "brown",
    "violet": "purple",
    "lilac": "purple",
    "magenta": "pink",
    "cream": "white",
    "ivory": "white",
    "golden": "yellow",
    "gold": "yellow",
}


def _prototype_lab() -> np.ndarray:
    rgb = np.array(list(COLOUR_PROTOTYPES.values()), dtype=np.uint8).reshape(1, -1, 3)
    return cv2.cvtColor(rgb[..., ::-1].copy(), cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)


_PROTO_LAB = _prototype_lab()


def name_pixels(bgr: np.ndarray) -> np.ndarray:
    """Index into COLOUR_TERMS of the nearest prototype for every pixel of a BGR image."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    d = (lab[:, None, :] - _PROTO_LAB[None, :, :]) ** 2
    return d.sum(-1).argmin(-1).reshape(bgr.shape[:2])


def colour_term(word: str) -> str | None:
    """The basic colour term a caption word denotes, or None."""
    w = word.lower().strip(".,;:!?\"'()")
    if w in COLOUR_PROTOTYPES:
        return w
    return COLOUR_SYNONYMS.get(w)
