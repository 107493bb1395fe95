"""Dataset evaluation protocols (docs/aio-paper.md, "Evaluation protocols") and reporting.

All functions take features as ``(N, D)`` arrays and labels as 1-D integer arrays;
:func:`labels_from_records` turns a list of :class:`~aioreid.encoder.data.records.Record`
into ``(pids, camids)``. Metrics come from :func:`aioreid.encoder.eval.metrics.rank_metrics`
(cosine similarity by default, ties broken by gallery index).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from aioreid.encoder.data.records import Record
from aioreid.encoder.eval.metrics import (
    CmcMode,
    Metric,
    RankResult,
    _as_features,
    _as_labels,
    average_results,
    rank_metrics,
)

SYSU_QUERY_CAMS = (3, 6)
SYSU_GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
#: SYSU-MM01 rule: queries from camera 3 ignore gallery images from camera 2.
SYSU_IGNORE_PAIRS = ((3, 2),)
DEFAULT_COLUMNS = ("R1", "R5", "R10", "mAP", "mINP")


def labels_from_records(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """``(pids, camids)`` int64 arrays of a record list, in order."""
    pids = np.fromiter((r.pid for r in records), dtype=np.int64, count=len(records))
    cams = np.fromiter((r.camid for r in records), dtype=np.int64, count=len(records))
    return pids, cams


# --------------------------------------------------------------------------- Market-1501


def evaluate_market(
    q_feats: Any,
    q_pids: Any,
    q_camids: Any,
    g_feats: Any,
    g_pids: Any,
    g_camids: Any,
    *,
    max_rank: int = 50,
    metric: Metric = "cosine",
    chunk_size: int | None = None,
) -> RankResult:
    """Market-1501 protocol: junk (-1) dropped, distractors (0) kept, same pid+camera excluded."""
    return rank_metrics(
        q_feats,
        g_feats,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=max_rank,
        exclude_same_camera=True,
        metric=metric,
        chunk_size=chunk_size,
    )


# --------------------------------------------------------------------------- SYSU-MM01


@dataclass
class SysuResult:
    """SYSU-MM01 result: ``mean`` over trials (counts summed) and the per-trial results."""

    mean: RankResult
    trials: list[RankResult]
    mode: str
    seed: int
    num_shots: int
    num_queries: int
    gallery_sizes: list[int] = field(default_factory=list)

    def as_dict(self, include_cmc: bool = False, include_trials: bool = False) -> dict[str, Any]:
        """Mean metrics in percent (same keys as :meth:`RankResult.as_dict`) plus settings."""
        out = self.mean.as_dict(include_cmc=include_cmc)
        out.update(
            mode=self.mode,
            trials=len(self.trials),
            seed=self.seed,
            num_shots=self.num_shots,
            num_queries=self.num_queries,
        )
        if include_trials:
            out["per_trial"] = [t.as_dict(include_cmc=include_cmc) for t in self.trials]
        return out


def sample_gallery(
    pids: np.ndarray, camids: np.ndarray, rng: np.random.Generator, num_shots: int = 1
) -> np.ndarray:
    """Indices (ascending) of ``num_shots`` random images per (identity, camera) group."""
    n = pids.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, group = np.unique(np.stack([pids, camids], axis=1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.lexsort((rng.random(n), group))  # by group, random within a group
    g_sorted = group[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    within = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.sort(order[within < num_shots])


def evaluate_sysu(
    q_feats: Any,
    q_pids: Any,
    q_camids: Any,
    g_feats: Any,
    g_pids: Any,
    g_camids: Any,
    *,
    mode: Literal["all", "indoor"] = "all",
    trials: int = 10,
    seed: int = 0,
    num_shots: int = 1,
    max_rank: int = 50,
    metric: Metric = "cosine",
    cmc_mode: CmcMode = "identity",
    chunk_size: int | None = None,
) -> SysuResult:
    """SYSU-MM01 IR→RGB protocol, averaged over ``trials`` seeded single-shot galleries.

    Queries: the given items from cameras 3 and 6 (others are dropped). Gallery: items from
    cameras 1, 2, 4, 5 (``mode="all"``) or 1, 2 (``"indoor"``); per trial, ``num_shots`` (1 =
    single-shot) random images per (identity, camera), drawn with
    ``np.random.default_rng((seed, trial))`` (trial ``t`` is the same whatever ``trials`` is).
    Camera-3 queries ignore camera-2 gallery images; no other camera filtering.
    ``cmc_mode="identity"`` (default) computes CMC over distinct identities, as the released
    SYSU-MM01 evaluation code (and AGW, etc.) do; mAP/mINP are image-based.
    """
    if mode not in SYSU_GALLERY_CAMS:
        raise ValueError(f"mode must be 'all' or 'indoor', got {mode!r}")
    if trials < 1 or num_shots < 1:
        raise ValueError("trials and num_shots must be >= 1")
    qf = _as_features(q_feats, "q_feats")
    gf = _as_features(g_feats, "g_feats")
    qp = _as_labels(q_pids, "q_pids", qf.shape[0])
    qc = _as_labels(q_camids, "q_camids", qf.shape[0])
    gp = _as_labels(g_pids, "g_pids", gf.shape[0])
    gc = _as_labels(g_camids, "g_camids", gf.shape[0])
    qsel = np.isin(qc, SYSU_QUERY_CAMS)
    if not qsel.any():
        raise ValueError("no SYSU-MM01 query: no item from cameras 3 or 6")
    gsel = np.flatnonzero(np.isin(gc, SYSU_GALLERY_CAMS[mode]))
    if gsel.size == 0:
        raise ValueError(f"empty SYSU-MM01 gallery: no item from cameras {SYSU_GALLERY_CAMS[mode]}")
    qf, qp, qc = qf[qsel], qp[qsel], qc[qsel]
    results: list[RankResult] = []
    sizes: list[int] = []
    for trial in range(trials):
        rng = np.random.default_rng((seed, trial))
        pick = gsel[sample_gallery(gp[gsel], gc[gsel], rng, num_shots)]
        sizes.append(int(pick.size))
        results.append(
            rank_metrics(
                qf,
                gf[pick],
                qp,
                gp[pick],
                qc,
                gc[pick],
                max_rank=max_rank,
                exclude_same_camera=False,
                metric=metric,
                chunk_size=chunk_size,
                cmc_mode=cmc_mode,
                ignore_camera_pairs=SYSU_IGNORE_PAIRS,
            )
        )
    return SysuResult(
        mean=average_results(results),
        trials=results,
        mode=mode,
        seed=seed,
        num_shots=num_shots,
        num_queries=int(qf.shape[0]),
        gallery_sizes=sizes,
    )


# --------------------------------------------------------------------------- RegDB


class RegdbSplit(NamedTuple):
    """Features and pids of one RegDB test split (``idx/test_visible_k`` / ``test_thermal_k``)."""

    visible_feats: Any
    visible_pids: Any
    thermal_feats: Any
    thermal_pids: Any


@dataclass
class RegdbResult:
    """Both RegDB directions; for :func:`evaluate_regdb_splits` the means and each split."""

    visible_to_thermal: RankResult
    thermal_to_visible: RankResult
    per_split: list[RegdbResult] = field(default_factory=list)

    def as_dict(self, include_cmc: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "visible_to_thermal": self.visible_to_thermal.as_dict(include_cmc=include_cmc),
            "thermal_to_visible": self.thermal_to_visible.as_dict(include_cmc=include_cmc),
        }
        if self.per_split:
            out["splits"] = len(self.per_split)
        return out


def evaluate_regdb(
    visible_feats: Any,
    visible_pids: Any,
    thermal_feats: Any,
    thermal_pids: Any,
    *,
    max_rank: int = 50,
    metric: Metric = "cosine",
    chunk_size: int | None = None,
) -> RegdbResult:
    """One RegDB split, both directions (visible→thermal, thermal→visible), no camera filter."""
    kw: dict[str, Any] = dict(
        max_rank=max_rank, exclude_same_camera=False, metric=metric, chunk_size=chunk_size
    )
    v2t = rank_metrics(visible_feats, thermal_feats, visible_pids, thermal_pids, **kw)
    t2v = rank_metrics(thermal_feats, visible_feats, thermal_pids, visible_pids, **kw)
    return RegdbResult(visible_to_thermal=v2t, thermal_to_visible=t2v)


def evaluate_regdb_splits(
    splits: Iterable[RegdbSplit | tuple[Any, Any, Any, Any]]
    | Callable[[int], RegdbSplit | tuple[Any, Any, Any, Any]],
    *,
    num_splits: int = 10,
    max_rank: int = 50,
    metric: Metric = "cosine",
    chunk_size: int | None = None,
) -> RegdbResult:
    """Average of :func:`evaluate_regdb` over the RegDB splits.

    ``splits`` is an iterable of ``RegdbSplit`` / 4-tuples, or a callable ``k -> split``
    called for ``k = 1 .. num_splits`` (the file numbering of ``test_visible_k.txt``), so
    features can be computed lazily one split at a time.
    """
    if callable(splits):
        if num_splits < 1:
            raise ValueError("num_splits must be >= 1")
        items: Iterable[Any] = (splits(k) for k in range(1, num_splits + 1))
    else:
        items = splits
    per: list[RegdbResult] = []
    for sp in items:
        v_f, v_p, t_f, t_p = sp
        per.append(
            evaluate_regdb(
                v_f, v_p, t_f, t_p, max_rank=max_rank, metric=metric, chunk_size=chunk_size
            )
        )
    if not per:
        raise ValueError("no RegDB split given")
    return RegdbResult(
        visible_to_thermal=average_results([r.visible_to_thermal for r in per]),
        thermal_to_visible=average_results([r.thermal_to_visible for r in per]),
        per_split=per,
    )


# --------------------------------------------------------------------------- text → image


def evaluate_text_to_image(
    text_feats: Any,
    text_pids: Any,
    image_feats: Any,
    image_pids: Any,
    *,
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> RankResult:
    """CUHK-PEDES / ICFG-PEDES / RSTPReid: each caption vs all test images, cosine, no filter."""
    return rank_metrics(
        text_feats,
        image_feats,
        text_pids,
        image_pids,
        max_rank=max_rank,
        exclude_same_camera=False,
        metric="cosine",
        chunk_size=chunk_size,
    )


# --------------------------------------------------------------------------- reporting


def _row_dict(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if hasattr(value, "as_dict"):
        return value.as_dict()
    raise TypeError(f"cannot tabulate {type(value).__name__}; give a RankResult or a dict")


def format_table(
    rows: Mapping[str, Any],
    columns: Sequence[str] = DEFAULT_COLUMNS,
    *,
    name_header: str = "",
) -> str:
    """Fixed-width text table: one line per ``rows`` entry, values in percent, 1 decimal.

    Values are :class:`RankResult` (or anything with ``as_dict()``) or dicts already in
    percent (e.g. ``RankResult.as_dict()``); a missing value prints as ``-``.
    """
    names = [str(n) for n in rows]
    name_w = max([len(name_header), *(len(n) for n in names)])
    col_w = [max(len(c), 6) for c in columns]
    header = name_header.ljust(name_w) + "".join(
        "  " + c.rjust(w) for c, w in zip(columns, col_w, strict=True)
    )
    lines = [header, "-" * len(header)]
    for name, value in zip(names, rows.values(), strict=True):
        d = _row_dict(value)
        cells = []
        for c, w in zip(columns, col_w, strict=True):
            v = d.get(c)
            if v is None:
                text = "-"
            elif isinstance(v, (int, float, np.integer, np.floating)):
                text = f"{float(v):.1f}"
            else:
                text = str(v)
            cells.append("  " + text.rjust(w))
        lines.append(name.ljust(name_w) + "".join(cells))
    return "\n".join(lines)


def _jsonable(value: Any, include_cmc: bool) -> Any:
    if hasattr(value, "as_dict"):
        try:
            value = value.as_dict(include_cmc=include_cmc)
        except TypeError:
            value = value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, include_cmc) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, include_cmc) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def results_to_json(
    results: Any,
    path: str | Path | None = None,
    *,
    include_cmc: bool = True,
    indent: int = 2,
) -> str:
    """JSON text of a result or a ``{name: result}`` mapping (percent); written if ``path``."""
    text = json.dumps(_jsonable(results, include_cmc), indent=indent)
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text + "\n")
    return text
