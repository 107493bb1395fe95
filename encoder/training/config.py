"""Training configuration: a YAML file validated into :class:`TrainConfig`.

``aioreid train --config FILE`` takes a path, or the name of a config shipped in
``aioreid.encoder.configs`` (e.g. ``cpu-synthetic``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class DataSource(BaseModel):
    """A dataset in a public layout; its train split feeds training."""

    model_config = ConfigDict(extra="forbid")
    dataset: str
    root: Path
    options: dict[str, Any] = Field(default_factory=dict)


class StageConfig(BaseModel):
    """One progressive-training stage (digest: stage 1 synthesised IR/sketch, stage 2 real)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    steps: int = Field(gt=0, description="optimizer steps in this stage")
    use_real_ir: bool
    use_real_sketch: bool


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: dict[str, Any] = Field(default_factory=dict, description="AIOConfig fields")
    world: Path | None = Field(default=None, description="synthetic world: its train identities")
    sources: list[DataSource] = Field(default_factory=list)
    stages: list[StageConfig]
    p: int = Field(default=8, gt=1, description="identities per batch")
    k: int = Field(default=4, gt=1, description="images per identity per batch")
    lr: float = Field(default=3.5e-4, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    warmup_steps: int = Field(default=50, ge=0)
    min_lr_ratio: float = Field(default=0.01, ge=0, le=1)
    grad_accum: int = Field(default=1, ge=1)
    grad_clip: float | None = Field(
        default=None,
        gt=0,
        description="clip the total gradient norm; off by default: early gradients of the "
        "fresh tokenizers are large (~50) and clipping them starved learning",
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    device: str = "auto"
    workers: int = Field(default=0, ge=0)
    seed: int = 0
    synthesize_missing: bool = True
    rgb_gray_p: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="probability of a grey RGB training view (pushes RGB features towards the "
        "colour-free cues that IR and sketch share)",
    )
    unfreeze_backbone: bool = Field(
        default=False, description="ablation only: train the backbone too (lr x backbone_lr_scale)"
    )
    backbone_lr_scale: float = Field(default=0.1, gt=0)
    max_minutes: float | None = Field(default=None, gt=0, description="stop and save after this")
    output_dir: Path = Path("var/train")
    checkpoint_every: int = Field(default=100, gt=0)
    log_every: int = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _needs_data(self) -> TrainConfig:
        if self.world is None and not self.sources:
            raise ValueError("set `world` (a synthetic world) or at least one entry in `sources`")
        if not self.stages:
            raise ValueError("at least one stage is needed")
        return self

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)


def builtin_configs() -> list[str]:
    folder = resources.files("aioreid.encoder.configs")
    names = (p.name for p in folder.iterdir())
    return sorted(n.removesuffix(".yaml") for n in names if n.endswith(".yaml"))


def _read(spec: str | Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config file's mapping, with its ``base`` (a built-in name or a path relative to the
    file) resolved: keys of the file replace the base's whole (``stages`` is not merged)."""
    path = Path(spec)
    if path.is_file():
        text, where = path.read_text(), str(path.resolve())
    else:
        name = str(spec).removesuffix(".yaml")
        candidate = resources.files("aioreid.encoder.configs") / f"{name}.yaml"
        if not candidate.is_file():
            raise FileNotFoundError(
                f"no config file {spec!r} and no built-in config of that name "
                f"(built-in: {', '.join(builtin_configs())})"
            )
        text, where = candidate.read_text(), f"builtin:{name}"
    if where in seen:
        raise ValueError(f"config {spec} is its own base (via {' -> '.join(seen)})")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {spec} must be a YAML mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    relative = path.parent / str(base) if path.is_file() else None
    parent = _read(relative if relative and relative.is_file() else base, (*seen, where))
    return {**parent, **data}


def load_config(spec: str | Path, **overrides: Any) -> TrainConfig:
    """Read a YAML config from a path or a built-in name; ``overrides`` replace top-level keys.

    A config may name another as ``base`` and list only the keys it changes."""
    data = _read(spec)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(data)
