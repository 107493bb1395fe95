"""The multimodal training set: every RGB image with an IR view, a sketch view and a caption of
the same identity — real when the data has them, synthesised from the RGB image otherwise.

Progressive training (the digest, docs/aio-paper.md): stage 1 uses RGB+text with
*synthesised* IR and sketch (``use_real_ir=False, use_real_sketch=False``); stage 2 adds the
real paired IR and sketch images (both ``True``). :data:`STAGES` and
:meth:`MultimodalTrainSet.for_stage` spell this out.

Randomness: each item draws from generators seeded by ``(seed, epoch, index, repeat, stream)``
(:meth:`MultimodalTrainSet.item_rng`), so an epoch is reproducible whatever the number of
DataLoader workers; call :meth:`MultimodalTrainSet.set_epoch` each epoch. ``repeat``
distinguishes copies of one index inside a batch (:class:`~aioreid.encoder.training.sampler.
PKSampler` with ``tag_repeats=True`` yields ``(index, repeat)`` pairs).
"""

from __future__ import annotations

import operator
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.data.transforms import (
    DEFAULT_SIZE,
    check_size,
    load_image,
    resize,
    to_three_channels,
)
from aioreid.encoder.training.missing_modality import channel_augment, line_art
from aioreid.encoder.training.transforms import TrainTransform

__all__ = ["BATCH_KEYS", "STAGES", "MultimodalTrainSet", "collate", "identity_map"]

#: Keys of a collated batch (see :func:`collate`).
BATCH_KEYS = (
    "rgb",
    "ir",
    "sketch",
    "text",
    "attr_text",
    "pids",
    "has_ir",
    "has_sketch",
    "has_text",
)

#: Progressive-training stages → the dataset flags implementing them.
STAGES: dict[int, dict[str, bool]] = {
    1: {"use_real_ir": False, "use_real_sketch": False},
    2: {"use_real_ir": True, "use_real_sketch": True},
}

_STREAMS = {"rgb": 0, "ir": 1, "sketch": 2, "text": 3, "rgb_aug": 4, "ir_aug": 5, "sketch_aug": 6}

RecordSource = Sequence[Record] | Mapping[str, Sequence[Record]]


def _flatten(records: RecordSource) -> list[tuple[Hashable, Record]]:
    """(identity key, record) pairs. A flat list shares one pid space (as in the synthetic
    world, where one person appears in every layout); a mapping ``{source: records}`` keeps
    each source's pids apart (keys ``(source, pid)``), as real datasets need."""
    if isinstance(records, Mapping):
        out: list[tuple[Hashable, Record]] = []
        for source, recs in records.items():
            out.extend(((str(source), r.pid), r) for r in recs)
        return out
    return [(r.pid, r) for r in records]


def _sort_key(key: Hashable) -> tuple:
    return key if isinstance(key, tuple) else ("", key)


def _identity_map(rgb: Sequence[tuple[Hashable, Record]]) -> dict[Hashable, int]:
    return {k: i for i, k in enumerate(sorted({k for k, _ in rgb}, key=_sort_key))}


def identity_map(records: RecordSource) -> dict[Hashable, int]:
    """Identity key -> contiguous label over the identities with an RGB image (pid >= 0), as
    :meth:`MultimodalTrainSet.from_records` numbers them."""
    return _identity_map(
        [
            (k, r)
            for k, r in _flatten(records)
            if r.pid >= 0 and r.modality is Modality.RGB and r.path is not None
        ]
    )


class MultimodalTrainSet(Dataset):
    """Items are the RGB images (pid >= 0) of the given records; see :meth:`__getitem__`.

    Build it with :meth:`from_records`. ``pid_map`` maps identity keys (the pid, or
    ``(source, pid)`` for a mapping input) to contiguous labels ``0..num_classes-1``; only
    identities with at least one RGB image get a label.
    """

    def __init__(
        self,
        rgb: Sequence[Record],
        keys: Sequence[Hashable],
        pid_map: Mapping[Hashable, int],
        ir: Mapping[int, Sequence[Path]],
        sketch: Mapping[int, Sequence[Path]],
        captions: Mapping[int, Sequence[str]],
        image_captions: Mapping[str, Sequence[str]],
        *,
        size: tuple[int, int] = DEFAULT_SIZE,
        use_real_ir: bool = True,
        use_real_sketch: bool = True,
        synthesize_missing: bool = True,
        prefer_own_caption: bool = True,
        line_art_method: str = "xdog",
        sketch_jitter: bool = True,
        ir_options: Mapping[str, float] | None = None,
        transform_options: Mapping[str, float] | None = None,
        cache_images: bool = False,
        seed: int = 0,
    ) -> None:
        if len(rgb) != len(keys):
            raise ValueError("rgb and keys must have the same length")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.records = list(rgb)
        self.pid_map = dict(pid_map)
        self.labels = [self.pid_map[k] for k in keys]
        self.ir = {k: list(v) for k, v in ir.items() if v}
        self.sketch = {k: list(v) for k, v in sketch.items() if v}
        self.captions = {k: list(v) for k, v in captions.items() if v}
        self.image_captions = {k: list(v) for k, v in image_captions.items() if v}
        self.size = check_size(size)
        self.use_real_ir = use_real_ir
        self.use_real_sketch = use_real_sketch
        self.synthesize_missing = synthesize_missing
        self.prefer_own_caption = prefer_own_caption
        self.line_art_method = line_art_method
        self.sketch_jitter = sketch_jitter
        self.ir_options = dict(ir_options or {})
        self.seed = int(seed)
        self.epoch = 0
        self.cache_images = cache_images
        self._cache: dict[str, np.ndarray] = {}
        opts = dict(transform_options or {})
        self.transforms = {
            m: TrainTransform(size=self.size, modality=m, seed=None, **opts)
            for m in (Modality.RGB, Modality.IR, Modality.SKETCH)
        }

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: RecordSource,
        *,
        size: tuple[int, int] = DEFAULT_SIZE,
        use_real_ir: bool = True,
        use_real_sketch: bool = True,
        synthesize_missing: bool = True,
        seed: int = 0,
        pid_map: Mapping[Hashable, int] | None = None,
        **options: Any,
    ) -> MultimodalTrainSet:
        """Build the set from any mixture of RGB / IR / sketch / text records.

        ``records`` is a list (one shared pid space) or ``{source name: records}`` (separate
        pid spaces). Records with pid < 0 (junk) and image records without a path are
        dropped; text records contribute captions by pid and by described image.
        ``pid_map`` (identity key -> label, e.g. :func:`identity_map` of a larger record set)
        fixes the labels, so that sets built from parts of the data share one classifier;
        it must cover every identity with an RGB image. ``options`` go to the constructor
        (``prefer_own_caption``, ``line_art_method``, ``sketch_jitter``, ``ir_options``,
        ``transform_options``, ``cache_images``).
        """
        pairs = [(k, r) for k, r in _flatten(records) if r.pid >= 0]
        rgb = [(k, r) for k, r in pairs if r.modality is Modality.RGB and r.path is not None]
        if not rgb:
            raise ValueError("no RGB records with pid >= 0: the training set would be empty")
        if pid_map is None:
            pid_map = _identity_map(rgb)
        else:
            missing = {k for k, _ in rgb} - set(pid_map)
            if missing:
                raise ValueError(
                    f"pid_map lacks {len(missing)} identities of the records, e.g. "
                    f"{sorted(missing, key=_sort_key)[:3]}"
                )
        ir: dict[int, list[Path]] = {}
        sketch: dict[int, list[Path]] = {}
        captions: dict[int, list[str]] = {}
        image_captions: dict[str, list[str]] = {}
        for key, r in pairs:
            label = pid_map.get(key)
            if label is None:
                continue
            if r.modality is Modality.IR and r.path is not None:
                ir.setdefault(label, []).append(Path(r.path))
            elif r.modality is Modality.SKETCH and r.path is not None:
                sketch.setdefault(label, []).append(Path(r.path))
            elif r.modality is Modality.TEXT and r.text and r.text.strip():
                captions.setdefault(label, []).append(r.text.strip())
                if r.path is not None:
                    image_captions.setdefault(str(r.path), []).append(r.text.strip())
        return cls(
            [r for _, r in rgb],
            [k for k, _ in rgb],
            pid_map,
            ir,
            sketch,
            captions,
            image_captions,
            size=size,
            use_real_ir=use_real_ir,
            use_real_sketch=use_real_sketch,
            synthesize_missing=synthesize_missing,
            seed=seed,
            **options,
        )

    @classmethod
    def for_stage(cls, records: RecordSource, stage: int, **options: Any) -> MultimodalTrainSet:
        """:meth:`from_records` with the real-IR/sketch flags of progressive-training ``stage``
        (1: synthesised IR and sketch only; 2: real paired data where available)."""
        if stage not in STAGES:
            raise ValueError(f"unknown training stage {stage!r}; expected one of {list(STAGES)}")
        return cls.from_records(records, **{**options, **STAGES[stage]})

    # -- properties -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of identity labels (contiguous ``0..num_classes-1``)."""
        return len(self.pid_map)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch`` (call once per epoch, before iterating)."""
        self.epoch = int(epoch)

    def item_rng(self, index: int, stream: str, repeat: int = 0) -> np.random.Generator:
        """The generator item ``index`` (copy ``repeat``) uses for ``stream``: one of rgb, ir,
        sketch, text (choice/synthesis) and rgb_aug, ir_aug, sketch_aug (augmentation)."""
        return np.random.default_rng([self.seed, self.epoch, index, repeat, _STREAMS[stream]])

    def summary(self) -> dict[str, int]:
        """Counts: items, identities, and identities having real IR / sketch / captions."""
        return {
            "items": len(self),
            "identities": self.num_classes,
            "identities_with_ir": len(self.ir),
            "identities_with_sketch": len(self.sketch),
            "identities_with_text": len(self.captions),
        }

    # -- items ----------------------------------------------------------------------------------
    def _image(self, path: str | Path) -> np.ndarray:
        key = str(path)
        img = self._cache.get(key)
        if img is None:
            img = resize(load_image(path), self.size)
            if self.cache_images:
                self._cache[key] = img
        return img

    @staticmethod
    def _parse_index(item: int | tuple[int, int]) -> tuple[int, int]:
        if isinstance(item, tuple):
            index, repeat = (operator.index(v) for v in item)
        else:
            index, repeat = operator.index(item), 0
        return index, repeat

    def views(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """The untransformed views of an item: uint8 HxWx3 "rgb", "ir" and "sketch" (``None``
        when missing and not synthesised) at ``size``, "text", "pid" and the flags."""
        index, repeat = self._parse_index(item)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        record = self.records[index]
        label = self.labels[index]
        rgb = self._image(record.path)  # type: ignore[arg-type]

        ir: np.ndarray | None = None
        ir_real = False
        rng = self.item_rng(index, "ir", repeat)
        if self.use_real_ir and label in self.ir:
            paths = self.ir[label]
            ir = to_three_channels(self._image(paths[int(rng.integers(len(paths)))]), gray=True)
            ir_real = True
        elif self.synthesize_missing:
            ir = channel_augment(rgb, rng, **self.ir_options)

        sketch: np.ndarray | None = None
        sketch_real = False
        rng = self.item_rng(index, "sketch", repeat)
        if self.use_real_sketch and label in self.sketch:
            paths = self.sketch[label]
            img = self._image(paths[int(rng.integers(len(paths)))])
            sketch = to_three_channels(img, gray=True)
            sketch_real = True
        elif self.synthesize_missing:
            lines = line_art(rgb, method=self.line_art_method, rng=rng, jitter=self.sketch_jitter)
            sketch = to_three_channels(lines)

        rng = self.item_rng(index, "text", repeat)
        pool = self.captions.get(label, [])
        if self.prefer_own_caption:
            pool = self.image_captions.get(str(record.path), pool)
        text = pool[int(rng.integers(len(pool)))] if pool else ""

        return {
            "rgb": rgb,
            "ir": ir,
            "sketch": sketch,
            "text": text,
            "attr_text": " ".join(self.captions.get(label, [])),
            "pid": label,
            "index": index,
            "has_ir": ir is not None,
            "has_sketch": sketch is not None,
            "has_text": bool(text),
            "ir_real": ir_real,
            "sketch_real": sketch_real,
        }

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """One training sample: "rgb", "ir", "sketch" (float tensors 3xHxW, normalised; a
        zero image when a modality is missing and ``synthesize_missing`` is off), "text"
        (a caption of the identity, preferably of this image, or ""), "attr_text" (all of the
        identity's captions, joined), "pid" (label),
        "index" and the bool flags "has_ir", "has_sketch", "has_text", "ir_real",
        "sketch_real". ``item`` is an index or an ``(index, repeat)`` pair.

        OUR CHOICE: with ``prefer_own_caption`` (default) the caption is drawn from those
        describing this very image when there are any (CUHK-PEDES style data), else from all
        captions of the identity. A real IR / sketch, when used, is drawn uniformly from the
        identity's images."""
        out = self.views(item)
        _, repeat = self._parse_index(item)
        index = out["index"]  # normalised (non-negative)
        for name, modality in (
            ("rgb", Modality.RGB),
            ("ir", Modality.IR),
            ("sketch", Modality.SKETCH),
        ):
            img = out[name]
            if img is None:
                out[name] = torch.zeros(3, *self.size)
            else:
                rng = self.item_rng(index, f"{name}_aug", repeat)
                out[name] = self.transforms[modality](img, rng)
        return out

    @staticmethod
    def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Same as the module-level :func:`collate` (pass as ``collate_fn``)."""
        return collate(items)


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch with exactly the keys :data:`BATCH_KEYS`: "rgb", "ir",
    "sketch" (Bx3xHxW float), "text" (list of str), "attr_text" (all captions of the
    identity, joined: attribute-binding targets), "pids" (int64 B), "has_ir",
    "has_sketch", "has_text" (bool B)."""
    if not items:
        raise ValueError("collate: empty batch")
    return {
        "rgb": torch.stack([it["rgb"] for it in items]),
        "ir": torch.stack([it["ir"] for it in items]),
        "sketch": torch.stack([it["sketch"] for it in items]),
        "text": [str(it["text"]) for it in items],
        "attr_text": [str(it.get("attr_text", "")) for it in items],
        "pids": torch.tensor([int(it["pid"]) for it in items], dtype=torch.long),
        "has_ir": torch.tensor([bool(it["has_ir"]) for it in items], dtype=torch.bool),
        "has_sketch": torch.tensor([bool(it["has_sketch"]) for it in items], dtype=torch.bool),
        "has_text": torch.tensor([bool(it["has_text"]) for it in items], dtype=torch.bool),
    }
