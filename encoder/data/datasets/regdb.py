"""RegDB (Nguyen et al., Sensors 2017): paired visible/thermal person images.

Layout: ``RegDB/Visible/<pid>/*.bmp``, ``RegDB/Thermal/<pid>/*.bmp`` and, for each of the 10
standard trials ``k``, ``RegDB/idx/{train,test}_{visible,thermal}_{k}.txt`` with lines
``Visible/<pid>/<file>.bmp <label>`` (or ``Thermal/...``).

pid = the list label; camid 1 for visible, 2 for thermal. train = both train lists; query =
thermal test images, gallery = visible test images (the protocol also swaps the two for the
visible-to-thermal direction).
"""

from __future__ import annotations

from pathlib import Path

from aioreid.encoder.data.datasets.base import DatasetLoader, Split, register
from aioreid.encoder.data.records import Modality, Record

REGDB_TRIALS = range(1, 11)
VISIBLE_CAMID = 1
THERMAL_CAMID = 2


@register
class RegDB(DatasetLoader):
    """Loader for RegDB; ``trial`` picks the split 1..10."""

    name = "regdb"
    display_name = "RegDB"
    folder_names = ("RegDB", "regdb")
    markers = ("idx", "Visible", "Thermal")

    def __init__(self, *, trial: int = 1, verify_files: bool = True) -> None:
        super().__init__(verify_files=verify_files)
        if trial not in REGDB_TRIALS:
            raise ValueError(f"RegDB: trial must be in 1..10, got {trial!r}")
        self.trial = trial

    def _load(self, base: Path) -> Split:
        idx = self.require_dir(base / "idx")
        k = self.trial
        train = self._read(base, idx / f"train_visible_{k}.txt", Modality.RGB)
        train += self._read(base, idx / f"train_thermal_{k}.txt", Modality.IR)
        gallery = self._read(base, idx / f"test_visible_{k}.txt", Modality.RGB)
        query = self._read(base, idx / f"test_thermal_{k}.txt", Modality.IR)
        return train, query, gallery

    def _read(self, base: Path, list_file: Path, modality: Modality) -> list[Record]:
        camid = VISIBLE_CAMID if modality is Modality.RGB else THERMAL_CAMID
        records = []
        for entry in self.read_path_label_list(list_file):
            path = base / entry.path
            self.check_image(path, base, entry.origin)
            records.append(Record(path, entry.label, camid, modality))
        return records
