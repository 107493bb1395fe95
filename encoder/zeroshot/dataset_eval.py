"""Zero-shot evaluation on a real (public) dataset's layout: ``aioreid evaluate --dataset``.

Each dataset gives the rows its data supports (e.g. SYSU-MM01 IR→RGB, PKU-Sketch sketch→RGB);
the synthetic world's full table is :func:`~aioreid.encoder.zeroshot.suite.evaluate_world`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.eval.metrics import average_results, rank_metrics
from aioreid.encoder.eval.protocols import evaluate_sysu
from aioreid.encoder.zeroshot.embedder import Embedder
from aioreid.encoder.zeroshot.suite import CachedEmbedder, SuiteResults, evaluate_world


def _labels(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([r.pid for r in records], dtype=np.int64),
        np.array([r.camid for r in records], dtype=np.int64),
    )


def _rows_single_modality(
    name: str,
    emb: CachedEmbedder,
    root: Path,
    res: SuiteResults,
    setting: str,
    same_camera_rule: bool,
) -> None:
    ds = load_dataset(name, root)
    qf, gf = emb.records(ds.query, "query"), emb.records(ds.gallery, "gallery")
    (qp, qc), (gp, gc) = _labels(ds.query), _labels(ds.gallery)
    r = rank_metrics(qf, gf, qp, gp, qc, gc, exclude_same_camera=same_camera_rule)
    res.rows[setting] = r.as_dict()
    res.sizes[setting] = {"queries": len(ds.query), "gallery": len(ds.gallery)}


def _sysu(emb: CachedEmbedder, root: Path, res: SuiteResults, trials: int) -> None:
    ds = load_dataset("sysu_mm01", root)
    qf, gf = emb.records(ds.query, "IR"), emb.records(ds.gallery, "RGB")
    (qp, qc), (gp, gc) = _labels(ds.query), _labels(ds.gallery)
    for mode, label in (("all", "IR→RGB (all-search)"), ("indoor", "IR→RGB (indoor-search)")):
        r = evaluate_sysu(qf, qp, qc, gf, gp, gc, mode=mode, trials=trials)
        res.rows[label] = r.mean.as_dict()
        res.sizes[label] = {"queries": len(ds.query), "gallery": len(ds.gallery)}


def _cross_both_ways(
    name: str, emb: CachedEmbedder, root: Path, res: SuiteResults, splits: list[dict]
) -> None:
    """IR→RGB and RGB→IR (RegDB over its splits, LLCM once); no camera filtering."""
    per_dir: dict[str, list] = {"IR→RGB": [], "RGB→IR": []}
    for options in splits:
        ds = load_dataset(name, root, **options)
        qf, gf = emb.records(ds.query, "IR"), emb.records(ds.gallery, "RGB")
        (qp, _), (gp, _) = _labels(ds.query), _labels(ds.gallery)
        per_dir["IR→RGB"].append(rank_metrics(qf, gf, qp, gp, exclude_same_camera=False))
        per_dir["RGB→IR"].append(rank_metrics(gf, qf, gp, qp, exclude_same_camera=False))
        res.sizes["IR→RGB"] = {"queries": len(ds.query), "gallery": len(ds.gallery)}
        res.sizes["RGB→IR"] = {"queries": len(ds.gallery), "gallery": len(ds.query)}
    for key, results in per_dir.items():
        res.rows[key] = average_results(results).as_dict()


def _pku(emb: CachedEmbedder, root: Path, res: SuiteResults, trials: int, num_train: int) -> None:
    """The standard seeded splits; zero-shot, so only each trial's test identities are used."""
    results = []
    for trial in range(trials):
        ds = load_dataset("pku_sketch", root, trial=trial, num_train=num_train)
        qf, gf = emb.records(ds.query, "sketch"), emb.records(ds.gallery, "RGB")
        (qp, _), (gp, _) = _labels(ds.query), _labels(ds.gallery)
        results.append(rank_metrics(qf, gf, qp, gp, exclude_same_camera=False))
        res.sizes["sketch→RGB"] = {"queries": len(ds.query), "gallery": len(ds.gallery)}
    res.rows["sketch→RGB"] = average_results(results).as_dict()


def _text(name: str, emb: CachedEmbedder, root: Path, res: SuiteResults) -> None:
    ds = load_dataset(name, root)
    tf = emb.records([r for r in ds.query if r.modality is Modality.TEXT], "captions")
    gf = emb.records(ds.gallery, "images")
    tp, gp = _labels(ds.query)[0], _labels(ds.gallery)[0]
    res.rows["text→RGB"] = rank_metrics(tf, gf, tp, gp, exclude_same_camera=False).as_dict()
    res.sizes["text→RGB"] = {"queries": len(ds.query), "gallery": len(ds.gallery)}


def evaluate_dataset(
    model: Embedder,
    name: str,
    root: str | Path,
    *,
    trials: int = 10,
    progress: bool = False,
    pku_num_train: int = 150,
) -> SuiteResults:
    """The paper-style rows ``name`` supports (``synthetic`` means a world from `aioreid synth`)."""
    root = Path(root)
    if name in ("synthetic", "world"):
        return evaluate_world(model, root, sysu_trials=trials, progress=progress)
    emb = CachedEmbedder(model, progress)
    res = SuiteResults(model=getattr(model, "name", type(model).__name__))
    runners: dict[str, Callable[[], None]] = {
        "market1501": lambda: _rows_single_modality("market1501", emb, root, res, "RGB→RGB", True),
        "msmt17": lambda: _rows_single_modality("msmt17", emb, root, res, "RGB→RGB", True),
        "sysu_mm01": lambda: _sysu(emb, root, res, trials),
        "regdb": lambda: _cross_both_ways(
            "regdb", emb, root, res, [{"trial": k} for k in range(1, trials + 1)]
        ),
        "llcm": lambda: _cross_both_ways("llcm", emb, root, res, [{}]),
        "pku_sketch": lambda: _pku(emb, root, res, trials, pku_num_train),
        "cuhk_pedes": lambda: _text("cuhk_pedes", emb, root, res),
        "icfg_pedes": lambda: _text("icfg_pedes", emb, root, res),
        "rstpreid": lambda: _text("rstpreid", emb, root, res),
    }
    key = name.lower().replace("-", "_")
    if key not in runners:
        raise ValueError(f"unknown dataset {name!r}; known: synthetic, {', '.join(runners)}")
    runners[key]()
    return res
