"""Ablations in the paper's style: the full model against itself without each head, without
missing-modality synthesis, and with the backbone unfrozen, each trained for the same time
budget on the same synthetic world and evaluated zero-shot on its held-out identities.

    python benchmarks/bench_ablation.py --world var/demo/world-120-s0 --minutes 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from aioreid.encoder.inference import Encoder
from aioreid.encoder.training.config import load_config
from aioreid.encoder.training.trainer import train
from aioreid.encoder.zeroshot import evaluate_world
from aioreid.encoder.zeroshot.encoder_embedder import EncoderEmbedder

DEFAULT_JSON = Path(__file__).parent / "results" / "ablation.json"

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "w/o CC": {"model": {"use_cc": False}},
    "w/o VGMAM": {"model": {"use_vgmam": False}},
    "w/o MFB": {"model": {"use_mfb": False}},
    "w/o attr binding": {"model": {"use_attr": False}},
    "w/o synthesis": {"synthesize_missing": False},
    "backbone unfrozen": {"unfreeze_backbone": True},
}


def run_variant(name: str, base: str, world: Path, minutes: float, out: Path) -> dict[str, Any]:
    cfg = load_config(
        base,
        world=world,
        max_minutes=minutes,
        output_dir=out / name.replace(" ", "_").replace("/", ""),
    )
    override = VARIANTS[name]
    data = cfg.model_dump()
    data["model"] = {**data["model"], **override.get("model", {})}
    data.update({k: v for k, v in override.items() if k != "model"})
    cfg = type(cfg).model_validate(data)
    t0 = time.perf_counter()
    summary = train(cfg, resume=False, progress=True)
    encoder = Encoder.load(summary["final"])
    res = evaluate_world(EncoderEmbedder(encoder, name=name), world, progress=False)
    return {
        "variant": name,
        "train": summary,
        "rows": res.rows,
        "sizes": res.sizes,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--config", default="cpu-synthetic")
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget per variant")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("var/ablation"))
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    results = []
    for name in args.variants:
        results.append(run_variant(name, args.config, args.world, args.minutes, args.out))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(ablation_table(results))


def ablation_table(results: list[dict[str, Any]]) -> str:
    """The paper's ablation shape: one row per variant (with its training steps), one
    ``R1 / mAP`` column per setting, as a markdown table."""
    settings = list(results[0]["rows"])
    head = "| variant | steps | " + " | ".join(f"{s} R1 / mAP" for s in settings) + " |"
    lines = [head, "|" + "---|" * (len(settings) + 2)]
    for r in results:
        cells = [f"{r['rows'][s]['R1']:.1f} / {r['rows'][s]['mAP']:.1f}" for s in settings]
        lines.append(f"| {r['variant']} | {r['train']['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
