"""File names and index files of the public dataset layouts the world is written in, so the
real-data loaders read it exactly like the real datasets:

* Market-1501: ``Market-1501-v15.09.15/{bounding_box_train,bounding_box_test,query}/
  PPPP_cCsS_FFFFFF_NN.jpg`` (pid ``-1`` junk and ``0000`` distractors in the test gallery);
* SYSU-MM01: ``SYSU-MM01/cam1..cam6/PPPP/NNNN.jpg`` (cam3 and cam6 are IR) plus
  ``exp/{train,val,test}_id.txt`` (one line of comma-separated ids);
* PKU-Sketch: ``PKUSketchRE-ID_V1/photo/<id>_<k>.jpg`` and ``sketch/<id>.jpg``;
* CUHK-PEDES: ``CUHK-PEDES/imgs/<subdir>/<file>.jpg`` and ``reid_raw.json``.

IR images and sketches are stored as 3-channel JPEGs with identical channels (like
SYSU-MM01's IR images); read them as grayscale or RGB alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

MARKET = "Market-1501-v15.09.15"
SYSU = "SYSU-MM01"
PKU = "PKUSketchRE-ID_V1"
CUHK = "CUHK-PEDES"
SKETCHES = "sketches"
VIDEOS = "videos"
ALL_DIRS = (MARKET, SYSU, PKU, CUHK, SKETCHES, VIDEOS)

#: SYSU-MM01 camera folders by modality (real dataset: 1, 2, 4, 5 visible; 3, 6 infrared).
SYSU_RGB_CAMS = (1, 2, 4, 5)
SYSU_IR_CAMS = (3, 6)
CUHK_SUBDIR = "synth"
JPEG_QUALITY = 90


def encode_jpeg(img: np.ndarray) -> bytes:
    """JPEG bytes (quality 90) of an RGB H×W×3 or gray H×W image (gray → 3 equal channels)."""
    bgr = (
        cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.ndim == 2
        else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    )
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def market_name(pid: int, cam: int, frame: int, box: int = 1, seq: int = 1) -> str:
    """``0002_c1s1_000451_01.jpg``; pid ``-1`` is written ``-1_c…`` like the real junk files."""
    if not 1 <= cam <= 9:
        raise ValueError(f"Market-1501 camera ids are one digit, got {cam}")
    head = "-1" if pid == -1 else f"{pid:04d}"
    return f"{head}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"


def market_path(split: str, name: str) -> str:
    """Relative path of a Market image in ``bounding_box_train``/``bounding_box_test``/``query``."""
    if split not in ("bounding_box_train", "bounding_box_test", "query"):
        raise ValueError(f"unknown Market-1501 split {split!r}")
    return f"{MARKET}/{split}/{name}"


def sysu_cam(modality: str, index: int) -> int:
    """SYSU camera folder of the ``index``-th (0-based) world camera of ``modality``.

    Worlds with more cameras than SYSU has of a modality fold them onto its folders.
    """
    table = SYSU_RGB_CAMS if modality == "rgb" else SYSU_IR_CAMS
    return table[index % len(table)]


def sysu_path(cam: int, pid: int, n: int) -> str:
    """``SYSU-MM01/cam3/0007/0002.jpg`` (``n`` is 1-based)."""
    return f"{SYSU}/cam{cam}/{pid:04d}/{n:04d}.jpg"


def write_sysu_ids(
    root: Path, train: Sequence[int], val: Sequence[int], test: Sequence[int]
) -> None:
    """``exp/{train,val,test}_id.txt``: one line of comma-separated ids, like the real files."""
    exp = root / SYSU / "exp"
    exp.mkdir(parents=True, exist_ok=True)
    for name, ids in (("train_id.txt", train), ("val_id.txt", val), ("test_id.txt", test)):
        (exp / name).write_text(",".join(str(i) for i in ids) + "\n", encoding="utf-8")
    for cam in (*SYSU_RGB_CAMS, *SYSU_IR_CAMS):
        (root / SYSU / f"cam{cam}").mkdir(parents=True, exist_ok=True)


def pku_photo(pid: int, k: int) -> str:
    """``PKUSketchRE-ID_V1/photo/<id>_<k>.jpg`` (k = 1, 2)."""
    return f"{PKU}/photo/{pid}_{k}.jpg"


def pku_sketch(pid: int) -> str:
    """``PKUSketchRE-ID_V1/sketch/<id>.jpg``."""
    return f"{PKU}/sketch/{pid}.jpg"


def cuhk_file(pid: int, cam: int, k: int) -> str:
    """CUHK-PEDES ``file_path`` (relative to ``imgs/``)."""
    return f"{CUHK_SUBDIR}/{pid:04d}_c{cam}_{k + 1}.jpg"


def cuhk_path(file_path: str) -> str:
    """Path relative to the world root of a CUHK-PEDES image."""
    return f"{CUHK}/imgs/{file_path}"


def write_cuhk_json(root: Path, entries: Iterable[dict[str, object]]) -> Path:
    """``CUHK-PEDES/reid_raw.json``: list of {split, captions, file_path, processed_tokens, id}."""
    path = root / CUHK / "reid_raw.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(entries), indent=1) + "\n", encoding="utf-8")
    return path


def sketch_path(pid: int, k: int) -> str:
    """The world's own sketch file (all 1-2 sketches per identity)."""
    return f"{SKETCHES}/{pid:04d}_{k + 1}.jpg"


def video_paths(cam: int, clip: int, ext: str = ".mp4") -> tuple[str, str]:
    """(video, annotation) paths of a clip relative to the world root."""
    base = f"{VIDEOS}/cam{cam}/clip{clip + 1:02d}"
    return base + ext, base + ".json"
