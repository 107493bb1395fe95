"""Tracking evaluation (aioreid.platform.evaluation.tracking): TrackEval's HOTA, IDF1 and
MOTA of the pipeline's tracker on a synthetic world, and the evaluate-tracking command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from aioreid.encoder.data.synth import FootageOptions, SynthConfig, generate_world, write_footage
from aioreid.platform.cli.tracking import register
from aioreid.platform.evaluation.tracking import (
    Clip,
    evaluate_output,
    evaluate_world,
    split_reentries,
    trackeval_data,
    world_clips,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RGB and one IR camera, a 2 s short clip and a 12 s long clip each."""
    root = tmp_path_factory.mktemp("tracking_world")
    cfg = SynthConfig(
        identities=6,
        rgb_cameras=1,
        ir_cameras=1,
        height=64,
        width=32,
        video_seconds=2.0,
        workers=1,
        progress=False,
    )
    generate_world(root, cfg)
    opts = FootageOptions(minutes=0.2, size=(120, 160), visits_per_minute=30, progress=False)
    write_footage(root, opts)
    return root


@pytest.fixture(scope="module")
def short_world(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same world without its long footage: only the short clips remain."""
    root = tmp_path_factory.mktemp("short") / "w"
    shutil.copytree(world, root, ignore=shutil.ignore_patterns("footage"))
    return root


def _all_frames(clip: Clip) -> tuple[list[int], dict]:
    return list(range(clip.num_frames)), clip.gt


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app)
    return app


def test_ground_truth_as_tracker_output_scores_one(world: Path) -> None:
    report = evaluate_world(world, reentry_gap_s=0, tracker=_all_frames)
    assert report.source == "footage" and len(report.clips) == 2
    for row in [*report.clips, report.overall]:
        assert row.gt_dets > 0
        for metric in ("HOTA", "DetA", "AssA", "IDF1", "MOTA"):
            assert row.scores[metric] == pytest.approx(1.0), (row.clip, metric)
        assert row.scores["IDSW"] == 0


def test_swapping_ids_halfway_lowers_idf1_not_detection(world: Path) -> None:
    _, clips = world_clips(world)
    clip = max(clips, key=lambda c: len({i for d in c.gt.values() for i, _ in d}))
    frames = list(range(clip.num_frames))
    ids = sorted({i for d in clip.gt.values() for i, _ in d})
    assert len(ids) >= 2
    swap = {ids[k]: ids[(k + 1) % len(ids)] for k in range(len(ids))}
    half = clip.num_frames // 2
    broken = {
        f: [(swap[i] if f >= half else i, box) for i, box in dets] for f, dets in clip.gt.items()
    }
    perfect = evaluate_output(clip.gt, clip.gt, frames)
    worse = evaluate_output(clip.gt, broken, frames)
    assert perfect.scores["IDF1"] == pytest.approx(1.0)
    assert worse.scores["IDF1"] < 0.9
    assert worse.scores["HOTA"] < perfect.scores["HOTA"]
    assert worse.scores["IDSW"] > 0
    assert worse.scores["DetA"] == pytest.approx(1.0)  # every box is still found


def test_each_pass_through_the_view_is_a_track_to_find(world: Path) -> None:
    """By default a person who comes back to a camera is a new track (the tracker has no
    re-identification); with reentry_gap_s=0 it must carry the same id across passes."""
    box = (10.0, 10.0, 20.0, 40.0)
    frames = list(range(100))
    gt = {f: [(5, box)] for f in [*range(0, 20), *range(70, 90)]}  # pid 5 passes twice
    hyp = {f: [(1 if f < 50 else 2, box)] for f in gt}  # one track per pass
    assert evaluate_output(split_reentries(gt, 10.0, 2.0), hyp, frames).scores["IDF1"] == 1.0
    assert evaluate_output(gt, hyp, frames).scores["IDF1"] < 0.6

    def per_pass(c: Clip) -> tuple[list[int], dict]:
        return list(range(c.num_frames)), split_reentries(c.gt, c.fps, 2.0)

    report = evaluate_world(world, tracker=per_pass)  # the default splits the same way
    assert report.reentry_gap_s == 2.0
    assert report.overall.scores["IDF1"] == pytest.approx(1.0)


def test_split_reentries_cuts_at_gaps_only() -> None:
    box = (0.0, 0.0, 10.0, 20.0)
    gt = {f: [(5, box)] for f in [*range(0, 10), *range(12, 20), *range(60, 70)]}
    out = split_reentries(gt, fps=10.0, gap_s=2.0)  # 3 missing frames: same pass
    assert {out[f][0][0] for f in range(0, 20) if f in out} == {1}
    assert {out[f][0][0] for f in range(60, 70)} == {2}


def test_only_processed_frames_are_scored(world: Path) -> None:
    """A tracker that looked at every 4th frame is charged for those frames only."""
    _, clips = world_clips(world)
    clip = clips[0]
    frames = list(range(0, clip.num_frames, 4))
    hyp = {f: clip.gt.get(f, []) for f in frames}
    score = evaluate_output(clip.gt, hyp, frames)
    assert score.frames == len(frames)
    assert score.gt_dets == sum(len(clip.gt.get(f, [])) for f in frames)
    assert score.scores["MOTA"] == pytest.approx(1.0)


def test_trackeval_data_renumbers_ids_and_refuses_repeated_ids() -> None:
    box = (10.0, 10.0, 20.0, 40.0)
    gt = {0: [(7, box)], 1: [(7, box), (42, (50.0, 10.0, 20.0, 40.0))]}
    hyp = {1: [(3, box)]}
    data = trackeval_data(gt, hyp, [0, 1])
    assert (data["num_gt_ids"], data["num_tracker_ids"]) == (2, 1)
    assert [a.tolist() for a in data["gt_ids"]] == [[0], [0, 1]]
    assert [a.tolist() for a in data["tracker_ids"]] == [[], [0]]
    assert data["similarity_scores"][1].shape == (2, 1)
    assert np.allclose(data["similarity_scores"][1][:, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match="repeats"):
        trackeval_data(gt, {0: [(1, box), (1, box)]}, [0])


def test_cli_scores_the_pipeline_on_long_footage_and_writes_json(
    world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tracking.json"
    args = ["evaluate-tracking", "--world", str(world), "--json", str(out)]
    result = CliRunner().invoke(_cli(), [*args, "--detector", "background", "--sample-fps", "5"])
    assert result.exit_code == 0, result.output
    for column in ("clip", "HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW", "overall"):
        assert column in result.output
    report = json.loads(out.read_text())
    assert report["source"] == "footage" and report["detector"] == "background"
    assert [c["clip"] for c in report["clips"]] == ["footage/cam1", "footage/cam2"]
    assert report["overall"]["clip"] == "overall"
    assert report["overall"]["frames"] == sum(c["frames"] for c in report["clips"])
    for row in [*report["clips"], report["overall"]]:
        assert 0.0 <= row["HOTA"] <= 1.0 and 0.0 <= row["IDF1"] <= 1.0 and row["MOTA"] <= 1.0
        assert row["frames"] > 0 and row["gt_ids"] > 0
    # a detector that finds people at all: something was matched
    assert report["overall"]["DetA"] > 0.1


def test_cli_falls_back_to_short_clips(short_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "short.json"
    args = ["evaluate-tracking", "--world", str(short_world), "--json", str(out)]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["source"] == "clips"
    assert {c["camera"] for c in report["clips"]} == {1, 2}
    assert all(c["clip"].startswith("videos/") for c in report["clips"])


def test_cli_reports_a_missing_world_readably(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["evaluate-tracking", "--world", str(tmp_path)])
    assert result.exit_code == 2
    assert "world.json" in result.output
