"""The training augmentation (numpy + OpenCV, then a tensor).

Like the evaluation transform (:mod:`aioreid.encoder.data.transforms`, which this builds on),
it takes a ``uint8`` image (HxWx3 RGB, or HxW grayscale) and returns a float tensor 3xHxW
normalised with the ImageNet mean/std. Randomness comes from a ``numpy.random.Generator`` —
either passed per call or the transform's own, seeded one — so a run is reproducible under a
seed, also across DataLoader workers.

Training recipe (the ReID strong baseline, Luo et al. 2019; parameters OUR CHOICE where the
paper says nothing): resize, random horizontal flip (p 0.5), zero-pad by 10 px (scaled with the
height, 10 at 256) and random crop back, mild colour jitter for RGB only, random erasing
(p 0.5). IR and sketch images are made grayscale and replicated to three channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.data.transforms import (
    DEFAULT_SIZE,
    GRAY_MODALITIES,
    IMAGENET_MEAN,
    check_size,
    normalize,
    resize,
    to_three_channels,
)
from aioreid.encoder.training.missing_modality import ERASE_AREA, ERASE_ASPECT, random_rectangle

__all__ = ["TrainTransform", "train_transform"]

# random-erasing fill: the ImageNet mean pixel (RGB) or its gray value (IR / sketch)
_FILL_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)
_FILL_GRAY = (round(255 * sum(IMAGENET_MEAN) / 3),) * 3


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
        return self.modality in GRAY_MODALITIES

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
        return normalize(img)

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
