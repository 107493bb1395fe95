"""RSTPReid (Zhu et al., ACM MM 2021): text-based person retrieval built on MSMT17 images.

Layout: ``RSTPReid/data_captions.json`` (json list of ``{id, img_path, captions, split}``
with ``split`` in train/val/test; ``annotations/data_captions.json`` is accepted too) and
images under ``RSTPReid/imgs/<img_path>`` named ``PPPP_cCC_FFFF.jpg`` (e.g.
``0000_c14_0031.jpg``): camid is ``CC``, or -1 when the name does not carry it.
See :mod:`.text_pedes`.
"""

from __future__ import annotations

import re

from aioreid.encoder.data.datasets.base import register
from aioreid.encoder.data.datasets.text_pedes import CaptionJsonLoader

_CAMERA = re.compile(r"_c(\d+)")


@register
class RSTPReid(CaptionJsonLoader):
    """Loader for RSTPReid."""

    name = "rstpreid"
    display_name = "RSTPReid"
    folder_names = ("RSTPReid", "RSTP-Reid", "rstpreid")
    markers = ("data_captions.json", "annotations")
    annotation_files = ("data_captions.json", "annotations/data_captions.json")
    path_key = "img_path"

    def image_camid(self, rel_path: str) -> int:
        """Camera number from ``PPPP_cCC_FFFF.jpg``, -1 if absent."""
        match = _CAMERA.search(rel_path.rsplit("/", 1)[-1])
        return int(match.group(1)) if match else -1
