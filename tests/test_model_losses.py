"""AIO loss functions against small hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from aioreid.encoder.model.heads import MFBHead
from aioreid.encoder.model.losses import (
    batch_hard_triplet_loss,
    euclidean_distances,
    label_smoothing_cross_entropy,
    supervised_infonce,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_label_smoothing_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    target = torch.tensor([0])
    eps, k = 0.1, 3
    q_true = 1 - eps + eps / k
    expected = math.log(math.e**2 + 2) - q_true * 2.0
    got = label_smoothing_cross_entropy(logits, target, eps)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    plain = label_smoothing_cross_entropy(logits, target, 0.0)
    assert plain.item() == pytest.approx(math.log(math.e**2 + 2) - 2.0, abs=1e-6)


def test_euclidean_distances() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    d = euclidean_distances(x, x)
    assert d[0, 1].item() == pytest.approx(5.0, abs=1e-5)
    assert d[0, 0].item() == pytest.approx(0.0, abs=1e-5)


def test_batch_hard_triplet_by_hand() -> None:
    feats = torch.tensor([[0.0], [2.0], [2.5], [5.0]], requires_grad=True)
    pids = torch.tensor([0, 0, 1, 1])
    # anchors: 0 -> 2-2.5+.3<0 ; 1 -> 2-0.5+.3=1.8 ; 2 -> 2.5-0.5+.3=2.3 ; 3 -> 2.5-3+.3<0
    loss = batch_hard_triplet_loss(feats, pids, margin=0.3)
    assert loss.item() == pytest.approx((1.8 + 2.3) / 4, abs=1e-5)
    loss.backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()


def test_triplet_ignores_anchors_without_positive() -> None:
    feats = torch.tensor([[0.0], [2.0], [2.5], [5.0]])
    pids = torch.tensor([0, 0, 1, 2])  # ids 1 and 2 are singletons
    # only anchors 0 and 1: 0 -> 2-2.5+.3=-0.2 -> 0 ; 1 -> 2-0.5+.3 = 1.8
    loss = batch_hard_triplet_loss(feats, pids, margin=0.3)
    assert loss.item() == pytest.approx(1.8 / 2, abs=1e-5)
    all_single = batch_hard_triplet_loss(feats, torch.arange(4), margin=0.3)
    assert all_single.item() == 0.0


def test_supervised_infonce_one_positive_each() -> None:
    eye = torch.eye(2)
    pids = torch.tensor([0, 1])
    loss = supervised_infonce(eye, pids, eye, pids, 1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.e) - 1.0, abs=1e-6)


def test_supervised_infonce_all_same_identity_pairs_positive() -> None:
    q = torch.tensor([[1.0, 0.0]])
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])  # normalised inside
    # logits [2, 0, 2]; q->a: mean over the 2 positives of -(2 - log(2e^2+1));
    # a->q: each anchor sees a single query -> log-prob 0; anchor 1 has no positive.
    loss = supervised_infonce(q, torch.tensor([0]), a, torch.tensor([0, 1, 0]), 2.0)
    expected = 0.5 * (math.log(2 * math.e**2 + 1) - 2.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_mfb_head_temperature_learnable_and_clamped() -> None:
    head = MFBHead(0.07)
    assert head.temperature() == pytest.approx(0.07, rel=1e-5)
    assert head.log_scale.requires_grad
    with torch.no_grad():
        head.log_scale.fill_(10.0)
    assert head.scale().item() == pytest.approx(100.0, rel=1e-5)
    fixed = MFBHead(0.07, learnable=False)
    assert not any(p is fixed.log_scale for p in fixed.parameters())
    feats = torch.randn(4, 8)
    pids = torch.tensor([0, 0, 1, 1])
    loss = head(feats, pids, [(feats + 0.1, pids)])
    assert torch.isfinite(loss)
