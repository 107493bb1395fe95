"""CUHK-PEDES (Li et al., CVPR 2017): person search with natural-language descriptions.

Layout: ``CUHK-PEDES/reid_raw.json`` (json list of ``{split, captions, file_path,
processed_tokens, id}``; ``processed_tokens`` is not used) and images under
``CUHK-PEDES/imgs/<file_path>`` (sub-folders ``cam_a``, ``cam_b``, ``CUHK01``, ``CUHK03``,
``Market``, ``test_query``, ``train_query``). Images come from several source datasets with
incompatible camera numbering, so camid is -1 throughout. See :mod:`.text_pedes`.
"""

from __future__ import annotations

from aioreid.encoder.data.datasets.base import register
from aioreid.encoder.data.datasets.text_pedes import CaptionJsonLoader


@register
class CUHKPEDES(CaptionJsonLoader):
    """Loader for CUHK-PEDES."""

    name = "cuhk_pedes"
    display_name = "CUHK-PEDES"
    folder_names = ("CUHK-PEDES", "CUHK_PEDES", "cuhk_pedes")
    markers = ("reid_raw.json",)
    annotation_files = ("reid_raw.json",)
    path_key = "file_path"
