"""Short surveillance clips: several identities walking through one static camera's scene,
written as mp4 (``mp4v``; MJPG ``.avi`` if this OpenCV build cannot write mp4) with a JSON
annotation: fps, ISO-8601 start time and, per frame, every visible person's pid and box."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .attributes import IdentityAttributes
from .camera import Camera, background, finish
from .figure import Pose, build_figure
from .render_ir import draw_figure_ir
from .render_rgb import draw_figure_rgb

#: Wall-clock origin of the synthetic world's recordings.
EPOCH = datetime(2024, 3, 4, 8, 0, 0, tzinfo=timezone.utc)
_VIDEO_STREAM = 5


@dataclass(frozen=True)
class ClipSpec:
    """What one clip shows: camera, clip index, walking identities, length, fps, H×W."""

    camera: Camera
    index: int
    pids: tuple[int, ...]
    seconds: float
    fps: int
    size: tuple[int, int] = (240, 320)

    @property
    def num_frames(self) -> int:
        """Frames in the clip."""
        return max(1, round(self.seconds * self.fps))

    @property
    def start(self) -> datetime:
        """Recording start: cameras and clips staggered from :data:`EPOCH`."""
        return EPOCH + timedelta(minutes=20 * self.index, seconds=37 * self.camera.cam_id)


@dataclass
class _Walker:
    pid: int
    x0: float
    y0: float
    vx: float
    vy: float
    h0: float
    grow: float
    yaw: float
    phase0: float
    cadence: float


def _walkers(spec: ClipSpec) -> list[_Walker]:
    cam = spec.camera
    h, w = spec.size
    floor_top = cam.style.horizon * h
    out = []
    for pid in spec.pids:
        rng = np.random.default_rng(
            [cam.seed & 0xFFFFFFFF, _VIDEO_STREAM, cam.cam_id, spec.index, pid]
        )
        y = float(rng.uniform(floor_top + 0.25 * (h - floor_top), h - 2))
        depth = (y - floor_top) / max(1.0, h - floor_top)
        hpx = h * (0.3 + 0.28 * depth)
        speed = hpx * float(rng.uniform(0.6, 0.9))
        if rng.random() < 0.7:  # crossing the view
            right = bool(rng.random() < 0.5)
            yaw = (math.pi / 2 if right else -math.pi / 2) + float(rng.normal(0, 0.15))
            vx, vy, grow = (speed if right else -speed), 0.0, 0.0
            x0 = float(rng.uniform(-0.15 * w, 0.7 * w) if right else rng.uniform(0.3 * w, 1.15 * w))
        else:  # coming towards or going away from the camera
            towards = bool(rng.random() < 0.5)
            yaw = (0.0 if towards else math.pi) + float(rng.normal(0, 0.15))
            vx, vy = float(rng.normal(0, 0.05 * speed)), (1 if towards else -1) * speed * 0.12
            grow = vy / max(1.0, h - floor_top) * 0.33 * h
            x0 = float(rng.uniform(0.2 * w, 0.8 * w))
        out.append(
            _Walker(
                pid,
                x0,
                y,
                vx,
                vy,
                hpx,
                grow,
                yaw,
                float(rng.uniform(0, 2 * math.pi)),
                float(rng.uniform(0.8, 1.0)),
            )
        )
    return out


@lru_cache(maxsize=1)
def video_extension() -> str:
    """``.mp4`` when this OpenCV can write mp4v (probed once), else ``.avi`` (MJPG)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.mp4"
        writer = cv2.VideoWriter(str(probe), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
        ok = writer.isOpened()
        if ok:
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.release()
        ok = ok and probe.exists() and probe.stat().st_size > 0
    return ".mp4" if ok else ".avi"


def open_writer(path: Path, fps: int, size: tuple[int, int]) -> cv2.VideoWriter:
    """A writer for ``path``: mp4v for ``.mp4``, MJPG for ``.avi``."""
    h, w = size
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video at {path}")
    return writer


def render_clip(
    spec: ClipSpec, ids: Mapping[int, IdentityAttributes], path: Path, annotation_path: Path
) -> dict[str, object]:
    """Render, write and annotate one clip; returns the annotation (also written as JSON)."""
    cam = spec.camera
    h, w = spec.size
    ir = cam.modality == "ir"
    bg = background(cam, h, w)
    walkers = _walkers(spec)
    writer = open_writer(path, spec.fps, spec.size)
    frames: list[dict[str, object]] = []
    start = spec.start
    fin_seed = [cam.seed & 0xFFFFFFFF, _VIDEO_STREAM, cam.cam_id, spec.index, 0]
    try:
        for i in range(spec.num_frames):
            t = i / spec.fps
            img = bg.copy()
            placed = []
            for wk in walkers:
                y = wk.y0 + wk.vy * t
                placed.append((y, wk))
            objects = []
            for y, wk in sorted(placed, key=lambda p: p[0]):
                hpx = wk.h0 + wk.grow * t
                x = wk.x0 + wk.vx * t
                pose = Pose(wk.phase0 + 2 * math.pi * wk.cadence * t * 1.1, wk.yaw)
                attrs = ids[wk.pid]
                fig = build_figure(attrs, pose, hpx, x, y)
                x0, y0, x1, y1 = fig.box
                if x1 < 0 or x0 > w or y1 < 0 or y0 > h:
                    continue
                (draw_figure_ir if ir else draw_figure_rgb)(img, fig, attrs)
                cx0, cy0 = max(0.0, x0), max(0.0, y0)
                cx1, cy1 = min(float(w), x1), min(float(h), y1)
                full = (x1 - x0) * (y1 - y0)
                if (cx1 - cx0) * (cy1 - cy0) < 0.3 * full or cx1 - cx0 < 4 or cy1 - cy0 < 8:
                    continue
                bx, by = math.floor(cx0), math.floor(cy0)
                bw = min(w - bx, math.ceil(cx1) - bx)
                bh = min(h - by, math.ceil(cy1) - by)
                objects.append({"pid": wk.pid, "box": [bx, by, bw, bh]})
            frame = finish(img, cam, np.random.default_rng(fin_seed))
            bgr = (
                cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                if ir
                else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            )
            writer.write(bgr)
            stamp = (start + timedelta(seconds=t)).isoformat(timespec="milliseconds")
            frames.append({"frame": i, "time": stamp, "objects": objects})
    finally:
        writer.release()
    ann: dict[str, object] = {
        "video": path.name,
        "camera": cam.cam_id,
        "modality": cam.modality,
        "fps": spec.fps,
        "width": w,
        "height": h,
        "num_frames": spec.num_frames,
        "start": start.isoformat(),
        "frames": frames,
    }
    annotation_path.write_text(json.dumps(ann, indent=1) + "\n", encoding="utf-8")
    return ann
