"""The training objective: one call from a batch dict to every AIO loss.

Batch format (what the training loop passes)::

    {"rgb": B x 3 x H x W, "ir": B x 3 x H x W, "sketch": B x 3 x H x W,   # float, normalised
     "text": list[str] (B captions), "pids": LongTensor[B] relabelled 0..C-1,
     "attr_text": list[str] (optional: all captions of each sample's identity, joined),
     "has_text": BoolTensor[B] (optional: which rows have a caption)}

Image keys or ``"text"`` may be absent (or ``None``); views needing them are then skipped.
With ``"has_text"``, views that include text are built from the captioned rows only (a
batch mixing text-ReID data with caption-less IR or sketch data keeps its text views).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..data.records import Modality
from .aio import AIOModel, parse_view, view_key
from .heads import mask_attribute_words
from .losses import batch_hard_triplet_loss, label_smoothing_cross_entropy
from .tokenizers import Part

__all__ = ["LossOutput", "compute_losses"]


@dataclass
class LossOutput:
    """What :func:`compute_losses` returns: what to optimise apart from what to watch.

    ``losses``: differentiable terms, ``total`` among them (the one to call ``backward`` on).
    ``metrics``: detached training diagnostics (accuracies, F1 scores) that no gradient
    reaches; summing them with the losses would be meaningless.
    """

    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)

    @property
    def total(self) -> Tensor:
        """The weighted sum of every enabled loss."""
        return self.losses["total"]


def _text_rows(model: AIOModel, batch: Mapping[str, Any]) -> Tensor | None:
    """Indices of the captioned rows when ``has_text`` marks only some (``None``: all rows,
    or no text at all)."""
    has = batch.get("has_text")
    if batch.get(Modality.TEXT.value) is None or has is None:
        return None
    has = torch.as_tensor(has, dtype=torch.bool)
    if bool(has.all()):
        return None
    return has.nonzero().flatten().to(model.device)


def _inputs(
    model: AIOModel, batch: Mapping[str, Any], text_rows: Tensor | None
) -> dict[Modality, Part]:
    out: dict[Modality, Part] = {}
    for m in (Modality.RGB, Modality.IR, Modality.SKETCH):
        v = batch.get(m.value)
        if v is not None:
            out[m] = v.to(model.device, torch.float32)
    text = batch.get(Modality.TEXT.value)
    if text is not None:
        captions = list(text)
        if text_rows is not None:
            captions = [captions[i] for i in text_rows.tolist()]
        if captions:
            out[Modality.TEXT] = model.encode_text(captions)
    return out


def _view_rows(
    view: tuple[Modality, ...], inputs: Mapping[Modality, Part], text_rows: Tensor | None
) -> dict[Modality, Part]:
    """The view's parts; with text among them, image parts restricted to captioned rows."""
    if text_rows is None or Modality.TEXT not in view:
        return {m: inputs[m] for m in view}
    return {
        m: inputs[m] if m is Modality.TEXT else inputs[m][text_rows]  # type: ignore[index]
        for m in view
    }


def _vgmam(
    model: AIOModel,
    captions: list[str],
    images: Tensor,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """VGMAM guided by the paired RGB images: (loss, masked-word accuracy)."""
    masked, labels = mask_attribute_words(
        model.text_tokenizer,
        captions,
        model.config.attribute_words,
        prob=model.config.vgmam_mask_prob,
        generator=generator,
    )
    masked, labels = masked.to(model.device), labels.to(model.device)
    tokens, mask, spans = model.tokenize(
        {Modality.TEXT: masked, Modality.RGB: images}, order=(Modality.TEXT, Modality.RGB)
    )
    hidden = model.backbone(tokens, mask)
    start, end = spans[Modality.TEXT]
    select = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
    select[:, start:end] = labels != -100
    assert model.vgmam is not None
    logits = model.vgmam(hidden, mask, select, model.text_tokenizer.embed.weight)
    return model.vgmam.loss(logits, labels[labels != -100])


def compute_losses(
    model: AIOModel,
    batch: Mapping[str, Any],
    *,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """All enabled AIO losses for one batch (see the module docstring for its format).

    Encodes every view of ``config.train_views`` whose parts are in the batch (default: rgb,
    ir, sketch, text, sketch+text, rgb+text); the BN-neck runs once over all views together
    (OUR CHOICE: shared batch statistics across modalities, as in cross-modality ReID).

    ``losses``: ``cc_id`` (label-smoothed CE, shared classifier over all views),
    ``cc_triplet`` (batch-hard triplet on pre-BN features, mean over views), ``cc`` (their
    weighted sum), ``vgmam`` (needs text and rgb), ``mfb`` (every other view bound to the
    ``config.mfb_anchor`` view on BN-neck features), ``attr`` (attribute binding of every view;
    needs ``attr_text``) and ``total`` = cc_weight*cc + vgmam_weight*vgmam + mfb_weight*mfb +
    attr_weight*attr. ``metrics`` (detached): ``acc_<view>`` (identity accuracy of each view),
    ``vgmam_acc`` (masked-word accuracy) and ``attr_f1_<view>``. A head switched off in the
    config has no keys.
    """
    cfg = model.config
    if "pids" not in batch:
        raise KeyError("batch needs 'pids' (LongTensor[B] relabelled 0..C-1)")
    pids = torch.as_tensor(batch["pids"]).to(model.device).long()
    text_rows = _text_rows(model, batch)
    inputs = _inputs(model, batch, text_rows)
    views = [v for v in (parse_view(s) for s in cfg.train_views) if all(m in inputs for m in v)]
    if not views:
        raise ValueError(
            f"no training view of {list(cfg.train_views)} can be built from batch keys "
            f"{sorted(k for k in batch if batch[k] is not None)}"
        )
    # Rows of each view: all, or the captioned ones for a view with text.
    rows = [text_rows if text_rows is not None and Modality.TEXT in v else None for v in views]
    view_pids = [pids if r is None else pids[r] for r in rows]
    pre: list[Tensor] = []
    for view, vp in zip(views, view_pids, strict=True):
        feats = model.forward_features(_view_rows(view, inputs, text_rows), neck=False)
        if feats.pre_bn.shape[0] != vp.shape[0]:
            raise ValueError(
                f"view {view} has batch size {feats.pre_bn.shape[0]}, pids {vp.shape[0]}"
            )
        pre.append(feats.pre_bn)
    sizes = [int(vp.shape[0]) for vp in view_pids]
    pids_all = torch.cat(view_pids)
    pre_all = torch.cat(pre)
    bn_all = model.bottleneck(pre_all)
    bn = list(bn_all.split(sizes))

    out = LossOutput()
    losses, metrics = out.losses, out.metrics
    total = pre_all.new_zeros(())

    if cfg.use_cc:
        if model.classifier is None:
            raise ValueError("CC head enabled but num_classes is 0; set AIOConfig.num_classes")
        if int(pids.min()) < 0 or int(pids.max()) >= cfg.num_classes:
            raise ValueError(
                f"pids must be relabelled to 0..{cfg.num_classes - 1}, got range "
                f"{int(pids.min())}..{int(pids.max())}"
            )
        logits = model.classifier(bn_all)
        cc_id = label_smoothing_cross_entropy(logits, pids_all, cfg.label_smoothing)
        losses["cc_id"] = cc_id
        with torch.no_grad():  # per-view training accuracy: which modality learns identity
            hit = (logits.argmax(1) == pids_all).float().split(sizes)
            for view, h in zip(views, hit, strict=True):
                metrics[f"acc_{view_key(view)}"] = h.mean()
        cc = cc_id
        if cfg.use_triplet:
            trip = torch.stack(
                [
                    batch_hard_triplet_loss(f, vp, cfg.triplet_margin)
                    for f, vp in zip(pre, view_pids, strict=True)
                ]
            ).mean()
            losses["cc_triplet"] = trip
            cc = cc + cfg.triplet_weight * trip
        losses["cc"] = cc
        total = total + cfg.cc_weight * cc

    vgmam_ready = Modality.TEXT in inputs and Modality.RGB in inputs
    if cfg.use_vgmam and model.vgmam is not None and vgmam_ready:
        captions = list(batch["text"])
        if text_rows is not None:  # captioned rows only
            captions = [captions[i] for i in text_rows.tolist()]
        images = _view_rows((Modality.RGB, Modality.TEXT), inputs, text_rows)[Modality.RGB]
        vg_loss, metrics["vgmam_acc"] = _vgmam(model, captions, images, generator)
        losses["vgmam"] = vg_loss
        total = total + cfg.vgmam_weight * vg_loss

    attr_text = batch.get("attr_text")
    if cfg.use_attr and model.attr is not None and attr_text is not None:
        targets = model.attr.targets(list(attr_text))
        parts = [
            model.attr.loss(f, targets if r is None else targets[r], v)
            for v, f, r in zip(views, bn, rows, strict=True)
        ]
        attr = torch.stack([p[0] for p in parts]).mean()
        losses["attr"] = attr
        for view, (_, f1) in zip(views, parts, strict=True):
            metrics[f"attr_f1_{view_key(view)}"] = f1
        total = total + cfg.attr_weight * attr

    if cfg.use_mfb and model.mfb is not None:
        anchor_view = parse_view(cfg.mfb_anchor)
        if anchor_view not in views:
            raise ValueError(
                f"MFB binds every view to {cfg.mfb_anchor}; the batch has no such view"
            )
        # BN-neck features: MFB binds the views in the space inference searches in.
        anchors = bn[views.index(anchor_view)]
        others = [
            (f, vp) for v, f, vp in zip(views, bn, view_pids, strict=True) if v != anchor_view
        ]
        mfb = model.mfb(anchors, view_pids[views.index(anchor_view)], others)
        losses["mfb"] = mfb
        total = total + cfg.mfb_weight * mfb

    losses["total"] = total
    return out
