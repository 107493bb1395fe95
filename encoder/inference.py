"""Inference API the platform uses: load a checkpoint, embed batches and combined queries.

Vectors are float32, L2-normalised, of dimension :attr:`Encoder.dim`. :attr:`Encoder.version`
(backbone id and weights hash + checkpoint hash) is what a vector index keys its collections
on: two encoders with the same version give the same vectors.

Image inputs are numpy ``uint8`` arrays in **RGB** order (H×W×3; IR and sketch may be H×W),
encoded image bytes, or file paths. Text inputs are non-empty strings.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.encoder.training.transforms import eval_transform

ImageInput = np.ndarray | bytes | str | Path
PartInput = ImageInput | str
MAX_PIXELS = 40_000_000  # decoded images larger than this are refused, not resized


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


def _as_array(item: ImageInput, modality: Modality) -> np.ndarray:
    if isinstance(item, bytes | bytearray):
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
    if not isinstance(item, np.ndarray):
        raise EncoderInputError(
            f"{modality.value} input must be an array, bytes or a path, got {type(item).__name__}"
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


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


class Encoder:
    """A trained AIO model ready to embed; see the module docstring for inputs."""

    def __init__(
        self, model: AIOModel, checkpoint_hash: str, *, device: str = "auto", batch_size: int = 64
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.checkpoint_hash = checkpoint_hash
        #: Where the checkpoint was loaded from (None for in-memory models).
        self.source: str | None = None
        size = tuple(model.config.image_size)
        self._transforms = {
            m: eval_transform(size, m)  # type: ignore[arg-type]
            for m in (Modality.RGB, Modality.IR, Modality.SKETCH)
        }

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 64,
        local_files_only: bool = True,
    ) -> Encoder:
        """Rebuild the model recorded in a checkpoint (``final.pt`` or a trainer's ``last.pt``)."""
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        blob = path.read_bytes()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        state: Mapping[str, Any] = torch.load(
            io.BytesIO(blob), map_location="cpu", weights_only=False
        )
        if "model" in state and "optimizer" in state:
            state = state["model"]
        config = AIOConfig.from_dict({**state["config"], "local_files_only": local_files_only})
        model = AIOModel(config)
        model.load_trainable_state_dict(state)
        encoder = cls(model, digest, device=device, batch_size=batch_size)
        encoder.source = str(path.resolve())
        return encoder

    @classmethod
    def untrained(cls, config: AIOConfig, *, seed: int = 0, device: str = "auto") -> Encoder:
        """Randomly initialised tokenizers and heads on the frozen backbone (a control)."""
        torch.manual_seed(seed)
        return cls(AIOModel(config), f"untrained-s{seed}", device=device)

    @property
    def dim(self) -> int:
        return self.model.embed_dim

    @property
    def version(self) -> str:
        bb = self.model.backbone
        return f"{bb.backbone_id}@{bb.weights_hash()[:8]}+{self.checkpoint_hash}"

    # ------------------------------------------------------------------ parts
    def _part_tensor(self, items: Sequence[PartInput], modality: Modality) -> Any:
        if modality is Modality.TEXT:
            texts = []
            for t in items:
                if not isinstance(t, str) or not t.strip():
                    raise EncoderInputError("text input must be a non-empty string")
                texts.append(t.strip())
            return self.model.encode_text(texts)
        tf = self._transforms[modality]
        return torch.stack([tf(_as_array(x, modality)) for x in items]).to(self.device)  # type: ignore[arg-type]

    @torch.inference_mode()
    def _embed_parts(self, parts: Mapping[Modality, Sequence[PartInput]], n: int) -> np.ndarray:
        out = []
        for start in range(0, n, self.batch_size):
            chunk = {
                m: self._part_tensor(v[start : start + self.batch_size], m)
                for m, v in parts.items()
            }
            out.append(self.model.embed(chunk).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def embed(self, batch: Sequence[PartInput], modality: Modality | str) -> np.ndarray:
        """Embed a batch of one modality → ``N × dim`` float32, L2-normalised."""
        try:
            modality = Modality.parse(modality)
        except ValueError as exc:
            raise EncoderInputError(str(exc)) from None
        if isinstance(batch, str | bytes | np.ndarray) and not (
            isinstance(batch, np.ndarray) and batch.ndim == 4
        ):
            raise EncoderInputError("embed takes a sequence of inputs; wrap a single one in a list")
        return self._embed_parts({modality: list(batch)}, len(batch))

    def embed_query(
        self,
        parts: Mapping[Modality | str, PartInput] | Sequence[Mapping[Modality | str, PartInput]],
    ) -> np.ndarray:
        """Combined queries (e.g. ``{"text": "...", "sketch": img}``) → one vector each.

        A single mapping gives a ``dim`` vector; a list of mappings with the same modalities
        gives ``N × dim``.
        """
        single = isinstance(parts, Mapping)
        queries = [parts] if single else list(parts)  # type: ignore[list-item]
        if not queries:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            keyed = [{Modality.parse(k): v for k, v in q.items()} for q in queries]
        except ValueError as exc:
            raise EncoderInputError(str(exc)) from None
        mods = set(keyed[0])
        if not mods:
            raise EncoderInputError("a query needs at least one part")
        if any(set(q) != mods for q in keyed):
            raise EncoderInputError("all queries in one call must have the same modalities")
        columns = {m: [q[m] for q in keyed] for m in mods}
        vecs = self._embed_parts(columns, len(keyed))
        return vecs[0] if single else vecs
