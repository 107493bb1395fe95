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
    REMOVED_OPTIONS,
    AIOConfig,
    AIOModel,
    BackboneMismatchError,
    FrozenBackbone,
    RemovedOptionError,
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
    out = compute_losses(m, _batch())
    opt.zero_grad()
    out.total.backward()
    assert all(p.grad is None for p in m.backbone.parameters())
    assert m.tokenizer.images["ir"].proj.weight.grad is not None
    assert m.tokenizer.cls_token.grad is not None
    opt.step()
    assert all(torch.equal(v, m.backbone.state_dict()[k]) for k, v in before_bb.items())
    changed = [k for k, v in before_tok.items() if not torch.equal(v, m.tokenizer.state_dict()[k])]
    assert any("images.rgb" in k for k in changed) and any("text.embed" in k for k in changed)
    assert "modality_embed" in changed and "cls_token" in changed


def test_losses_and_metrics_come_apart_and_switch_off(backbone: FrozenBackbone) -> None:
    batch = _batch()
    full = compute_losses(_model(backbone), batch, generator=torch.Generator().manual_seed(0))
    views = ("rgb", "ir", "sketch", "text", "sketch+text", "rgb+text")
    accs = {f"acc_{v}" for v in views}
    assert set(full.losses) == {"cc_id", "cc_triplet", "cc", "vgmam", "mfb", "total"}
    assert set(full.metrics) == accs | {"vgmam_acc"}
    assert all(v.requires_grad for v in full.losses.values())
    assert all(0.0 <= float(v) <= 1.0 and not v.requires_grad for v in full.metrics.values())
    assert all(torch.isfinite(v) for v in full.losses.values())
    expected = full.losses["cc"] + full.losses["vgmam"] + full.losses["mfb"]
    assert torch.allclose(full.total, expected)
    cases = {
        "use_cc": ({"cc_id", "cc_triplet", "cc"}, accs),
        "use_triplet": ({"cc_triplet"}, set()),
        "use_vgmam": ({"vgmam"}, {"vgmam_acc"}),
        "use_mfb": ({"mfb"}, set()),
    }
    for switch, (gone, gone_metrics) in cases.items():
        out = compute_losses(_model(backbone, **{switch: False}), batch)
        assert set(out.losses) == set(full.losses) - gone, switch
        assert set(out.metrics) == set(full.metrics) - gone_metrics, switch
        assert torch.isfinite(out.total)
    assert _model(backbone, use_vgmam=False).vgmam is None
    assert _model(backbone, use_mfb=False).mfb is None


def test_vgmam_is_guided_by_rgb_only(backbone: FrozenBackbone) -> None:
    batch = _batch()
    m = _model(backbone, use_cc=False, use_mfb=False, train_views=("text",))
    out = compute_losses(m, batch, generator=torch.Generator().manual_seed(0))
    assert set(out.losses) == {"vgmam", "total"} and set(out.metrics) == {"vgmam_acc"}
    out.total.backward()
    assert float(m.tokenizer.images["rgb"].proj.weight.grad.abs().sum()) > 0
    assert m.tokenizer.images["ir"].proj.weight.grad is None
    # no RGB image in the batch: nothing guides the masked words
    no_rgb = {k: v for k, v in batch.items() if k != "rgb"}
    assert "vgmam" not in compute_losses(m, no_rgb).losses


def test_loss_weights_and_missing_modalities(backbone: FrozenBackbone) -> None:
    batch = _batch()
    m = _model(backbone, mfb_weight=0.0, vgmam_weight=2.0)
    out = compute_losses(m, batch, generator=torch.Generator().manual_seed(0)).losses
    assert torch.allclose(out["total"], out["cc"] + 2.0 * out["vgmam"])
    # a batch without IR/sketch still trains (only views it can build)
    rgb_text = {k: batch[k] for k in ("rgb", "text", "pids")}
    out2 = compute_losses(m, rgb_text)
    assert torch.isfinite(out2.total)
    with pytest.raises(ValueError, match="rgb"):
        compute_losses(_model(backbone), {"ir": batch["ir"], "pids": batch["pids"]})
    with pytest.raises(ValueError, match="relabelled"):
        compute_losses(m, {**batch, "pids": batch["pids"] + 10})


def test_singleton_identities_are_fine(backbone: FrozenBackbone) -> None:
    batch = _batch(k=1)  # every identity once: triplet has no positives
    out = compute_losses(_model(backbone), batch)
    assert all(torch.isfinite(v) for v in (*out.losses.values(), *out.metrics.values()))


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
        out.total.backward()
        opt.step()
        totals.append(float(out.total.detach()))
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
    compute_losses(m, _batch()).total.backward()
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


def test_removed_experiment_switches_load_off_and_refuse_on(
    backbone: FrozenBackbone, tmp_path: Path
) -> None:
    """A checkpoint written while the experiment switches existed lists them all, at their
    defaults: it loads (and embeds as before); one trained with a switch on is refused."""
    old = {**_config().to_dict(), **REMOVED_OPTIONS}
    old["vgmam_views"] = ["rgb"]  # stored as JSON lists
    assert AIOConfig.from_dict(old) == _config()
    m = _model(backbone, seed=4).eval()
    ckpt = {**m.trainable_state_dict(), "config": old}
    torch.save(ckpt, tmp_path / "old.pt")
    restored = AIOModel.from_checkpoint(tmp_path / "old.pt", backbone=backbone).eval()
    x = {"sketch": torch.randn(2, 3, H, W), "text": CAPTIONS[:2]}
    with torch.inference_mode():
        assert torch.equal(m.embed(x), restored.embed(x))
    for key, on in {
        "shared_image_init": True,
        "share_image_tokenizer": True,
        "mfb_anchor_detach": True,
        "mfb_on_bn": False,
        "vgmam_tie_embeddings": False,
        "image_vocab_scale": 3.0,
        "stem_blocks": 2,
        "vgmam_views": ["rgb", "ir"],
    }.items():
        with pytest.raises(RemovedOptionError, match=rf"{key}=.*did not help"):
            AIOConfig.from_dict({**old, key: on})
        with pytest.raises(RemovedOptionError, match=key):
            AIOModel.from_checkpoint({**ckpt, "config": {**old, key: on}}, backbone=backbone)


def test_mfb_can_bind_to_a_text_anchor(backbone: FrozenBackbone) -> None:
    kw = {
        "use_cc": False,
        "use_vgmam": False,
        "mfb_anchor": "text",
        "train_views": ("rgb", "ir", "sketch", "text"),
    }
    m = _model(backbone, **kw)
    out = compute_losses(m, _batch())
    assert set(out.losses) == {"mfb", "total"} and float(out.losses["mfb"].detach()) > 0
    out.total.backward()
    assert float(m.tokenizer.text.embed.weight.grad.abs().sum()) > 0
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
    assert "attr" not in compute_losses(m, batch).losses
    batch["attr_text"] = batch["text"]
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(m.parameters_to_train(), lr=1e-2)
    first = None
    for _ in range(60):
        out = compute_losses(m, batch, generator=g)
        first = float(out.losses["attr"].detach()) if first is None else first
        opt.zero_grad()
        out.total.backward()
        opt.step()
    assert "attr" in out.losses
    assert {"attr_f1_rgb", "attr_f1_ir", "attr_f1_text"} <= set(out.metrics)
    assert float(out.losses["attr"].detach()) < 0.5 * first
    assert float(out.metrics["attr_f1_text"]) > 0.9
