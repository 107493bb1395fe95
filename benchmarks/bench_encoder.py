"""Throughput of the AIO inference path vs the bare frozen backbone, on CPU.

For each offline backbone: embeddings/s of ``AIOModel.embed({"rgb": images})`` under
``torch.inference_mode`` (tokenizer + backbone + BN-neck + L2-norm) at several batch sizes,
and of the backbone's bare forward pass on the same token count (``1 + patches``). The time
ratio full/bare is the tokenizer (and head) overhead.

    python benchmarks/bench_encoder.py [--backbones minilm-l6 tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from aioreid.encoder.model import AIOConfig, AIOModel

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "encoder.json"


def _time_pair(
    fa: Callable[[], object], fb: Callable[[], object], *, min_time: float, min_iters: int
) -> tuple[float, float]:
    """Median seconds per call of ``fa`` and ``fb``, measured interleaved (so that load from
    other processes hits both alike) after two warm-up calls each."""
    for _ in range(2):
        fa()
        fb()
    ta: list[float] = []
    tb: list[float] = []
    start = time.perf_counter()
    while len(ta) < min_iters or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta), statistics.median(tb)


def bench_backbone(
    spec: str,
    batches: list[int],
    image_size: tuple[int, int],
    *,
    min_time: float,
    min_iters: int,
) -> list[dict[str, Any]]:
    """Rows of {backbone, batch, tokens, full_eps, bare_eps, ratio} for one backbone."""
    torch.manual_seed(0)
    model = AIOModel(AIOConfig(backbone=spec, image_size=image_size)).eval()
    n_tokens = 1 + model.tokenizer.images["rgb"].num_tokens()
    rows: list[dict[str, Any]] = []
    for b in batches:
        images = torch.randn(b, 3, *image_size)
        tokens = torch.randn(b, n_tokens, model.width)
        mask = torch.ones(b, n_tokens, dtype=torch.bool)
        with torch.inference_mode():
            full, bare = _time_pair(
                lambda images=images: model.embed({"rgb": images}),
                lambda tokens=tokens, mask=mask: model.backbone(tokens, mask),
                min_time=min_time,
                min_iters=min_iters,
            )
        rows.append(
            {
                "backbone": spec,
                "width": model.width,
                "layers": model.backbone.num_layers,
                "batch": b,
                "tokens": n_tokens,
                "full_s_per_batch": full,
                "bare_s_per_batch": bare,
                "full_embeddings_per_s": b / full,
                "bare_embeddings_per_s": b / bare,
                "time_ratio_full_over_bare": full / bare,
            }
        )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'backbone':<12}{'width':>6}{'layers':>7}{'batch':>6}{'tokens':>7}"
        f"{'full emb/s':>12}{'bare emb/s':>12}{'full/bare':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['backbone']:<12}{r['width']:>6}{r['layers']:>7}{r['batch']:>6}{r['tokens']:>7}"
            f"{r['full_embeddings_per_s']:>12.1f}{r['bare_embeddings_per_s']:>12.1f}"
            f"{r['time_ratio_full_over_bare']:>10.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["minilm-l6", "tiny"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32, 128])
    p.add_argument("--image-size", nargs=2, type=int, default=[128, 64], metavar=("H", "W"))
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (args.image_size[0], args.image_size[1])
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for spec in args.backbones:
        rows.extend(
            bench_backbone(
                spec, args.batches, size, min_time=args.min_time, min_iters=args.min_iters
            )
        )
    print(
        f"AIO encoder inference on CPU, RGB {size[0]}x{size[1]}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(_table(rows))
    result = {
        "benchmark": "bench_encoder",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "note": "median per-batch times, full and bare measured interleaved; "
        "other processes on the machine inflate both (see load averages)",
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_1m_before": load_before,
        "load_average_1m_after": os.getloadavg()[0],
        "image_size": list(size),
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
