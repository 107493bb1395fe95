"""Training records of a synthetic world, read through the same loaders as real data."""

from __future__ import annotations

from pathlib import Path

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.data.synth import WorldManifest


def world_train_records(world: str | Path) -> list[Record]:
    """RGB (Market-1501 train), RGB+IR (SYSU-MM01 train, with its val identities), RGB
    (CUHK-PEDES train) and, from the manifest, the sketches and captions of every training
    identity (CUHK-PEDES keeps some captions in its val split). One pid space."""
    world = Path(world)
    manifest = WorldManifest.load(world)
    train_ids = set(manifest.train_pids)
    records: list[Record] = []
    records += load_dataset("market1501", world).train
    records += load_dataset("sysu_mm01", world).train
    records += [r for r in load_dataset("cuhk_pedes", world).train if r.modality is Modality.RGB]
    for ident in manifest.identities:
        if ident["pid"] in train_ids:
            records += [
                Record(world / rel, int(ident["pid"]), 0, Modality.SKETCH)
                for rel in ident["sketches"]
            ]
            records += [
                Record(None, int(ident["pid"]), -1, Modality.TEXT, text=caption)
                for caption in ident["captions"]
            ]
    leaked = {r.pid for r in records} - train_ids
    if leaked:
        raise ValueError(f"training records include held-out identities {sorted(leaked)[:10]}")
    return records
