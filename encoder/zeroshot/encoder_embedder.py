"""Adapter: the trained AIO :class:`~aioreid.encoder.inference.Encoder` as a suite Embedder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.inference import Encoder, PartInput


def _part(record: Record) -> PartInput:
    if record.modality is Modality.TEXT:
        return record.text or ""
    if record.path is None:
        raise ValueError(f"{record.modality.value} record of pid {record.pid} has no image path")
    return record.path


class EncoderEmbedder:
    """Embeds records with an AIO encoder; combined queries become one token sequence."""

    def __init__(self, encoder: Encoder, name: str = "AIO") -> None:
        self.encoder = encoder
        self.name = name

    def embed_records(self, records: Sequence[Record]) -> np.ndarray:
        out = np.zeros((len(records), self.encoder.dim), dtype=np.float32)
        for modality in Modality:
            rows = [i for i, r in enumerate(records) if r.modality is modality]
            if rows:
                out[rows] = self.encoder.embed([_part(records[i]) for i in rows], modality)
        return out

    def embed_combined(self, queries: Sequence[Sequence[Record]]) -> np.ndarray:
        out = np.zeros((len(queries), self.encoder.dim), dtype=np.float32)
        groups: dict[tuple[Modality, ...], list[int]] = {}
        for i, parts in enumerate(queries):
            key = tuple(sorted({p.modality for p in parts}, key=lambda m: m.value))
            if len(key) != len(parts):
                raise ValueError("a combined query has one part per modality")
            groups.setdefault(key, []).append(i)
        for rows in groups.values():
            batch = [{p.modality: _part(p) for p in queries[i]} for i in rows]
            out[rows] = self.encoder.embed_query(batch)
        return out
