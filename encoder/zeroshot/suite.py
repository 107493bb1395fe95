"""Zero-shot settings on a synthetic world, read through the public-layout loaders.

Rows (query → gallery), all on held-out identities; the world's held-out cameras are among
the test cameras, so nothing here was seen in training:

* ``RGB→RGB``: Market-1501 layout, query vs bounding_box_test, same-camera rule.
* ``IR→RGB``: SYSU-MM01 layout, all-search single-shot, 10 seeded trials.
* ``RGB→IR``: SYSU-MM01 test RGB images against all test IR images.
* ``sketch→RGB``, ``text→RGB``, ``text+sketch→RGB``: CUHK-PEDES test images as the gallery;
  sketches from the world manifest, captions from ``reid_raw.json``; a combined query pairs
  each caption with a sketch of the same identity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.data.synth import WorldManifest
from aioreid.encoder.eval.metrics import rank_metrics
from aioreid.encoder.eval.protocols import evaluate_sysu, format_table
from aioreid.encoder.zeroshot.embedder import Embedder

BATCH = 128
SETTINGS = ("RGB→RGB", "IR→RGB", "RGB→IR", "sketch→RGB", "text→RGB", "text+sketch→RGB")


@dataclass
class SuiteResults:
    """One row of metrics (percentages) per setting, plus query/gallery sizes."""

    model: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"model": self.model, "rows": self.rows, "sizes": self.sizes}


class CachedEmbedder:
    """Embeds each distinct record once, in batches, with a progress bar."""

    def __init__(self, model: Embedder, progress: bool) -> None:
        self.model = model
        self.progress = progress
        self.cache: dict[tuple, np.ndarray] = {}

    @staticmethod
    def key(r: Record) -> tuple:
        return (str(r.path), r.modality.value, r.text)

    def records(self, records: Sequence[Record], label: str) -> np.ndarray:
        todo = list({self.key(r): r for r in records if self.key(r) not in self.cache}.values())
        bar = tqdm(
            total=len(todo),
            desc=f"embed {label}",
            unit="img",
            disable=not self.progress,
            leave=False,
        )
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            for r, v in zip(chunk, self.model.embed_records(chunk), strict=True):
                self.cache[self.key(r)] = v
            bar.update(len(chunk))
        bar.close()
        return np.stack([self.cache[self.key(r)] for r in records])

    def combined(self, queries: Sequence[Sequence[Record]], label: str) -> np.ndarray:
        out = []
        for start in tqdm(
            range(0, len(queries), BATCH),
            desc=f"embed {label}",
            disable=not self.progress,
            leave=False,
        ):
            out.append(self.model.embed_combined(queries[start : start + BATCH]))
        return np.concatenate(out)


def _arrays(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([r.pid for r in records], dtype=np.int64),
        np.array([r.camid for r in records], dtype=np.int64),
    )


def _sketch_records(world: Path, manifest: WorldManifest) -> list[Record]:
    out = []
    for ident in manifest.identities:
        if ident["split"] != "test":
            continue
        for rel in ident["sketches"]:
            out.append(Record(world / rel, int(ident["pid"]), 0, Modality.SKETCH))
    return out


def _pair_text_sketch(texts: Sequence[Record], sketches: Sequence[Record]) -> list[list[Record]]:
    """Each caption with one sketch of the same identity (cycling when there are several)."""
    by_pid: dict[int, list[Record]] = {}
    for s in sketches:
        by_pid.setdefault(s.pid, []).append(s)
    pairs: list[list[Record]] = []
    seen: dict[int, int] = {}
    for t in texts:
        options = by_pid.get(t.pid)
        if not options:
            continue
        k = seen.get(t.pid, 0)
        seen[t.pid] = k + 1
        pairs.append([t, options[k % len(options)]])
    return pairs


def evaluate_world(
    model: Embedder,
    world: str | Path,
    *,
    settings: Sequence[str] = SETTINGS,
    sysu_trials: int = 10,
    progress: bool = False,
) -> SuiteResults:
    """Evaluate ``model`` on the held-out part of a synthetic world written by ``aioreid synth``."""
    world = Path(world)
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(SETTINGS)}")
    manifest = WorldManifest.load(world)
    emb = CachedEmbedder(model, progress)
    results = SuiteResults(model=getattr(model, "name", type(model).__name__))

    def add(name: str, n_query: int, n_gallery: int, metrics: dict[str, float]) -> None:
        results.rows[name] = metrics
        results.sizes[name] = {"queries": n_query, "gallery": n_gallery}

    jobs: dict[str, Callable[[], None]] = {}

    def rgb_rgb() -> None:
        ds = load_dataset("market1501", world)
        qf, gf = emb.records(ds.query, "market query"), emb.records(ds.gallery, "market gallery")
        (qp, qc), (gp, gc) = _arrays(ds.query), _arrays(ds.gallery)
        res = rank_metrics(qf, gf, qp, gp, qc, gc, exclude_same_camera=True)
        add("RGB→RGB", len(ds.query), len(ds.gallery), res.as_dict())

    def sysu_rows() -> None:
        ds = load_dataset("sysu_mm01", world)
        qf, gf = emb.records(ds.query, "sysu IR"), emb.records(ds.gallery, "sysu RGB")
        (qp, qc), (gp, gc) = _arrays(ds.query), _arrays(ds.gallery)
        if "IR→RGB" in settings:
            res = evaluate_sysu(qf, qp, qc, gf, gp, gc, mode="all", trials=sysu_trials)
            add("IR→RGB", len(ds.query), len(ds.gallery), res.mean.as_dict())
        if "RGB→IR" in settings:
            res = rank_metrics(gf, qf, gp, qp, gc, qc, exclude_same_camera=False)
            add("RGB→IR", len(ds.gallery), len(ds.query), res.as_dict())

    def cuhk_rows() -> None:
        ds = load_dataset("cuhk_pedes", world)
        gf = emb.records(ds.gallery, "cuhk gallery")
        gp, _ = _arrays(ds.gallery)
        sketches = _sketch_records(world, manifest)
        if "text→RGB" in settings:
            tf = emb.records(ds.query, "captions")
            res = rank_metrics(tf, gf, _arrays(ds.query)[0], gp, exclude_same_camera=False)
            add("text→RGB", len(ds.query), len(ds.gallery), res.as_dict())
        if "sketch→RGB" in settings:
            sf = emb.records(sketches, "sketches")
            res = rank_metrics(sf, gf, _arrays(sketches)[0], gp, exclude_same_camera=False)
            add("sketch→RGB", len(sketches), len(ds.gallery), res.as_dict())
        if "text+sketch→RGB" in settings:
            pairs = _pair_text_sketch(ds.query, sketches)
            cf = emb.combined(pairs, "text+sketch")
            pids = np.array([p[0].pid for p in pairs], dtype=np.int64)
            res = rank_metrics(cf, gf, pids, gp, exclude_same_camera=False)
            add("text+sketch→RGB", len(pairs), len(ds.gallery), res.as_dict())

    if "RGB→RGB" in settings:
        jobs["market"] = rgb_rgb
    if {"IR→RGB", "RGB→IR"} & set(settings):
        jobs["sysu"] = sysu_rows
    if {"sketch→RGB", "text→RGB", "text+sketch→RGB"} & set(settings):
        jobs["cuhk"] = cuhk_rows
    for job in jobs.values():
        job()
    results.rows = {k: results.rows[k] for k in SETTINGS if k in results.rows}
    return results


def report(results: SuiteResults | Sequence[SuiteResults], title: str = "") -> str:
    """A fixed-width table; with several results, one block per model."""
    many = [results] if isinstance(results, SuiteResults) else list(results)
    blocks = []
    for r in many:
        head = f"{title or 'zero-shot'} — {r.model}"
        blocks.append(head + "\n" + format_table(r.rows))
    return "\n\n".join(blocks)


def save(results: SuiteResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results.to_json(), indent=2, ensure_ascii=False))
