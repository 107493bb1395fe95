"""The GPU training benchmark: calibrate, fit the stages to the budget, train, compare."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from aioreid.encoder.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    path = ROOT / "benchmarks" / "bench_gpu_training.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_training", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_config_is_the_cpu_model_at_a_gpu_batch() -> None:
    gpu, cpu = load_config("gpu-synthetic"), load_config("cpu-synthetic")
    assert gpu.model == cpu.model  # same tokenizers and heads: the tables compare like with like
    assert gpu.p * gpu.k == 4 * cpu.p * cpu.k
    assert gpu.workers > 0


def test_stages_are_scaled_to_the_budget_with_their_ratio_kept() -> None:
    stages = _bench().fitted_stages(load_config("gpu-synthetic"), 1011)
    assert [s.steps for s in stages] == [202, 809]
    assert [s.use_real_ir for s in stages] == [False, True]


def test_benchmark_trains_within_budget_and_reports_ratios(
    tiny_world: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "base: gpu-synthetic\nmodel: {backbone: tiny, image_size: [64, 32]}\n"
        "p: 4\nk: 2\nworkers: 0\nwarmup_steps: 1\n"
    )
    out = tmp_path / "gpu.json"
    manifest = (tiny_world / "world.json").read_bytes()
    rc = _bench().main(
        [
            "--world", str(tiny_world), "--config", str(config), "--minutes", "0.05",
            "--calibration-steps", "3", "--output-dir", str(tmp_path / "train"),
            "--json", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    assert (tiny_world / "world.json").read_bytes() == manifest  # used, not generated again
    data = json.loads(out.read_text())
    assert data["seconds_per_step"] > 0
    steps = data["training"]["steps"]
    assert steps == sum(data["training"]["stage_steps"]) >= 2
    names = [r["model"] for r in data["results"]]
    assert names == [f"AIO {steps} steps", "histogram baseline", "AIO untrained"]
    assert set(data["map_ratios"]["to_baseline"]) == set(data["results"][0]["rows"])
