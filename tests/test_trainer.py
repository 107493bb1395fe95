"""Progressive training: stages, JSONL metrics, checkpoints, resume, time budget, CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from aioreid.encoder.training.config import TrainConfig, builtin_configs, load_config
from aioreid.encoder.training.trainer import FINAL, LAST, METRICS, Trainer, lr_factor
from aioreid.encoder.training.world_records import world_train_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(world: Path, out: Path, **extra: object) -> TrainConfig:
    data = {
        "model": {"backbone": "tiny", "image_size": [64, 32], "text_max_len": 24},
        "world": str(world),
        "stages": [
            {"name": "s1", "steps": 2, "use_real_ir": False, "use_real_sketch": False},
            {"name": "s2", "steps": 2, "use_real_ir": True, "use_real_sketch": True},
        ],
        "p": 3,
        "k": 2,
        "warmup_steps": 1,
        "log_every": 1,
        "checkpoint_every": 1,
        "output_dir": str(out),
        **extra,
    }
    return TrainConfig.model_validate(data)


def _trainable(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer.model.trainable_state_dict()["state_dict"]


def test_world_records_hold_only_training_identities(tiny_world: Path) -> None:
    from aioreid.encoder.data.synth import WorldManifest

    records = world_train_records(tiny_world)
    train = set(WorldManifest.load(tiny_world).train_pids)
    assert {r.pid for r in records} <= train
    kinds = {r.modality.value for r in records}
    assert kinds == {"rgb", "ir", "sketch", "text"}


def test_training_runs_both_stages_and_logs(tiny_world: Path, tmp_path: Path) -> None:
    trainer = Trainer(_cfg(tiny_world, tmp_path / "run"))
    before = {k: v.clone() for k, v in _trainable(trainer).items()}
    backbone_before = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    summary = trainer.fit(progress=False)
    assert summary["steps"] == 4 and not summary["stopped_early"]
    lines = [json.loads(x) for x in (tmp_path / "run" / METRICS).read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert [x["stage"] for x in lines] == ["s1", "s1", "s2", "s2"]
    assert all(torch.isfinite(torch.tensor(x["losses"]["total"])) for x in lines)
    # losses and diagnostics are logged apart; accuracies are never mistaken for losses
    assert all("acc_rgb" in x["metrics"] and "grad_norm" in x["metrics"] for x in lines)
    assert not any(k.startswith("acc_") for x in lines for k in x["losses"])
    assert set(summary["last_losses"]) == set(lines[-1]["losses"])
    assert set(summary["last_metrics"]) == set(lines[-1]["metrics"])
    changed = [k for k, v in _trainable(trainer).items() if not torch.equal(v, before[k])]
    assert any(k.startswith("tokenizer.") for k in changed)
    for k, v in trainer.model.backbone.state_dict().items():
        assert torch.equal(v, backbone_before[k]), f"frozen backbone weight {k} changed"
    ckpt = torch.load(tmp_path / "run" / FINAL, weights_only=False)
    assert not any(k.startswith("backbone.") for k in ckpt["state_dict"])
    assert ckpt["backbone_id"] == "tiny"


def test_interrupted_run_resumes_to_the_same_weights(tiny_world: Path, tmp_path: Path) -> None:
    straight = Trainer(_cfg(tiny_world, tmp_path / "a"))
    straight.fit(progress=False)

    class Killed(Exception):
        pass

    first = Trainer(_cfg(tiny_world, tmp_path / "b"))
    step = first._step

    def dies_after_one(batches):  # type: ignore[no-untyped-def]
        if first.position.step >= 1:
            raise Killed  # the process dies in its second step
        return step(batches)

    first._step = dies_after_one  # type: ignore[method-assign]
    with pytest.raises(Killed):
        first.fit(progress=False)
    assert (tmp_path / "b" / LAST).exists()
    second = Trainer(_cfg(tiny_world, tmp_path / "b"))
    s2 = second.fit(progress=False)
    assert s2["resumed"] and s2["steps"] == 4
    a, b = _trainable(straight), _trainable(second)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


def test_time_budget_is_shared_between_stages(tiny_world: Path, tmp_path: Path) -> None:
    s = Trainer(_cfg(tiny_world, tmp_path / "c", max_minutes=1e-6)).fit(progress=False)
    assert s["stopped_early"] and s["steps"] == 2  # one step of each stage, not stage 1 only
    events = [
        json.loads(line).get("event")
        for line in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e for e in events if e] == [
        "stage time share reached: next stage",
        "time budget reached",
    ]


def test_lr_schedule_warms_up_then_decays() -> None:
    factors = [lr_factor(s, 10, 100, 0.01) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] == pytest.approx(0.01, abs=0.01)


def test_builtin_cpu_config_loads_and_bad_configs_are_explained(tmp_path: Path) -> None:
    assert "cpu-synthetic" in builtin_configs()
    cfg = load_config("cpu-synthetic")
    assert cfg.model["backbone"] == "minilm-l6" and cfg.max_minutes == 15
    assert [s.use_real_ir for s in cfg.stages] == [False, True]
    long = load_config("cpu-synthetic-long")  # the same recipe, longer
    assert long.model == cfg.model and long.max_minutes > cfg.max_minutes
    assert long.total_steps > cfg.total_steps and long.output_dir != cfg.output_dir
    assert (long.p, long.k, long.lr, long.rgb_gray_p) == (cfg.p, cfg.k, cfg.lr, cfg.rgb_gray_p)
    wide = load_config("cpu-synthetic-wide")  # the long recipe on a world of 500 people
    assert wide.model == long.model and wide.stages == long.stages
    assert wide.world != long.world and wide.output_dir not in (long.output_dir, cfg.output_dir)
    child = tmp_path / "child.yaml"
    child.write_text("base: cpu-synthetic\np: 4\n")
    assert load_config(child).p == 4 and load_config(child).stages == cfg.stages
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="its own base"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("base: no-such-base\n")
    with pytest.raises(FileNotFoundError, match="no-such-base"):
        load_config(tmp_path / "orphan.yaml")
    with pytest.raises(FileNotFoundError, match="cpu-synthetic"):
        load_config("no-such-config")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: []\n")
    with pytest.raises(ValueError, match="world"):
        load_config(bad)


def test_train_and_evaluate_commands(tiny_world: Path, tmp_path: Path) -> None:
    from aioreid.platform.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_cfg(tiny_world, tmp_path / "cli").model_dump(mode="json")))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    final = tmp_path / "cli" / FINAL
    out_json = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--checkpoint",
            str(final),
            "--dataset",
            "synthetic",
            "--root",
            str(tiny_world),
            "--trials",
            "2",
            "--json",
            str(out_json),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "text+sketch→RGB" in result.output
    rows = json.loads(out_json.read_text())[0]["rows"]
    assert set(rows) >= {"RGB→RGB", "IR→RGB", "sketch→RGB", "text→RGB"}
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--dataset",
            "synthetic",
            "--root",
            str(tiny_world),
        ],
    )
    assert result.exit_code == 2 and "checkpoint not found" in result.output


def test_unfrozen_backbone_run_is_restored_with_its_fine_tuned_weights(
    tiny_world: Path, tmp_path: Path
) -> None:
    from aioreid.encoder.inference import Encoder

    trainer = Trainer(_cfg(tiny_world, tmp_path / "u", unfreeze_backbone=True))
    pristine = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    trainer.fit(progress=False)
    tuned = trainer.model.backbone.state_dict()
    assert any(not torch.equal(tuned[k], pristine[k]) for k in tuned)

    resumed = Trainer(_cfg(tiny_world, tmp_path / "u", unfreeze_backbone=True))
    assert resumed.resume()
    loaded = Encoder.load(tmp_path / "u" / FINAL, device="cpu")
    for model in (resumed.model, loaded.model):
        for k, v in model.backbone.state_dict().items():
            assert torch.equal(v, tuned[k]), k


@pytest.mark.parametrize(
    ("mode", "native", "expected"),
    [
        ("auto", False, None),  # emulated bf16 is slower than fp32: stay in fp32
        ("auto", True, torch.bfloat16),
        ("off", True, None),
        ("bf16", True, torch.bfloat16),
    ],
)
def test_cpu_mixed_precision_only_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, mode: str, native: bool, expected: torch.dtype | None
) -> None:
    from types import SimpleNamespace

    from aioreid.encoder.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: native)
    fake = SimpleNamespace(cfg=SimpleNamespace(amp=mode), device=torch.device("cpu"))
    dtype, scaler = trainer_module.Trainer._amp(fake)  # type: ignore[arg-type]
    assert (dtype, scaler) == (expected, None)


def test_explicit_bf16_on_a_cpu_without_it_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from aioreid.encoder.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: False)
    fake = SimpleNamespace(cfg=SimpleNamespace(amp="bf16"), device=torch.device("cpu"))
    with pytest.warns(UserWarning, match="emulated and slow"):
        assert trainer_module.Trainer._amp(fake)[0] is torch.bfloat16  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        trainer_module.Trainer._amp(  # type: ignore[arg-type]
            SimpleNamespace(cfg=SimpleNamespace(amp="fp16"), device=torch.device("cpu"))
        )
