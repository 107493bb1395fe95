"""Throughput of the AIO inference path vs the bare frozen backbone, on CPU, per runtime.

For each offline backbone: embeddings/s of ``AIOModel.embed({"rgb": images})`` under
``torch.inference_mode`` (tokenizer + backbone + BN-neck + L2-norm) at several batch sizes,
and of the backbone's bare forward pass on the same token count (``1 + patches``). The time
ratio full/bare is the tokenizer (and head) overhead.

In the same run, side by side on the same preprocessed batch: the RGB graph ``aioreid export``
writes, in ONNX Runtime (fp32, and the ``--int8`` per-channel dynamically quantised graph),
with speed-ups over PyTorch. Each batch size times every runtime in alternating blocks (see
:func:`_time_many`), so load from other processes hits them alike. Preprocessing
(decode/resize) is not timed: it is the same code for every runtime.

    python benchmarks/bench_encoder.py [--backbones minilm-l6 tiny] [--runtimes torch onnx
        onnx-int8] [--json PATH]
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

import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model import AIOConfig, AIOModel

RUNTIMES = ("torch", "onnx", "onnx-int8")

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


def _time_many(
    fns: list[Callable[[], object]], *, min_time: float, min_iters: int, rounds: int = 3
) -> list[float]:
    """Median seconds per call of each of ``fns``, measured in alternating blocks: ``rounds``
    rounds, each giving every function a block of about ``min_time / rounds`` seconds.

    Not call-by-call interleaving (as :func:`_time_pair` does for two PyTorch calls): PyTorch's
    OpenMP threads keep spinning for a while after a call, and ONNX Runtime's pool has threads
    of its own, so alternating every call made each runtime run against the other's spinning
    threads (measured: PyTorch at batch 1 fell from 72 to 7 embeddings/s). Each block starts
    with two untimed calls, so the previous block's threads have gone idle.
    """
    times: list[list[float]] = [[] for _ in fns]
    per_block = min_time / rounds
    iters = max(1, -(-min_iters // rounds))
    for _ in range(rounds):
        for f, ts in zip(fns, times, strict=True):
            f()
            f()
            start = time.perf_counter()
            n = 0
            while n < iters or time.perf_counter() - start < per_block:
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
                n += 1
    return [statistics.median(ts) for ts in times]


def _onnx_sessions(model: AIOModel, runtimes: list[str], folder: Path) -> dict[str, Any]:
    """The RGB graph of ``model`` exported (parity-checked) to ``folder``, one ONNX Runtime
    session per requested ONNX runtime."""
    from aioreid.encoder.export import export_encoder
    from aioreid.encoder.inference import Encoder
    from aioreid.encoder.runtime import OnnxRuntime

    wanted = [r for r in runtimes if r != "torch"]
    if not wanted:
        return {}
    export_encoder(
        Encoder(model, "bench", device="cpu"),
        folder,
        views=[(Modality.RGB,)],
        int8="onnx-int8" in wanted,
        samples=4,
    )
    return {
        r: OnnxRuntime(
            folder, precision="int8" if r == "onnx-int8" else "fp32", device="cpu"
        ).session((Modality.RGB,))
        for r in wanted
    }


def bench_backbone(
    spec: str,
    batches: list[int],
    image_size: tuple[int, int],
    *,
    min_time: float,
    min_iters: int,
    runtimes: list[str] | None = None,
    workdir: Path | None = None,
) -> list[dict[str, Any]]:
    """Rows of {backbone, batch, tokens, full_eps, bare_eps, ratio, <runtime>_eps, speed-ups}
    for one backbone."""
    import tempfile

    runtimes = list(runtimes or RUNTIMES)
    torch.manual_seed(0)
    model = AIOModel(AIOConfig(backbone=spec, image_size=image_size)).eval()
    n_tokens = 1 + model.tokenizer.images["rgb"].num_tokens()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sessions = _onnx_sessions(model, runtimes, Path(tmp) / "onnx")
        rows: list[dict[str, Any]] = []
        for b in batches:
            images = torch.randn(b, 3, *image_size)
            feed = {"rgb": np.ascontiguousarray(images.numpy())}
            tokens = torch.randn(b, n_tokens, model.width)
            mask = torch.ones(b, n_tokens, dtype=torch.bool)
            fns: list[Callable[[], object]] = [
                lambda images=images: model.embed({"rgb": images}),
                lambda tokens=tokens, mask=mask: model.backbone(tokens, mask),
            ]
            names = list(sessions)
            fns += [lambda s=sessions[n], feed=feed: s.run(["features"], feed) for n in names]
            with torch.inference_mode():
                full, bare, *others = _time_many(fns, min_time=min_time, min_iters=min_iters)
            row: dict[str, Any] = {
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
                "torch_embeddings_per_s": b / full,
            }
            for n, t in zip(names, others, strict=True):
                key = n.replace("-", "_")
                row[f"{key}_s_per_batch"] = t
                row[f"{key}_embeddings_per_s"] = b / t
                row[f"{key}_speedup_vs_torch"] = full / t
                row[f"{key}_time_ratio_over_bare"] = t / bare
            if "onnx" in sessions and "onnx-int8" in sessions:
                row["onnx_int8_speedup_vs_onnx"] = (
                    row["onnx_s_per_batch"] / row["onnx_int8_s_per_batch"]
                )
            rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    has_onnx = any("onnx_embeddings_per_s" in r for r in rows)
    has_int8 = any("onnx_int8_embeddings_per_s" in r for r in rows)
    head = (
        f"{'backbone':<12}{'width':>6}{'layers':>7}{'batch':>6}{'tokens':>7}"
        f"{'torch emb/s':>12}{'bare emb/s':>12}{'full/bare':>10}"
    )
    if has_onnx:
        head += f"{'onnx emb/s':>12}{'x torch':>9}"
    if has_int8:
        head += f"{'int8 emb/s':>12}{'x torch':>9}{'x onnx':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        line = (
            f"{r['backbone']:<12}{r['width']:>6}{r['layers']:>7}{r['batch']:>6}{r['tokens']:>7}"
            f"{r['full_embeddings_per_s']:>12.1f}{r['bare_embeddings_per_s']:>12.1f}"
            f"{r['time_ratio_full_over_bare']:>10.2f}"
        )
        if has_onnx:
            line += f"{r['onnx_embeddings_per_s']:>12.1f}{r['onnx_speedup_vs_torch']:>9.2f}"
        if has_int8:
            line += (
                f"{r['onnx_int8_embeddings_per_s']:>12.1f}"
                f"{r['onnx_int8_speedup_vs_torch']:>9.2f}"
                f"{r.get('onnx_int8_speedup_vs_onnx', float('nan')):>8.2f}"
            )
        lines.append(line)
    return "\n".join(lines)


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover
        return None
    return str(onnxruntime.__version__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["minilm-l6", "tiny"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32, 128])
    p.add_argument("--image-size", nargs=2, type=int, default=[128, 64], metavar=("H", "W"))
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--runtimes",
        nargs="+",
        choices=RUNTIMES,
        default=list(RUNTIMES),
        help="torch always runs (the reference); onnx and onnx-int8 add columns",
    )
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
                spec,
                args.batches,
                size,
                min_time=args.min_time,
                min_iters=args.min_iters,
                runtimes=args.runtimes,
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
        "note": "median per-batch times; torch full, bare and the ONNX Runtime graphs measured "
        "on the same batch in alternating blocks (3 rounds); other processes on the machine "
        "inflate all (see load averages)",
        "runtimes": args.runtimes,
        "onnxruntime": _ort_version(),
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
