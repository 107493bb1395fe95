"""LLCM (Zhang & Wang, CVPR 2023): low-light visible/near-infrared cross-modality ReID.

Layout: ``LLCM/idx/{train,test}_{vis,nir}.txt`` with lines ``<relative path> <label>``;
images under ``LLCM/vis/PPPP/`` and ``LLCM/nir/PPPP/`` named
``PPPP_cCC_sSSSSSS_fFFFF_{vis,nir}.jpg`` (e.g. ``nir/0001/0001_c01_s185535_f7010_nir.jpg``);
the official test code also reads copies under ``test_vis/camN/PPPP/`` and
``test_nir/camN/PPPP/``: whatever the list names is used.

pid = the list label; camid = the ``cCC`` camera number of the file name (LLCM's cameras
record both modalities, so one number means one physical camera in either modality); if the
name has no ``_cCC`` token, a ``camN`` folder in the path is used. train = both train lists;
query = NIR test images (IR), gallery = visible test images (RGB).
"""

from __future__ import annotations

import re
from pathlib import Path

from aioreid.encoder.data.datasets.base import DatasetLoader, ListEntry, Split, register
from aioreid.encoder.data.records import Modality, Record

_NAME_CAMERA = re.compile(r"_c(\d+)")
_FOLDER_CAMERA = re.compile(r"^cam(\d+)$", re.IGNORECASE)


def parse_llcm_camera(rel_path: str) -> int:
    """Camera number from an LLCM image path (``..._c03_...`` or a ``cam3/`` folder)."""
    parts = rel_path.replace("\\", "/").split("/")
    match = _NAME_CAMERA.search(parts[-1])
    if match:
        return int(match.group(1))
    for part in reversed(parts[:-1]):
        folder = _FOLDER_CAMERA.match(part)
        if folder:
            return int(folder.group(1))
    raise ValueError(f"cannot parse camera from LLCM image path {rel_path!r}")


@register
class LLCM(DatasetLoader):
    """Loader for LLCM."""

    name = "llcm"
    display_name = "LLCM"
    folder_names = ("LLCM", "llcm")
    markers = ("idx", "vis", "nir")

    def _load(self, base: Path) -> Split:
        idx = self.require_dir(base / "idx")
        train = self._read(base, idx / "train_vis.txt", Modality.RGB)
        train += self._read(base, idx / "train_nir.txt", Modality.IR)
        gallery = self._read(base, idx / "test_vis.txt", Modality.RGB)
        query = self._read(base, idx / "test_nir.txt", Modality.IR)
        return train, query, gallery

    def _read(self, base: Path, list_file: Path, modality: Modality) -> list[Record]:
        records = []
        for entry in self.read_path_label_list(list_file):
            records.append(self._record(base, entry, modality))
        return records

    def _record(self, base: Path, entry: ListEntry, modality: Modality) -> Record:
        try:
            camid = parse_llcm_camera(entry.path)
        except ValueError as exc:
            raise ValueError(
                f"LLCM: malformed line {entry.lineno} in {entry.source}: {exc}"
            ) from None
        path = base / entry.path
        self.check_image(path, base, entry.origin)
        return Record(path, entry.label, camid, modality)
