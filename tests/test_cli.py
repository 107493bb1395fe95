"""The `aioreid` command line: every sub-command has --help; errors are readable."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aioreid.platform.cli import app

runner = CliRunner()


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, cmd in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(cmd, "commands"):
            paths.extend(_command_paths(cmd, (*prefix, name)))
    return paths


ALL_COMMANDS = _command_paths(typer.main.get_command(app))  # type: ignore[arg-type]


def test_expected_commands_exist() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {"synth", "baseline", "demo", "config", "datasets", "datasets inspect"} <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_config_prints_masked_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from aioreid.platform.config import get_settings

    monkeypatch.setenv("AIOREID_STORAGE__ACCESS_KEY", "topsecretkey")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["config"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["storage"]["access_key"] == "**********"
    assert "topsecretkey" not in result.output


def test_inspect_reports_missing_layout_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "inspect", "market1501", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert "Traceback" not in result.output


def test_unknown_dataset_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "inspect", "no-such-set", str(tmp_path)])
    assert result.exit_code == 2
    assert "market1501" in result.output  # the message lists the valid names


def test_ingest_async_refuses_a_missing_path_readably(tmp_path: Path) -> None:
    res = runner.invoke(app, ["ingest", str(tmp_path / "nowhere"), "--async"])
    assert res.exit_code == 2
    assert "no such file or folder" in res.output and "Traceback" not in res.output


def test_async_commands_need_a_runner_with_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process runner would run the job in a thread of a command that is about to exit:
    --async refuses it, naming the setting, before a database is created."""
    from aioreid.platform.config import get_settings

    image = tmp_path / "a.jpg"
    image.write_bytes(b"\xff\xd8 never read")
    monkeypatch.setenv("AIOREID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIOREID_BROKER__RUNNER", "in-process")
    get_settings.cache_clear()
    try:
        res = runner.invoke(app, ["ingest", str(image), "--async"])
        assert res.exit_code == 2, res.output
        assert "AIOREID_BROKER__RUNNER='in-process'" in res.output and "celery" in res.output
        assert not (tmp_path / "home" / "aioreid.db").exists()
        monkeypatch.setenv("AIOREID_BROKER__RUNNER", "celry")
        get_settings.cache_clear()
        res = runner.invoke(app, ["ingest", str(image), "--async"])
        assert res.exit_code == 2 and "installed: celery, in-process" in res.output, res.output
    finally:
        get_settings.cache_clear()


def test_synth_train_fraction_sets_the_held_out_share(tmp_path: Path) -> None:
    from aioreid.encoder.data.synth import WorldManifest

    out = tmp_path / "world"
    res = runner.invoke(
        app,
        [
            "synth",
            "--out",
            str(out),
            "--identities",
            "10",
            "--train-fraction",
            "0.9",
            "--no-videos",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = WorldManifest.load(out)
    assert (len(manifest.train_pids), len(manifest.test_pids)) == (9, 1)
    bad = runner.invoke(app, ["synth", "--out", str(tmp_path / "w2"), "--train-fraction", "1"])
    assert bad.exit_code == 2 and not (tmp_path / "w2").exists()


def test_synth_images_per_camera_sets_how_many_shots_each_camera_takes(tmp_path: Path) -> None:
    from aioreid.encoder.data.synth import WorldManifest

    out = tmp_path / "world"
    args = ["synth", "--out", str(out), "--identities", "4", "--no-videos", "--workers", "1"]
    res = runner.invoke(app, [*args, "--images-per-camera", "5,5"])
    assert res.exit_code == 0, res.output
    manifest = WorldManifest.load(out)
    assert manifest.config["images_per_camera"] == [5, 5]
    shots = Counter((im["pid"], im["camera"]) for im in manifest.images if im["pid"] > 0)
    assert shots and set(shots.values()) == {5}  # every camera took 5 shots of each person
    for bad_value in ("3", "a,b", "4,2", "0,3"):
        dest = tmp_path / f"bad-{bad_value.replace(',', '_')}"
        bad = runner.invoke(app, ["synth", "--out", str(dest), "--images-per-camera", bad_value])
        assert bad.exit_code == 2, (bad_value, bad.output)
        assert "images_per_camera" in bad.output or "--images-per-camera" in bad.output
        assert not dest.exists()
