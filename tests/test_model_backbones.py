"""Frozen backbones: registry, freezing, padding masks, offline errors, real MiniLM-L6."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aioreid.encoder.model import (
    BackboneUnavailableError,
    FrozenBackbone,
    TimmViTBackbone,
    available_backbones,
    build_backbone,
    minilm_path,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> FrozenBackbone:
    return build_backbone("tiny")


def _check_frozen(b: FrozenBackbone) -> None:
    assert all(not p.requires_grad for p in b.parameters())
    b.train()
    assert not b.training
    assert all(not m.training for m in b.modules())


def _check_padding_invariance(b: FrozenBackbone, n_real: int = 5, n_pad: int = 4) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, n_real, b.width, generator=g)
    alone = b(x, torch.ones(1, n_real, dtype=torch.bool))
    junk = torch.randn(1, n_pad, b.width, generator=g) * 50
    padded_x = torch.cat([x, junk], dim=1)
    mask = torch.zeros(1, n_real + n_pad, dtype=torch.bool)
    mask[:, :n_real] = True
    padded = b(padded_x, mask)
    assert torch.allclose(padded[:, :n_real], alone, atol=1e-5)
    # without the mask the junk does leak: the test can tell
    leaky = b(padded_x, torch.ones_like(mask))
    assert not torch.allclose(leaky[:, :n_real], alone, atol=1e-3)


def test_registry_lists_forms() -> None:
    forms = available_backbones()
    assert "minilm-l6" in forms and "tiny" in forms
    assert any(f.startswith("hf:") for f in forms) and any(f.startswith("timm:") for f in forms)


def test_tiny_backbone_properties(tiny: FrozenBackbone) -> None:
    assert tiny.width == 64 and tiny.num_layers == 2
    assert tiny.backbone_id == "tiny"
    assert tiny.text_tokenizer_path is not None
    we = tiny.word_embeddings()
    assert we is not None and we.shape == (30522, 64)
    _check_frozen(tiny)
    h = tiny.weights_hash()
    assert len(h) == 16 and h == build_backbone("tiny").weights_hash()  # fixed seed


def test_gradients_flow_through_frozen_backbone(tiny: FrozenBackbone) -> None:
    x = torch.randn(2, 4, tiny.width, requires_grad=True)
    tiny(x, torch.ones(2, 4, dtype=torch.bool)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())


def test_tiny_padding_invariance(tiny: FrozenBackbone) -> None:
    _check_padding_invariance(tiny)


def test_unknown_spec_lists_valid_forms() -> None:
    with pytest.raises(ValueError, match=r"valid forms.*minilm-l6.*hf:.*timm:"):
        build_backbone("resnet50")
    with pytest.raises(ValueError):
        build_backbone("")


def test_missing_local_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(BackboneUnavailableError, match=r"not available offline.*does not exist"):
        build_backbone(f"hf:{missing}")
    with pytest.raises(BackboneUnavailableError, match=r"local weights file.*does not exist"):
        build_backbone(f"timm:vit_tiny_patch16_224@{missing}.safetensors")


def test_uncached_hub_id_offline_is_a_clear_error() -> None:
    with pytest.raises(BackboneUnavailableError, match="not available offline"):
        build_backbone("hf:aioreid-test/definitely-not-cached-model")
    with pytest.raises(BackboneUnavailableError, match="local weights file"):
        build_backbone("timm:vit_base_patch16_clip_224.laion2b")


def test_hf_local_folder(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    from aioreid.encoder.model import AIOConfig, AIOModel

    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    b = build_backbone(f"hf:{tmp_path / 'bert'}")
    assert b.width == 32 and b.num_layers == 1 and b.max_positions == 512
    assert b.backbone_id == f"hf:{tmp_path / 'bert'}"
    assert b.text_tokenizer_path is None  # weights-only folder
    _check_frozen(b)
    _check_padding_invariance(b)
    # text still works with an explicit tokenizer; vocab sizes differ -> random word table
    m = AIOModel(
        AIOConfig(image_size=(32, 16), patch_size=2, text_tokenizer=minilm_path()), backbone=b
    )
    assert not m.text_tokenizer.pretrained_words
    assert m.eval().embed({"text": ["a man"]}).shape == (1, 32)


_TINY_VIT = {"depth": 2, "embed_dim": 64, "num_heads": 2, "img_size": 32}


def test_timm_tiny_vit_backbone(tmp_path: Path) -> None:
    b = build_backbone("timm:vit_tiny_patch16_224", pretrained=False, **_TINY_VIT)
    assert isinstance(b, TimmViTBackbone)
    assert b.width == 64 and b.num_layers == 2
    assert b.word_embeddings() is None
    _check_frozen(b)
    _check_padding_invariance(b)
    x = torch.randn(2, 3, 64, requires_grad=True)
    b(x, torch.ones(2, 3, dtype=torch.bool)).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in b.parameters())

    # local weights file path (what an offline GPU user does with the LAION ViT-B/16)
    import timm

    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **_TINY_VIT)
    weights = tmp_path / "vit.pth"
    torch.save(src.state_dict(), weights)
    loaded = build_backbone(f"timm:vit_tiny_patch16_224@{weights}", **_TINY_VIT)
    ref = TimmViTBackbone(src, backbone_id="ref")
    assert loaded.weights_hash() == ref.weights_hash()
    assert loaded.backbone_id == "timm:vit_tiny_patch16_224"


def test_real_minilm_l6_offline() -> None:
    from transformers import AutoModel

    b = build_backbone("minilm-l6")
    assert b.width == 384 and b.num_layers == 6 and b.backbone_id == "minilm-l6"
    _check_frozen(b)
    x = torch.randn(2, 7, 384, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 7, dtype=torch.bool)
    with torch.inference_mode():
        assert torch.equal(b(x, mask), b(x, mask))  # deterministic (dropout off)
        _check_padding_invariance(b)
        # fed word + position embeddings, it reproduces the pretrained BertModel exactly
        from aioreid.encoder.model.tokenizers import load_hf_tokenizer

        tok = load_hf_tokenizer(minilm_path())
        enc = tok(["a woman in a red coat", "hi"], padding="longest", return_tensors="pt")
        ref = AutoModel.from_pretrained(minilm_path(), local_files_only=True).eval()
        want = ref(**enc).last_hidden_state
        words, pos = b.word_embeddings(), b.position_embeddings()
        assert words is not None and pos is not None
        ids = enc["input_ids"]
        got = b(words[ids] + pos[: ids.shape[1]], enc["attention_mask"].bool())
        real = enc["attention_mask"].bool()
        assert torch.allclose(got[real], want[real], atol=1e-4)
