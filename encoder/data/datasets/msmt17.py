"""MSMT17 (Wei et al., CVPR 2018), V1 and V2 (faces blurred) releases.

Layout: ``MSMT17_V1/{train,test}/PPPP/PPPP_NNN_CC_<date><time>_FFFF_K.jpg`` plus
``list_train.txt``, ``list_val.txt``, ``list_query.txt``, ``list_gallery.txt`` whose lines
are ``PPPP/<file>.jpg <pid>`` relative to ``train/`` (train, val) or ``test/`` (query,
gallery). V2 (``MSMT17_V2``) names the image folders ``mask_train_v2``/``mask_test_v2``.

pid is the list label; camid the 1-based camera token ``CC`` of the file name (cameras
1..15). Train = ``list_train`` + ``list_val`` (the official 32,621-image training set) unless
``include_val=False``.
"""

from __future__ import annotations

import re
from pathlib import Path

from aioreid.encoder.data.datasets.base import (
    DatasetLoader,
    ListEntry,
    Split,
    find_child,
    register,
)
from aioreid.encoder.data.records import Modality, Record

MSMT_PATTERN = re.compile(r"^(\d+)_(\d+)_(\d+)_")
_VERSION_DIRS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}


def parse_msmt_camera(filename: str) -> int:
    """Camera number (1-based) from an MSMT17 file name ``PPPP_NNN_CC_...``."""
    match = MSMT_PATTERN.match(Path(filename).name)
    if match is None:
        raise ValueError(f"cannot parse camera from MSMT17 file name {filename!r}")
    return int(match.group(3))


@register
class MSMT17(DatasetLoader):
    """Loader for MSMT17 V1/V2. ``version`` (``"v1"``/``"v2"``) overrides auto-detection."""

    name = "msmt17"
    display_name = "MSMT17"
    folder_names = ("MSMT17_V1", "MSMT17_V2", "MSMT17", "msmt17")
    markers = (
        "list_train.txt",
        "list_query.txt",
        "list_gallery.txt",
        "train",
        "test",
        "mask_train_v2",
        "mask_test_v2",
    )

    def __init__(
        self, *, include_val: bool = True, version: str | None = None, verify_files: bool = True
    ) -> None:
        super().__init__(verify_files=verify_files)
        if version is not None and version.lower() not in _VERSION_DIRS:
            raise ValueError(f"MSMT17: unknown version {version!r}; expected v1 or v2")
        self.include_val = include_val
        self.version = None if version is None else version.lower()

    def _detect_version(self, base: Path) -> str:
        if self.version is not None:
            return self.version
        if find_child(base, _VERSION_DIRS["v2"]) is not None:
            return "v2"
        if find_child(base, _VERSION_DIRS["v1"]) is not None:
            return "v1"
        return "v2" if base.name.lower().endswith("v2") else "v1"

    def _load(self, base: Path) -> Split:
        train_name, test_name = _VERSION_DIRS[self._detect_version(base)]
        train_dir = self.require_dir(find_child(base, [train_name]) or base / train_name)
        test_dir = self.require_dir(find_child(base, [test_name]) or base / test_name)
        lists = {
            key: self.read_path_label_list(base / f"list_{key}.txt")
            for key in ("train", "val", "query", "gallery")
        }
        train = self._records(lists["train"], train_dir, base)
        if self.include_val:
            train += self._records(lists["val"], train_dir, base)
        query = self._records(lists["query"], test_dir, base)
        gallery = self._records(lists["gallery"], test_dir, base)
        return train, query, gallery

    def _records(self, entries: list[ListEntry], folder: Path, base: Path) -> list[Record]:
        records = []
        for entry in entries:
            try:
                camid = parse_msmt_camera(entry.path)
            except ValueError as exc:
                raise ValueError(
                    f"MSMT17: malformed line {entry.lineno} in {entry.source}: {exc}"
                ) from None
            path = folder / entry.path
            self.check_image(path, base, entry.origin)
            records.append(Record(path, entry.label, camid, Modality.RGB))
        return records
