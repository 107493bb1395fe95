"""PKU-Sketch (Pang et al., ACM MM 2018): sketch-to-photo person ReID.

Real layout (``PKUSketchRE-ID_V1``, from its ReadMe): ``sketch/<id>.jpg`` (200 sketches, one
per person), ``photo/<id>_<cam>_<frame>.jpg`` (400 photos, two per person from two
cross-view cameras; a few are ``.bmp``) and ``styleAnnotation/`` (ignored). The simpler
``photo/<id>_<k>.jpg`` naming is accepted as well.

There is no official split file: each trial draws ``num_train`` (150) training ids at random,
seeded by ``trial``, the rest (50) are test ids (:func:`pku_sketch_split`). train = photos and
sketches of the train ids; query = sketches of the test ids (modality sketch, camid 0);
gallery = photos of the test ids (modality rgb, camid = the second file-name token, which
public code treats as the camera).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path

from aioreid.encoder.data.datasets.base import DatasetLoader, Split, register
from aioreid.encoder.data.records import Modality, Record

SKETCH_CAMID = 0
_PHOTO_NAME = re.compile(r"^(\d+)_(\d+)(?:_\d+)*$")
_SKETCH_NAME = re.compile(r"^(\d+)$")


def pku_sketch_split(
    ids: Iterable[int], trial: int = 0, num_train: int = 150
) -> tuple[list[int], list[int]]:
    """Seeded random train/test split of person ids: ``(sorted train, sorted test)``."""
    pool = sorted(set(ids))
    if not 0 < num_train < len(pool):
        raise ValueError(
            f"PKU-Sketch: num_train must be between 1 and {len(pool) - 1} "
            f"for {len(pool)} identities, got {num_train}"
        )
    train = sorted(random.Random(trial).sample(pool, num_train))
    chosen = set(train)
    return train, [pid for pid in pool if pid not in chosen]


@register
class PKUSketch(DatasetLoader):
    """Loader for PKU-Sketch; ``trial`` seeds the split, ``num_train`` train identities."""

    name = "pku_sketch"
    display_name = "PKU-Sketch"
    folder_names = ("PKUSketchRE-ID_V1", "PKUSketchRE-ID", "PKU-Sketch", "pku_sketch")
    markers = ("photo", "sketch")

    def __init__(self, *, trial: int = 0, num_train: int = 150, verify_files: bool = True) -> None:
        super().__init__(verify_files=verify_files)
        self.trial = trial
        self.num_train = num_train

    def _load(self, base: Path) -> Split:
        photo_dir = self.require_dir(base / "photo")
        sketch_dir = self.require_dir(base / "sketch")
        photos = [self._photo(p) for p in self.list_images(photo_dir)]
        sketches = [self._sketch(p) for p in self.list_images(sketch_dir)]
        train_ids, test_ids = pku_sketch_split(
            [r.pid for r in photos + sketches], self.trial, self.num_train
        )
        train_set, test_set = set(train_ids), set(test_ids)
        train = [r for r in photos + sketches if r.pid in train_set]
        query = [r for r in sketches if r.pid in test_set]
        gallery = [r for r in photos if r.pid in test_set]
        return train, query, gallery

    @staticmethod
    def _photo(path: Path) -> Record:
        match = _PHOTO_NAME.match(path.stem)
        if match is None:
            raise ValueError(
                f"PKU-Sketch: cannot parse person/camera from photo {path} "
                "(expected <id>_<cam>[_<frame>].jpg)"
            )
        return Record(path, int(match.group(1)), int(match.group(2)), Modality.RGB)

    @staticmethod
    def _sketch(path: Path) -> Record:
        match = _SKETCH_NAME.match(path.stem)
        if match is None:
            raise ValueError(
                f"PKU-Sketch: cannot parse person id from sketch {path} (expected <id>.jpg)"
            )
        return Record(path, int(match.group(1)), SKETCH_CAMID, Modality.SKETCH)
