"""AIO's training-only heads: VGMAM (masked attribute modelling) and MFB (feature binding).

The CC head (BN-neck + identity classifier) lives on :class:`~aioreid.encoder.model.aio.AIOModel`
itself, because its BN-neck also produces the inference feature. OUR CHOICE marks what the
paper leaves open (the digest, docs/aio-paper.md).
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import supervised_infonce
from .tokenizers import TextBatch, TextTokenizer

__all__ = [
    "COLOUR_ATTRIBUTE_WORDS",
    "DEFAULT_ATTRIBUTE_WORDS",
    "MFBHead",
    "VGMAMHead",
    "mask_attribute_words",
]

#: Colour and shade words (the first block of :data:`DEFAULT_ATTRIBUTE_WORDS`).
COLOUR_ATTRIBUTE_WORDS: tuple[str, ...] = (
    "black",
    "white",
    "gray",
    "grey",
    "red",
    "crimson",
    "blue",
    "navy",
    "green",
    "yellow",
    "orange",
    "pink",
    "purple",
    "violet",
    "brown",
    "beige",
    "khaki",
    "tan",
    "dark",
    "light",
    "silver",
    "gold",
    "golden",
    "colorful",
    "colourful",
)

#: Words VGMAM may mask (OUR CHOICE list): colours, garments, accessories, hair, gender.
DEFAULT_ATTRIBUTE_WORDS: tuple[str, ...] = (
    *COLOUR_ATTRIBUTE_WORDS,
    # garments and materials / patterns
    "shirt",
    "shirts",
    "tshirt",
    "jacket",
    "jackets",
    "coat",
    "coats",
    "hoodie",
    "sweater",
    "dress",
    "skirt",
    "trousers",
    "pants",
    "jeans",
    "shorts",
    "top",
    "blouse",
    "vest",
    "suit",
    "uniform",
    "cardigan",
    "sweatshirt",
    "shoes",
    "shoe",
    "sneakers",
    "boots",
    "sandals",
    "heels",
    "socks",
    "leggings",
    "striped",
    "checked",
    "plaid",
    "logo",
    "denim",
    "leather",
    "wool",
    "cotton",
    "sleeves",
    "sleeve",
    "sleeveless",
    "sleeved",
    # accessories
    "bag",
    "backpack",
    "handbag",
    "purse",
    "satchel",
    "hat",
    "cap",
    "beanie",
    "glasses",
    "sunglasses",
    "umbrella",
    "scarf",
    "belt",
    "watch",
    "mask",
    "helmet",
    "bottle",
    "phone",
    "suitcase",
    "headphones",
    # hair
    "hair",
    "ponytail",
    "bald",
    "blond",
    "blonde",
    "brunette",
    "ginger",
    "auburn",
    "curly",
    "long",
    "short",
    # gender
    "man",
    "woman",
    "men",
    "women",
    "male",
    "female",
    "boy",
    "girl",
    "lady",
    "gentleman",
    "he",
    "she",
    "his",
    "her",
)

_PUNCT = string.punctuation


def mask_attribute_words(
    text: TextTokenizer,
    captions: Sequence[str],
    attribute_words: Iterable[str],
    *,
    prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[TextBatch, Tensor]:
    """Mask attribute words of each caption for VGMAM.

    Each word of the caption (all its sub-word tokens) that is in ``attribute_words`` is
    replaced by the tokenizer's [MASK] id with probability ``prob``; a caption that has
    attribute words but got none masked gets one chosen at random (OUR CHOICE: "at least
    one"). Returns the masked batch and labels ``[B, L]``: the original id at masked positions,
    -100 elsewhere.
    """
    if text.mask_token_id is None:
        raise ValueError(f"tokenizer {text.tokenizer_path!r} has no [MASK] token")
    vocab = {w.lower().strip(_PUNCT) for w in attribute_words}
    batch, words = text.encode_words(captions)
    ids = batch.ids.clone()
    labels = torch.full_like(ids, -100)
    for i, spans in enumerate(words):
        cands = [pos for word, pos in spans if word.strip(_PUNCT) in vocab]
        if not cands:
            continue
        draw = torch.rand(len(cands), generator=generator) < prob
        if not bool(draw.any()):
            draw[int(torch.randint(len(cands), (1,), generator=generator))] = True
        for keep, positions in zip(draw.tolist(), cands, strict=True):
            if keep:
                for p in positions:
                    labels[i, p] = ids[i, p]
                    ids[i, p] = text.mask_token_id
    return TextBatch(ids, batch.mask.clone()), labels


class VGMAMHead(nn.Module):
    """Vision-guided masked attribute modelling head.

    OUR CHOICE (digest): ``layers`` (2) pre-norm transformer encoder layers over the frozen
    backbone's output for ``[CLS ; masked text ; RGB image]``, then a BERT-style transform and a
    vocabulary projection that reuses the text tokenizer's (learnable) word table, passed to
    :meth:`forward`, plus a bias: a word is predicted by the embedding it is read with, and the
    head stays small whatever the vocabulary size.
    """

    def __init__(
        self,
        width: int,
        vocab_size: int,
        *,
        layers: int = 2,
        heads: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        nhead = heads or max(1, width // 64)
        while width % nhead:
            nhead -= 1
        layer = nn.TransformerEncoderLayer(
            width,
            nhead,
            4 * width,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.transform = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width)
        )
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(
        self,
        hidden: Tensor,
        mask: Tensor,
        select: Tensor,
        embedding_weight: Tensor,
    ) -> Tensor:
        """Backbone output ``[B, N, W]`` (+ padding mask) -> logits ``[M, vocab]`` for the
        ``M`` positions where ``select`` ``[B, N]`` is True; ``embedding_weight`` is the text
        tokenizer's word table ``[vocab, W]``."""
        h = self.encoder(hidden, src_key_padding_mask=~mask.bool())
        h = self.transform(h[select])
        return F.linear(h, embedding_weight, self.bias)

    @staticmethod
    def loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy over masked positions and masked-token accuracy (detached)."""
        if targets.numel() == 0:
            zero = logits.sum() * 0.0
            return zero, zero.detach()
        loss = F.cross_entropy(logits, targets)
        acc = (logits.argmax(1) == targets).float().mean().detach()
        return loss, acc


class MFBHead(nn.Module):
    """Multimodal feature binding: supervised symmetric InfoNCE of each view against RGB.

    OUR CHOICE (digest): temperature 0.07, learnable as a log-parametrised logit scale
    clamped to [1, ``max_scale``] (CLIP style); all same-identity pairs are positives.
    """

    def __init__(
        self, temperature: float = 0.07, *, learnable: bool = True, max_scale: float = 100.0
    ) -> None:
        super().__init__()
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        self.max_log_scale = math.log(max_scale)
        if learnable:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)

    def scale(self) -> Tensor:
        return self.log_scale.clamp(0.0, self.max_log_scale).exp()

    def temperature(self) -> float:
        return float(1.0 / self.scale().detach())

    def forward(
        self,
        anchors: Tensor,
        anchor_pids: Tensor,
        views: Sequence[tuple[Tensor, Tensor]],
    ) -> Tensor:
        """Mean over ``views`` (features, pids) of their binding loss to the RGB ``anchors``."""
        if not views:
            return anchors.sum() * 0.0
        scale = self.scale()
        losses = [supervised_infonce(f, p, anchors, anchor_pids, scale) for f, p in views]
        return torch.stack(losses).mean()
