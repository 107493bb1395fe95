"""Evaluation: ranking metrics (CMC / mAP / mINP), dataset protocols, k-reciprocal re-ranking.

``torch`` is only imported when features are scored (:func:`rank_metrics`).
"""

from aioreid.encoder.eval.metrics import (
    NoValidQueryError,
    RankResult,
    average_results,
    rank_metrics,
    rank_metrics_from_distmat,
    rank_metrics_from_scores,
)
from aioreid.encoder.eval.protocols import (
    RegdbResult,
    RegdbSplit,
    SysuResult,
    evaluate_market,
    evaluate_regdb,
    evaluate_regdb_splits,
    evaluate_sysu,
    evaluate_text_to_image,
    format_table,
    labels_from_records,
    results_to_json,
    sample_gallery,
)
from aioreid.encoder.eval.rerank import k_reciprocal_rerank, rerank_features

__all__ = [
    "NoValidQueryError",
    "RankResult",
    "RegdbResult",
    "RegdbSplit",
    "SysuResult",
    "average_results",
    "evaluate_market",
    "evaluate_regdb",
    "evaluate_regdb_splits",
    "evaluate_sysu",
    "evaluate_text_to_image",
    "format_table",
    "k_reciprocal_rerank",
    "labels_from_records",
    "rank_metrics",
    "rank_metrics_from_distmat",
    "rank_metrics_from_scores",
    "rerank_features",
    "results_to_json",
    "sample_gallery",
]
