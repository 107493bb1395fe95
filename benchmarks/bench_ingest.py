"""Ingestion throughput end to end against the encoder alone on the same crops.

    python benchmarks/bench_ingest.py [--world var/demo/world-120-s0] [--files 600] \
        [--runtime torch|onnx|onnx-int8]

Pipeline: register (sha256 + object store) → decode → crop + quality → store crop → encode in
batches → SQL rows → index upsert, on the embedded profile (SQLite, Qdrant Edge, local
folder) in a temporary home. Encoder alone: decode the same files and ``Encoder.embed`` them
with the same batch size. The ratio is the pipeline's overhead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.inference import Encoder, decode_image
from aioreid.encoder.model import AIOConfig
from aioreid.platform.config import Settings
from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many
from aioreid.platform.services import Services

DEFAULT_JSON = Path(__file__).parent / "results" / "ingest.json"


def _encoder(checkpoint: Path | None, batch: int, runtime: str, work: Path) -> Encoder:
    if checkpoint is not None and checkpoint.is_file():
        enc = Encoder.load(checkpoint, device="cpu", batch_size=batch)
    else:
        cfg = AIOConfig(backbone="minilm-l6", image_size=(128, 64), text_max_len=40)
        enc = Encoder.untrained(cfg, device="cpu")
        enc.batch_size = batch
    if runtime == "torch":
        return enc
    # The RGB graph only (what this benchmark embeds), exported with its parity check.
    from aioreid.encoder.export import export_encoder, parse_views

    export_encoder(enc, work / "onnx", views=parse_views(["rgb"]), int8=runtime == "onnx-int8")
    return Encoder.from_onnx(
        work / "onnx", int8=runtime == "onnx-int8", device="cpu", batch_size=batch
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--world", type=Path, default=Path("var/demo/world-120-s0"))
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--checkpoint", type=Path, default=Path("var/train/cpu-synthetic/final.pt"))
    ap.add_argument("--index", default="edge", choices=["edge", "local"])
    ap.add_argument("--runtime", default="torch", choices=["torch", "onnx", "onnx-int8"])
    ap.add_argument("--json", type=Path, default=None, help="default: results/ingest-RUNTIME.json")
    args = ap.parse_args()
    args.json = args.json or DEFAULT_JSON.with_name(f"ingest-{args.runtime}.json")
    torch.set_num_threads(2)
    ds = load_dataset("market1501", args.world)
    files = [r.path for r in [*ds.train, *ds.gallery] if r.path is not None][: args.files]
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    enc = _encoder(args.checkpoint, args.batch, args.runtime, work)

    t0 = time.perf_counter()
    images = [decode_image(Path(p).read_bytes()) for p in files]
    enc.embed(images, "rgb")
    alone_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), index={"backend": args.index})
        svc = Services.from_settings(settings, encoder=enc)
        items = [{"path": p, "camera": "bench"} for p in files]
        t0 = time.perf_counter()
        _, results = ingest_many(
            svc, items, options=IngestOptions(detector="crops"), progress=False
        )
        pipeline_s = time.perf_counter() - t0
        crops = sum(r.sightings for r in results)
        svc.close()
    out = {
        "files": len(files),
        "crops": crops,
        "encoder": enc.version,
        "runtime": args.runtime,
        "index": args.index,
        "encoder_alone_s": round(alone_s, 2),
        "encoder_alone_crops_per_s": round(len(files) / alone_s, 1),
        "pipeline_s": round(pipeline_s, 2),
        "pipeline_crops_per_s": round(crops / pipeline_s, 1),
        "overhead_ratio": round(pipeline_s / alone_s, 2),
    }
    print(
        f"{len(files)} crops: encoder alone {out['encoder_alone_crops_per_s']} crops/s, "
        f"pipeline {out['pipeline_crops_per_s']} crops/s "
        f"(pipeline/encoder time {out['overhead_ratio']}x)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
