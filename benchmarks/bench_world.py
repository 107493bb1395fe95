"""Throughput of the synthetic world: rendering alone (one process) and the full
``generate_world`` (all layouts, sketches and videos written by ``--workers`` processes).

Usage: ``python benchmarks/bench_world.py [--identities N] [--workers 2] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from aioreid.encoder.data.synth import (
    SynthConfig,
    build_cameras,
    generate_world,
    render_ir,
    render_rgb,
    render_sketch,
    sample_identity,
)
from aioreid.encoder.data.synth.layouts import encode_jpeg

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "world.json"


def bench_render(samples: int, height: int, width: int) -> dict[str, float]:
    """Single-process images/s of each renderer (and with JPEG encoding), at H×W."""
    cfg = SynthConfig(height=height, width=width)
    cams = build_cameras(cfg)
    rgb = [c for c in cams if c.modality == "rgb"]
    ir = [c for c in cams if c.modality == "ir"]
    ids = [sample_identity(p, 0) for p in range(1, 51)]
    size = (height, width)
    jobs = {
        "rgb": lambda i: render_rgb(ids[i % 50], np.random.default_rng(i), rgb[i % len(rgb)], size),
        "ir": lambda i: render_ir(ids[i % 50], np.random.default_rng(i), ir[i % len(ir)], size),
        "sketch": lambda i: render_sketch(ids[i % 50], np.random.default_rng(i), size),
    }
    out: dict[str, float] = {}
    for name, fn in jobs.items():
        fn(0)  # warm caches
        t = time.perf_counter()
        for i in range(samples):
            fn(i)
        out[f"{name}_img_per_s"] = samples / (time.perf_counter() - t)
    # the world's mix (~9 RGB : 4 IR : 1.5 sketch per identity) with JPEG encoding
    mix = ["rgb"] * 18 + ["ir"] * 8 + ["sketch"] * 3
    t = time.perf_counter()
    for i in range(samples):
        encode_jpeg(jobs[mix[i % len(mix)]](i))
    out["mixed_with_jpeg_img_per_s"] = samples / (time.perf_counter() - t)
    return out


def bench_world(identities: int, workers: int, out_dir: Path) -> dict[str, float]:
    """Wall time and throughput of one full ``generate_world``."""
    cfg = SynthConfig(identities=identities, workers=workers, progress=False)
    t = time.perf_counter()
    man = generate_world(out_dir, cfg)
    dt = time.perf_counter() - t
    c = man.counts
    return {
        "identities": identities,
        "workers": workers,
        "seconds": dt,
        "images_total": c["images_total"],
        "image_files": c["image_files"],
        "video_frames": c["video_frames"],
        "images_per_s": c["images_total"] / dt,
        "files_per_s": c["image_files"] / dt,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--samples", type=int, default=300, help="renders per renderer")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--out", type=Path, default=None, help="world folder (default: temp)")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()[0]  # other processes on the machine skew the figures
    render = bench_render(args.samples, 256, 128)
    tmp = Path(tempfile.mkdtemp(prefix="bench_world_")) if args.out is None else args.out
    try:
        world = bench_world(args.identities, args.workers, tmp)
    finally:
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "image_size": [256, 128],
        "render_single_process": render,
        "generate_world": world,
        "target_images_per_s": 300,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_before": load_before,
            "load_avg_1m_after": os.getloadavg()[0],
            "python": sys.version.split()[0],
            "opencv": cv2.__version__,
            "platform": platform.platform(),
        },
    }
    for k, v in render.items():
        print(f"render  {k:28s} {v:8.1f}")
    print(
        f"world   {args.identities} identities, {args.workers} workers: "
        f"{world['images_total']} images ({world['image_files']} files, "
        f"{world['video_frames']} video frames) in {world['seconds']:.2f} s = "
        f"{world['images_per_s']:.1f} images/s, {world['files_per_s']:.1f} files/s"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
