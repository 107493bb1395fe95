"""What the zero-shot suite needs of a model: embed records, alone or combined."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from aioreid.encoder.baselines import histogram
from aioreid.encoder.data.records import Modality, Record


class Embedder(Protocol):
    """A model under evaluation. Vectors are float32 and L2-normalised, one row per input."""

    name: str

    def embed_records(self, records: Sequence[Record]) -> np.ndarray:
        """Embed each record as its own modality (text records use ``record.text``)."""
        ...

    def embed_combined(self, queries: Sequence[Sequence[Record]]) -> np.ndarray:
        """Embed each query made of several parts (e.g. a caption and a sketch) as one vector."""
        ...


def load_image(path: Path | None) -> np.ndarray:
    """Read an image file as BGR uint8, with an error that names the file."""
    if path is None:
        raise ValueError("record has no image path")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}: missing, corrupt or not an image")
    return image


class HistogramEmbedder:
    """The non-learned floor: colour, intensity and edge histograms (see baselines.histogram)."""

    name = "histogram baseline"

    def _one(self, record: Record) -> np.ndarray:
        if record.modality is Modality.TEXT:
            return histogram.embed_text(record.text or "")
        return histogram.embed_image(load_image(record.path), record.modality)

    def embed_records(self, records: Sequence[Record]) -> np.ndarray:
        if not records:
            return np.zeros((0, histogram.DIM), dtype=np.float32)
        return np.stack([self._one(r) for r in records]).astype(np.float32)

    def embed_combined(self, queries: Sequence[Sequence[Record]]) -> np.ndarray:
        if not queries:
            return np.zeros((0, histogram.DIM), dtype=np.float32)
        return np.stack([histogram.combine([self._one(r) for r in parts]) for parts in queries])
