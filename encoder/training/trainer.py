"""Progressive training of the AIO encoder (``aioreid train --config FILE``).

Stages run one after the other over one cosine schedule with linear warm-up (AdamW; OUR CHOICE
per the digest, docs/aio-paper.md). Each optimizer step may accumulate several PK batches. A
checkpoint (``last.pt``: model, optimizer, scheduler, position) is written every
``checkpoint_every`` steps and at the end, so an interrupted run resumes where it stopped;
``final.pt`` holds only what inference needs. ``metrics.jsonl`` gets one JSON object per logged
step: bookkeeping (``step``, ``stage``, ``epoch``, ``lr``, ``samples_per_s``, ``elapsed_s``) at
the top level, the loss terms under ``losses`` and the training diagnostics (per-view
accuracies, F1 scores, ``grad_norm``) under ``metrics``.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Record
from aioreid.encoder.model import AIOConfig, AIOModel, compute_losses
from aioreid.encoder.training.config import WORLD, StageConfig, TrainConfig
from aioreid.encoder.training.data import MultimodalTrainSet, collate, identity_map
from aioreid.encoder.training.sampler import PKSampler
from aioreid.encoder.training.world_records import world_train_records

LAST = "last.pt"
FINAL = "final.pt"
METRICS = "metrics.jsonl"


@dataclass
class StepResult:
    """One optimizer step's figures, averaged over its accumulated batches."""

    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def as_log(self) -> dict[str, dict[str, float]]:
        return {"losses": self.losses, "metrics": self.metrics}


@dataclass
class Position:
    """Where training stands: global step, stage, epoch within stage, batches done in epoch."""

    step: int = 0
    stage: int = 0
    stage_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16 on Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    return device


def train_records(cfg: TrainConfig) -> list[Record] | dict[str, list[Record]]:
    """A synthetic world shares one pid space; real sources keep theirs apart (keyed by
    dataset name, ``world`` for the world). ValueError when a source has no root."""
    if cfg.world is not None and not cfg.sources:
        return world_train_records(cfg.world)
    cfg.require_roots()
    out: dict[str, list[Record]] = {}
    if cfg.world is not None:
        out[WORLD] = world_train_records(cfg.world)
    for src in cfg.sources:
        assert src.root is not None
        out[src.dataset] = load_dataset(src.dataset, src.root, **src.options).train
    return out


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``floor`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class _SkipFirst(Sampler[list]):
    """Batches of an epoch minus the ones a resumed run has already seen."""

    def __init__(self, inner: PKSampler, skip: int) -> None:
        self.inner, self.skip = inner, skip

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)

    def __iter__(self) -> Iterator[list]:
        for i, batch in enumerate(self.inner):
            if i >= self.skip:
                yield batch


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        # Data first (roots, layouts, enough identities per stage): the likeliest mistakes
        # with a real-data recipe surface before any device or weights are touched.
        self.records = train_records(cfg)
        # One label space over every stage's data: a later stage may add identities.
        self.pid_map = identity_map(self.records)
        self.num_classes = len(self.pid_map)
        #: Optimizer steps of each stage (``epochs`` resolved against the stage's data).
        self.stage_steps = [self._steps_of(stage) for stage in cfg.stages]
        self.total_steps = sum(self.stage_steps)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        model_cfg = AIOConfig.from_dict({**cfg.model, "num_classes": self.num_classes})
        self.model = AIOModel(model_cfg).to(self.device)
        self.backbone_hash = self.model.backbone.weights_hash()  # before any unfrozen update
        groups: list[dict[str, Any]] = [{"params": self.model.parameters_to_train(), "lr": cfg.lr}]
        if cfg.unfreeze_backbone:
            params = list(self.model.backbone.parameters())
            for p in params:
                p.requires_grad_(True)
            groups.append({"params": params, "lr": cfg.lr * cfg.backbone_lr_scale})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, cfg.warmup_steps, self.total_steps, cfg.min_lr_ratio),
        )
        self.amp_dtype, self.scaler = self._amp()
        self.position = Position()
        self.out = Path(cfg.output_dir)

    # ----------------------------------------------------------------- set-up
    def _stage_records(self, stage: StageConfig) -> list[Record] | dict[str, list[Record]]:
        if not isinstance(self.records, dict):  # a world alone: one shared pid space
            return self.records
        return {name: self.records[name] for name in self.cfg.stage_datasets(stage)}

    def _dataset(self, stage: StageConfig) -> MultimodalTrainSet:
        return MultimodalTrainSet.from_records(
            self._stage_records(stage),
            size=tuple(self.cfg.model.get("image_size", (128, 64))),  # type: ignore[arg-type]
            use_real_ir=stage.use_real_ir,
            use_real_sketch=stage.use_real_sketch,
            synthesize_missing=self.cfg.synthesize_missing,
            seed=self.cfg.seed,
            pid_map=self.pid_map,
            transform_options={"gray_p": self.cfg.rgb_gray_p} if self.cfg.rgb_gray_p else None,
        )

    def _steps_of(self, stage: StageConfig) -> int:
        """``steps``, or ``epochs`` x the optimizer steps of one pass over the stage's data.
        Checks that the stage has enough identities for PK batches (ValueError otherwise)."""
        cfg = self.cfg
        try:
            dataset = self._dataset(stage)
        except ValueError as exc:
            raise ValueError(f"stage {stage.name!r}: {exc}") from exc
        identities = len(set(dataset.labels))
        if identities < cfg.p:
            raise ValueError(
                f"stage {stage.name!r} has {identities} identities with RGB images, fewer than "
                f"p={cfg.p} per batch"
            )
        if stage.steps is not None:
            return stage.steps
        assert stage.epochs is not None
        batches = max(1, len(dataset) // (cfg.p * cfg.k))  # one PKSampler epoch
        return stage.epochs * max(1, math.ceil(batches / cfg.grad_accum))

    def _amp(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
        """auto: bf16 (or fp16 with a scaler) on CUDA; on CPU bf16 only where the CPU has
        native bf16 matmuls (AVX512-BF16/AMX, where it beats fp32), else fp32: emulated bf16
        is slower than fp32 (figures in docs/results.md)."""
        mode = self.cfg.amp
        if mode == "off":
            return None, None
        if self.device.type != "cuda":
            if mode == "fp16":
                raise ValueError("amp fp16 needs CUDA; use bf16 or off on CPU")
            if mode == "auto" and not cpu_has_native_bf16():
                return None, None
            if not cpu_has_native_bf16():
                warnings.warn(
                    "amp bf16 on a CPU without AVX512-BF16/AMX is emulated and slow; use amp: auto",
                    stacklevel=2,
                )
            return torch.bfloat16, None
        if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------ checkpoints
    def model_checkpoint(self) -> dict[str, Any]:
        ckpt = self.model.trainable_state_dict()
        ckpt["backbone_hash"] = self.backbone_hash
        if self.cfg.unfreeze_backbone:
            ckpt["backbone_state_dict"] = {
                k: v.detach().cpu() for k, v in self.model.backbone.state_dict().items()
            }
        ckpt["training"] = {
            "position": asdict(self.position),
            "config": self.cfg.model_dump(mode="json"),
        }
        return ckpt

    def save(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model_checkpoint(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "position": asdict(self.position),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.out / (LAST + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out / LAST)  # atomic: a crash mid-write keeps the previous one
        return self.out / LAST

    def resume(self) -> bool:
        """Continue from ``last.pt`` in the output folder, if there is one."""
        path = self.out / LAST
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_trainable_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.position = Position(**state["position"])
        return True

    # ----------------------------------------------------------------- loop
    def _log(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / METRICS, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _step(self, batches: list[dict[str, Any]]) -> StepResult:
        self.model.train()
        result = StepResult()
        for batch in batches:
            if not bool(batch["has_text"].any()):
                batch = {**batch, "text": None}  # no caption: no text view
            # else rows without a caption are left out of the text views (compute_losses)
            with self._autocast():
                out = compute_losses(self.model, batch)
            loss = out.total / len(batches)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            for sums, values in ((result.losses, out.losses), (result.metrics, out.metrics)):
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(batches)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        limit = self.cfg.grad_clip if self.cfg.grad_clip else float("inf")
        result.metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, limit))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return result

    def _batches(self, dataset: MultimodalTrainSet) -> Iterator[dict[str, Any]]:
        """Endless PK batches of ``dataset`` from the current position, epoch after epoch."""
        cfg = self.cfg
        sampler = PKSampler(dataset.labels, cfg.p, cfg.k, seed=cfg.seed, tag_repeats=True)
        while True:
            sampler.set_epoch(self.position.epoch)
            dataset.set_epoch(self.position.epoch)
            loader = DataLoader(
                dataset,
                batch_sampler=_SkipFirst(sampler, self.position.batch_in_epoch),
                collate_fn=collate,
                num_workers=cfg.workers,
                # Its own generator: creating an iterator must not draw from the global RNG,
                # or a resumed run would diverge from an uninterrupted one.
                generator=torch.Generator().manual_seed(cfg.seed * 100_003 + self.position.epoch),
            )
            for batch in loader:
                self.position.batch_in_epoch += 1
                yield batch
            self.position.epoch += 1
            self.position.batch_in_epoch = 0

    def _stage_deadline_minutes(self) -> float | None:
        """When the current stage must end: the time budget is shared between stages in
        proportion to their steps, so a slow machine still runs every stage (shorter)."""
        cfg = self.cfg
        if cfg.max_minutes is None:
            return None
        through = sum(self.stage_steps[: self.position.stage + 1])
        return cfg.max_minutes * through / max(1, self.total_steps)

    def fit(self, *, progress: bool = True, resume: bool = True) -> dict[str, Any]:
        """Run (or finish) every stage; returns a summary and writes ``final.pt``."""
        cfg = self.cfg
        resumed = self.resume() if resume else False
        started = time.perf_counter()
        bar = tqdm(
            total=self.total_steps,
            initial=self.position.step,
            desc="train",
            unit="step",
            disable=not progress,
        )
        stopped_early = False
        last = StepResult()
        while self.position.stage < len(cfg.stages):
            stage = cfg.stages[self.position.stage]
            stage_steps = self.stage_steps[self.position.stage]
            dataset = self._dataset(stage)
            batches = self._batches(dataset)
            while self.position.stage_step < stage_steps:
                t0 = time.perf_counter()
                last = self._step([next(batches) for _ in range(cfg.grad_accum)])
                self.position.step += 1
                self.position.stage_step += 1
                bar.update(1)
                bar.set_postfix(stage=stage.name, loss=f"{last.losses['total']:.3f}")
                stage_done = self.position.stage_step == stage_steps
                if self.position.step % cfg.log_every == 0 or stage_done:
                    samples = cfg.p * cfg.k * cfg.grad_accum
                    self._log(
                        {
                            "step": self.position.step,
                            "stage": stage.name,
                            "epoch": self.position.epoch,
                            "lr": self.scheduler.get_last_lr()[0],
                            "samples_per_s": samples / (time.perf_counter() - t0),
                            "elapsed_s": time.perf_counter() - started,
                            **last.as_log(),
                        }
                    )
                if self.position.step % cfg.checkpoint_every == 0:
                    self.save()
                minutes = (time.perf_counter() - started) / 60
                share = self._stage_deadline_minutes()
                if share is not None and minutes >= share and not stage_done:
                    last_stage = self.position.stage == len(cfg.stages) - 1
                    stopped_early = True
                    self._log(
                        {
                            "step": self.position.step,
                            "stage": stage.name,
                            "event": "time budget reached"
                            if last_stage
                            else "stage time share reached: next stage",
                            "elapsed_s": minutes * 60,
                            **last.as_log(),
                        }
                    )
                    break
            if stopped_early and self.position.stage == len(cfg.stages) - 1:
                break
            self.position = Position(step=self.position.step, stage=self.position.stage + 1)
        bar.close()
        self.save()
        final = self.out / FINAL
        torch.save(self.model_checkpoint(), final)
        return {
            "final": str(final),
            "steps": self.position.step,
            "stage_steps": self.stage_steps,
            "resumed": resumed,
            "stopped_early": stopped_early,
            "num_classes": self.num_classes,
            "seconds": round(time.perf_counter() - started, 1),
            "last_losses": last.losses,
            "last_metrics": last.metrics,
        }


def train(cfg: TrainConfig, *, progress: bool = True, resume: bool = True) -> dict[str, Any]:
    return Trainer(cfg).fit(progress=progress, resume=resume)
