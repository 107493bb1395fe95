"""Attribute binding (OUR CHOICE, beyond the digest, docs/aio-paper.md): VGMAM's targets on
every view's feature.

VGMAM teaches RGB↔text correspondence word by word, but only for RGB images paired with a
caption. Identity losses (CC, MFB) over a few dozen training identities are easy to satisfy by
memorising identities from colour, which leaves the colour-free modalities (IR, sketch)
untrained and does not transfer to unseen people. This head asks the *pooled* feature of every
view — RGB, IR, sketch, text and combinations — to predict which attribute words the
identity's captions use (multi-label, one logistic output per word of
``AIOConfig.attribute_words``). The targets come from the captions alone (no extra labels):
the union of the words of all captions of that identity. Colour words are left out of the
loss for views with no colour (IR, sketch and their combinations without RGB or text), since
nothing there can show them. Attributes are shared by many people, so what this teaches
carries over to identities never seen in training.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.records import Modality
from .heads import COLOUR_ATTRIBUTE_WORDS

__all__ = ["COLOUR_WORDS", "AttributeHead", "shows_colour"]

#: Words that name a colour or a shade (hair colours too): unobservable in IR and sketch.
COLOUR_WORDS: frozenset[str] = frozenset(
    (*COLOUR_ATTRIBUTE_WORDS, "blond", "blonde", "brunette", "ginger", "auburn")
)

_WORD = re.compile(r"[a-z]+")


def shows_colour(view: Collection[Modality]) -> bool:
    """Whether a view can tell colours: it has an RGB image or a caption (IR and sketch can't)."""
    return Modality.RGB in view or Modality.TEXT in view


class AttributeHead(nn.Module):
    """Linear multi-label classifier from a feature to the attribute vocabulary.

    ``words``: the vocabulary (lower-cased, duplicates dropped, order kept)."""

    def __init__(self, dim: int, words: Sequence[str]) -> None:
        super().__init__()
        vocab: list[str] = []
        for w in words:
            w = w.lower().strip()
            if w and w not in vocab:
                vocab.append(w)
        if not vocab:
            raise ValueError("AttributeHead needs at least one attribute word")
        self.words = tuple(vocab)
        self.index = {w: i for i, w in enumerate(vocab)}
        self.linear = nn.Linear(dim, len(vocab))
        # Any one word is rare in a caption: start from a 5 % prior so the first steps are
        # not spent learning that (focal-loss style bias initialisation).
        nn.init.constant_(self.linear.bias, math.log(0.05 / 0.95))
        colour = torch.tensor([w in COLOUR_WORDS for w in vocab], dtype=torch.bool)
        self.register_buffer("colour", colour, persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features)

    def targets(self, texts: Sequence[str]) -> Tensor:
        """Multi-hot ``[B, A]`` float targets: which vocabulary words each text contains."""
        out = torch.zeros(len(texts), len(self.words))
        for row, text in enumerate(texts):
            for w in _WORD.findall(text.lower()):
                col = self.index.get(w)
                if col is not None:
                    out[row, col] = 1.0
        return out.to(self.linear.weight.device)

    def loss(
        self, features: Tensor, targets: Tensor, view: Collection[Modality]
    ) -> tuple[Tensor, Tensor]:
        """Binary cross-entropy (per positive word) of one view's features (``[B, D]``)
        against ``targets`` (rows with no word at all are skipped) and, detached, the F1 of
        its predictions. Colour words are ignored for views with neither RGB nor text."""
        keep_rows = targets.sum(1) > 0
        cols = torch.ones_like(self.colour)
        if not shows_colour(view):
            cols = ~self.colour
        logits = self(features[keep_rows])[:, cols].float()
        y = targets[keep_rows][:, cols]
        if logits.numel() == 0:
            zero = features.sum() * 0.0
            return zero, zero.detach()
        # Summed over words and divided by the number of positive words (as focal loss
        # normalises by its positives): a plain mean over ~100 mostly-absent words would make
        # this gradient about 100x weaker than the identity losses', too weak to learn from.
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        loss = bce / y.sum().clamp_min(1.0)
        with torch.no_grad():
            pred = logits > 0
            tp = (pred & (y > 0)).sum()
            f1 = 2 * tp / (pred.sum() + (y > 0).sum()).clamp_min(1)
        return loss, f1.float()
