"""Encoder input preprocessing, shared by every runtime (PyTorch and ONNX Runtime).

Everything before the network runs here, in Python/numpy, never inside an exported graph:

* images (file paths, encoded bytes, PIL images or ``uint8`` arrays) are decoded to RGB,
  IR/sketch made grey and replicated to three channels, resized to the model's image size
  (area interpolation when shrinking, else linear) and normalised with the ImageNet mean/std
  (pixels in 0-255 scaled to [0, 1] first) -> ``float32 [B, 3, H, W]``;
* captions are tokenised with the model's HF tokenizer (truncated to ``text_max_len``, padded
  to the longest caption of the batch) -> ``int64`` ids and mask ``[B, L]``.

Both runtimes call the same :class:`Preprocessor`, so a vector differs between them only by
what the network computes (see docs/encoder.md, "Parity").
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.data.transforms import EvalTransform, eval_transform
from aioreid.encoder.model.tokenizers import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGE_MODALITIES",
    "MAX_PIXELS",
    "EncoderInputError",
    "ImageInput",
    "PartInput",
    "Preprocessor",
    "as_image_array",
    "decode_image",
    "input_names",
]

try:  # PIL is a dependency (pillow); typed loosely so the module imports without it.
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover
    _PILImage = None  # type: ignore[assignment]

ImageInput = Any  # np.ndarray | bytes | str | Path | PIL.Image.Image
PartInput = Any  # ImageInput | str (a caption)
MAX_PIXELS = 40_000_000  # decoded images larger than this are refused, not resized
IMAGE_MODALITIES: tuple[Modality, ...] = (Modality.RGB, Modality.IR, Modality.SKETCH)


class EncoderInputError(ValueError):
    """An input the encoder cannot embed (wrong shape, empty text, not an image...)."""


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding pixels; None if unknown."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:
        raise EncoderInputError(f"image too large: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def decode_image(data: bytes) -> np.ndarray:
    """Encoded bytes → RGB uint8, refusing non-images and decompression bombs."""
    if not data:
        raise EncoderInputError("empty image bytes")
    raw = np.frombuffer(data, dtype=np.uint8)
    # Read the size from the header first so a huge image is refused before it is decoded.
    size = _header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise EncoderInputError(
            f"image too large ({size[0]}x{size[1]} pixels; limit {MAX_PIXELS} pixels)"
        )
    img = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if img is None:
        raise EncoderInputError(f"bytes are not a decodable image ({len(data)} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _from_pil(image: Any, modality: Modality) -> np.ndarray:
    """A PIL image → uint8 RGB (H×W×3), or grey (H×W) for a single-band IR/sketch image."""
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise EncoderInputError(f"image too large ({w}x{h} pixels; limit {MAX_PIXELS} pixels)")
    grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
    mode = "L" if grey and modality is not Modality.RGB else "RGB"
    try:
        return np.asarray(image.convert(mode), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise EncoderInputError(f"cannot read PIL image: {exc}") from None


def as_image_array(item: ImageInput, modality: Modality) -> np.ndarray:
    """One image input (path, bytes, PIL image or uint8 array) → a checked uint8 array."""
    if isinstance(item, bytes | bytearray | memoryview):
        return decode_image(bytes(item))
    if isinstance(item, str | Path):
        try:
            data = Path(item).read_bytes()
        except FileNotFoundError:
            raise EncoderInputError(f"image file not found: {item}") from None
        except OSError as exc:
            raise EncoderInputError(
                f"cannot read image file {item}: {exc.strerror or exc}"
            ) from None
        return decode_image(data)
    if _PILImage is not None and isinstance(item, _PILImage.Image):
        item = _from_pil(item, modality)
    if not isinstance(item, np.ndarray):
        raise EncoderInputError(
            f"{modality.value} input must be an array, PIL image, bytes or a path, "
            f"got {type(item).__name__}"
        )
    if item.dtype != np.uint8:
        raise EncoderInputError(f"{modality.value} image must be uint8, got {item.dtype}")
    if item.ndim == 3 and item.shape[2] == 1:
        item = item[..., 0]
    if modality is Modality.RGB and (item.ndim != 3 or item.shape[2] != 3):
        raise EncoderInputError(f"RGB image must be HxWx3, got shape {tuple(item.shape)}")
    if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] != 3):
        raise EncoderInputError(
            f"{modality.value} image must be HxW or HxWx3, got shape {tuple(item.shape)}"
        )
    if min(item.shape[:2]) < 4:
        raise EncoderInputError(f"image too small: {tuple(item.shape)}")
    return item


def is_single_input(batch: object) -> bool:
    """True for one input passed where a batch (a sequence of inputs) is expected."""
    if isinstance(batch, np.ndarray):
        return batch.ndim != 4
    if _PILImage is not None and isinstance(batch, _PILImage.Image):
        return True
    return isinstance(batch, str | bytes | bytearray | Path)


def input_names(view: Sequence[Modality]) -> list[str]:
    """Graph input names of a view, in order: one per image part (``rgb``, ``ir``,
    ``sketch``: ``float32 [B, 3, H, W]``), then ``text_ids`` and ``text_mask``
    (``int64 [B, L]``) when the view has text."""
    names = [m.value for m in view if m is not Modality.TEXT]
    if Modality.TEXT in view:
        names += ["text_ids", "text_mask"]
    return names


@dataclass
class Preprocessor:
    """Turns raw inputs into the arrays a runtime reads (see the module docstring).

    ``tokenizer`` is a ``transformers`` tokenizer (or ``None`` for a model without text).
    """

    image_size: tuple[int, int]
    text_max_len: int
    tokenizer: Any | None = None

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        self._transforms: dict[Modality, EvalTransform] = {
            m: eval_transform(self.image_size, m) for m in IMAGE_MODALITIES
        }

    def images(self, items: Sequence[ImageInput], modality: Modality) -> np.ndarray:
        """Images of one modality → ``float32 [B, 3, H, W]`` (ImageNet-normalised)."""
        tf = self._transforms[modality]
        tensors = [tf(as_image_array(x, modality)) for x in items]
        if not tensors:
            return np.zeros((0, 3, *self.image_size), dtype=np.float32)
        return torch.stack(tensors).numpy()

    def text(self, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Captions → (ids, mask), both ``int64 [B, L]``; L ≤ ``text_max_len``.

        Same call as the model's own TextTokenizer (truncate to ``text_max_len``, pad to the
        longest caption), so training and inference read the same ids.
        """
        if self.tokenizer is None:
            raise EncoderInputError("this encoder has no text tokenizer")
        texts = []
        for t in items:
            if not isinstance(t, str) or not t.strip():
                raise EncoderInputError("text input must be a non-empty string")
            texts.append(t.strip())
        enc = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.text_max_len,
            return_tensors="np",
        )
        ids = np.ascontiguousarray(enc["input_ids"], dtype=np.int64)
        mask = np.ascontiguousarray(enc["attention_mask"], dtype=np.int64)
        return ids, mask

    def arrays(self, items: Sequence[PartInput], modality: Modality) -> dict[str, np.ndarray]:
        """One part of a batch → its named graph inputs (see :func:`input_names`)."""
        if modality is Modality.TEXT:
            ids, mask = self.text(items)
            return {"text_ids": ids, "text_mask": mask}
        return {modality.value: self.images(items, modality)}

    def describe(self) -> dict[str, Any]:
        """The preprocessing as metadata (recorded with an ONNX export)."""
        return {
            "image_size": list(self.image_size),
            "image_layout": "float32 [batch, 3, height, width], RGB",
            "pixel_scale": "uint8 0-255 divided by 255",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "resize": "cv2 INTER_AREA when shrinking both sides, else INTER_LINEAR; no crop",
            "ir_sketch": "converted to grey (luminance) and replicated to 3 channels",
            "text_max_len": int(self.text_max_len),
            "text_padding": "longest caption of the batch; ids and mask int64 [batch, length]",
        }
