"""Dataset loaders: public ReID layouts -> :class:`~aioreid.encoder.data.records.ReIDDataset`.

>>> from aioreid.encoder.data.datasets import load_dataset
>>> ds = load_dataset("regdb", "/data", trial=3)          # doctest: +SKIP

Names: market1501, msmt17, sysu_mm01, regdb, llcm, pku_sketch, market_sketch_1k, orbench,
cuhk_pedes, icfg_pedes, rstpreid (see :func:`list_datasets`). ``root`` may be the dataset
folder or its parent.
"""

from aioreid.encoder.data.datasets.base import (
    DATASETS,
    IMAGE_EXTENSIONS,
    DatasetLoader,
    ListEntry,
    get_loader,
    list_datasets,
    load_dataset,
    loader_options,
    register,
    relabel,
    sort_records,
)
from aioreid.encoder.data.datasets.cuhk_pedes import CUHKPEDES
from aioreid.encoder.data.datasets.icfg_pedes import ICFGPEDES
from aioreid.encoder.data.datasets.llcm import LLCM, parse_llcm_camera
from aioreid.encoder.data.datasets.market1501 import Market1501, parse_market_name
from aioreid.encoder.data.datasets.market_sketch_1k import MASK1K_STYLES, MarketSketch1K
from aioreid.encoder.data.datasets.msmt17 import MSMT17, parse_msmt_camera
from aioreid.encoder.data.datasets.orbench import ORBENCH_FOLDERS, ORBENCH_QUERY_KEYS, ORBench
from aioreid.encoder.data.datasets.pku_sketch import PKUSketch, pku_sketch_split
from aioreid.encoder.data.datasets.regdb import RegDB
from aioreid.encoder.data.datasets.rstpreid import RSTPReid
from aioreid.encoder.data.datasets.sysu_mm01 import (
    SYSU_INDOOR_RGB_CAMERAS,
    SYSU_IR_CAMERAS,
    SYSU_RGB_CAMERAS,
    SYSUMM01,
    sysu_camera_modality,
)
from aioreid.encoder.data.datasets.text_pedes import CaptionJsonLoader
from aioreid.encoder.data.records import DatasetLayoutError

__all__ = [
    "CUHKPEDES",
    "DATASETS",
    "ICFGPEDES",
    "IMAGE_EXTENSIONS",
    "LLCM",
    "MASK1K_STYLES",
    "MSMT17",
    "ORBENCH_FOLDERS",
    "ORBENCH_QUERY_KEYS",
    "SYSUMM01",
    "SYSU_INDOOR_RGB_CAMERAS",
    "SYSU_IR_CAMERAS",
    "SYSU_RGB_CAMERAS",
    "CaptionJsonLoader",
    "DatasetLayoutError",
    "DatasetLoader",
    "ListEntry",
    "Market1501",
    "MarketSketch1K",
    "ORBench",
    "PKUSketch",
    "RSTPReid",
    "RegDB",
    "get_loader",
    "list_datasets",
    "load_dataset",
    "loader_options",
    "parse_llcm_camera",
    "parse_market_name",
    "parse_msmt_camera",
    "pku_sketch_split",
    "register",
    "relabel",
    "sort_records",
    "sysu_camera_modality",
]
