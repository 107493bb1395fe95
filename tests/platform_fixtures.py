"""Helpers for platform tests: services over a throwaway Postgres (or SQLite for the embedded
profile), a local-folder store and an in-process index, with a tiny untrained encoder.

The tiny encoder is random but deterministic: the same crop always gives the same vector, so
"a stored crop finds itself first" holds while search quality is left to the encoder tests.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aioreid.encoder.inference import Encoder
from aioreid.encoder.model import AIOConfig
from aioreid.platform.config import Settings
from aioreid.platform.services import Services

TINY = AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)


def tiny_encoder() -> Encoder:
    return Encoder.untrained(TINY, seed=0, device="cpu")


def make_settings(home: Path, db_url: str | None, *, index_backend: str = "local") -> Settings:
    return Settings(
        home=home,
        database={"url": db_url},
        index={"backend": index_backend},
        storage={"root": home / "objects"},
        encoder={"batch_size": 16, "device": "cpu"},
    )


def make_services(
    home: Path, db_url: str | None, *, index_backend: str = "local", migrate: bool = True
) -> Services:
    return Services.from_settings(
        make_settings(home, db_url, index_backend=index_backend),
        encoder=tiny_encoder(),
        migrate=migrate,
    )


def jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def person_image(seed: int, h: int = 128, w: int = 64) -> np.ndarray:
    """A random but person-shaped crop (distinct per seed)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
    img[h // 5 : h // 2, w // 5 : 4 * w // 5] = rng.integers(0, 255, 3)
    img[h // 2 :, w // 4 : 3 * w // 4] = rng.integers(0, 255, 3)
    noise = rng.integers(0, 30, img.shape, dtype=np.uint8)
    return cv2.add(img, noise)


def write_video(
    path: Path, frames: int = 24, fps: int = 8, size: tuple[int, int] = (120, 160)
) -> list[tuple[int, int, int, int]]:
    """A static scene with one person-shaped block walking across; returns its true boxes."""
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    bg = rng.integers(90, 110, (h, w, 3), dtype=np.uint8)
    boxes = []
    for i in range(frames):
        img = bg.copy()
        x, y, bw, bh = 10 + i * 5, 30, 20, 60
        img[y : y + bh // 3, x : x + bw] = (220, 40, 40)
        img[y + bh // 3 : y + bh, x : x + bw] = (30, 30, 200)
        writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        boxes.append((x, y, bw, bh))
    writer.release()
    return boxes


def write_walkers_video(
    path: Path, frames: int = 150, fps: int = 10, size: tuple[int, int] = (120, 200)
) -> dict[int, list[tuple[int, int, int, int, int]]]:
    """A static scene that three person-shaped blocks cross at different times and speeds (two
    of them cross each other); returns each walker's true ``(frame, x, y, w, h)`` boxes."""
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    bg = np.random.default_rng(1).integers(90, 110, (h, w, 3), dtype=np.uint8)
    # (first frame, x at first frame, pixels per frame, y, top colour, bottom colour)
    walkers = [
        (0, -20, 3, 30, (220, 40, 40), (30, 30, 200)),
        (40, 200, -4, 40, (40, 200, 40), (200, 200, 30)),
        (70, -20, 5, 25, (240, 240, 240), (20, 20, 20)),
    ]
    truth: dict[int, list[tuple[int, int, int, int, int]]] = {n: [] for n in range(len(walkers))}
    for i in range(frames):
        img = bg.copy()
        for n, (first, x0, speed, y, top, bottom) in enumerate(walkers):
            x = x0 + (i - first) * speed
            if i < first or x + 20 <= 0 or x >= w:
                continue
            bw, bh = 20, 60
            xa, xb = max(0, x), min(w, x + bw)
            img[y : y + bh // 3, xa:xb] = top
            img[y + bh // 3 : y + bh, xa:xb] = bottom
            truth[n].append((i, xa, y, xb - xa, bh))
        writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    writer.release()
    return truth
