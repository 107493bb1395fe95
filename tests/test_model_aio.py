"""AIOModel: frozen backbone training semantics, features, heads, losses, checkpoints."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model import (
    AIOConfig,
    AIOModel,
    BackboneMismatchError,
    FrozenBackbone,
    build_backbone,
    compute_losses,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


H, W = 32, 16
CAPTIONS = [
    "a man in a red shirt and blue jeans with a black backpack",
    "a woman with long blonde hair wearing a white dress",
    "a young man in a gray hoodie and black shorts",
    "a woman in a green coat carrying a brown handbag",
]


@pytest.fixture(scope="module")
def backbone() -> FrozenBackbone:
    return build_backbone("tiny")


def _config(**kw: Any) -> AIOConfig:
    base: dict[str, Any] = {
        "backbone": "tiny",
        "image_size": (H, W),
        "patch_size": 2,
        "num_classes": 4,
    }
    base.update(kw)
    return AIOConfig(**base)


def _model(backbone: FrozenBackbone, seed: int = 0, **kw: Any) -> AIOModel:
    torch.manual_seed(seed)
    return AIOModel(_config(**kw), backbone=backbone)


def _batch(k: int = 2, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    pids = torch.arange(4).repeat_interleave(k)
    b = len(pids)
    return {
        "rgb": torch.randn(b, 3, H, W, generator=g),
        "ir": torch.randn(b, 3, H, W, generator=g),
        "sketch": torch.randn(b, 3, H, W, generator=g),
        "text": [CAPTIONS[int(p)] for p in pids],
        "pids": pids,
    }


def test_features_shapes_and_projection(backbone: FrozenBackbone) -> None:
    m = _model(backbone).eval()
    f = m.forward_features({"rgb": torch.randn(2, 3, H, W), "text": CAPTIONS[:2]})
    assert f.pre_bn.shape == (2, 64) and f.bn is not None and f.bn.shape == (2, 64)
    assert f.tokens.shape[:2] == f.mask.shape
    e = m.embed({"sketch": torch.randn(3, 1, H, W)})
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    p = _model(backbone, embed_dim=32).eval()
    assert p.embed({"ir": torch.randn(2, 3, H, W)}).shape == (2, 32)


def test_only_tokenizers_and_heads_train(backbone: FrozenBackbone) -> None:
    m = _model(backbone)
    trainable = {id(p) for p in m.parameters_to_train()}
    assert not trainable & {id(p) for p in m.backbone.parameters()}
    assert id(m.tokenizer.images["rgb"].proj.weight) in trainable
    assert id(m.bottleneck.bias) not in trainable  # BN-neck bias frozen
    before_bb = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    before_tok = {k: v.clone() for k, v in m.tokenizer.state_dict().items()}
    opt = torch.optim.SGD(m.parameters_to_train(), lr=0.1)
    m.train()
    assert not m.backbone.training and m.tokenizer.training
    losses = compute_losses(m, _batch())
    opt.zero_grad()
    losses["total"].backward()
    assert all(p.grad is None for p in m.backbone.parameters())
    assert m.tokenizer.images["ir"].proj.weight.grad is not None
    assert m.tokenizer.cls_token.grad is not None
    opt.step()
    assert all(torch.equal(v, m.backbone.state_dict()[k]) for k, v in before_bb.items())
    changed = [k for k, v in before_tok.items() if not torch.equal(v, m.tokenizer.state_dict()[k])]
    assert any("images.rgb" in k for k in changed) and any("text.embed" in k for k in changed)
    assert "modality_embed" in changed and "cls_token" in changed


def test_loss_keys_and_switches(backbone: FrozenBackbone) -> None:
    batch = _batch()
    full = compute_losses(_model(backbone), batch, generator=torch.Generator().manual_seed(0))
    accs = {k for k in full if k.startswith("acc_")}
    assert set(full) - accs == {"cc_id", "cc_triplet", "cc", "vgmam", "vgmam_acc", "mfb", "total"}
    assert accs == {f"acc_{v}" for v in ("rgb", "ir", "sketch", "text", "sketch+text", "rgb+text")}
    assert all(0.0 <= float(full[k]) <= 1.0 and not full[k].requires_grad for k in accs)
    assert all(torch.isfinite(v) for v in full.values())
    expected = full["cc"] + full["vgmam"] + full["mfb"]
    assert torch.allclose(full["total"], expected)
    assert not full["vgmam_acc"].requires_grad
    cases = {
        "use_cc": {"cc_id", "cc_triplet", "cc"} | accs,
        "use_triplet": {"cc_triplet"},
        "use_vgmam": {"vgmam", "vgmam_acc"},
        "use_mfb": {"mfb"},
    }
    for switch, gone in cases.items():
        out = compute_losses(_model(backbone, **{switch: False}), batch)
        assert set(out) == set(full) - gone, switch
        assert torch.isfinite(out["total"])
    assert _model(backbone, use_vgmam=False).vgmam is None
    assert _model(backbone, use_mfb=False).mfb is None


def test_vgmam_can_be_guided_by_ir_without_colour_targets(backbone: FrozenBackbone) -> None:
    batch = _batch()
    only_vgmam = {"use_cc": False, "use_mfb": False, "train_views": ("text",)}
    m = _model(backbone, vgmam_views=("rgb", "ir"), **only_vgmam)
    out = compute_losses(m, batch, generator=torch.Generator().manual_seed(0))
    assert {"vgmam", "vgmam_acc", "vgmam_acc_ir"} <= set(out)
    out["total"].backward()
    ir_grad = m.tokenizer.images["ir"].proj.weight.grad
    assert ir_grad is not None and ir_grad.abs().sum() > 0  # VGMAM alone trains the IR path
    default = _model(backbone, **only_vgmam)
    compute_losses(default, batch, generator=torch.Generator().manual_seed(0))["total"].backward()
    assert default.tokenizer.images["ir"].proj.weight.grad is None
    # a caption whose only attribute words are colours gives IR nothing to predict
    colours = {**batch, "text": ["a red and blue and black one"] * len(batch["pids"])}
    ir_only = _model(backbone, vgmam_views=("ir",), **only_vgmam)
    out = compute_losses(ir_only, colours, generator=torch.Generator().manual_seed(0))
    assert float(out["vgmam"]) == 0.0 and "vgmam_acc" not in out
    rgb = compute_losses(m, colours, generator=torch.Generator().manual_seed(0))
    assert float(rgb["vgmam"]) > 0.0  # while RGB predicts the masked colours
    for bad in ("text", "depth"):
        with pytest.raises(ValueError, match=bad):
            _config(vgmam_views=("rgb", bad))


def test_loss_weights_and_missing_modalities(backbone: FrozenBackbone) -> None:
    batch = _batch()
    m = _model(backbone, mfb_weight=0.0, vgmam_weight=2.0)
    out = compute_losses(m, batch, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out["total"], out["cc"] + 2.0 * out["vgmam"])
    # a batch without IR/sketch still trains (only views it can build)
    rgb_text = {k: batch[k] for k in ("rgb", "text", "pids")}
    out2 = compute_losses(m, rgb_text)
    assert torch.isfinite(out2["total"])
    with pytest.raises(ValueError, match="rgb"):
        compute_losses(_model(backbone), {"ir": batch["ir"], "pids": batch["pids"]})
    with pytest.raises(ValueError, match="relabelled"):
        compute_losses(m, {**batch, "pids": batch["pids"] + 10})


def test_singleton_identities_are_fine(backbone: FrozenBackbone) -> None:
    batch = _batch(k=1)  # every identity once: triplet has no positives
    out = compute_losses(_model(backbone), batch)
    assert all(torch.isfinite(v) for v in out.values())


def test_tiny_overfit_decreases_total(backbone: FrozenBackbone) -> None:
    m = _model(backbone, seed=1)
    batch = _batch(seed=1)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(m.parameters_to_train(), lr=1e-3)
    m.train()
    totals: list[float] = []
    for _ in range(30):
        out = compute_losses(m, batch, generator=g)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        totals.append(float(out["total"].detach()))
        assert math.isfinite(totals[-1])
    assert totals[-1] < totals[0] * 0.9
    assert m.mfb is not None and m.mfb.temperature() != pytest.approx(0.07, rel=1e-6)


def test_padding_does_not_change_text_features(backbone: FrozenBackbone) -> None:
    m = _model(backbone).eval()
    with torch.inference_mode():
        alone = m.embed({"text": [CAPTIONS[2]]})
        batched = m.embed({"text": [CAPTIONS[2], CAPTIONS[0] + " and a cap and sunglasses"]})
        assert torch.allclose(alone[0], batched[0], atol=1e-5)
        img = torch.randn(1, 3, H, W)
        a = m.embed({"rgb": img, "text": [CAPTIONS[2]]})
        b = m.embed({"rgb": img.repeat(2, 1, 1, 1), "text": [CAPTIONS[2], CAPTIONS[0]]})
        assert torch.allclose(a[0], b[0], atol=1e-5)


def _nbytes(obj: object) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getbuffer().nbytes


def test_checkpoint_round_trip(backbone: FrozenBackbone, tmp_path: Path) -> None:
    m = _model(backbone, seed=3)
    opt = torch.optim.SGD(m.parameters_to_train(), lr=0.1)
    m.train()
    compute_losses(m, _batch())["total"].backward()
    opt.step()
    m.eval()
    ckpt = m.trainable_state_dict()
    assert ckpt["backbone_id"] == "tiny" and ckpt["backbone_hash"] == backbone.weights_hash()
    assert not any(k.startswith("backbone.") for k in ckpt["state_dict"])
    backbone_bytes = sum(t.numel() * t.element_size() for t in m.backbone.state_dict().values())
    assert _nbytes(ckpt) < _nbytes(m.state_dict()) - 0.9 * backbone_bytes

    path = m.save(tmp_path / "ckpt" / "aio.pt")
    restored = AIOModel.from_checkpoint(path).eval()
    x = {"rgb": torch.randn(2, 3, H, W), "text": CAPTIONS[:2]}
    with torch.inference_mode():
        assert torch.allclose(m.embed(x), restored.embed(x), atol=1e-6)

    fresh = _model(backbone, seed=9)
    fresh.load_trainable_state_dict(ckpt)
    assert torch.equal(fresh.tokenizer.cls_token, m.tokenizer.cls_token)


def test_checkpoint_hash_mismatch_raises(backbone: FrozenBackbone) -> None:
    ckpt = _model(backbone).trainable_state_dict()
    other = build_backbone("tiny")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    other._weights_hash = None  # weights changed behind the cache's back
    m = _model(other)
    with pytest.raises(BackboneMismatchError, match="weights hash"):
        m.load_trainable_state_dict(ckpt)
    with pytest.raises(ValueError, match="not an AIO checkpoint"):
        m.load_trainable_state_dict({"state_dict": {}})
    bad = dict(ckpt, state_dict={**ckpt["state_dict"], "extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="unexpected"):
        _model(backbone).load_trainable_state_dict(bad)


def test_config_dict_round_trip() -> None:
    cfg = _config(embed_dim=32, train_views=("rgb", "text"))
    again = AIOConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match="unknown"):
        AIOConfig.from_dict({"nope": 1})


def test_mfb_can_bind_to_a_detached_text_anchor(backbone: FrozenBackbone) -> None:
    kw = {
        "use_cc": False,
        "use_vgmam": False,
        "mfb_anchor": "text",
        "mfb_anchor_detach": True,
        "mfb_on_bn": False,  # pre-BN: no shared batch statistics couple the views
        "train_views": ("rgb", "ir", "sketch", "text"),
    }
    m = _model(backbone, **kw)
    losses = compute_losses(m, _batch())
    assert set(losses) == {"mfb", "total"} and float(losses["mfb"]) > 0
    losses["total"].backward()
    text_grad = m.tokenizer.text.embed.weight.grad
    assert text_grad is None or float(text_grad.abs().sum()) == 0.0  # the teacher stays put
    assert float(m.tokenizer.images["rgb"].proj.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="binds every view to text"):
        compute_losses(m, {k: v for k, v in _batch().items() if k != "text"})


def test_attribute_binding_targets_mask_colours_and_learn(backbone: FrozenBackbone) -> None:
    kw = {"use_attr": True, "use_vgmam": False, "use_mfb": False, "use_cc": False}
    m = _model(backbone, **kw)
    head = m.attr
    assert head is not None
    t = head.targets(["A man in a RED Jacket.", "nothing known", "black jeans, black shoes"])
    words = lambda row: {head.words[i] for i in t[row].nonzero().flatten().tolist()}  # noqa: E731
    assert words(0) == {"man", "red", "jacket"}
    assert words(1) == set()
    assert words(2) == {"black", "jeans", "shoes"}
    # An IR view is never asked for colours: its loss ignores colour logits entirely.
    feats = torch.randn(3, m.embed_dim, generator=torch.Generator().manual_seed(0))
    ir_loss, _ = head.loss(feats, t, (Modality.IR,))
    ir_loss.backward()
    colour_cols = head.colour.nonzero().flatten()
    assert colour_cols.numel() > 0
    assert float(head.linear.weight.grad[colour_cols].abs().sum()) == 0.0
    assert float(head.linear.weight.grad[~head.colour].abs().sum()) > 0.0
    # Without attr_text in the batch there is nothing to bind: the loss is absent.
    batch = _batch()
    assert "attr" not in compute_losses(m, batch)
    batch["attr_text"] = batch["text"]
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(m.parameters_to_train(), lr=1e-2)
    first = None
    for _ in range(60):
        out = compute_losses(m, batch, generator=g)
        first = float(out["attr"].detach()) if first is None else first
        opt.zero_grad()
        out["total"].backward()
        opt.step()
    assert {"attr", "attr_f1_rgb", "attr_f1_ir", "attr_f1_text"} <= set(out)
    assert float(out["attr"].detach()) < 0.5 * first
    assert float(out["attr_f1_text"]) > 0.9
