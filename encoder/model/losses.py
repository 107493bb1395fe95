"""Loss functions of AIO's training heads (pure functions, no parameters)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "batch_hard_triplet_loss",
    "euclidean_distances",
    "label_smoothing_cross_entropy",
    "supervised_infonce",
]


def label_smoothing_cross_entropy(logits: Tensor, targets: Tensor, epsilon: float = 0.1) -> Tensor:
    """Cross-entropy against ``(1 - epsilon) * onehot + epsilon / K`` (ReID strong baseline)."""
    return F.cross_entropy(logits, targets, label_smoothing=float(epsilon))


def euclidean_distances(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise Euclidean distances ``[N, M]``, clamped away from 0 for a finite gradient."""
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1, keepdim=True).t() - 2.0 * x @ y.t()
    return sq.clamp_min(1e-12).sqrt()


def batch_hard_triplet_loss(features: Tensor, pids: Tensor, margin: float = 0.3) -> Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances.

    For every anchor: hardest positive (farthest same-id sample, itself excluded) and hardest
    negative (closest other-id sample); loss = mean over anchors of
    ``relu(d_ap - d_an + margin)``. Anchors without a positive or a negative are ignored; a
    batch with no valid anchor gives 0 (still attached to the graph).
    """
    n = features.shape[0]
    dist = euclidean_distances(features, features)
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid.any()):
        return features.sum() * 0.0
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(1)
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(1)
    losses = F.relu(d_ap[valid] - d_an[valid] + margin)
    return losses.mean()


def _supcon_direction(logits: Tensor, positives: Tensor) -> Tensor:
    """Mean over rows that have a positive of ``-mean_{j in P(i)} log softmax(logits_i)_j``."""
    log_prob = logits.log_softmax(dim=1)
    has_pos = positives.any(1)
    if not bool(has_pos.any()):
        return logits.sum() * 0.0
    pos = positives.to(log_prob.dtype)
    per_row = -(log_prob * pos).sum(1) / pos.sum(1).clamp_min(1.0)
    return per_row[has_pos].mean()


def supervised_infonce(
    queries: Tensor,
    query_pids: Tensor,
    anchors: Tensor,
    anchor_pids: Tensor,
    logit_scale: Tensor | float,
) -> Tensor:
    """Symmetric supervised InfoNCE between two feature sets (MFB binding).

    Features are L2-normalised; ``logits = scale * q @ a.T``. Direction q->a: each query is
    classified among all anchors, every same-identity anchor a positive (SupCon "L_out":
    mean of the positives' log-probabilities); direction a->q likewise over queries. The loss
    is the mean of both directions; rows without any positive are ignored.
    """
    q = F.normalize(queries, dim=1)
    a = F.normalize(anchors, dim=1)
    logits = logit_scale * (q @ a.t())
    positives = query_pids[:, None] == anchor_pids[None, :]
    q2a = _supcon_direction(logits, positives)
    a2q = _supcon_direction(logits.t(), positives.t())
    return 0.5 * (q2a + a2q)
