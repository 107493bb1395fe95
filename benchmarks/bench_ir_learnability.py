"""How learnable is IR↔RGB on a synthetic world, for any model, in a CPU budget?

The AIO encoder's IR rows stay near chance on 2 CPU cores. This benchmark separates "the world
has no cross-modal signal" from "the signal takes more training than we have" with three rows
on the world's held-out people and unseen cameras (SYSU-MM01 all-search protocol):

* **attribute oracle** — people ranked by how many of the shape attributes IR shows (gender,
  build, height, hair style, garment types, sleeves, shoes, bag, hat, glasses) they share with
  the query, read from the world manifest: what a model that had learned them would reach;
* **histogram baseline** — the non-learned floor the issue compares against;
* **plain CNN** — no AIO parts: one shared-weight 8-layer CNN for RGB and IR (half the RGB
  views grey), trained on identity (label-smoothed CE + batch-hard triplet) *and* on the
  ground-truth attributes above, evaluated after each of ``--evals`` minutes.

The CNN gets supervision the AIO model never sees (true attributes), so its IR rows bound
what a few CPU minutes can buy. Ratios are to the histogram baseline in the same run.

    python benchmarks/bench_ir_learnability.py --world var/demo/world-120-s0 --evals 10,20,30
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.data.synth import WorldManifest
from aioreid.encoder.data.transforms import eval_transform, load_image
from aioreid.encoder.eval.protocols import evaluate_sysu
from aioreid.encoder.model.losses import batch_hard_triplet_loss, label_smoothing_cross_entropy
from aioreid.encoder.training.transforms import train_transform
from aioreid.encoder.training.world_records import world_train_records
from aioreid.encoder.zeroshot import evaluate_world
from aioreid.encoder.zeroshot.embedder import HistogramEmbedder

DEFAULT_JSON = Path(__file__).parent / "results" / "ir_learnability.json"
#: Attributes an IR crop shows (colours never reach IR; materials are not visible in RGB).
IR_VISIBLE = (
    "gender",
    "build",
    "height",
    "hair_style",
    "upper_type",
    "sleeves",
    "lower_type",
    "shoes_type",
    "bag",
    "hat",
    "glasses",
)
SIZE = (128, 64)
ROWS = ("IR→RGB", "RGB→IR")


def _ir_to_rgb(
    qf: np.ndarray, gf: np.ndarray, query: list[Record], gallery: list[Record]
) -> dict[str, dict[str, float]]:
    qp, qc = np.array([r.pid for r in query]), np.array([r.camid for r in query])
    gp, gc = np.array([r.pid for r in gallery]), np.array([r.camid for r in gallery])
    return {"IR→RGB": evaluate_sysu(qf, qp, qc, gf, gp, gc, mode="all", trials=3).mean.as_dict()}


def _attributes(world: Path) -> dict[int, dict[str, str]]:
    return {int(i["pid"]): i["attributes"] for i in WorldManifest.load(world).identities}


def attribute_codes(
    attrs: Mapping[int, Mapping[str, str]], pids: Iterable[int]
) -> tuple[dict[int, list[int]], list[int]]:
    """Class index of each IR-visible attribute for each of ``pids`` (values seen among
    ``pids`` only), and the number of classes of each attribute."""
    pids = list(pids)
    values = {k: sorted({attrs[p][k] for p in pids}) for k in IR_VISIBLE}
    codes = {p: [values[k].index(attrs[p][k]) for k in IR_VISIBLE] for p in pids}
    return codes, [len(values[k]) for k in IR_VISIBLE]


def attribute_oracle(world: Path) -> dict[str, dict[str, float]]:
    """IR→RGB when each image is described by its person's true IR-visible attributes."""
    attrs = _attributes(world)
    codes, sizes = attribute_codes(attrs, attrs)
    offsets = np.cumsum([0, *sizes[:-1]])
    rng = np.random.default_rng(0)

    def embed(records: list[Record]) -> np.ndarray:
        out = np.zeros((len(records), sum(sizes)), dtype=np.float32)
        for row, r in enumerate(records):
            out[row, offsets + codes[r.pid]] = 1.0
        out += rng.normal(0.0, 1e-3, out.shape).astype(np.float32)  # break ties at random
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    ds = load_dataset("sysu_mm01", world)
    return _ir_to_rgb(embed(ds.query), embed(ds.gallery), ds.query, ds.gallery)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class PlainCNN(nn.Module):
    """Shared-weight CNN -> GAP -> BN-neck, with an identity and one head per attribute."""

    def __init__(self, num_ids: int, attr_sizes: Sequence[int]) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, 32), _block(32, 64), _block(64, 128), _block(128, 256)
        )
        self.neck = nn.BatchNorm1d(256)
        self.ids = nn.Linear(256, num_ids, bias=False)
        self.attrs = nn.ModuleList(nn.Linear(256, n) for n in attr_sizes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pre = self.features(x).mean((2, 3))
        return pre, self.neck(pre)


class CNNTrainer:
    """Trains :class:`PlainCNN` on a world's RGB and IR training images, P ids x K per modality."""

    def __init__(self, world: Path, *, gray_p: float, attr_weight: float, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.rng = random.Random(seed)
        records = [
            r for r in world_train_records(world) if r.modality in (Modality.RGB, Modality.IR)
        ]
        self.pids = sorted({r.pid for r in records})
        self.label = {p: i for i, p in enumerate(self.pids)}
        self.codes, attr_sizes = attribute_codes(_attributes(world), self.pids)
        self.images = {r.path: load_image(r.path) for r in records}
        self.pool: dict[tuple[int, Modality], list[Record]] = {}
        for r in records:
            self.pool.setdefault((r.pid, r.modality), []).append(r)
        self.transforms = {
            Modality.RGB: train_transform(SIZE, Modality.RGB, gray_p=gray_p),
            Modality.IR: train_transform(SIZE, Modality.IR),
        }
        self.attr_weight = attr_weight
        self.net = PlainCNN(len(self.pids), attr_sizes)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-3, weight_decay=5e-4)
        self.steps = 0

    def _batch(self, p: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        xs, ids, attrs = [], [], []
        chosen = self.rng.sample(self.pids, min(p, len(self.pids)))
        for modality in (Modality.RGB, Modality.IR):
            for pid in chosen:
                pool = self.pool.get((pid, modality)) or self.pool[(pid, Modality.RGB)]
                for r in self.rng.choices(pool, k=k):
                    xs.append(self.transforms[modality](self.images[r.path]))
                    ids.append(self.label[pid])
                    attrs.append(self.codes[pid])
        return torch.stack(xs), torch.tensor(ids), torch.tensor(attrs)

    def step(self, p: int = 16, k: int = 2) -> float:
        self.net.train()
        x, ids, attrs = self._batch(p, k)
        pre, bn = self.net(x)
        loss = label_smoothing_cross_entropy(self.net.ids(bn), ids, 0.1)
        loss = loss + batch_hard_triplet_loss(pre, ids, 0.3)
        if self.attr_weight:
            per_attr = [F.cross_entropy(h(bn), attrs[:, j]) for j, h in enumerate(self.net.attrs)]
            loss = loss + self.attr_weight * torch.stack(per_attr).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.steps += 1
        return float(loss.detach())

    # the zero-shot suite's Embedder protocol
    @property
    def name(self) -> str:
        return f"plain CNN, {self.steps} steps"

    def embed_records(self, records: Sequence[Record]) -> np.ndarray:
        self.net.eval()
        out = [np.zeros((0, 256), dtype=np.float32)]
        with torch.inference_mode():
            for i in range(0, len(records), 128):
                chunk = records[i : i + 128]
                x = torch.stack(
                    [eval_transform(SIZE, r.modality)(load_image(r.path)) for r in chunk]
                )
                out.append(F.normalize(self.net(x)[1], dim=1).numpy().astype(np.float32))
        return np.concatenate(out)

    def embed_combined(self, queries: Sequence[Sequence[Record]]) -> np.ndarray:
        raise NotImplementedError("the plain CNN reads single images only")


def _zero_shot(model: Any, world: Path) -> dict[str, dict[str, float]]:
    res = evaluate_world(model, world, settings=("RGB→RGB", *ROWS), sysu_trials=3)
    return res.rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument(
        "--evals",
        default="10",
        help="minutes of CNN training (evaluation excluded) after which to evaluate",
    )
    ap.add_argument(
        "--max-steps", type=int, default=0, help="stop each leg after N steps (0: time)"
    )
    ap.add_argument("--gray-p", type=float, default=0.5)
    ap.add_argument("--attr-weight", type=float, default=1.0)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    evals = sorted(float(m) for m in args.evals.split(","))

    results: dict[str, Any] = {"world": str(args.world), "rows": {}}
    results["rows"]["attribute oracle"] = attribute_oracle(args.world)
    results["rows"]["histogram baseline"] = _zero_shot(HistogramEmbedder(), args.world)
    trainer = CNNTrainer(args.world, gray_p=args.gray_p, attr_weight=args.attr_weight)
    trained_s = 0.0  # training time only: evaluation does not eat into the legs
    for minutes in evals:
        leg_start = trainer.steps
        while trained_s < minutes * 60:
            if args.max_steps and trainer.steps - leg_start >= args.max_steps:
                break
            t0 = time.perf_counter()
            trainer.step()
            trained_s += time.perf_counter() - t0
        label = f"plain CNN, {minutes:g} min ({trainer.steps} steps)"
        results["rows"][label] = _zero_shot(trainer, args.world)
        print(f"{label}: evaluated", flush=True)

    base = results["rows"]["histogram baseline"]
    print(f"\n{'model':<36}" + "".join(f"{r + ' R1/mAP':>18}" for r in ("RGB→RGB", *ROWS)))
    for name, rows in results["rows"].items():
        cells = []
        for r in ("RGB→RGB", *ROWS):
            m = rows.get(r)
            cells.append(f"{m['R1']:6.1f} / {m['mAP']:5.1f}" if m else "-")
        print(f"{name:<36}" + "".join(f"{c:>18}" for c in cells))
    for name, rows in results["rows"].items():
        if name.startswith("plain CNN") and "IR→RGB" in rows:
            ratio = rows["IR→RGB"]["mAP"] / max(base["IR→RGB"]["mAP"], 1e-9)
            results.setdefault("ir_rgb_map_ratio_to_baseline", {})[name] = round(ratio, 3)
            print(f"{name}: IR→RGB mAP {ratio:.2f}x the histogram baseline")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
