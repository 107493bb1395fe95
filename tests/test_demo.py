"""`aioreid demo` end to end on a small world: synthesise, ingest, search, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from platform_fixtures import make_settings

from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.platform.cli.demo import ranking_metrics, run_demo

SETTINGS = ["RGB→RGB", "IR→RGB", "RGB→IR", "sketch→RGB", "text→RGB", "text+sketch→RGB"]


def test_ranking_metrics_by_hand() -> None:
    assert ranking_metrics([False, True, False, True], 2) == (
        0.0,
        pytest.approx((1 / 2 + 2 / 4) / 2),
    )
    assert ranking_metrics([True], 3) == (1.0, pytest.approx(1 / 3))  # two matches never found
    assert ranking_metrics([], 0) == (0.0, 0.0)


def test_demo_ingests_searches_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_torch_thread: None
) -> None:
    torch.manual_seed(0)
    ckpt = AIOModel(AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)).save(
        tmp_path / "final.pt"
    )
    settings = make_settings(tmp_path / "home", None, index_backend="edge")
    summary = run_demo(
        tmp_path / "demo",
        identities=8,
        seed=1,
        checkpoint=ckpt,
        settings=settings,
        progress=False,
    )
    out = capsys.readouterr().out
    assert "platform search on held-out identities, one hit per track — tiny@" in out
    assert "one hit per representative crop" in out
    assert list(summary["platform"]) == list(summary["platform_sighting_level"]) == SETTINGS
    for level in ("platform", "platform_sighting_level"):
        for name, row in summary[level].items():
            assert row["queries"] > 0, name
            assert 0.0 <= row["R1"] <= 100.0 and 0.0 < row["mAP"] <= 100.0
    # The clips' people are tracks: fewer gallery items than crops.
    assert summary["sightings"] > 20 and summary["tracks"] < summary["sightings"]
    sheet = (tmp_path / "demo" / "contact_sheet.html").read_text()
    assert sheet.count("<img") > 20 and "text+sketch→RGB" in sheet
    saved = json.loads((tmp_path / "demo" / "demo_results.json").read_text())
    assert saved["platform"] == summary["platform"]

    world = Path(summary["world"])
    stamp = (world / "world.json").stat().st_mtime_ns
    again = run_demo(
        tmp_path / "demo",
        identities=8,
        seed=1,
        checkpoint=ckpt,
        settings=settings,
        progress=False,
        baseline=False,
    )
    assert "reusing synthetic world" in capsys.readouterr().out
    assert again["sightings"] == summary["sightings"]
    assert (world / "world.json").stat().st_mtime_ns == stamp
    # Same encoder, same world: the same table, up to the order of tied scores (the tiny
    # random encoder ties a lot, and a fresh index may order ties differently).
    for name, row in summary["platform"].items():
        other = again["platform"][name]
        assert other["queries"] == row["queries"], name
        one_query = 100.0 / row["queries"] + 0.1  # at most one rank-1 tie flips
        assert other["R1"] == pytest.approx(row["R1"], abs=one_query), name
        assert other["mAP"] == pytest.approx(row["mAP"], abs=2.0), name


def test_demo_without_checkpoint_or_training_stops_cleanly(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", None)
    summary = run_demo(
        tmp_path / "demo",
        identities=4,
        seed=2,
        settings=settings,
        train_minutes=0,
        progress=False,
        baseline=False,
    )
    assert "platform" not in summary and (tmp_path / "demo" / "demo_results.json").exists()
