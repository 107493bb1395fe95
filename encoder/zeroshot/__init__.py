"""Zero-shot evaluation suite: the paper-style table of query settings for any embedder."""

from aioreid.encoder.zeroshot.embedder import Embedder, HistogramEmbedder, load_image
from aioreid.encoder.zeroshot.suite import SuiteResults, evaluate_world, report

__all__ = [
    "Embedder",
    "HistogramEmbedder",
    "SuiteResults",
    "evaluate_world",
    "load_image",
    "report",
]
