"""Builders of tiny on-disk dataset trees in the real public layouts (for loader tests).

Each ``build_*`` function takes a parent folder, writes the dataset folder under it with
its real name (e.g. ``parent/Market-1501-v15.09.15``), tiny images and the real split /
annotation files, and returns the dataset folder. The contents are fixed and small; the
docstrings give the expected split sizes so other tests can rely on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DATASET_BUILDERS",
    "MULTIMODAL_BUILDERS",
    "build_cuhk_pedes",
    "build_icfg_pedes",
    "build_llcm",
    "build_market1501",
    "build_market_sketch_1k",
    "build_msmt17",
    "build_orbench",
    "build_pku_sketch",
    "build_regdb",
    "build_rstpreid",
    "build_sysu_mm01",
    "write_image",
]


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (16, 8)) -> Path:
    """Write a tiny (height, width) image; format from the suffix (jpg, png, bmp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    img = np.full((height, width, 3), value % 256, dtype=np.uint8)
    img[: height // 2, :, 0] = (value * 7) % 256  # a little structure, distinct per value
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def _write_images(base: Path, rels: Iterable[str]) -> None:
    for i, rel in enumerate(rels):
        write_image(base / rel, value=37 * i + 11)


def _write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# -- Market-1501 ------------------------------------------------------------------------------
MARKET_TRAIN = [
    "0002_c1s1_000451_01.jpg",
    "0002_c2s1_000551_01.jpg",
    "0007_c3s3_076444_03.jpg",
    "0007_c6s3_086542_02.jpg",
]
MARKET_GALLERY = [
    "0001_c2s1_000301_01.jpg",
    "0001_c5s1_000401_02.jpg",
    "0003_c1s1_000101_01.jpg",
    "0003_c4s1_000201_01.jpg",
    "0000_c1s1_000001_00.jpg",  # distractor
    "0000_c3s1_000002_00.jpg",  # distractor
    "-1_c1s1_000003_00.jpg",  # junk
    "-1_c2s1_000004_00.jpg",  # junk
]
MARKET_QUERY = ["0001_c1s1_001051_00.jpg", "0003_c3s1_000151_00.jpg"]


def build_market1501(parent: Path) -> Path:
    """Market-1501-v15.09.15: train 4 images (pids 2, 7), gallery 4 + 2 distractors + 2 junk,
    query 2 (pids 1, 3); a ``Thumbs.db`` non-image sits in ``bounding_box_train``."""
    root = parent / "Market-1501-v15.09.15"
    _write_images(root / "bounding_box_train", MARKET_TRAIN)
    _write_images(root / "bounding_box_test", MARKET_GALLERY)
    _write_images(root / "query", MARKET_QUERY)
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"not an image")
    return root


# -- MSMT17 -----------------------------------------------------------------------------------
MSMT_TRAIN = [
    ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
    ("0000/0000_001_05_0303noon_0020_0.jpg", 0),
    ("0001/0001_000_02_0113morning_0001_1.jpg", 1),
    ("0001/0001_001_14_0113afternoon_0042_2.jpg", 1),
]
MSMT_VAL = [("0002/0002_000_03_0302noon_0007_0.jpg", 2)]
MSMT_QUERY = [
    ("0000/0000_000_07_0114morning_0003_0.jpg", 0),
    ("0001/0001_000_15_0302afternoon_0101_0.jpg", 1),
]
MSMT_GALLERY = [
    ("0000/0000_001_11_0114noon_0010_0.jpg", 0),
    ("0001/0001_001_02_0303morning_0150_1.jpg", 1),
]


def build_msmt17(parent: Path, version: str = "v1") -> Path:
    """MSMT17_V1 (or MSMT17_V2 with ``mask_*_v2`` image folders): list_train 4 images
    (pids 0, 1), list_val 1 (pid 2), list_query 2 and list_gallery 2 (pids 0, 1)."""
    v2 = version.lower() == "v2"
    root = parent / ("MSMT17_V2" if v2 else "MSMT17_V1")
    train_dir = root / ("mask_train_v2" if v2 else "train")
    test_dir = root / ("mask_test_v2" if v2 else "test")
    _write_images(train_dir, [p for p, _ in MSMT_TRAIN + MSMT_VAL])
    _write_images(test_dir, [p for p, _ in MSMT_QUERY + MSMT_GALLERY])
    for name, rows in (
        ("train", MSMT_TRAIN),
        ("val", MSMT_VAL),
        ("query", MSMT_QUERY),
        ("gallery", MSMT_GALLERY),
    ):
        _write_lines(root / f"list_{name}.txt", [f"{p} {pid}" for p, pid in rows] + [""])
    return root


# -- SYSU-MM01 --------------------------------------------------------------------------------
# pid -> {camera: number of images}
SYSU_IMAGES: dict[int, dict[int, int]] = {
    1: {1: 2, 3: 1},  # train
    2: {2: 1, 6: 1},  # train
    3: {4: 1, 3: 1},  # val
    4: {1: 2, 2: 1, 4: 1, 5: 1, 3: 2, 6: 1},  # test
    5: {5: 1, 6: 2},  # test
    6: {1: 1},  # in no id list: ignored
}


def build_sysu_mm01(parent: Path) -> Path:
    """SYSU-MM01: train ids 1, 2; val id 3; test ids 4, 5 (see ``SYSU_IMAGES``).
    train (+val) 7 images, train without val 5; query (IR, cams 3, 6) 5; gallery (RGB) 6."""
    root = parent / "SYSU-MM01"
    rels = []
    for pid, cams in SYSU_IMAGES.items():
        for cam, count in cams.items():
            rels += [f"cam{cam}/{pid:04d}/{k + 1:04d}.jpg" for k in range(count)]
    _write_images(root, rels)
    _write_lines(root / "exp" / "train_id.txt", ["1,2"])
    _write_lines(root / "exp" / "val_id.txt", ["3"])
    _write_lines(root / "exp" / "test_id.txt", ["4,5"])
    return root


# -- RegDB ------------------------------------------------------------------------------------
def _regdb_name(pid: int, k: int, thermal: bool) -> str:
    folder, tag = ("Thermal", "t") if thermal else ("Visible", "v")
    sex = "female" if pid % 2 else "male"
    return f"{folder}/{pid}/{sex}_front_{tag}_{pid * 10 + k:05d}_{pid}.bmp"


REGDB_SPLITS = {1: ([1, 2], [3, 4]), 2: ([3, 4], [1, 2])}  # trial -> (train pids, test pids)


def build_regdb(parent: Path) -> Path:
    """RegDB with person folders 1..4, two .bmp images per person and modality, and trials
    1 (train 1, 2 / test 3, 4) and 2 (swapped). Labels are 0..N-1 within each list.
    Per trial: train 8 records, query (thermal) 4, gallery (visible) 4."""
    root = parent / "RegDB"
    rels = [_regdb_name(p, k, t) for p in range(1, 5) for t in (False, True) for k in (1, 2)]
    _write_images(root, rels)
    for trial, (train_ids, test_ids) in REGDB_SPLITS.items():
        for split, ids in (("train", train_ids), ("test", test_ids)):
            for modal, thermal in (("visible", False), ("thermal", True)):
                lines = [
                    f"{_regdb_name(pid, k, thermal)} {label}"
                    for label, pid in enumerate(ids)
                    for k in (1, 2)
                ]
                _write_lines(root / "idx" / f"{split}_{modal}_{trial}.txt", lines)
    return root


# -- LLCM -------------------------------------------------------------------------------------
def _llcm_name(pid: int, cam: int, frame: int, modal: str) -> str:
    return f"{modal}/{pid:04d}/{pid:04d}_c{cam:02d}_s18{pid}535_f{frame}_{modal}.jpg"


LLCM_LISTS = {  # list -> [(pid, cam, frame, label)]
    "train_vis": [(1, 1, 7010, 0), (1, 4, 7011, 0), (2, 2, 7020, 1)],
    "train_nir": [(1, 1, 8010, 0), (2, 5, 8020, 1), (2, 6, 8021, 1)],
    "test_vis": [(3, 7, 3195, 0), (3, 3, 3196, 0), (4, 9, 3200, 1)],
    "test_nir": [(3, 7, 4195, 0), (4, 8, 4200, 1), (4, 9, 4201, 1)],
}


def build_llcm(parent: Path) -> Path:
    """LLCM: train ids 1, 2 (labels 0, 1), test ids 3, 4 (labels 0, 1); 3 images in each of
    idx/train_vis, train_nir, test_vis (gallery), test_nir (query); cameras from ``_cNN``."""
    root = parent / "LLCM"
    for name, rows in LLCM_LISTS.items():
        modal = name.split("_")[1]
        rels = [_llcm_name(pid, cam, frame, modal) for pid, cam, frame, _ in rows]
        _write_images(root, rels)
        _write_lines(
            root / "idx" / f"{name}.txt",
            [f"{rel} {row[3]}" for rel, row in zip(rels, rows, strict=True)],
        )
    return root


# -- PKU-Sketch -------------------------------------------------------------------------------
def build_pku_sketch(parent: Path, num_ids: int = 6, simple_names: bool = False) -> Path:
    """PKUSketchRE-ID_V1 with ids 1..num_ids: ``sketch/<id>.jpg`` and two photos per id,
    ``photo/<id>_<cam>_<frame>.jpg`` with cams 1 and 3 (``<id>_<cam>.jpg`` if
    ``simple_names``); the second photo of id 2 is a ``.bmp`` as in the real release."""
    root = parent / "PKUSketchRE-ID_V1"
    rels = []
    for pid in range(1, num_ids + 1):
        rels.append(f"sketch/{pid}.jpg")
        for cam in (1, 3):
            stem = f"{pid}_{cam:02d}" if simple_names else f"{pid}_{cam:02d}_{100 * pid + cam}"
            ext = "bmp" if (pid, cam) == (2, 3) else "jpg"
            rels.append(f"photo/{stem}.{ext}")
    _write_images(root, rels)
    _write_lines(root / "styleAnnotation" / "a_3.txt", ["1", "2", "3"])
    return root


# -- Market-Sketch-1K --------------------------------------------------------------------------
MASK1K_PHOTO_TRAIN = [
    "0002_c1s1_000451_01.jpg",
    "0002_c3s1_000551_01.jpg",
    "0007_c2s3_076444_03.jpg",
    "0007_c6s3_086542_02.jpg",
]
MASK1K_PHOTO_QUERY = [  # the test gallery
    "0001_c2s1_000301_01.jpg",
    "0001_c5s1_000401_02.jpg",
    "0003_c1s1_000101_01.jpg",
    "0003_c4s1_000201_01.jpg",
    "0000_c1s1_000001_00.jpg",  # distractor
    "-1_c2s1_000004_00.jpg",  # junk
]
# style -> (train pids, query pids) with a sketch ``sketch/<style>/<split>/<pid>_<style>.jpg``
MASK1K_SKETCHES: dict[str, tuple[list[int], list[int]]] = {
    "A": ([2, 7], [1, 3]),
    "B": ([2], [1]),
    "C": ([7], [3]),
    "D": ([2], [1]),
    "E": ([7], [3]),
    "F": ([2], [3]),
}


def build_market_sketch_1k(parent: Path) -> Path:
    """Market-Sketch-1K: ``photo/train`` 4 photos (pids 2, 7), ``photo/query`` (the gallery)
    4 photos of pids 1, 3 + 1 distractor + 1 junk; sketches of styles A-F (see
    ``MASK1K_SKETCHES``): 7 train sketches, 7 query sketches. All styles: train 11, query 7,
    gallery 5."""
    root = parent / "Market-Sketch-1K"
    _write_images(root / "photo" / "train", MASK1K_PHOTO_TRAIN)
    _write_images(root / "photo" / "query", MASK1K_PHOTO_QUERY)
    rels = [
        f"sketch/{style}/{split}/{pid:04d}_{style}.jpg"
        for style, splits in MASK1K_SKETCHES.items()
        for split, pids in zip(("train", "query"), splits, strict=True)
        for pid in pids
    ]
    _write_images(root, rels)
    return root


# -- ORBench ----------------------------------------------------------------------------------
ORBENCH_TRAIN_ANNOS = [  # train identity folders 0001 -> id 1, 0003 -> id 2
    {"id": 1, "file_path": "vis/0001/0001_v01.jpg", "caption": "A man in a black coat."},
    {
        "id": 1,
        "file_path": "vis/0001/0001_v02.jpg",
        "caption": ["Black coat, grey trousers.", "He carries a bag."],
    },
    {"id": 2, "file_path": "vis/0003/0003_v01.jpg", "caption": "A woman in a red dress."},
]
ORBENCH_TRAIN_OTHERS = [  # nir / cp / sk images of the training folders
    "nir/0001/0001_n01.jpg",
    "nir/0001/0001_n02.jpg",
    "cp/0001/0001_cp01.jpg",
    "sk/0001/0001_sk01.jpg",
    "nir/0003/0003_n01.jpg",
    "cp/0003/0003_cp01.jpg",
    "sk/0003/0003_sk01.jpg",
    "sk/0003/0003_sk02.jpg",
    "vis/0002/0002_v01.jpg",  # an identity in no annotation: ignored
]
ORBENCH_CAPTIONS = {4: "A boy in a yellow shirt.", 5: "A girl with a blue umbrella."}
ORBENCH_PROTOCOL: dict[str, list[list]] = {
    "RGB_GALLERY": [
        [4, "vis/0004/0004_v01.jpg"],
        [4, "vis/0004/0004_v02.jpg"],
        [5, "vis/0005/0005_v01.jpg"],
    ],
    "NIR": [[4, "nir/0004/0004_n01.jpg"], [5, "nir/0005/0005_n01.jpg"]],
    "CP": [[4, "cp/0004/0004_cp01.jpg"], [5, "cp/0005/0005_cp01.jpg"]],
    "SK": [[5, "sk/0005/0005_sk01.jpg"]],
    "TEXT": [[4, ORBENCH_CAPTIONS[4]], [5, ORBENCH_CAPTIONS[5]]],
    "NIR+CP": [[4, "nir/0004/0004_n01.jpg", "cp/0004/0004_cp01.jpg"]],
    "TEXT+SK": [[5, ORBENCH_CAPTIONS[5], "sk/0005/0005_sk01.jpg"]],
    "NIR+CP+SK+TEXT": [
        [
            5,
            "nir/0005/0005_n01.jpg",
            "cp/0005/0005_cp01.jpg",
            "sk/0005/0005_sk01.jpg",
            ORBENCH_CAPTIONS[5],
        ]
    ],
}


def build_orbench(parent: Path) -> Path:
    """ORBench: train folders 0001 (id 1: 2 RGB images, 3 captions, 2 IR, 1 colour pencil,
    1 sketch) and 0003 (id 2: 1 RGB, 1 caption, 1 IR, 1 colour pencil, 2 sketches): train 15
    records; test pids 4, 5: gallery 3 RGB, query 7 (NIR 2, CP 2, SK 1, TEXT 2), plus the
    combined protocol keys NIR+CP, TEXT+SK and NIR+CP+SK+TEXT (one query each)."""
    root = parent / "ORBench"
    test_rels = {
        value
        for rows in ORBENCH_PROTOCOL.values()
        for row in rows
        for value in row[1:]
        if value.endswith(".jpg")
    }
    rels = [a["file_path"] for a in ORBENCH_TRAIN_ANNOS] + ORBENCH_TRAIN_OTHERS
    _write_images(root, rels + sorted(test_rels))
    (root / "train_annos.json").write_text(json.dumps(ORBENCH_TRAIN_ANNOS, indent=1), "utf-8")
    (root / "test_gallery_and_queries.json").write_text(json.dumps(ORBENCH_PROTOCOL), "utf-8")
    return root


# -- text datasets ----------------------------------------------------------------------------
def _caption_entries(path_key: str, rows: list[tuple[str, int, str, list[str]]]) -> list[dict]:
    entries = []
    for split, pid, rel, captions in rows:
        entry: dict = {"split": split, "captions": captions, path_key: rel, "id": pid}
        if path_key == "file_path":
            entry["processed_tokens"] = [c.lower().rstrip(".").split() for c in captions]
        entries.append(entry)
    return entries


CUHK_ROWS = [
    ("train", 1, "CUHK01/0107002.png", ["A woman in a red coat.", "She carries a bag."]),
    ("train", 1, "cam_a/000_45.bmp", ["The woman wears a red coat and jeans."]),
    ("train", 2, "Market/0001_c1s1_001051_00.jpg", ["A man in black.", "He has a cap."]),
    ("test", 5, "test_query/p10376_s14337.jpg", ["A girl in a white dress.", "Long hair."]),
    ("test", 6, "CUHK03/1_2_1.png", ["A man with a blue backpack.", "Grey shorts."]),
    ("val", 9, "train_query/p8848_s17661.jpg", ["Someone in green."]),
]

ICFG_ROWS = [
    ("train", 0, "train/0000/0000_000_01_0303morning_0001_0.jpg", ["Man in a blue jacket."]),
    ("train", 0, "train/0000/0000_001_05_0303noon_0002_0.jpg", ["Blue jacket, black pants."]),
    ("train", 1, "train/0001/0001_000_03_0113morning_0001_0.jpg", ["Woman with a pink bag."]),
    ("test", 7, "test/0007/0007_000_12_0114noon_0005_0.jpg", ["A boy in a yellow shirt."]),
    ("test", 8, "test/0008/0008_002_09_0302morning_0010_0.jpg", ["A man in a suit."]),
]

RSTP_ROWS = [
    ("train", 0, "0000_c14_0031.jpg", ["The man wears a grey jacket.", "A strong man."]),
    ("train", 0, "0000_c2_0040.jpg", ["Grey jacket, blue shirt.", "Brown shoes."]),
    ("val", 3, "0003_c5_0001.jpg", ["Validation caption.", "Another one."]),
    ("test", 4, "0004_c7_0002.jpg", ["A woman in a long coat.", "She holds a phone."]),
    ("test", 4, "0004_c9_0003.jpg", ["Long coat and boots.", "Black hair."]),
]


def _build_caption_dataset(
    parent: Path,
    folder: str,
    json_name: str,
    path_key: str,
    rows: list[tuple[str, int, str, list[str]]],
) -> Path:
    root = parent / folder
    _write_images(root / "imgs", [rel for _, _, rel, _ in rows])
    entries = _caption_entries(path_key, rows)
    (root / json_name).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return root


def build_cuhk_pedes(parent: Path) -> Path:
    """CUHK-PEDES: train 3 images / 5 captions (pids 1, 2), test 2 images / 4 captions
    (pids 5, 6), val 1 image (ignored); ``reid_raw.json`` + ``imgs/``."""
    return _build_caption_dataset(parent, "CUHK-PEDES", "reid_raw.json", "file_path", CUHK_ROWS)


def build_icfg_pedes(parent: Path) -> Path:
    """ICFG-PEDES: train 3 images / 3 captions (pids 0, 1), test 2 images / 2 captions
    (pids 7, 8); MSMT17 file names (cameras 1, 5, 3, 12, 9); ``ICFG-PEDES.json`` + ``imgs/``."""
    return _build_caption_dataset(parent, "ICFG-PEDES", "ICFG-PEDES.json", "file_path", ICFG_ROWS)


def build_rstpreid(parent: Path) -> Path:
    """RSTPReid: train 2 images / 4 captions (pid 0), val 1 image (ignored), test 2 images /
    4 captions (pid 4); names ``PPPP_cCC_FFFF.jpg``; ``data_captions.json`` + ``imgs/``."""
    return _build_caption_dataset(parent, "RSTPReid", "data_captions.json", "img_path", RSTP_ROWS)


DATASET_BUILDERS = {
    "market1501": build_market1501,
    "msmt17": build_msmt17,
    "sysu_mm01": build_sysu_mm01,
    "regdb": build_regdb,
    "llcm": build_llcm,
    "pku_sketch": build_pku_sketch,
    "cuhk_pedes": build_cuhk_pedes,
    "icfg_pedes": build_icfg_pedes,
    "rstpreid": build_rstpreid,
}

# loaders without a zero-shot runner yet (``aioreid evaluate`` has no rows for them), kept
# apart so tests over ``DATASET_BUILDERS`` stay about the datasets it can evaluate
MULTIMODAL_BUILDERS = {
    "market_sketch_1k": build_market_sketch_1k,
    "orbench": build_orbench,
}
