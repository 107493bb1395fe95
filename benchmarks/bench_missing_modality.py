"""Speed of missing-modality synthesis and of the multimodal training set.

Measures milliseconds per image of ``channel_augment`` and ``line_art`` (xdog, canny, xdog
with stroke jitter) on 256x128 RGB crops, and items per second of
``MultimodalTrainSet.__getitem__`` (images on disk, every modality synthesised, no cache) at
128x64 and 256x128. Prints the figures and writes JSON (default
``benchmarks/results/missing_modality.json``).

    python benchmarks/bench_missing_modality.py [--out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.training.data import MultimodalTrainSet
from aioreid.encoder.training.missing_modality import channel_augment, line_art

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "missing_modality.json"


def synthetic_person(h: int, w: int, seed: int) -> np.ndarray:
    """A textured RGB person-like crop (uint8 HxWx3)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(128, 20, (h, w, 3)).clip(0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 2)
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(4)]
    cv2.ellipse(img, (w // 2, h // 8), (w // 10, h // 14), 0, 0, 360, colours[0], -1)
    cv2.rectangle(img, (w // 4, h // 5), (3 * w // 4, h // 2), colours[1], -1)
    cv2.rectangle(img, (w // 4 + 3, h // 2), (w // 2 - 2, 9 * h // 10), colours[2], -1)
    cv2.rectangle(img, (w // 2 + 2, h // 2), (3 * w // 4 - 3, 9 * h // 10), colours[2], -1)
    for y in range(h // 5, h // 2, max(3, h // 32)):
        cv2.line(img, (w // 4, y), (3 * w // 4, y), colours[3], 1)
    return img


def ms_per_call(fn: Callable[[int], object], n: int) -> float:
    """Median over 5 rounds of the mean time of ``n`` calls, in milliseconds."""
    fn(0)
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        rounds.append((time.perf_counter() - t0) / n * 1e3)
    return float(np.median(rounds))


def bench_operators(n: int) -> dict[str, float]:
    images = [synthetic_person(256, 128, s) for s in range(16)]
    rng = np.random.default_rng(0)
    cases: dict[str, Callable[[int], object]] = {
        "channel_augment": lambda i: channel_augment(images[i % 16], rng),
        "line_art_xdog": lambda i: line_art(images[i % 16], method="xdog"),
        "line_art_canny": lambda i: line_art(images[i % 16], method="canny"),
        "line_art_xdog_jitter": lambda i: line_art(images[i % 16], rng=rng, jitter=True),
    }
    return {name: ms_per_call(fn, n) for name, fn in cases.items()}


def bench_dataset(root: Path, size: tuple[int, int], n_items: int) -> float:
    """Items/s of ``__getitem__`` over on-disk JPEGs (stored at 2x ``size``)."""
    records = []
    for i in range(64):
        path = root / f"{size[0]}_{i:03d}.jpg"
        rgb = synthetic_person(2 * size[0], 2 * size[1], i)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        records.append(Record(path, i // 4, 1, Modality.RGB))
        records.append(Record(path, i // 4, -1, Modality.TEXT, text=f"a person number {i}"))
    ds = MultimodalTrainSet.from_records(records, size=size, seed=0)
    ds[0]
    t0 = time.perf_counter()
    for i in range(n_items):
        ds[i % len(ds)]
    return n_items / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n = 50 if args.quick else 300
    results: dict = {
        "benchmark": "missing_modality",
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
        },
        "ms_per_image_256x128": bench_operators(n),
        "dataset_items_per_s": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((128, 64), (256, 128)):
            ips = bench_dataset(Path(tmp), size, 100 if args.quick else 400)
            results["dataset_items_per_s"][f"{size[0]}x{size[1]}"] = ips
    for name, ms in results["ms_per_image_256x128"].items():
        print(f"{name:24s} {ms:8.3f} ms/image (256x128)")
    for size, ips in results["dataset_items_per_s"].items():
        print(f"dataset __getitem__ {size:8s} {ips:8.1f} items/s (1 process)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
