"""Long synthetic footage (aioreid.encoder.data.synth.footage): one clip per camera with
MOTChallenge ground truth, people walking routes across cameras."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from aioreid.encoder.data.synth import (
    FootageOptions,
    SynthConfig,
    WorldManifest,
    generate_world,
    write_footage,
)
from aioreid.platform.cli import app

SIZE = (120, 160)  # H, W
OPTIONS = FootageOptions(
    minutes=0.2, fps=10, size=SIZE, visits_per_minute=30, workers=1, progress=False
)


def _world(root: Path) -> WorldManifest:
    """Six identities, one RGB and one IR camera (neither held out: anyone may pass both)."""
    cfg = SynthConfig(
        identities=6,
        rgb_cameras=1,
        ir_cameras=1,
        videos_per_camera=0,
        height=64,
        width=32,
        workers=1,
        progress=False,
    )
    return generate_world(root, cfg)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("footage_world")
    _world(root)
    write_footage(root, OPTIONS)
    return root


def _gt(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text(encoding="ascii").splitlines()]


def _cams(root: Path) -> list[Path]:
    return sorted((root / "footage").glob("cam*"))


def test_layout_one_clip_per_camera_with_gt_and_sidecar(world: Path) -> None:
    index = json.loads((world / "footage" / "footage.json").read_text())
    assert index["clips"] == ["cam1/clip.json", "cam2/clip.json"]
    for cam, modality in zip(_cams(world), ("rgb", "ir"), strict=True):
        meta = json.loads((cam / "clip.json").read_text())
        assert meta["fps"] == 10 and (meta["height"], meta["width"]) == SIZE
        assert meta["num_frames"] == 120  # 0.2 min at 10 fps
        assert meta["modality"] == modality and meta["camera"] == int(cam.name[3:])
        assert datetime.fromisoformat(meta["start"]).tzinfo is not None
        assert (cam / meta["video"]).stat().st_size > 10_000
        assert (cam / "gt.txt").stat().st_size > 0


def test_video_has_every_frame_at_the_right_size(world: Path) -> None:
    for cam in _cams(world):
        meta = json.loads((cam / "clip.json").read_text())
        cap = cv2.VideoCapture(str(cam / meta["video"]))
        frames = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            assert img.shape[:2] == SIZE
            frames += 1
        cap.release()
        assert frames == meta["num_frames"]


def test_gt_is_motchallenge_with_boxes_inside_the_frame(world: Path) -> None:
    pids = {i["pid"] for i in WorldManifest.load(world).identities}
    h, w = SIZE
    for cam in _cams(world):
        rows = _gt(cam / "gt.txt")
        assert rows, cam
        seen = set()
        for r in rows:
            assert len(r) == 9
            frame, ident, x, y, bw, bh = (int(v) for v in r[:6])
            assert 1 <= frame <= 120  # MOTChallenge frames are 1-based
            assert ident in pids  # id = the world's pid
            assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h
            assert r[6:8] == ["1", "1"]
            assert 0.0 <= float(r[8]) <= 1.0
            assert (frame, ident) not in seen
            seen.add((frame, ident))
        frames = [int(r[0]) for r in rows]
        assert frames == sorted(frames)
        # people enter and leave: some frames have nobody, and someone is partly hidden
        assert len(set(frames)) < 120
        assert any(float(r[8]) < 1.0 for r in rows)


def test_gt_boxes_are_where_the_people_are(world: Path) -> None:
    """Inside a fully visible box the frame differs from the empty scene; outside, not."""
    cam = _cams(world)[0]
    cap = cv2.VideoCapture(str(cam / "clip.mp4"))
    if not cap.isOpened():
        cap = cv2.VideoCapture(str(cam / "clip.avi"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img.astype(np.float32))
    empty = np.median(np.stack(frames), axis=0)
    by_frame = defaultdict(list)
    for r in _gt(cam / "gt.txt"):
        by_frame[int(r[0]) - 1].append([int(v) for v in r[2:6]] + [float(r[8])])
    inside, outside = [], []
    for f, boxes in by_frame.items():
        diff = np.abs(frames[f] - empty).max(axis=2)
        mask = np.zeros(diff.shape, bool)
        for x, y, bw, bh, _vis in boxes:
            mask[y : y + bh, x : x + bw] = True
        for x, y, bw, bh, vis in boxes:
            if vis == 1.0:
                inside.append(float(diff[y : y + bh, x : x + bw].mean()))
        outside.append(float(diff[~mask].mean()))
    assert inside and np.median(inside) > 3 * np.median(outside)


def test_people_reappear_on_the_other_camera_never_in_two_places(world: Path) -> None:
    frames_of: dict[str, dict[int, set[int]]] = {}
    for cam in _cams(world):
        per_pid: dict[int, set[int]] = defaultdict(set)
        for r in _gt(cam / "gt.txt"):
            per_pid[int(r[1])].add(int(r[0]))
        frames_of[cam.name] = per_pid
    a, b = frames_of["cam1"], frames_of["cam2"]
    both = set(a) & set(b)
    assert both, "some identity should walk past both cameras"
    for pid in both:
        assert not a[pid] & b[pid], f"pid {pid} on two cameras at once"


def test_same_seed_same_gt_bytes_whatever_the_workers(world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(world / "world.json", again / "world.json")  # footage needs only the manifest
    write_footage(again, dataclasses.replace(OPTIONS, workers=2))
    for cam in _cams(world):
        twin = again / "footage" / cam.name
        assert (cam / "gt.txt").read_bytes() == (twin / "gt.txt").read_bytes()
        assert (cam / "clip.json").read_bytes() == (twin / "clip.json").read_bytes()


def test_bad_options_are_refused() -> None:
    for bad in ({"minutes": 0}, {"minutes": 1, "fps": 0}, {"minutes": 1, "size": (10, 10)}):
        with pytest.raises(ValueError):
            FootageOptions(**bad)  # type: ignore[arg-type]


def test_synth_clip_minutes_writes_footage_and_a_new_world_drops_it(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "w"
    base = ["synth", "--out", str(out), "--identities", "4", "--no-videos", "--workers", "1"]
    result = runner.invoke(app, [*base, "--clip-minutes", "0.05"])
    assert result.exit_code == 0, result.output
    cams = WorldManifest.load(out).cameras
    assert len(_cams(out)) == len(cams)
    meta = json.loads((out / "footage" / "cam1" / "clip.json").read_text())
    assert meta["num_frames"] == 30
    # regenerating the world without footage must not leave the old world's footage behind
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert not (out / "footage").exists()
    bad = runner.invoke(app, ["synth", "--out", str(tmp_path / "w2"), "--clip-minutes", "0"])
    assert bad.exit_code == 2
    assert "minutes" in bad.output and not (tmp_path / "w2").exists()
