"""Colour/intensity/edge histogram baseline: the non-learned floor for every modality.

Every input maps into one vector made of three blocks, each over ``STRIPES`` horizontal body
stripes:

* colour: per-stripe histogram of basic colour terms (pixels named by nearest prototype);
* intensity: per-stripe grey-level histogram;
* edges: per-stripe gradient-orientation histogram weighted by magnitude.

An RGB image fills all three blocks; an IR image fills intensity and edges (it has no colour);
a sketch fills edges only; a caption fills the colour block from the colour words it pairs with
garments. Blocks a modality cannot see stay zero, so cosine similarity compares only what both
sides share. Histograms are Hellinger-mapped (square root of L1-normalised counts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np

from aioreid.encoder.baselines.colour_names import COLOUR_TERMS, colour_term, name_pixels
from aioreid.encoder.data.records import Modality

STRIPES = 8
GREY_BINS = 16
ORIENT_BINS = 8
WORK_SIZE = (64, 128)  # (width, height) the image is resized to before histogramming

# Which stripes (of 8, top to bottom) a garment word in a caption covers.
REGION_STRIPES: dict[str, tuple[int, ...]] = {
    "head": (0,),
    "upper": (1, 2, 3),
    "lower": (4, 5, 6),
    "full": (1, 2, 3, 4, 5),
    "feet": (7,),
}
GARMENT_REGIONS: dict[str, str] = {
    **dict.fromkeys(["hair", "hat", "cap", "beanie"], "head"),
    **dict.fromkeys(
        [
            "shirt",
            "t-shirt",
            "tshirt",
            "tee",
            "top",
            "jacket",
            "coat",
            "hoodie",
            "sweater",
            "blouse",
            "jumper",
            "sweatshirt",
            "vest",
            "polo",
            "parka",
            "blazer",
            "cardigan",
        ],
        "upper",
    ),
    **dict.fromkeys(
        ["trousers", "pants", "jeans", "shorts", "skirt", "leggings", "slacks", "chinos"],
        "lower",
    ),
    **dict.fromkeys(["dress", "gown", "overalls"], "full"),
    **dict.fromkeys(["shoes", "sneakers", "boots", "trainers", "sandals", "heels"], "feet"),
}
_WORD = re.compile(r"[a-zA-Z][a-zA-Z\-]*")
_MAX_GAP = 4  # a colour word applies to the first garment word within this many words

BLOCKS = ("colour", "intensity", "edges")
_BLOCK_SIZES = {
    "colour": STRIPES * len(COLOUR_TERMS),
    "intensity": STRIPES * GREY_BINS,
    "edges": STRIPES * ORIENT_BINS,
}
DIM = sum(_BLOCK_SIZES.values())


def _hellinger(hist: np.ndarray) -> np.ndarray:
    """Per-stripe L1 normalisation, square root, then L2 over the whole block. An empty
    histogram (a caption naming no garment colour, an image with no edges) says nothing:
    it becomes flat, every bin equally likely, rather than a zero vector cosine cannot use."""
    h = hist.astype(np.float32)
    if not h.any():
        h[:] = 1.0
    h /= np.maximum(h.sum(axis=1, keepdims=True), 1e-12)
    h = np.sqrt(h).ravel()
    n = float(np.linalg.norm(h))
    return h / n if n > 0 else h


def _stripe_of_rows(height: int) -> np.ndarray:
    return np.minimum(np.arange(height) * STRIPES // height, STRIPES - 1)


def _stripe_hist(values: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Histogram of integer ``values`` (H×W, each in [0, bins)) per horizontal stripe."""
    h = values.shape[0]
    stripe = np.broadcast_to(_stripe_of_rows(h)[:, None], values.shape)
    flat = (stripe * bins + values).ravel()
    w = None if weights is None else weights.ravel()
    return np.bincount(flat, weights=w, minlength=STRIPES * bins).reshape(STRIPES, bins)


def colour_block(bgr: np.ndarray) -> np.ndarray:
    return _hellinger(_stripe_hist(name_pixels(bgr), len(COLOUR_TERMS)))


def intensity_block(grey: np.ndarray) -> np.ndarray:
    q = (grey.astype(np.int32) * GREY_BINS) // 256
    return _hellinger(_stripe_hist(q, GREY_BINS))


def edge_block(grey: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned orientation: dark-on-light == light-on-dark
    q = np.minimum((ang / np.pi * ORIENT_BINS).astype(np.int32), ORIENT_BINS - 1)
    return _hellinger(_stripe_hist(q, ORIENT_BINS, weights=mag))


def caption_colour_block(text: str) -> np.ndarray:
    """Colour block implied by a caption: each 'colour ... garment' pair paints its stripes."""
    hist = np.zeros((STRIPES, len(COLOUR_TERMS)), dtype=np.float32)
    words = _WORD.findall(text.lower())
    for i, word in enumerate(words):
        term = colour_term(word)
        if term is None:
            continue
        for later in words[i + 1 : i + 1 + _MAX_GAP]:
            region = GARMENT_REGIONS.get(later)
            if region is not None:
                hist[list(REGION_STRIPES[region]), COLOUR_TERMS.index(term)] += 1.0
                break
    return _hellinger(hist)


def _assemble(parts: dict[str, np.ndarray]) -> np.ndarray:
    out = np.zeros(DIM, dtype=np.float32)
    offset = 0
    for name in BLOCKS:
        size = _BLOCK_SIZES[name]
        if name in parts:
            out[offset : offset + size] = parts[name]
        offset += size
    n = float(np.linalg.norm(out))
    return out / n if n > 0 else out


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W or H×W×3 image, got shape {image.shape}")
    return cv2.resize(image, WORK_SIZE, interpolation=cv2.INTER_AREA)


def embed_image(image: np.ndarray, modality: Modality | str) -> np.ndarray:
    """Embed one image (BGR or grey uint8) as the given modality."""
    modality = Modality.parse(modality)
    if modality is Modality.TEXT:
        raise ValueError("embed_image got modality 'text'; use embed_text for captions")
    bgr = _as_bgr(image)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if modality is Modality.RGB:
        parts = {
            "colour": colour_block(bgr),
            "intensity": intensity_block(grey),
            "edges": edge_block(grey),
        }
    elif modality is Modality.IR:
        parts = {"intensity": intensity_block(grey), "edges": edge_block(grey)}
    else:
        parts = {"edges": edge_block(grey)}
    return _assemble(parts)


def embed_text(text: str) -> np.ndarray:
    if not text or not text.strip():
        raise ValueError("empty caption")
    return _assemble({"colour": caption_colour_block(text)})


def combine(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """A combined query: the normalised sum of its parts' vectors."""
    if not vectors:
        raise ValueError("a combined query needs at least one part")
    s = np.sum(np.stack(vectors), axis=0)
    n = float(np.linalg.norm(s))
    return (s / n if n > 0 else s).astype(np.float32)
