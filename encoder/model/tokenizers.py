"""Learnable multimodal tokenizers: images and captions into the frozen backbone's width.

* :class:`ImageTokenizer` - one per image modality (RGB, IR, sketch): IBN conv stem + patch
  projection + learnable position embeddings.
* :class:`TextTokenizer` - a HF WordPiece/BPE tokenizer (offline) + learnable word and position
  embeddings, initialised from the backbone's pretrained tables where they exist.
* :class:`MultimodalTokenizer` - the above plus one learnable modality embedding per modality
  and the multimodal [CLS] token; turns a (possibly combined) query into ONE token sequence.

Image inputs are float tensors ``B x C x H x W`` (C = 3, or 1 for IR/sketch which is replicated
to 3 channels), scaled to [0, 1] and then normalised with ImageNet mean/std
(:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`; see :func:`normalize_images`).

OUR CHOICE marks what the paper leaves open (the digest, docs/aio-paper.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.records import Modality

__all__ = [
    "CANONICAL_ORDER",
    "IBN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageTokenizer",
    "MultimodalTokenizer",
    "TextBatch",
    "TextTokenizer",
    "load_hf_tokenizer",
    "normalize_images",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Order of the parts inside a combined query (independent of how the caller lists them), so
#: that "text+sketch" and "sketch+text" are the same query.
CANONICAL_ORDER: tuple[Modality, ...] = (Modality.RGB, Modality.IR, Modality.SKETCH, Modality.TEXT)
IMAGE_MODALITIES: tuple[Modality, ...] = (Modality.RGB, Modality.IR, Modality.SKETCH)


def normalize_images(images: Tensor) -> Tensor:
    """``[B, C, H, W]`` in [0, 1] (C = 1 or 3) -> ImageNet-normalised 3-channel tensor."""
    if images.dim() != 4:
        raise ValueError(f"expected images B x C x H x W, got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device)
    return (images - mean[:, None, None]) / std[:, None, None]


# ------------------------------------------------------------------------------ images


class IBN(nn.Module):
    """Instance-batch normalisation (IBN-Net): InstanceNorm on the first ``ratio`` of the
    channels, BatchNorm on the rest (OUR CHOICE: ratio 0.5)."""

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = max(1, min(channels - 1, int(channels * ratio)))
        self.inorm = nn.InstanceNorm2d(self.half, affine=True)
        self.bnorm = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: Tensor) -> Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.inorm(a.contiguous()), self.bnorm(b.contiguous())], dim=1)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ImageTokenizer(nn.Module):
    """IBN conv stem + k x k patch projection + learnable position embeddings.

    OUR CHOICE (digest): two 3x3 conv blocks at stride 2 (conv -> IBN -> ReLU), then a
    ``patch_size`` x ``patch_size`` stride-``patch_size`` projection to ``width``; total stride
    ``4 * patch_size`` (16 by default, like ViT-B/16). 128x64 input -> 8x4 = 32 tokens;
    256x128 -> 16x8 = 128 tokens. Inputs of another size get bicubically interpolated
    position embeddings.
    """

    def __init__(
        self,
        width: int,
        *,
        image_size: tuple[int, int] = (128, 64),
        stem_channels: tuple[int, int] = (32, 64),
        patch_size: int = 4,
    ) -> None:
        super().__init__()
        c1, c2 = stem_channels
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.patch_size = int(patch_size)
        self.width = int(width)
        self.stem = nn.Sequential(
            nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False),
            IBN(c1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False),
            IBN(c2),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Conv2d(c2, width, self.patch_size, stride=self.patch_size)
        self.grid = self.grid_for(self.image_size)
        if self.grid[0] < 1 or self.grid[1] < 1:
            raise ValueError(f"image size {image_size} too small for patch size {patch_size}")
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def grid_for(self, size: tuple[int, int]) -> tuple[int, int]:
        """Token grid (rows, cols) for an input of ``size`` (H, W)."""
        out = []
        for s in size:
            s = _conv_out(_conv_out(s, 3, 2, 1), 3, 2, 1)
            out.append(_conv_out(s, self.patch_size, self.patch_size, 0))
        return out[0], out[1]

    def num_tokens(self, size: tuple[int, int] | None = None) -> int:
        gh, gw = self.grid_for(size or self.image_size)
        return gh * gw

    def _pos(self, gh: int, gw: int) -> Tensor:
        if (gh, gw) == self.grid:
            return self.pos_embed
        pos = self.pos_embed.reshape(1, *self.grid, self.width).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(gh, gw), mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1).reshape(1, gh * gw, self.width)

    def forward(self, images: Tensor) -> Tensor:
        """``[B, C, H, W]`` (C in {1, 3}, ImageNet-normalised) -> tokens ``[B, N, width]``."""
        if images.dim() != 4:
            raise ValueError(f"expected images B x C x H x W, got shape {tuple(images.shape)}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            raise ValueError(f"expected 1 or 3 image channels, got {images.shape[1]}")
        x = self.proj(self.stem(images))
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        return x + self._pos(int(gh), int(gw))


# -------------------------------------------------------------------------------- text


@dataclass
class TextBatch:
    """Tokenised captions: ``ids`` ``[B, L]`` (long) and ``mask`` ``[B, L]`` (True = real)."""

    ids: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to(self, device: torch.device | str) -> TextBatch:
        return TextBatch(self.ids.to(device), self.mask.to(device))


@lru_cache(maxsize=8)
def load_hf_tokenizer(path: str) -> Any:
    """A ``transformers`` tokenizer loaded strictly offline (cached per path)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"text tokenizer {path!r} is not available offline ({exc}); pass a local folder "
            "with tokenizer files as AIOConfig.text_tokenizer"
        ) from exc


#: One caption's words: (lower-cased word, token positions in the encoded sequence).
WordSpans = list[tuple[str, list[int]]]


class TextTokenizer(nn.Module):
    """HF tokenizer -> ids (max ``max_len`` incl. [CLS]/[SEP], padded to the longest caption)
    -> learnable word + position embeddings of width ``width``.

    The word table is initialised from ``word_embeddings`` when its shape is
    ``[vocab, width]`` and the position table from ``position_embeddings`` (first ``max_len``
    rows) when it fits; otherwise both are random (std 0.02). With a BERT backbone this makes
    a text-only query start out exactly as the pretrained BERT reads it.
    """

    def __init__(
        self,
        width: int,
        tokenizer_path: str,
        *,
        max_len: int = 77,
        word_embeddings: Tensor | None = None,
        position_embeddings: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer_path = tokenizer_path
        self.hf = load_hf_tokenizer(tokenizer_path)
        self.max_len = int(max_len)
        self.width = int(width)
        self.vocab_size = len(self.hf)
        self.embed = nn.Embedding(self.vocab_size, width)
        self.pos_embed = nn.Parameter(torch.zeros(self.max_len, width))
        if word_embeddings is not None and tuple(word_embeddings.shape) == (
            self.vocab_size,
            width,
        ):
            with torch.no_grad():
                self.embed.weight.copy_(word_embeddings)
            self.pretrained_words = True
        else:
            nn.init.normal_(self.embed.weight, std=0.02)
            self.pretrained_words = False
        if (
            position_embeddings is not None
            and position_embeddings.shape[1] == width
            and position_embeddings.shape[0] >= self.max_len
        ):
            with torch.no_grad():
                self.pos_embed.copy_(position_embeddings[: self.max_len])
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        mask_id = getattr(self.hf, "mask_token_id", None)
        pad_id = getattr(self.hf, "pad_token_id", None)
        self.mask_token_id: int | None = None if mask_id is None else int(mask_id)
        self.pad_token_id: int = 0 if pad_id is None else int(pad_id)
        self.special_ids: frozenset[int] = frozenset(int(i) for i in self.hf.all_special_ids)

    @staticmethod
    def _check(texts: str | Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("no captions given")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"caption {i} is empty; text queries need at least one word")
        return texts

    def encode_text(
        self, texts: str | Sequence[str], *, device: torch.device | str | None = None
    ) -> TextBatch:
        """Tokenise captions (truncated to ``max_len``). Empty captions raise ValueError."""
        batch, _ = self._encode(texts, want_words=False)
        return batch if device is None else batch.to(device)

    def encode_words(self, texts: str | Sequence[str]) -> tuple[TextBatch, list[WordSpans]]:
        """Like :meth:`encode_text`, plus each caption's words and their token positions."""
        batch, words = self._encode(texts, want_words=True)
        assert words is not None
        return batch, words

    def _encode(
        self, texts: str | Sequence[str], *, want_words: bool
    ) -> tuple[TextBatch, list[WordSpans] | None]:
        items = self._check(texts)
        enc = self.hf(
            items,
            padding="longest",
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
        )
        ids = enc["input_ids"].long()
        mask = enc["attention_mask"].bool()
        batch = TextBatch(ids, mask)
        if not want_words:
            return batch, None
        words: list[WordSpans] = []
        for i in range(len(items)):
            toks = self.hf.convert_ids_to_tokens(ids[i].tolist())
            word_ids = enc.word_ids(i) if getattr(self.hf, "is_fast", False) else None
            groups: dict[int, list[int]] = {}
            order: list[int] = []
            current = -1
            for pos, tid in enumerate(ids[i].tolist()):
                if not mask[i, pos] or tid in self.special_ids:
                    continue
                if word_ids is not None:
                    wid = word_ids[pos]
                    if wid is None:
                        continue
                else:  # WordPiece continuation convention
                    if not toks[pos].startswith("##") or current < 0:
                        current = pos
                    wid = current
                if wid not in groups:
                    groups[wid] = []
                    order.append(wid)
                groups[wid].append(pos)
            spans: WordSpans = []
            for wid in order:
                positions = groups[wid]
                word = "".join(toks[p].removeprefix("##").removeprefix("Ġ") for p in positions)
                spans.append((word.lower(), positions))
            words.append(spans)
        return batch, words

    def forward(self, batch: TextBatch) -> tuple[Tensor, Tensor]:
        """TextBatch -> (tokens ``[B, L, width]``, mask ``[B, L]``)."""
        ids, mask = batch.ids, batch.mask
        if ids.shape[1] > self.max_len:
            raise ValueError(f"text length {ids.shape[1]} exceeds max_len {self.max_len}")
        ids = ids.to(self.embed.weight.device)
        tokens = self.embed(ids) + self.pos_embed[: ids.shape[1]].unsqueeze(0)
        return tokens, mask.to(ids.device, dtype=torch.bool)


# ------------------------------------------------------------------------ multimodal

#: What a query part may be: images (Tensor), tokenised text (TextBatch) or raw captions.
Part = Tensor | TextBatch | Sequence[str]


class MultimodalTokenizer(nn.Module):
    """Per-modality tokenizers + modality embeddings + the multimodal [CLS] token.

    OUR CHOICE (digest): one learnable modality embedding per modality, added to every token
    of that part; a combined query is ``[CLS] + part_1 + ... + part_k`` in
    :data:`CANONICAL_ORDER` unless ``order`` is given.
    """

    def __init__(
        self,
        width: int,
        *,
        image_size: tuple[int, int] = (128, 64),
        stem_channels: tuple[int, int] = (32, 64),
        patch_size: int = 4,
        text: TextTokenizer | None = None,
        vocab_ids: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.width = int(width)
        if vocab_ids is not None and text is None:
            raise ValueError("visual words (vocab_ids) need a text tokenizer")
        # Visual words: image tokenizers emit logits over a word list; a token is the
        # softmax-weighted mean of those words' (shared, learnable) text embeddings.
        self.register_buffer(
            "vocab_ids",
            torch.tensor(list(vocab_ids or []), dtype=torch.long),
            persistent=False,
        )
        image_width = len(vocab_ids) if vocab_ids else width
        self.images = nn.ModuleDict(
            {
                m.value: ImageTokenizer(
                    image_width,
                    image_size=image_size,
                    stem_channels=stem_channels,
                    patch_size=patch_size,
                )
                for m in IMAGE_MODALITIES
            }
        )
        self.text = text
        self.modality_embed = nn.Parameter(torch.zeros(len(CANONICAL_ORDER), width))
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self._index = {m: i for i, m in enumerate(CANONICAL_ORDER)}

    def modality_embedding(self, modality: Modality | str) -> Tensor:
        return self.modality_embed[self._index[Modality.parse(modality)]]

    def _part(self, modality: Modality, value: Part) -> tuple[Tensor, Tensor]:
        if modality is Modality.TEXT:
            if self.text is None:
                raise ValueError("this model has no text tokenizer (backbone has none)")
            batch = value if isinstance(value, TextBatch) else self.text.encode_text(value)  # type: ignore[arg-type]
            tokens, mask = self.text(batch)
        else:
            if not isinstance(value, Tensor):
                raise TypeError(f"{modality.value} part must be an image tensor B x C x H x W")
            ref = self.cls_token
            tokens = self.images[modality.value](value.to(ref.device, ref.dtype))
            if self.vocab_ids.numel():
                assert self.text is not None
                words = self.text.embed.weight[self.vocab_ids]
                n = tokens.shape[1]
                pos = self.text.pos_embed[1 : 1 + n] if n < self.text.max_len else 0.0
                weights = tokens.float().softmax(-1)
                tokens = weights.to(words.dtype) @ words + pos
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens + self.modality_embedding(modality), mask

    def forward(
        self,
        parts: Mapping[Modality | str, Part],
        order: Sequence[Modality | str] | None = None,
    ) -> tuple[Tensor, Tensor, dict[Modality, tuple[int, int]]]:
        """Parts -> (tokens ``[B, N, width]``, mask ``[B, N]``, spans ``{modality: (start,
        end)}``) with N = 1 + sum of the parts' lengths."""
        given = {Modality.parse(k): v for k, v in parts.items()}
        if not given:
            raise ValueError("a query needs at least one part")
        if order is None:
            seq = [m for m in CANONICAL_ORDER if m in given]
        else:
            seq = [Modality.parse(m) for m in order]
            if sorted(seq, key=self._index.get) != sorted(given, key=self._index.get):
                raise ValueError("order must list exactly the given parts")
        toks: list[Tensor] = []
        masks: list[Tensor] = []
        spans: dict[Modality, tuple[int, int]] = {}
        start = 1
        batch_size: int | None = None
        for m in seq:
            t, k = self._part(m, given[m])
            if batch_size is None:
                batch_size = t.shape[0]
            elif t.shape[0] != batch_size:
                raise ValueError(
                    f"parts disagree on batch size: {m.value} has {t.shape[0]}, "
                    f"expected {batch_size}"
                )
            toks.append(t)
            masks.append(k)
            spans[m] = (start, start + t.shape[1])
            start += t.shape[1]
        assert batch_size is not None
        cls = self.cls_token.expand(batch_size, -1, -1)
        cls_mask = torch.ones(batch_size, 1, dtype=torch.bool, device=cls.device)
        tokens = torch.cat([cls, *toks], dim=1)
        mask = torch.cat([cls_mask, *masks], dim=1)
        return tokens, mask, spans
