"""Train the AIO encoder on the synthetic world within a minutes budget, then the zero-shot table.

For a machine with a CUDA GPU (it runs on CPU too, slowly). The step time is measured first on
a short calibration run; the stages of the config are then scaled to fill ``--minutes`` with
their ratio kept, so the cosine schedule ends where the budget does instead of being cut off.
The trained model is evaluated on the world's held-out identities next to the two references of
the same run, the histogram baseline and the same model untrained, with mAP ratios to each.

    python benchmarks/bench_gpu_training.py --world var/demo/world-120-s0 --minutes 6
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from aioreid.encoder.inference import Encoder
from aioreid.encoder.training.config import StageConfig, TrainConfig, load_config
from aioreid.encoder.training.trainer import METRICS, Trainer, resolve_device
from aioreid.encoder.zeroshot import HistogramEmbedder, evaluate_world, report
from aioreid.encoder.zeroshot.encoder_embedder import EncoderEmbedder
from aioreid.encoder.zeroshot.suite import SuiteResults

DEFAULT_JSON = Path("benchmarks/results/gpu_training.json")


def ensure_world(world: Path, identities: int, seed: int) -> None:
    """The demo's world (same generator, identities and seed) unless one is already there."""
    from aioreid.encoder.data.synth import SynthConfig, generate_world
    from aioreid.encoder.data.synth.world import MANIFEST

    if (world / MANIFEST).exists():
        return

    generate_world(world, SynthConfig(identities=identities, seed=seed, workers=8))


def seconds_per_step(cfg: TrainConfig, steps: int, scratch: Path) -> float:
    """Mean step time after the first logged steps (which pay for start-up and warm caches)."""
    shutil.rmtree(scratch, ignore_errors=True)
    log_every = max(1, steps // 4)
    probe = cfg.model_copy(
        update={
            "stages": [
                StageConfig(name="calibration", steps=steps, use_real_ir=True, use_real_sketch=True)
            ],
            "output_dir": scratch,
            "max_minutes": None,
            "log_every": log_every,
            "checkpoint_every": steps * 10,
        }
    )
    Trainer(probe).fit(progress=False, resume=False)
    logged = [json.loads(line) for line in (scratch / METRICS).read_text().splitlines()]
    first, last = logged[0], logged[-1]
    shutil.rmtree(scratch, ignore_errors=True)
    return (last["elapsed_s"] - first["elapsed_s"]) / max(1, last["step"] - first["step"])


def fitted_stages(cfg: TrainConfig, total: int) -> list[StageConfig]:
    """The config's stages scaled to ``total`` steps, their proportions kept."""
    if any(s.steps is None for s in cfg.stages):
        raise ValueError(f"config {cfg.output_dir}: every stage needs steps to be scaled")
    planned = sum(s.steps or 0 for s in cfg.stages)
    return [
        s.model_copy(update={"steps": max(1, round(total * (s.steps or 0) / planned))})
        for s in cfg.stages
    ]


def map_ratios(model: SuiteResults, reference: SuiteResults) -> dict[str, float | None]:
    """mAP of ``model`` over ``reference`` per setting (None where the reference is 0)."""
    out: dict[str, float | None] = {}
    for setting, row in model.rows.items():
        ref = reference.rows.get(setting, {}).get("mAP", 0.0)
        out[setting] = round(row["mAP"] / ref, 2) if ref else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--world", type=Path, default=Path("var/demo/world-120-s0"))
    p.add_argument("--identities", type=int, default=120, help="when the world is generated")
    p.add_argument("--seed", type=int, default=0, help="world seed, when it is generated")
    p.add_argument("--config", default="gpu-synthetic")
    p.add_argument("--minutes", type=float, default=6.0, help="training budget")
    p.add_argument("--calibration-steps", type=int, default=40)
    p.add_argument("--output-dir", type=Path, default=Path("var/train/gpu-synthetic-bench"))
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)

    started = time.perf_counter()
    ensure_world(args.world, args.identities, args.seed)
    cfg = load_config(args.config, world=args.world, output_dir=args.output_dir)
    s_step = seconds_per_step(cfg, args.calibration_steps, args.output_dir.with_name("calibration"))
    # 5% of the budget is left for checkpoints and the switch between stages.
    total = max(len(cfg.stages), int(args.minutes * 60 * 0.95 / s_step))
    cfg = cfg.model_copy(
        update={"stages": fitted_stages(cfg, total), "max_minutes": args.minutes * 1.1}
    )
    shutil.rmtree(args.output_dir, ignore_errors=True)
    device = resolve_device(cfg.device)
    print(f"{s_step:.3f} s/step on {device}: training {total} steps ({args.minutes} min)")
    summary = Trainer(cfg).fit(progress=False, resume=False)
    print(json.dumps({k: summary[k] for k in ("steps", "stage_steps", "seconds", "stopped_early")}))

    trained = Encoder.load(summary["final"])
    models = [
        EncoderEmbedder(trained, name=f"AIO {summary['steps']} steps"),
        HistogramEmbedder(),
        EncoderEmbedder(Encoder.untrained(trained.config), name="AIO untrained"),
    ]
    results = [evaluate_world(m, args.world) for m in models]
    print(report(results, title="zero-shot on the world's held-out identities"))
    ratios = {
        "to_baseline": map_ratios(results[0], results[1]),
        "to_untrained": map_ratios(results[0], results[2]),
    }
    print("mAP ratios:", json.dumps(ratios, ensure_ascii=False))

    device = trained.device
    record: dict[str, Any] = {
        "benchmark": "gpu_training",
        "argv": sys.argv[1:],
        "config": args.config,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "seconds_per_step": round(s_step, 4),
        "samples_per_s": round(cfg.p * cfg.k * cfg.grad_accum / s_step, 1),
        "training": {k: summary[k] for k in ("steps", "stage_steps", "seconds", "stopped_early")},
        "results": [r.to_json() for r in results],
        "map_ratios": ratios,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2, ensure_ascii=False))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
