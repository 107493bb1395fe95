"""Market-Sketch-1K (MaSk1K; Lin et al., ACM MM 2023, "Beyond Domain Gap: Exploiting
Subjectivity in Sketch-Based Person Retrieval"): Market-1501 photos and hand-drawn sketches
of 996 identities by six artists (styles ``A``..``F``), several sketches per identity.

Layout followed: the authors' code (github.com/Lin-Kayla/subjectivity-sketch-reid,
``preprocess.py`` and ``data_manager.py``), which reads::

    Market-Sketch-1K/photo/train/<market name>.jpg      training photos
    Market-Sketch-1K/photo/query/<market name>.jpg      test photos: the gallery
    Market-Sketch-1K/sketch/<S>/train/<pid>_<S>.jpg     training sketches of style S
    Market-Sketch-1K/sketch/<S>/query/<pid>_<S>.jpg     test sketches of style S: the queries

The code takes the person id from the first four characters of every file name. Assumed,
not stated by the authors: photos keep their Market-1501 names ``PPPP_cCsS_FFFFFF_NN.jpg``
(the camera is read from them, as other public MaSk1K loaders do) and sketches are named
``<pid>_<style>.jpg`` or ``<pid>.jpg``; a sketch whose name gives a style must lie in that
style's folder. The Market-1501 attribute file (``market_attribute.mat``, a separate
release) is not read.

train = ``photo/train`` (RGB) + ``sketch/<S>/train`` (sketch) for ``train_styles``; query =
``sketch/<S>/query`` for ``query_styles`` (the paper's single-query protocol; its
multi-query protocol groups a person's query sketches, which the ``style`` attribute
allows); gallery = ``photo/query``. As for PKU-Sketch, a sketch has camid 0 (no Market-1501
camera is 0, so the same-camera rule never drops a match) and modality sketch; its artist
is kept as ``attributes["style"]``. Photos follow the Market-1501 rules: junk (pid -1)
dropped, distractors (pid 0) kept in the gallery only, camid = the 1-based camera.
"""

from __future__ import annotations

import re
from pathlib import Path

from aioreid.encoder.data.datasets.base import DatasetLoader, Split, register
from aioreid.encoder.data.datasets.market1501 import (
    DISTRACTOR_PID,
    JUNK_PID,
    parse_market_name,
)
from aioreid.encoder.data.records import Modality, Record

MASK1K_STYLES = "ABCDEF"
SKETCH_CAMID = 0
_SKETCH_NAME = re.compile(r"^(\d+)(?:_([A-Za-z]))?$")


def _parse_styles(option: str, value: str) -> str:
    styles = "".join(dict.fromkeys(value.strip().upper()))
    if not styles or any(s not in MASK1K_STYLES for s in styles):
        raise ValueError(
            f"Market-Sketch-1K: {option} must be letters out of {MASK1K_STYLES}, got {value!r}"
        )
    return styles


@register
class MarketSketch1K(DatasetLoader):
    """Loader for Market-Sketch-1K; ``train_styles``/``query_styles`` pick artists (e.g.
    ``"A"``, ``"BDF"``), all six by default."""

    name = "market_sketch_1k"
    display_name = "Market-Sketch-1K"
    folder_names = ("Market-Sketch-1K", "MaSk1K", "market_sketch_1k")
    markers = ("photo", "sketch")

    def __init__(
        self,
        *,
        train_styles: str = MASK1K_STYLES,
        query_styles: str = MASK1K_STYLES,
        verify_files: bool = True,
    ) -> None:
        super().__init__(verify_files=verify_files)
        self.train_styles = _parse_styles("train_styles", train_styles)
        self.query_styles = _parse_styles("query_styles", query_styles)

    def _load(self, base: Path) -> Split:
        photo = self.require_dir(base / "photo")
        sketch = self.require_dir(base / "sketch")
        train = self._photos(self.require_dir(photo / "train"), keep_distractors=False)
        gallery = self._photos(self.require_dir(photo / "query"), keep_distractors=True)
        for style in self.train_styles:
            train += self._sketches(sketch, style, "train")
        query = [r for style in self.query_styles for r in self._sketches(sketch, style, "query")]
        return train, query, gallery

    def _photos(self, folder: Path, *, keep_distractors: bool) -> list[Record]:
        records = []
        for path in self.list_images(folder):
            try:
                pid, camid = parse_market_name(path.name)
            except ValueError:
                raise ValueError(
                    f"Market-Sketch-1K: cannot parse person/camera from photo {path} "
                    "(expected a Market-1501 name PPPP_cCsS_FFFFFF_NN.jpg)"
                ) from None
            if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
                continue
            records.append(Record(path, pid, camid, Modality.RGB))
        return records

    def _sketches(self, sketch_root: Path, style: str, split: str) -> list[Record]:
        folder = self.require_dir(sketch_root / style / split)
        records = []
        for path in self.list_images(folder):
            match = _SKETCH_NAME.match(path.stem)
            if match is None:
                raise ValueError(
                    f"Market-Sketch-1K: cannot parse person id from sketch {path} "
                    f"(expected <pid>_{style}.jpg or <pid>.jpg)"
                )
            named = (match.group(2) or style).upper()
            if named != style:
                raise ValueError(
                    f"Market-Sketch-1K: sketch {path} is named for style {named} "
                    f"but lies in the folder of style {style}"
                )
            pid = int(match.group(1))
            records.append(
                Record(path, pid, SKETCH_CAMID, Modality.SKETCH, attributes={"style": style})
            )
        return records
