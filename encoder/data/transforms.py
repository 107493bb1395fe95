"""Image loading and the deterministic evaluation transform (numpy + OpenCV, then a tensor).

Shared by inference (:mod:`aioreid.encoder.preprocess`), evaluation and training, so it lives
with the data rather than in the training package: embedding an image must not import the
training code. The training augmentation builds on these helpers
(:mod:`aioreid.encoder.training.transforms`).

A transform takes a ``uint8`` image (HxWx3 RGB, or HxW grayscale) and returns a float tensor
3xHxW normalised with the ImageNet mean/std. IR and sketch images are made grayscale and
replicated to three channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model.tokenizers import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "DEFAULT_SIZE",
    "GRAY_MODALITIES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STANDARD_SIZE",
    "EvalTransform",
    "ImageReadError",
    "check_size",
    "denormalize",
    "eval_transform",
    "load_image",
    "normalize",
    "resize",
    "to_three_channels",
]

#: (height, width). OUR CHOICE: 128x64 for CPU training; 256x128 is the standard ReID size.
DEFAULT_SIZE: tuple[int, int] = (128, 64)
STANDARD_SIZE: tuple[int, int] = (256, 128)

#: Modalities without colour: their images are turned grey and replicated to 3 channels.
GRAY_MODALITIES: tuple[Modality, ...] = (Modality.IR, Modality.SKETCH)

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)
# normalised = pixel * _SCALE - _SHIFT, per channel (pixel in 0-255)
_SCALE = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD]).view(3, 1, 1)
_SHIFT = torch.tensor([m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]).view(
    3, 1, 1
)


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


def normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 (or float 0-255) HxWx3 → normalised float tensor 3xHxW."""
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return chw.to(torch.float32).mul_(_SCALE).sub_(_SHIFT)


def denormalize(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize`: a 3xHxW tensor → HxWx3 float array in [0, 255]."""
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
        del rng  # deterministic; the argument keeps the training transforms' signature
        img = to_three_channels(image, gray=self.modality in GRAY_MODALITIES)
        return normalize(resize(img, self.size))


def eval_transform(
    size: tuple[int, int] = DEFAULT_SIZE, modality: Modality | str = Modality.RGB
) -> EvalTransform:
    """The deterministic evaluation transform: resize + normalise."""
    return EvalTransform(size=size, modality=Modality.parse(modality))
