"""Shared loader for the text-to-image person retrieval datasets (CUHK-PEDES, ICFG-PEDES,
RSTPReid): one json annotation file listing images with their captions and split.

train = for every image of the ``train`` split one RGB record plus one TEXT record per
caption (same pid, ``path`` = the image the caption describes, camid -1); query = one TEXT
record per caption of the ``test`` split; gallery = the RGB records of the test images.
``val`` entries are not used. pids are the json ``id`` values, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from aioreid.encoder.data.datasets.base import DatasetLoader, Split
from aioreid.encoder.data.records import Modality, Record

TEXT_CAMID = -1


class CaptionJsonLoader(DatasetLoader):
    """Base for json-annotated text ReID datasets.

    Subclasses set ``annotation_files`` (candidate json paths, first is canonical),
    ``path_key`` (the image field name) and may override :meth:`image_camid`.
    """

    annotation_files: ClassVar[tuple[str, ...]] = ()
    path_key: ClassVar[str] = "file_path"
    image_dir: ClassVar[str] = "imgs"

    def image_camid(self, rel_path: str) -> int:
        """Camera id of an image, ``-1`` when the dataset does not say."""
        return -1

    def _load(self, base: Path) -> Split:
        ann_path = self.require_any_file(base, self.annotation_files)
        img_dir = self.require_dir(base / self.image_dir)
        train: list[Record] = []
        query: list[Record] = []
        gallery: list[Record] = []
        for index, entry in enumerate(self._read_json(ann_path)):
            split, pid, rel, captions = self._parse_entry(entry, index, ann_path)
            if split not in ("train", "test"):
                continue
            path = img_dir / rel
            self.check_image(path, base, f"{ann_path} entry {index}")
            image = Record(path, pid, self.image_camid(rel), Modality.RGB)
            texts = [Record(path, pid, TEXT_CAMID, Modality.TEXT, text=c) for c in captions]
            if split == "train":
                train.append(image)
                train.extend(texts)
            else:
                gallery.append(image)
                query.extend(texts)
        return train, query, gallery

    def _read_json(self, path: Path) -> list[Any]:
        try:
            with path.open(encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{self.display_name}: malformed json in {path} at line {exc.lineno}, "
                f"column {exc.colno}: {exc.msg}"
            ) from None
        if not isinstance(data, list):
            raise ValueError(
                f"{self.display_name}: {path} must hold a json list of entries, "
                f"got {type(data).__name__}"
            )
        return data

    def _parse_entry(self, entry: Any, index: int, path: Path) -> tuple[str, int, str, list[str]]:
        where = f"{self.display_name}: malformed entry {index} in {path}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        for key in ("split", "id", self.path_key, "captions"):
            if key not in entry:
                raise ValueError(f"{where}: missing key {key!r}")
        split, rel, captions = entry["split"], entry[self.path_key], entry["captions"]
        if not isinstance(split, str) or not isinstance(rel, str) or not rel:
            raise ValueError(f"{where}: 'split' and {self.path_key!r} must be non-empty strings")
        try:
            pid = int(entry["id"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: 'id' {entry['id']!r} is not an integer") from None
        if isinstance(captions, str):
            captions = [captions]
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{where}: 'captions' must be a list of strings")
        cleaned = [c.strip() for c in captions if c.strip()]
        return split.strip().lower(), pid, rel.replace("\\", "/"), cleaned
