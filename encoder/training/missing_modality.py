"""Missing-modality synthesis: IR-like images and sketch-like line art from an RGB crop.

AIO trains one model on RGB, IR, sketch and text, but most training images have no paired IR
frame or sketch. Following the paper, missing modalities are synthesised from RGB:

* :func:`channel_augment` — IR ← RGB by channel augmentation (Ye et al., ICCV 2021): one of
  the R/G/B channels, picked at random, replicated to three channels; sometimes plain
  grayscale instead; optionally a random rectangle erased with the image mean.
* :func:`line_art` — sketch ← RGB. The paper's line-art generator is UNKNOWN; **OUR CHOICE**
  is a deterministic edge operator: XDoG (difference of Gaussians with sharpening and a soft
  tanh threshold, Winnemöller et al. 2012) or Canny, both on a smoothed image, dark lines on
  white. :func:`register_line_art` plugs in another generator (e.g. a learned model).

Everything works on ``uint8`` numpy arrays and is deterministic given a
``numpy.random.Generator``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2
import numpy as np

__all__ = [
    "LineArtFn",
    "canny",
    "channel_augment",
    "jitter_strokes",
    "line_art",
    "line_art_methods",
    "random_rectangle",
    "register_line_art",
    "xdog",
]

#: A line-art generator: ``fn(rgb HxWx3 uint8, rng or None) -> HxW uint8`` (dark on white).
LineArtFn = Callable[[np.ndarray, "np.random.Generator | None"], np.ndarray]

# OUR CHOICE defaults of the channel augmentation (CAJ's ChannelAdapGray picks among R, G, B and
# grayscale uniformly, i.e. grayscale 1/4 of the time; its channel erasing uses p = 0.5 — we
# default erasing off because the training transform already applies random erasing).
P_GRAY = 0.25
P_ERASE = 0.0
# Random-erasing rectangle (Zhong et al. 2020): area fraction and aspect-ratio ranges.
ERASE_AREA = (0.02, 0.4)
ERASE_ASPECT = (0.3, 3.3)


# -- validation ---------------------------------------------------------------------------------
def _check_rgb(image: np.ndarray, name: str, *, allow_gray: bool = False) -> np.ndarray:
    """Validate a uint8 HxWx3 (or HxW when ``allow_gray``) image; return it C-contiguous."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {image.dtype}")
    ok = (image.ndim == 3 and image.shape[2] == 3) or (allow_gray and image.ndim == 2)
    if not ok:
        want = "HxWx3 or HxW" if allow_gray else "HxWx3"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(image.shape)}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{name}: image too small: {tuple(image.shape)}")
    return np.ascontiguousarray(image)


def _check_prob(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


_LOCAL = threading.local()


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A per-thread reusable float32 buffer. Reusing it avoids allocating and freeing large
    arrays on every call: glibc hands such memory back to the OS and the page faults of
    re-touching it cost more than the filters themselves (about 3x slower XDoG)."""
    buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] | None = getattr(_LOCAL, "bufs", None)
    if buffers is None:
        buffers = _LOCAL.bufs = {}
    key = (name, tuple(shape))
    buf = buffers.get(key)
    if buf is None:
        if len(buffers) > 64:  # many distinct image sizes: start over rather than grow
            buffers.clear()
        buf = buffers[key] = np.empty(shape, np.float32)
    return buf


def _to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


# -- shared helpers -----------------------------------------------------------------------------
def random_rectangle(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    area: tuple[float, float] = ERASE_AREA,
    aspect: tuple[float, float] = ERASE_ASPECT,
    attempts: int = 10,
) -> tuple[int, int, int, int] | None:
    """A random ``(top, left, h, w)`` box covering ``area`` of the image with log-uniform
    aspect ratio ``aspect`` (random-erasing style); ``None`` when no box fitted."""
    total = height * width
    log_lo, log_hi = np.log(aspect[0]), np.log(aspect[1])
    for _ in range(attempts):
        target = total * rng.uniform(area[0], area[1])
        ratio = float(np.exp(rng.uniform(log_lo, log_hi)))
        h = round(np.sqrt(target * ratio))
        w = round(np.sqrt(target / ratio))
        if 0 < h < height and 0 < w < width:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, int(h), int(w)
    return None


# -- IR ← RGB -----------------------------------------------------------------------------------
def channel_augment(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    p_gray: float = P_GRAY,
    p_erase: float = P_ERASE,
) -> np.ndarray:
    """IR-like HxWx3 uint8 image from an RGB HxWx3 uint8 image (channel augmentation).

    With probability ``p_gray`` (OUR CHOICE default 0.25) the output is the luminance
    grayscale; otherwise one of R, G, B (uniformly) replicated to three channels. With
    probability ``p_erase`` (OUR CHOICE default 0.0) a random rectangle is filled with the
    image's mean value — one scalar, so the three channels stay identical.
    """
    rgb = _check_rgb(rgb, "channel_augment")
    p_gray = _check_prob(p_gray, "p_gray")
    p_erase = _check_prob(p_erase, "p_erase")
    if rng.random() < p_gray:
        single = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        single = np.ascontiguousarray(rgb[:, :, int(rng.integers(0, 3))])
    if p_erase > 0.0 and rng.random() < p_erase:
        box = random_rectangle(single.shape[0], single.shape[1], rng)
        if box is not None:
            single = single.copy()
            top, left, h, w = box
            single[top : top + h, left : left + w] = np.uint8(round(float(single.mean())))
    return cv2.merge([single, single, single])


# -- sketch ← RGB -------------------------------------------------------------------------------
def _auto_sigma(height: int) -> float:
    """OUR CHOICE: inner Gaussian sigma scaled with image height (0.9 at 256 px, min 0.5)."""
    return max(0.5, 0.9 * height / 256.0)


def xdog(
    rgb: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    sigma: float | None = None,
    k: float = 1.6,
    tau: float = 0.985,
    epsilon: float = -0.005,
    phi: float = 120.0,
) -> np.ndarray:
    """XDoG line art (HxW uint8, dark lines on white).

    Per colour channel ``D = G_sigma(I) - tau * G_{k sigma}(I)`` on [0, 1] intensities, then
    the darkest response over channels (OUR CHOICE: per-channel so that iso-luminant colour
    edges, e.g. skin against a background, still draw a line). Output is 1 where
    ``D >= epsilon`` and ``1 + tanh(phi (D - epsilon))`` below it (soft ramp). ``tau`` < 1
    sharpens; ``tau`` close to 1 keeps flat regions white. Defaults are OUR CHOICE, tuned for
    person crops; ``sigma`` defaults to :func:`_auto_sigma` of the image height. A grayscale
    input is used as is. ``rng`` is unused (the operator is deterministic).
    """
    del rng
    h, w = rgb.shape[:2]
    shape = rgb.shape
    img = _scratch("xdog_img", shape)
    np.multiply(rgb, np.float32(1.0 / 255.0), out=img)
    s = _auto_sigma(h) if sigma is None else float(sigma)
    g1 = cv2.GaussianBlur(img, (0, 0), s, dst=_scratch("xdog_g1", shape))
    g2 = cv2.GaussianBlur(img, (0, 0), s * k, dst=_scratch("xdog_g2", shape))
    d = cv2.addWeighted(g1, 1.0, g2, -tau, -epsilon, dst=g1)
    if d.ndim == 3:
        m = _scratch("xdog_min", (h, w))
        np.minimum(d[:, :, 0], d[:, :, 1], out=m)
        np.minimum(m, d[:, :, 2], out=m)
        d = m
    np.minimum(d, 0.0, out=d)
    d *= phi
    np.tanh(d, out=d)
    d += 1.0
    d *= 255.0
    return d.astype(np.uint8)


def canny(
    rgb: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    sigma: float | None = None,
    low_ratio: float = 0.66,
    high_ratio: float = 1.33,
) -> np.ndarray:
    """Canny line art (HxW uint8, 1-px dark lines on white) on a Gaussian-smoothed image.

    On an RGB input OpenCV's Canny takes the strongest gradient over the colour channels, so
    colour edges of equal luminance are kept. Thresholds (OUR CHOICE) follow the median rule
    on the smoothed luminance: ``low = low_ratio * median``, ``high = high_ratio * median``,
    clipped to [10, 250] and [30, 255]. ``rng`` is unused.
    """
    del rng
    s = _auto_sigma(rgb.shape[0]) if sigma is None else float(sigma)
    smooth = cv2.GaussianBlur(rgb, (0, 0), s)
    med = float(np.median(_to_gray(smooth)))
    low = float(np.clip(low_ratio * med, 10, 250))
    high = float(np.clip(high_ratio * med, max(30.0, low + 1), 255))
    edges = cv2.Canny(smooth, low, high, L2gradient=True)
    return cv2.bitwise_not(edges)


_LINE_ART: dict[str, LineArtFn] = {"xdog": xdog, "canny": canny}


def register_line_art(name: str, fn: LineArtFn, *, overwrite: bool = False) -> None:
    """Register a line-art generator under ``name`` for :func:`line_art` (e.g. a learned
    model wrapped as ``fn(rgb, rng) -> HxW uint8``)."""
    if not name or not isinstance(name, str):
        raise ValueError("line-art method name must be a non-empty string")
    if not callable(fn):
        raise ValueError(f"line-art method {name!r}: fn must be callable")
    if name in _LINE_ART and not overwrite:
        raise ValueError(f"line-art method {name!r} already registered (pass overwrite=True)")
    _LINE_ART[name] = fn


def line_art_methods() -> tuple[str, ...]:
    """Names accepted by ``line_art(method=...)``."""
    return tuple(sorted(_LINE_ART))


def jitter_strokes(
    lines: np.ndarray,
    rng: np.random.Generator,
    *,
    amplitude: float = 1.5,
    grid: int = 6,
    p_thick: float = 0.3,
) -> np.ndarray:
    """Hand-drawn look for a line map: a smooth random displacement field of up to
    ``amplitude`` px (a ``grid``-cell coarse field, bicubically upsampled) and, with
    probability ``p_thick``, strokes thickened by one pixel. OUR CHOICE parameters."""
    h, w = lines.shape
    out = lines
    if amplitude > 0:
        coarse = rng.uniform(-amplitude, amplitude, size=(2, grid, max(2, grid // 2)))
        coarse = coarse.astype(np.float32)
        map_x = cv2.resize(
            coarse[0], (w, h), dst=_scratch("jit_x", (h, w)), interpolation=cv2.INTER_CUBIC
        )
        map_y = cv2.resize(
            coarse[1], (w, h), dst=_scratch("jit_y", (h, w)), interpolation=cv2.INTER_CUBIC
        )
        map_x += np.arange(w, dtype=np.float32)[None, :]
        map_y += np.arange(h, dtype=np.float32)[:, None]
        out = cv2.remap(out, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if p_thick > 0 and rng.random() < p_thick:
        out = cv2.erode(out, np.ones((2, 2), np.uint8))  # min filter: dark lines grow
    return out


def line_art(
    rgb: np.ndarray,
    *,
    method: str = "xdog",
    rng: np.random.Generator | None = None,
    jitter: bool = False,
    **params: float,
) -> np.ndarray:
    """Sketch-like HxW uint8 image (dark lines on white) from an RGB HxWx3 (or HxW) uint8
    image, with the registered generator ``method`` ("xdog", "canny", or one added by
    :func:`register_line_art`). ``params`` go to the generator. With ``jitter`` and an
    ``rng``, strokes get a small random displacement (:func:`jitter_strokes`)."""
    rgb = _check_rgb(rgb, "line_art", allow_gray=True)
    try:
        fn = _LINE_ART[method]
    except KeyError:
        raise ValueError(
            f"unknown line-art method {method!r}; expected one of: {', '.join(line_art_methods())}"
        ) from None
    out = fn(rgb, rng, **params) if params else fn(rgb, rng)
    if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == rgb.shape[:2]):
        got = getattr(out, "shape", type(out).__name__), getattr(out, "dtype", None)
        raise ValueError(
            f"line-art method {method!r} must return a {rgb.shape[:2]} uint8 array, got {got}"
        )
    if jitter:
        if rng is None:
            raise ValueError("line_art(jitter=True) needs an rng")
        out = jitter_strokes(out, rng)
    return out
