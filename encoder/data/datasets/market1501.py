"""Market-1501 (Zheng et al., ICCV 2015).

Layout: ``Market-1501-v15.09.15/{bounding_box_train,bounding_box_test,query}/`` with files
``PPPP_cCsS_FFFFFF_NN.jpg`` (``PPPP`` person id, ``C`` camera 1..6). Person id ``-1`` marks
junk boxes and ``0`` distractors.

Records follow the evaluation protocol: junk (pid -1) is dropped from every split;
distractors (pid 0) are kept in the gallery only. ``camid`` is the 1-based camera number of
the file name; train pids keep their original ids (see :func:`relabel`).
"""

from __future__ import annotations

import re
from pathlib import Path

from aioreid.encoder.data.datasets.base import DatasetLoader, Split, register
from aioreid.encoder.data.records import Modality, Record

MARKET_PATTERN = re.compile(r"([-\d]+)_c(\d)")
JUNK_PID = -1
DISTRACTOR_PID = 0


def parse_market_name(filename: str) -> tuple[int, int]:
    """``(pid, camid)`` from a Market-1501 file name; ``ValueError`` if it does not match."""
    match = MARKET_PATTERN.search(filename)
    if match is None:
        raise ValueError(
            f"Market-1501: cannot parse person/camera from file name {filename!r} "
            "(expected PPPP_cCsS_FFFFFF_NN.jpg)"
        )
    return int(match.group(1)), int(match.group(2))


@register
class Market1501(DatasetLoader):
    """Loader for Market-1501."""

    name = "market1501"
    display_name = "Market-1501"
    folder_names = ("Market-1501-v15.09.15", "Market-1501", "market1501")
    markers = ("bounding_box_train", "bounding_box_test", "query")

    def _load(self, base: Path) -> Split:
        dirs = [self.require_dir(base / sub) for sub in self.markers]
        train = self._read_dir(dirs[0], keep_distractors=False)
        gallery = self._read_dir(dirs[1], keep_distractors=True)
        query = self._read_dir(dirs[2], keep_distractors=False)
        return train, query, gallery

    def _read_dir(self, folder: Path, *, keep_distractors: bool) -> list[Record]:
        records: list[Record] = []
        for path in self.list_images(folder):
            try:
                pid, camid = parse_market_name(path.name)
            except ValueError as exc:
                raise ValueError(f"{exc} in {folder}") from None
            if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
                continue
            records.append(Record(path, pid, camid, Modality.RGB))
        return records
