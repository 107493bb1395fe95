"""ICFG-PEDES (Ding et al., 2021): text-based person retrieval built on MSMT17 images.

Layout: ``ICFG-PEDES/ICFG-PEDES.json`` (json list of ``{split, captions, file_path,
processed_tokens, id}``, the file name used by IRRA; ``ICFG_PEDES.json`` and
``annotations/ICFG-PEDES.json`` are accepted too) and images under
``ICFG-PEDES/imgs/{train,test}/...``. Image names follow MSMT17 (``PPPP_NNN_CC_...``), so
camid is the camera token ``CC`` when the name matches, else -1. See :mod:`.text_pedes`.
"""

from __future__ import annotations

from aioreid.encoder.data.datasets.base import register
from aioreid.encoder.data.datasets.msmt17 import parse_msmt_camera
from aioreid.encoder.data.datasets.text_pedes import CaptionJsonLoader


@register
class ICFGPEDES(CaptionJsonLoader):
    """Loader for ICFG-PEDES."""

    name = "icfg_pedes"
    display_name = "ICFG-PEDES"
    folder_names = ("ICFG-PEDES", "ICFG_PEDES", "icfg_pedes")
    markers = ("ICFG-PEDES.json", "ICFG_PEDES.json", "annotations")
    annotation_files = ("ICFG-PEDES.json", "ICFG_PEDES.json", "annotations/ICFG-PEDES.json")
    path_key = "file_path"

    def image_camid(self, rel_path: str) -> int:
        """MSMT17 camera token of the file name, -1 if the name does not follow MSMT17."""
        try:
            return parse_msmt_camera(rel_path)
        except ValueError:
            return -1
