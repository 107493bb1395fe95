"""ONNX export of a trained encoder: parity, the zero-shot table per runtime, end-to-end speed.

Exports ``--checkpoint`` (every view, fp32 and int8) with the export's own checks - cosine
>= 0.9999 to PyTorch for every parity sample, and with ``--world`` the same Rank-1 on every
row of the world's zero-shot table - then prints, side by side for PyTorch, ONNX Runtime fp32
and ONNX Runtime int8: the zero-shot table (R1 / mAP per setting, int8 change), the least
cosine per view, and end-to-end embeddings/s of ``Encoder.embed`` on the world's RGB crop
files (decode + resize + network) at batch 32.

    python benchmarks/bench_export.py --checkpoint var/train/cpu-synthetic/final.pt \\
        --world var/demo/world-120-s0 [--sysu-trials 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from aioreid.encoder.export import export_onnx
from aioreid.encoder.inference import Encoder

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "export.json"
RUNTIMES = ("torch", "onnx", "onnx-int8")


def _crops(world: Path, n: int) -> list[Path]:
    from aioreid.encoder.data.datasets import load_dataset

    ds = load_dataset("market1501", world)
    paths = [r.path for r in ds.gallery if r.path is not None]
    return paths[:n]


def _speed(encoders: dict[str, Encoder], files: list[Path], rounds: int) -> dict[str, float]:
    """Embeddings/s of ``Encoder.embed(files, "rgb")`` per runtime, interleaved rounds."""
    for enc in encoders.values():
        enc.embed(files[:8], "rgb")  # warm-up (sessions, caches)
    spent = dict.fromkeys(encoders, 0.0)
    for _ in range(rounds):
        for name, enc in encoders.items():
            t0 = time.perf_counter()
            enc.embed(files, "rgb")
            spent[name] += time.perf_counter() - t0
    return {name: rounds * len(files) / s for name, s in spent.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--world", type=Path, default=None, help="synthetic world for the table")
    p.add_argument("--out", type=Path, default=None, help="export folder (default: temporary)")
    p.add_argument("--sysu-trials", type=int, default=10)
    p.add_argument("--samples", type=int, default=16, help="parity samples per view")
    p.add_argument("--speed-images", type=int, default=256)
    p.add_argument("--speed-rounds", type=int, default=2)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "onnx"
        t0 = time.perf_counter()
        report = export_onnx(
            args.checkpoint,
            out,
            int8=True,
            samples=args.samples,
            world=args.world,
            sysu_trials=args.sysu_trials,
            log=lambda m: print(f"[{time.perf_counter() - t0:6.0f} s] {m}", flush=True),
        )
        encoders = {
            "torch": Encoder.load(args.checkpoint, device="cpu", batch_size=32),
            "onnx": Encoder.load(
                args.checkpoint, runtime="onnx", onnx_dir=out, device="cpu", batch_size=32
            ),
            "onnx-int8": Encoder.load(
                args.checkpoint,
                runtime="onnx",
                onnx_dir=out,
                int8=True,
                device="cpu",
                batch_size=32,
            ),
        }
        speed = None
        if args.world is not None:
            files = _crops(args.world, args.speed_images)
            speed = _speed(encoders, files, args.speed_rounds)

    print(f"\nexport of {args.checkpoint}: {len(report.views)} views in {report.seconds:.0f} s")
    print(f"version {report.version}; int8 version {report.int8_version}")
    print(f"\nleast cosine to PyTorch over {report.samples} samples, per view")
    print(f"{'view':<22}{'onnx fp32':>12}{'onnx int8':>12}")
    for view, cos in report.min_cosine.items():
        q = (report.int8_min_cosine or {}).get(view, float("nan"))
        print(f"{view:<22}{cos:>12.6f}{q:>12.4f}")
    table: dict[str, Any] = {}
    if report.zeroshot:
        tables = report.zeroshot["tables"]
        print(f"\nzero-shot on {args.world} (R1 / mAP, %)")
        head = f"{'setting':<18}" + "".join(f"{r:>16}" for r in RUNTIMES) + f"{'int8 dR1/dmAP':>16}"
        print(head)
        print("-" * len(head))
        for setting, base in tables["torch"].items():
            cells = "".join(
                f"{tables[r][setting]['R1']:>8.1f}/{tables[r][setting]['mAP']:<7.1f}"
                for r in RUNTIMES
            )
            q = tables["onnx-int8"][setting]
            d_r1, d_map = q["R1"] - base["R1"], q["mAP"] - base["mAP"]
            print(f"{setting:<18}{cells}{d_r1:>+9.1f}/{d_map:<+6.1f}")
            table[setting] = {
                r: {"R1": tables[r][setting]["R1"], "mAP": tables[r][setting]["mAP"]}
                for r in RUNTIMES
            }
    if speed:
        print(f"\nEncoder.embed on {args.speed_images} RGB crop files, batch 32 (decode+network)")
        for name, eps in speed.items():
            print(f"{name:<12}{eps:>8.1f} embeddings/s  x{eps / speed['torch']:.2f} torch")
    result = {
        "benchmark": "bench_export",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(args.checkpoint),
        "world": str(args.world) if args.world else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_1m_before": load_before,
        "load_average_1m_after": os.getloadavg()[0],
        "export": report.to_json(),
        "zeroshot": table,
        "embed_per_s_batch32": speed,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
