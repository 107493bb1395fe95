"""SYSU-MM01 (Wu et al., ICCV 2017): RGB-infrared cross-modality ReID.

Layout: ``SYSU-MM01/cam1..cam6/PPPP/NNNN.jpg``; cameras 1, 2, 4, 5 are RGB (1, 2 indoor),
3 and 6 infrared; ``exp/train_id.txt``, ``exp/val_id.txt``, ``exp/test_id.txt`` each hold
one line of comma-separated person ids.

train = all images of the train (+ val, unless ``include_val=False``) ids from every camera,
modality by camera; query = infrared test images (cameras 3, 6); gallery = *all* RGB test
images (cameras 1, 2, 4, 5). The evaluation protocol draws its single-shot galleries
(one random image per identity and camera) and indoor mode (cameras 1, 2) from this gallery.
``camid`` is the camera number.
"""

from __future__ import annotations

from pathlib import Path

from aioreid.encoder.data.datasets.base import DatasetLoader, Split, register
from aioreid.encoder.data.records import Modality, Record

SYSU_RGB_CAMERAS: tuple[int, ...] = (1, 2, 4, 5)
SYSU_IR_CAMERAS: tuple[int, ...] = (3, 6)
SYSU_INDOOR_RGB_CAMERAS: tuple[int, ...] = (1, 2)


def sysu_camera_modality(cam: int | str) -> Modality:
    """Modality of SYSU-MM01 camera ``cam`` (``3`` or ``"cam3"``): RGB 1, 2, 4, 5; IR 3, 6."""
    text = str(cam).strip().lower().removeprefix("cam")
    number = int(text) if text.isdigit() else -1
    if number in SYSU_RGB_CAMERAS:
        return Modality.RGB
    if number in SYSU_IR_CAMERAS:
        return Modality.IR
    raise ValueError(f"SYSU-MM01 has cameras 1..6, got {cam!r}")


@register
class SYSUMM01(DatasetLoader):
    """Loader for SYSU-MM01."""

    name = "sysu_mm01"
    display_name = "SYSU-MM01"
    folder_names = ("SYSU-MM01", "SYSU_MM01", "sysu_mm01", "sysu-mm01")
    markers = ("exp", "cam1", "cam3")

    def __init__(self, *, include_val: bool = True, verify_files: bool = True) -> None:
        super().__init__(verify_files=verify_files)
        self.include_val = include_val

    def _load(self, base: Path) -> Split:
        exp = self.require_dir(base / "exp")
        cams = {c: self.require_dir(base / f"cam{c}") for c in range(1, 7)}
        train_ids = self.read_id_list(exp / "train_id.txt")
        val_ids = self.read_id_list(exp / "val_id.txt")
        test_ids = self.read_id_list(exp / "test_id.txt")
        if self.include_val:
            train_ids = train_ids + val_ids
        train = self._collect(cams, sorted(set(train_ids)), range(1, 7))
        query = self._collect(cams, sorted(set(test_ids)), SYSU_IR_CAMERAS)
        gallery = self._collect(cams, sorted(set(test_ids)), SYSU_RGB_CAMERAS)
        return train, query, gallery

    def _collect(
        self, cams: dict[int, Path], ids: list[int], cameras: tuple[int, ...] | range
    ) -> list[Record]:
        records = []
        for cam in cameras:
            modality = sysu_camera_modality(cam)
            for pid in ids:
                folder = cams[cam] / f"{pid:04d}"
                if not folder.is_dir():  # not every person was seen by every camera
                    continue
                records.extend(
                    Record(path, pid, cam, modality) for path in self.list_images(folder)
                )
        return records
