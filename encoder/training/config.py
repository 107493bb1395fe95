"""Training configuration: a YAML file validated into :class:`TrainConfig`.

``aioreid train --config FILE`` takes a path, or the name of a config shipped in
``aioreid.encoder.configs`` (e.g. ``cpu-synthetic``, ``gpu-paper``).

Real datasets are listed under ``sources`` by their loader name (``aioreid datasets list``);
a source's ``root`` may be left out of the file and given on the command line
(``--data NAME=PATH`` or ``--data-root DIR``, see :func:`with_data_roots`). A stage reads
the sources its ``datasets`` names (all of them when it names none) and lasts ``steps``
optimizer steps or ``epochs`` passes over its data.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aioreid.encoder.data.datasets import get_loader

#: How a stage refers to the synthetic ``world`` in its ``datasets`` list.
WORLD = "world"


def dataset_name(name: str) -> str:
    """The registered loader name of ``name`` (``Market-1501`` -> ``market1501``); ValueError
    listing the registered names when there is none."""
    return get_loader(name).name


class DataSource(BaseModel):
    """A dataset in a public layout; its train split feeds training.

    ``root`` (the dataset folder or its parent) may be left out of the file and supplied on
    the command line; training refuses to start while any source lacks one.
    """

    model_config = ConfigDict(extra="forbid")
    dataset: str
    root: Path | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dataset")
    @classmethod
    def _registered(cls, value: str) -> str:
        return dataset_name(value)


class StageConfig(BaseModel):
    """One progressive-training stage (the digest, docs/aio-paper.md: stage 1 synthesised
    IR/sketch, stage 2 real).

    Its length is ``steps`` optimizer steps or ``epochs`` passes over the stage's data (one
    pass = ``len(RGB images) // (p * k)`` PK batches, divided by ``grad_accum``); exactly one
    of the two. ``datasets`` names the sources (and ``world``) the stage reads; ``None``: all.
    """

    model_config = ConfigDict(extra="forbid")
    name: str
    steps: int | None = Field(default=None, gt=0, description="optimizer steps in this stage")
    epochs: int | None = Field(default=None, gt=0, description="passes over the stage's data")
    use_real_ir: bool
    use_real_sketch: bool
    datasets: list[str] | None = Field(
        default=None, description="sources this stage reads (loader names, or 'world')"
    )

    @model_validator(mode="after")
    def _one_length(self) -> StageConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of `steps` and `epochs`")
        return self

    @field_validator("datasets")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("`datasets` lists at least one dataset (leave it out for all)")
        return [WORLD if v == WORLD else dataset_name(v) for v in value]


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
        names = [s.dataset for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"`sources` lists {', '.join(twice)} more than once")
        known = set(names) | ({WORLD} if self.world is not None else set())
        for stage in self.stages:
            unknown = [d for d in stage.datasets or () if d not in known]
            if unknown:
                raise ValueError(
                    f"stage {stage.name!r} reads {', '.join(unknown)}, which `sources` does not "
                    f"list (sources: {', '.join(sorted(known))})"
                )
        return self

    @property
    def total_steps(self) -> int:
        """Steps of all stages; a stage measured in epochs has a length only once its data is
        loaded (see ``Trainer.stage_steps``), so this raises ValueError for such a config."""
        if any(s.steps is None for s in self.stages):
            raise ValueError("stages measured in `epochs` have no step count before loading data")
        return sum(s.steps or 0 for s in self.stages)

    def stage_datasets(self, stage: StageConfig) -> list[str]:
        """Names of the sources (and ``world``) ``stage`` reads."""
        if stage.datasets is not None:
            return list(stage.datasets)
        return ([WORLD] if self.world is not None else []) + [s.dataset for s in self.sources]

    def missing_roots(self) -> list[str]:
        """Dataset names of the sources that have no root yet."""
        return [s.dataset for s in self.sources if s.root is None]

    def require_roots(self) -> None:
        """ValueError naming every source without a root, the stages that read it and how to
        give it on the command line."""
        missing = self.missing_roots()
        if not missing:
            return
        lines = []
        for name in missing:
            stages = [s.name for s in self.stages if name in self.stage_datasets(s)]
            cls = get_loader(name)
            folder = cls.folder_names[0] if cls.folder_names else name
            lines.append(
                f"  {name} ({cls.display_name}; read by {', '.join(stages) or 'no stage'}): "
                f"--data {name}=/path/to/{folder}"
            )
        how = "\n".join(lines)
        raise ValueError(
            f"no dataset root for {', '.join(missing)}. Give each on the command line:\n{how}\n"
            "or --data-root DIR for a folder holding all of them (each root may be the dataset "
            "folder or its parent)."
        )


def with_data_roots(
    cfg: TrainConfig, roots: Mapping[str, Path | str] | None = None, data_root: Path | None = None
) -> TrainConfig:
    """``cfg`` with dataset roots from the command line: ``roots`` by dataset name (replacing a
    root the file gives), then ``data_root`` for every source still without one (a loader
    finds its dataset folder inside a parent folder). A name that is not among the config's
    sources is a ValueError listing them."""
    given = {dataset_name(k): Path(v).expanduser() for k, v in (roots or {}).items()}
    listed = [s.dataset for s in cfg.sources]
    unknown = sorted(set(given) - set(listed))
    if unknown:
        raise ValueError(
            f"--data names {', '.join(unknown)}, which the config's `sources` do not list "
            f"(sources: {', '.join(listed) or 'none'})"
        )
    sources = []
    for src in cfg.sources:
        root = given.get(src.dataset, src.root)
        if root is None and data_root is not None:
            root = Path(data_root).expanduser()
        sources.append(src.model_copy(update={"root": root}))
    return cfg.model_copy(update={"sources": sources})


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
