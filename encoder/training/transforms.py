"""Image loading and the training / evaluation transforms (numpy + OpenCV, then a tensor).

Every transform takes a ``uint8`` image (HxWx3 RGB, or HxW grayscale) and returns a float
tensor 3xHxW normalised with the ImageNet mean/std. Randomness comes from a
``numpy.random.Generator`` — either passed per call or the transform's own, seeded one — so a
run is reproducible under a seed, also across DataLoader workers.

Training recipe (the ReID strong baseline, Luo et al. 2019; parameters OUR CHOICE where the
paper says nothing): resize, random horizontal flip (p 0.5), zero-pad by 10 px (scaled with the
height, 10 at 256) and random crop back, mild colour jitter for RGB only, random erasing
(p 0.5). IR and sketch images are made grayscale and replicated to three channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model.tokenizers import IMAGENET_MEAN, IMAGENET_STD
from aioreid.encoder.training.synthesis import ERASE_AREA, ERASE_ASPECT, random_rectangle

__all__ = [
    "DEFAULT_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STANDARD_SIZE",
    "EvalTransform",
    "ImageReadError",
    "TrainTransform",
    "check_size",
    "denormalize",
    "eval_transform",
    "load_image",
    "resize",
    "to_three_channels",
    "train_transform",
]

#: (height, width). OUR CHOICE: 128x64 for CPU training; 256x128 is the standard ReID size.
DEFAULT_SIZE: tuple[int, int] = (128, 64)
STANDARD_SIZE: tuple[int, int] = (256, 128)

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)
# normalised = pixel * _SCALE - _SHIFT, per channel (pixel in 0-255)
_SCALE = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD]).view(3, 1, 1)
_SHIFT = torch.tensor([m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]).view(
    3, 1, 1
)
# random-erasing fill: the ImageNet mean pixel (RGB) or its gray value (IR / sketch)
_FILL_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)
_FILL_GRAY = (round(255 * sum(IMAGENET_MEAN) / 3),) * 3
_GRAY_MODALITIES = (Modality.IR, Modality.SKETCH)


class ImageReadError(OSError):
    """An image file exists but could not be decoded (corrupt, truncated or not an image)."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB HxWx3 ``uint8`` array (grayscale files are replicated).

    Raises ``FileNotFoundError`` when ``path`` does not exist and :class:`ImageReadError`
    naming the file when it cannot be decoded.
    """
    p = Path(path)
    try:
        raw = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {p}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ImageReadError(f"cannot read image file {p}: {exc.strerror or exc}") from None
    img = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    if img is None or img.size == 0:
        why = "empty file" if raw.size == 0 else "corrupt or not an image"
        raise ImageReadError(f"cannot decode image file {p} ({why}, {raw.size} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"transform: expected a uint8 numpy image, got {got}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"transform: expected HxW, HxWx1 or HxWx3, got {tuple(image.shape)}")
    return image


def to_three_channels(image: np.ndarray, *, gray: bool = False) -> np.ndarray:
    """HxWx3 ``uint8``: grayscale/HxWx1 inputs replicated; with ``gray`` an RGB input is first
    turned into luminance (used for IR and sketch)."""
    _check_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and gray:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 2:
        return cv2.merge([image, image, image])
    return image


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (height, width): area interpolation when shrinking, else linear."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = image.shape[0] > h and image.shape[1] > w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def _normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 (or float 0-255) HxWx3 → normalised float tensor 3xHxW."""
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return chw.to(torch.float32).mul_(_SCALE).sub_(_SHIFT)


def denormalize(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of the normalisation: a 3xHxW tensor → HxWx3 float array in [0, 255]."""
    x = tensor.detach().cpu().numpy().transpose(1, 2, 0)
    return (x * _STD + _MEAN) * 255.0


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Validate a (height, width) pair; return it as ints."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8x8, got {h}x{w}")
    return h, w


@dataclass
class EvalTransform:
    """Resize to ``size`` (height, width) and normalise; IR/sketch made gray and replicated."""

    size: tuple[int, int] = DEFAULT_SIZE
    modality: Modality = Modality.RGB

    def __post_init__(self) -> None:
        self.size = check_size(self.size)
        self.modality = Modality.parse(self.modality)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        del rng
        img = to_three_channels(image, gray=self.modality in _GRAY_MODALITIES)
        return _normalize(resize(img, self.size))


@dataclass
class TrainTransform:
    """The training augmentation for one modality (see the module docstring).

    Parameters (OUR CHOICE defaults): ``flip_p`` 0.5; ``pad`` 10 px at 256 height, scaled with
    ``size``; ``erase_p`` 0.5 with area 2-40 % and aspect 0.3-3.3, filled with the ImageNet
    mean pixel (RGB) or its gray value (IR/sketch, so channels stay identical); colour jitter
    (RGB only, with probability ``jitter_p`` 0.8) with brightness/contrast/saturation factors
    uniform in ``1 ± brightness``, ``1 ± contrast``, ``1 ± saturation``.
    ``seed`` seeds the generator used when a call passes no ``rng``.
    """

    size: tuple[int, int] = DEFAULT_SIZE
    modality: Modality = Modality.RGB
    flip_p: float = 0.5
    pad: int | None = None
    erase_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.15
    saturation: float = 0.15
    seed: int | None = 0
    #: RGB only: probability of turning the image grey (0 keeps the random stream unchanged).
    gray_p: float = 0.0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.size = check_size(self.size)
        self.modality = Modality.parse(self.modality)
        if self.modality is Modality.TEXT:
            raise ValueError("no image transform for the text modality")
        for name in ("flip_p", "erase_p", "jitter_p", "gray_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.pad is None:
            self.pad = max(1, round(10 * self.size[0] / 256))
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        self._rng = np.random.default_rng(self.seed)

    @property
    def gray(self) -> bool:
        return self.modality in _GRAY_MODALITIES

    def reseed(self, seed: int | None) -> None:
        """Restart the internal generator (used when no ``rng`` is passed)."""
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        rng = self._rng if rng is None else rng
        img = resize(to_three_channels(image, gray=self.gray), self.size)
        if rng.random() < self.flip_p:
            img = cv2.flip(img, 1)
        if self.pad:
            img = self._pad_crop(img, rng)
        if not self.gray and self.jitter_p > 0 and rng.random() < self.jitter_p:
            img = self._jitter(img, rng)
        if not self.gray and self.gray_p > 0 and rng.random() < self.gray_p:
            img = to_three_channels(img, gray=True)  # colour-free RGB, as IR and sketch are
        if self.erase_p > 0 and rng.random() < self.erase_p:
            box = random_rectangle(*self.size, rng, area=ERASE_AREA, aspect=ERASE_ASPECT)
            if box is not None:
                top, left, h, w = box
                img = np.array(img)  # never write into the caller's array
                img[top : top + h, left : left + w] = _FILL_GRAY if self.gray else _FILL_RGB
        return _normalize(img)

    def _pad_crop(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = int(self.pad or 0)
        padded = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        top = int(rng.integers(0, 2 * p + 1))
        left = int(rng.integers(0, 2 * p + 1))
        h, w = self.size
        return padded[top : top + h, left : left + w]

    def _jitter(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast (around the mean luminance), saturation; saturating uint8."""
        b = float(rng.uniform(1 - self.brightness, 1 + self.brightness))
        c = float(rng.uniform(1 - self.contrast, 1 + self.contrast))
        s = float(rng.uniform(1 - self.saturation, 1 + self.saturation))
        x = cv2.addWeighted(img, b, img, 0.0, 0.0)
        mean = float(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).mean())
        x = cv2.addWeighted(x, c, x, 0.0, mean * (1.0 - c))
        gray = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(x, s, gray, 1.0 - s, 0.0)


def eval_transform(
    size: tuple[int, int] = DEFAULT_SIZE, modality: Modality | str = Modality.RGB
) -> EvalTransform:
    """The deterministic evaluation transform: resize + normalise."""
    return EvalTransform(size=size, modality=Modality.parse(modality))


def train_transform(
    size: tuple[int, int] = DEFAULT_SIZE,
    modality: Modality | str = Modality.RGB,
    *,
    seed: int | None = 0,
    **options: float,
) -> TrainTransform:
    """The training transform of ``modality`` (RGB, IR or sketch); ``options`` override the
    :class:`TrainTransform` parameters (e.g. ``erase_p=0``)."""
    return TrainTransform(size=size, modality=Modality.parse(modality), seed=seed, **options)
