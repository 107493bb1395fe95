"""`make demo` / `aioreid demo`: the main job end to end on the embedded profile.

Today: synthesise a multi-camera multimodal world (reused when one with the same seed and size
is already there), then evaluate the non-learned baseline zero-shot on its held-out identities
and print the paper-style table; when a trained encoder checkpoint exists (the encoder
settings' ``checkpoint``, or ``<home>/train/cpu-synthetic/final.pt``), evaluate it too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from aioreid.encoder.data.synth import SynthConfig, WorldManifest, generate_world
from aioreid.encoder.zeroshot import HistogramEmbedder, evaluate_world, report


def ensure_world(folder: Path, identities: int, seed: int) -> WorldManifest:
    """Load the world in ``folder`` if it matches; otherwise generate it there."""
    manifest_path = folder / "world.json"
    if manifest_path.exists():
        try:
            manifest = WorldManifest.load(folder)
        except (ValueError, KeyError, json.JSONDecodeError):
            manifest = None
        same = manifest is not None and manifest.seed == seed
        if same and len(manifest.identities) == identities:
            print(f"reusing synthetic world in {folder}")
            return manifest
    return generate_world(folder, SynthConfig(identities=identities, seed=seed))


def run_demo(out: Path, *, identities: int, seed: int, checkpoint: Path | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    world = out / f"world-{identities}-s{seed}"
    manifest = ensure_world(world, identities, seed)
    n_test = len(manifest.identities) - len(manifest.train_pids)
    print(f"world: {len(manifest.identities)} identities ({n_test} held out) in {world}")
    baseline = evaluate_world(HistogramEmbedder(), world, progress=True)
    print(report(baseline, title="zero-shot on held-out identities and cameras"))
    summary: dict = {"world": str(world), "baseline": baseline.to_json()}
    if checkpoint is not None and checkpoint.is_file():
        from aioreid.encoder.inference import Encoder
        from aioreid.encoder.zeroshot.encoder_embedder import EncoderEmbedder

        encoder = Encoder.load(checkpoint)
        aio = evaluate_world(
            EncoderEmbedder(encoder, f"AIO {encoder.version}"), world, progress=True
        )
        print(report(aio, title="zero-shot on held-out identities and cameras"))
        summary["aio"] = aio.to_json()
    else:
        print(
            "no trained encoder checkpoint yet: `aioreid train --config cpu-synthetic "
            f"--world {world}` trains one (at most 15 minutes on 2 cores)"
        )
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    print(f"results written to {out / 'demo_results.json'} ({summary['seconds']} s)")
    return summary
