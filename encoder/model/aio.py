"""The All-in-One model: learnable multimodal tokenizers -> frozen backbone -> [CLS] feature.

A query is any non-empty combination of RGB, IR, sketch and text; its parts' token sequences
(each with its modality embedding) are concatenated behind one learnable [CLS] token and read
by the frozen backbone in ONE pass. The [CLS] output, optionally projected to ``embed_dim``,
is the pre-BN feature; the BN-neck output is the inference feature (L2-normalise it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.records import Modality
from .attributes import AttributeHead
from .backbones import FrozenBackbone, build_backbone
from .heads import DEFAULT_ATTRIBUTE_WORDS, MFBHead, VGMAMHead
from .tokenizers import MultimodalTokenizer, Part, TextBatch, TextTokenizer

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_TRAIN_VIEWS",
    "REMOVED_OPTIONS",
    "AIOConfig",
    "AIOModel",
    "BackboneMismatchError",
    "Features",
    "RemovedOptionError",
    "parse_view",
]

CHECKPOINT_FORMAT = "aioreid.aio/1"

#: Views (single modalities and combinations) the training objective encodes per batch.
DEFAULT_TRAIN_VIEWS: tuple[str, ...] = ("rgb", "ir", "sketch", "text", "sketch+text", "rgb+text")


def view_key(modalities: Sequence[Modality | str]) -> str:
    """Canonical name of a view: ``(TEXT, SKETCH)`` -> ``"sketch+text"``."""
    return "+".join(m.value for m in parse_view(list(modalities)))


def parse_view(view: str | Sequence[Modality | str]) -> tuple[Modality, ...]:
    """``"text+sketch"`` -> ``(Modality.SKETCH, Modality.TEXT)`` (canonical order)."""
    names = view.split("+") if isinstance(view, str) else list(view)
    mods = {Modality.parse(n) for n in names}
    if not mods:
        raise ValueError(f"empty view {view!r}")
    return tuple(m for m in Modality if m in mods)


#: Generic words visual tokens may also use (besides the attribute words).
VISUAL_FILLER_WORDS: tuple[str, ...] = (
    "a",
    "the",
    "person",
    "man",
    "woman",
    "wearing",
    "with",
    "and",
    "in",
    "of",
    "on",
    "carrying",
    "walking",
    "background",
    "floor",
    "wall",
    "street",
    "head",
    "face",
    "arms",
    "legs",
    "feet",
    "body",
    "hair",
    "skin",
    "hands",
    "light",
    "shadow",
)


def _visual_word_ids(text: TextTokenizer | None, words: Sequence[str]) -> list[int]:
    """Vocabulary ids of the single-piece words among ``words`` + the filler words."""
    if text is None:
        raise ValueError("image_vocab needs a backbone with a text tokenizer")
    ids: list[int] = []
    for w in (*words, *VISUAL_FILLER_WORDS):
        pieces = text.hf.encode(w, add_special_tokens=False)
        if len(pieces) == 1 and pieces[0] not in ids and pieces[0] not in text.special_ids:
            ids.append(int(pieces[0]))
    if not ids:
        raise ValueError("no single-piece visual words in the tokenizer's vocabulary")
    return ids


class BackboneMismatchError(ValueError):
    """A checkpoint was trained on top of a different frozen backbone."""


class RemovedOptionError(ValueError):
    """A stored config turns on an experiment switch that :class:`AIOConfig` no longer has."""


#: Switches of experiments that did not help, since removed from :class:`AIOConfig` (what
#: each measured: docs/results.md, "Experiments that did not help"), with the value the model
#: now always behaves as. Checkpoints written before the removal still list them: at these
#: values they are ignored; any other value means a model this code cannot rebuild.
REMOVED_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "stem_blocks": 0,
        "vgmam_tie_embeddings": True,
        "vgmam_views": ("rgb",),
        "mfb_on_bn": True,
        "mfb_anchor_detach": False,
        "shared_image_init": False,
        "share_image_tokenizer": False,
        "image_vocab_scale": 1.0,
    }
)


@dataclass
class AIOConfig:
    """Everything that defines an AIO model; defaults follow the digest (docs/aio-paper.md).

    OUR CHOICE / UNKNOWN items (digest): image size (default 128x64 on CPU; the GPU recipe uses
    256x128), stem channels and patch size, ``embed_dim`` (default: backbone width, no
    projection), loss weights (1.0 each), label smoothing 0.1, triplet margin 0.3, VGMAM mask
    probability 0.5 with 2 head layers, MFB temperature 0.07 (learnable), and the training views.
    """

    backbone: str = "minilm-l6"
    local_files_only: bool = True
    #: False builds a ``timm:`` backbone's architecture with fixed-seed random weights instead
    #: of its pretrained ones: for tests and smoke runs of a recipe whose weights are not at
    #: hand (e.g. the GPU recipe's LAION ViT-B/16 on an offline CPU machine); never for real
    #: training. Ignored by the other backbone forms.
    pretrained_backbone: bool = True
    image_size: tuple[int, int] = (128, 64)
    stem_channels: tuple[int, int] = (32, 64)
    patch_size: int = 4
    text_max_len: int = 77
    text_tokenizer: str | None = None
    embed_dim: int | None = None
    num_classes: int = 0
    use_cc: bool = True
    use_triplet: bool = True
    use_vgmam: bool = True
    use_mfb: bool = True
    cc_weight: float = 1.0
    triplet_weight: float = 1.0
    vgmam_weight: float = 1.0
    mfb_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3
    vgmam_mask_prob: float = 0.5
    vgmam_layers: int = 2
    vgmam_heads: int | None = None
    attribute_words: tuple[str, ...] = DEFAULT_ATTRIBUTE_WORDS
    mfb_temperature: float = 0.07
    mfb_learnable_temperature: bool = True
    #: The view MFB binds every other view to: "rgb" (the digest: the foundation model's
    #: strongest modality) or, OUR CHOICE for a frozen *text* backbone, "text", whose
    #: pretrained sentence features tell identities apart before any training.
    mfb_anchor: str = "rgb"
    train_views: tuple[str, ...] = field(default=DEFAULT_TRAIN_VIEWS)
    #: "cls" (the digest: the multimodal [CLS] output), "mean" (mean of all real output
    #: tokens) or "auto": the backbone's own pretraining convention. OUR CHOICE: "auto", since
    #: a sentence-transformers backbone (MiniLM) never learned to summarise into [CLS], and
    #: features read from its [CLS] output collapse early in training.
    pooling: str = "auto"
    #: Modality standardisation (OUR CHOICE, as modality-specific normalisation in
    #: cross-modality ReID): each view's feature is standardised per dimension before the shared
    #: BN-neck — batch statistics in training, running ones per view at inference. A frozen
    #: backbone gives every modality its own offset and scale, and a binding loss cannot pull
    #: views together across such gaps.
    modality_centering: bool = True
    #: Visual words (OUR CHOICE, off by default): each image token is a softmax mixture of
    #: the text embeddings of ``attribute_words`` + :data:`VISUAL_FILLER_WORDS` instead of a
    #: free vector, so a frozen *text* backbone reads an image as a soft caption. Makes
    #: image↔text alignment start from the backbone's own word space.
    image_vocab: bool = False
    centering_momentum: float = 0.1
    #: Attribute binding (OUR CHOICE, off by default; see :mod:`.attributes`): every view's
    #: feature predicts the attribute words of its identity's captions, so IR and sketch get
    #: supervision that transfers to unseen people.
    use_attr: bool = False
    attr_weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AIOConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError.

        Keys of :data:`REMOVED_OPTIONS` (in checkpoints written before those switches were
        removed) are dropped when they hold the value the model now always has; any other
        value raises :class:`RemovedOptionError`.
        """
        data = _drop_removed_options(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown AIOConfig keys: {sorted(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def _drop_removed_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys of :data:`REMOVED_OPTIONS` (RemovedOptionError if one is on)."""
    on: dict[str, Any] = {}
    for key, kept in REMOVED_OPTIONS.items():
        if key not in data:
            continue
        value = data[key]
        if (tuple(value) if isinstance(value, list | tuple) else value) != kept:
            on[key] = value
    if on:
        settings = ", ".join(f"{k}={v!r}" for k, v in on.items())
        raise RemovedOptionError(
            f"this model was trained with {settings}: an experimental option this version of "
            "aioreid no longer has (it did not help; see docs/results.md, 'Experiments that "
            "did not help'), so the model cannot be rebuilt. Use the release it was trained "
            "with, or retrain without the option."
        )
    return {k: v for k, v in data.items() if k not in REMOVED_OPTIONS}


@dataclass
class Features:
    """Output of :meth:`AIOModel.forward_features`.

    ``pre_bn`` ``[B, D]`` ([CLS] output after the optional projection), ``bn`` ``[B, D]``
    (BN-neck output, the inference feature; ``None`` when the neck was skipped), ``tokens``
    ``[B, N, width]`` (backbone output), ``mask`` ``[B, N]``, ``spans`` (modality -> (start,
    end) in the sequence; position 0 is [CLS]).
    """

    pre_bn: Tensor
    bn: Tensor | None
    tokens: Tensor
    mask: Tensor
    spans: dict[Modality, tuple[int, int]]


class AIOModel(nn.Module):
    """AIO: multimodal tokenizers + frozen backbone + BN-neck + training heads."""

    def __init__(
        self, config: AIOConfig | None = None, *, backbone: FrozenBackbone | None = None
    ) -> None:
        super().__init__()
        self.config = cfg = config or AIOConfig()
        self.backbone = backbone or build_backbone(
            cfg.backbone, local_files_only=cfg.local_files_only, pretrained=cfg.pretrained_backbone
        )
        width = self.backbone.width
        self.width = width
        self.embed_dim = int(cfg.embed_dim or width)
        tok_path = cfg.text_tokenizer or self.backbone.text_tokenizer_path
        text: TextTokenizer | None = None
        if tok_path is not None:
            text = TextTokenizer(
                width,
                tok_path,
                max_len=cfg.text_max_len,
                word_embeddings=self.backbone.word_embeddings(),
                position_embeddings=self.backbone.position_embeddings(),
            )
        self.tokenizer = MultimodalTokenizer(
            width,
            image_size=tuple(cfg.image_size),  # type: ignore[arg-type]
            stem_channels=tuple(cfg.stem_channels),  # type: ignore[arg-type]
            patch_size=cfg.patch_size,
            text=text,
            vocab_ids=_visual_word_ids(text, cfg.attribute_words) if cfg.image_vocab else None,
        )
        self.projection: nn.Module = (
            nn.Identity() if self.embed_dim == width else nn.Linear(width, self.embed_dim, False)
        )
        # BN-neck (strong baseline): BatchNorm1d with a frozen zero bias.
        self.bottleneck = nn.BatchNorm1d(self.embed_dim)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier: nn.Linear | None = None
        if cfg.use_cc and cfg.num_classes > 0:
            self.classifier = nn.Linear(self.embed_dim, cfg.num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.vgmam: VGMAMHead | None = None
        if cfg.use_vgmam and text is not None:
            self.vgmam = VGMAMHead(
                width, text.vocab_size, layers=cfg.vgmam_layers, heads=cfg.vgmam_heads
            )
        self._center_names: dict[str, str] = {}
        if cfg.modality_centering:
            keys = {view_key(parse_view(v)) for v in cfg.train_views}
            keys |= {m.value for m in Modality}
            for key in sorted(keys):
                name = "center_" + key.replace("+", "_")
                self.register_buffer(name, torch.zeros(self.embed_dim))
                self.register_buffer(name + "_var", torch.ones(self.embed_dim))
                self._center_names[key] = name
        self.attr: AttributeHead | None = None
        if cfg.use_attr:
            self.attr = AttributeHead(self.embed_dim, cfg.attribute_words)
        self.mfb: MFBHead | None = None
        if cfg.use_mfb:
            self.mfb = MFBHead(cfg.mfb_temperature, learnable=cfg.mfb_learnable_temperature)

    # ------------------------------------------------------------------ basics

    @property
    def device(self) -> torch.device:
        return self.tokenizer.cls_token.device

    @property
    def text_tokenizer(self) -> TextTokenizer:
        if self.tokenizer.text is None:
            raise ValueError("this model has no text tokenizer")
        return self.tokenizer.text

    def encode_text(self, captions: str | Sequence[str]) -> TextBatch:
        """Captions -> TextBatch on the model's device (ValueError on an empty caption)."""
        return self.text_tokenizer.encode_text(captions, device=self.device)

    def tokenize(
        self,
        parts: Mapping[Modality | str, Part],
        order: Sequence[Modality | str] | None = None,
    ) -> tuple[Tensor, Tensor, dict[Modality, tuple[int, int]]]:
        """Parts -> one sequence ``[CLS] + parts`` (tokens, mask, spans); see
        :class:`~aioreid.encoder.model.tokenizers.MultimodalTokenizer`."""
        return self.tokenizer(parts, order)

    def forward_features(
        self,
        parts: Mapping[Modality | str, Part],
        *,
        order: Sequence[Modality | str] | None = None,
        neck: bool = True,
    ) -> Features:
        """Tokenise, run the frozen backbone, take [CLS] (+ projection) and the BN-neck."""
        tokens, mask, spans = self.tokenize(parts, order)
        hidden = self.backbone(tokens, mask)
        pre_bn = self.center(self.projection(self.pool(hidden, mask)), tuple(spans))
        bn = self.bottleneck(pre_bn) if neck else None
        return Features(pre_bn=pre_bn, bn=bn, tokens=hidden, mask=mask, spans=spans)

    @property
    def pooling(self) -> str:
        mode = self.config.pooling
        mode = self.backbone.native_pooling if mode == "auto" else mode
        if mode not in ("cls", "mean"):
            raise ValueError(f"pooling must be auto, cls or mean, got {self.config.pooling!r}")
        return mode

    def center(self, features: Tensor, modalities: Sequence[Modality]) -> Tensor:
        """Standardise per view (see ``AIOConfig.modality_centering``).

        Training: batch statistics, which also update the running ones. Inference: the running
        statistics of this view, or for a combination never trained on, the mean of its parts'.
        """
        if not self._center_names:
            return features
        key = view_key(modalities)
        name = self._center_names.get(key)
        eps = 1e-5
        if self.training and features.shape[0] > 1:
            mean = features.mean(0)
            var = features.var(0, unbiased=False)
            if name is not None:
                m = self.config.centering_momentum
                getattr(self, name).mul_(1 - m).add_(mean.detach().float(), alpha=m)
                getattr(self, name + "_var").mul_(1 - m).add_(var.detach().float(), alpha=m)
            return (features - mean) / (var + eps).sqrt()
        names = (
            [name] if name is not None else [self._center_names[m.value] for m in parse_view(key)]
        )
        center = torch.stack([getattr(self, n) for n in names]).mean(0)
        var = torch.stack([getattr(self, n + "_var") for n in names]).mean(0)
        return (features - center.to(features.dtype)) / (var + eps).sqrt().to(features.dtype)

    def pool(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """The sequence feature: [CLS] output, or the mean over real (unpadded) tokens."""
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def forward(self, parts: Mapping[Modality | str, Part]) -> Features:
        return self.forward_features(parts)

    def embed(self, parts: Mapping[Modality | str, Part], *, normalize: bool = True) -> Tensor:
        """Inference feature ``[B, D]``: BN-neck output, L2-normalised by default.

        Call ``model.eval()`` first (the BN-neck must use its running statistics).
        """
        bn = self.forward_features(parts).bn
        assert bn is not None
        return F.normalize(bn, dim=1) if normalize else bn

    # ------------------------------------------------------------ training / I/O

    def parameters_to_train(self) -> list[nn.Parameter]:
        """Every trainable parameter (tokenizers, projection, neck, heads); never the backbone."""
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in backbone_ids]

    def trainable_state_dict(self) -> dict[str, Any]:
        """A checkpoint without backbone weights: ``{"format", "config", "backbone_id",
        "backbone_hash", "state_dict"}`` (``state_dict``: CPU copies of every non-backbone
        parameter and buffer)."""
        tensors = {
            k: v.detach().to("cpu", copy=True)
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.")
        }
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "backbone_id": self.backbone.backbone_id,
            "backbone_hash": self.backbone.weights_hash(),
            "state_dict": tensors,
        }

    def load_trainable_state_dict(
        self, checkpoint: Mapping[str, Any], *, strict: bool = True
    ) -> None:
        """Load a :meth:`trainable_state_dict` checkpoint.

        Raises :class:`BackboneMismatchError` when it was trained on a backbone with other
        weights (hash differs); with ``strict``, missing or unexpected keys raise KeyError.
        A checkpoint of an unfrozen-backbone run also carries ``backbone_state_dict``: the
        hash is checked against the pretrained weights it started from, then the fine-tuned
        backbone weights are loaded.
        """
        if checkpoint.get("format") != CHECKPOINT_FORMAT or "state_dict" not in checkpoint:
            raise ValueError(
                f"not an AIO checkpoint (format {checkpoint.get('format')!r}, expected "
                f"{CHECKPOINT_FORMAT!r})"
            )
        mine = self.backbone.weights_hash()
        theirs = checkpoint.get("backbone_hash")
        if theirs != mine:
            raise BackboneMismatchError(
                f"checkpoint was trained on backbone {checkpoint.get('backbone_id')!r} with "
                f"weights hash {theirs}, but this model's backbone "
                f"{self.backbone.backbone_id!r} has weights hash {mine}; load it on the same "
                "frozen backbone weights"
            )
        state = dict(checkpoint["state_dict"])
        if any(k.startswith("backbone.") for k in state):
            raise ValueError("checkpoint unexpectedly contains backbone weights")
        if "backbone_state_dict" in checkpoint:
            self.backbone.load_state_dict(checkpoint["backbone_state_dict"])
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("backbone.")]
        if strict and (missing or result.unexpected_keys):
            raise KeyError(
                f"checkpoint does not match the model: missing {missing}, unexpected "
                f"{list(result.unexpected_keys)}"
            )

    def save(self, path: str | Path) -> Path:
        """Write :meth:`trainable_state_dict` with ``torch.save``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.trainable_state_dict(), path)
        return path

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Mapping[str, Any] | str | Path,
        *,
        backbone: FrozenBackbone | None = None,
        map_location: str | torch.device = "cpu",
    ) -> AIOModel:
        """Rebuild a model from a checkpoint (dict or file); the backbone is rebuilt from the
        recorded config unless given, and its hash is verified."""
        if not isinstance(checkpoint, Mapping):
            checkpoint = torch.load(Path(checkpoint), map_location=map_location, weights_only=True)
        config = AIOConfig.from_dict(checkpoint["config"])
        model = cls(config, backbone=backbone)
        model.load_trainable_state_dict(checkpoint)
        return model
