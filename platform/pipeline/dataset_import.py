"""Bulk import of a dataset folder in any layout the encoder's loaders know.

Every RGB and IR image becomes one sighting (the ``crops`` detector: the files already are
person crops), on camera ``<dataset>-cam<N>``, labelled with its identity as
``<dataset>:<pid>`` (an identity with an ``import`` assignment). Sketches and captions are
query material, not gallery: they are counted and skipped. Distractors (pid 0) and junk
(pid -1) are imported without an identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Modality, Record
from aioreid.platform.pipeline.ingest import IngestOptions, MediaResult, ingest_many
from aioreid.platform.services import Services

SPLITS = ("train", "query", "gallery")


@dataclass
class ImportSummary:
    job_id: int
    imported: int
    failed: int
    skipped_query_material: int
    results: list[MediaResult]


def dataset_items(name: str, records: Iterable[Record]) -> tuple[list[dict], int]:
    """``ingest_file`` keyword dicts for the gallery-able records, and the skipped count."""
    items, skipped, seen = [], 0, set()
    for r in records:
        if r.modality not in (Modality.RGB, Modality.IR) or r.path is None:
            skipped += 1
            continue
        if r.path in seen:
            continue
        seen.add(r.path)
        items.append(
            {
                "path": r.path,
                "camera": f"{name}-cam{r.camid}",
                "modality": r.modality.value,
                "source_label": f"{name}:{r.pid}" if r.pid > 0 else None,
                "attributes": dict(r.attributes) if r.attributes else None,
            }
        )
    return items, skipped


def import_dataset(
    svc: Services,
    root: str | Path,
    name: str,
    *,
    splits: Iterable[str] = SPLITS,
    actor: str = "system",
    progress: bool = True,
    **loader_options: object,
) -> ImportSummary:
    """Load ``name`` from ``root`` and ingest the chosen splits as one job."""
    ds = load_dataset(name, root, **loader_options)
    splits = list(splits)
    for sp in splits:
        if sp not in SPLITS:
            raise ValueError(f"unknown split {sp!r}; choose from {', '.join(SPLITS)}")
    records = [r for sp in splits for r in getattr(ds, sp)]
    items, skipped = dataset_items(ds.name, records)
    job_id, results = ingest_many(
        svc,
        items,
        options=IngestOptions(detector="crops"),
        job_kind="dataset",
        source=f"{ds.name}:{Path(root)}",
        actor=actor,
        progress=progress,
    )
    failed = sum(r.status == "failed" for r in results)
    return ImportSummary(job_id, len(results) - failed, failed, skipped, results)
