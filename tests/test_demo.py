"""`aioreid demo` end to end on a small world: synthesise, evaluate, reuse the world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.platform.demo import run_demo


def test_demo_synthesises_evaluates_and_reuses_the_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    ckpt = AIOModel(AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)).save(
        tmp_path / "final.pt"
    )
    summary = run_demo(tmp_path / "demo", identities=8, seed=1, checkpoint=ckpt)
    out = capsys.readouterr().out
    assert "histogram baseline" in out and "AIO tiny@" in out
    assert "text+sketch→RGB" in out
    saved = json.loads((tmp_path / "demo" / "demo_results.json").read_text())
    assert set(saved["baseline"]["rows"]) == set(saved["aio"]["rows"])
    assert summary["baseline"]["rows"]["RGB→RGB"]["R1"] >= 0

    world = Path(summary["world"])
    stamp = (world / "world.json").stat().st_mtime_ns
    run_demo(tmp_path / "demo", identities=8, seed=1, checkpoint=None)
    assert "reusing synthetic world" in capsys.readouterr().out
    assert (world / "world.json").stat().st_mtime_ns == stamp
