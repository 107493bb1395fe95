"""Pure helpers behind the console's pages (no Streamlit, so they are tested directly)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def attribute_filter(text: str) -> dict[str, str]:
    """``"bag=yes, hat = beanie"`` → ``{"bag": "yes", "hat": "beanie"}``; ValueError says
    which part is not ``key=value``."""
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"attribute filter {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def hit_caption(hit: Any) -> str:
    """Score · camera · time · which query part matched best."""
    when = hit.time.strftime("%Y-%m-%d %H:%M:%S") if hit.time else "time unknown"
    who = f" · ID {hit.identity_id}" if hit.identity_id is not None else ""
    flag = {"confirmed": " ✓", "rejected": " ✗"}.get(hit.review, "")
    return f"{hit.score:.3f} · {hit.camera or '?'} · {when} · {hit.best_part}{who}{flag}"


def group_hits(groups: list[Any]) -> list[dict[str, Any]]:
    """Identity groups as titled blocks, best first; unassigned sightings are one block each."""
    out = []
    for i, g in enumerate(sorted(groups, key=lambda g: -g.best_score)):
        title = (
            f"Identity {g.identity_id}" + (f" · {g.label}" if g.label else "")
            if g.identity_id is not None
            else "Unassigned sighting"
        )
        out.append({"key": i, "title": title, "best": g.best_score, "hits": g.hits})
    return out


def job_progress(job: Any) -> tuple[float, str]:
    """Fraction done (0..1) and a label such as ``running 12/40, 1 failed``."""
    total = max(1, job.total)
    frac = min(1.0, job.processed / total) if job.total else (1.0 if job.status == "done" else 0.0)
    label = f"{job.status} {job.processed}/{job.total}"
    if job.failed:
        label += f", {job.failed} failed"
    return frac, label


def timeline_rows(sightings: list[Any]) -> list[dict[str, Any]]:
    """Sightings with a time as ``{"time", "camera"}`` rows for a timeline chart."""
    return [
        {"time": s.time, "camera": f"cam {s.camera_id}"} for s in sightings if s.time is not None
    ]


def sketch_png(rgba: np.ndarray | None) -> bytes | None:
    """A drawing pad's RGBA array → PNG bytes, or None while nothing is drawn."""
    if rgba is None:
        return None
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] < 3:
        return None
    rgb = arr[..., :3].astype(np.uint8)
    if arr.shape[2] == 4:  # transparent pixels are paper
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        rgb = (rgb * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if int(rgb.min()) > 200:  # blank
        return None
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return buf.tobytes() if ok else None


def within_limits(
    sizes: list[tuple[str, int]], max_upload_mb: float, max_files: int
) -> tuple[list[int], list[str]]:
    """Which files of an upload to send: the indices that fit the API's limits (per-file MB,
    files per request, in order), and a line per file left out saying why."""
    limit = int(max_upload_mb * 2**20)
    keep, left_out = [], []
    for i, (name, size) in enumerate(sizes):
        if size > limit:
            left_out.append(f"{name}: {size / 2**20:.1f} MB is over the {max_upload_mb:g} MB limit")
        elif len(keep) >= max_files:
            left_out.append(f"{name}: over {max_files} files per upload; send it separately")
        else:
            keep.append(i)
    return keep, left_out
