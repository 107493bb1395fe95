"""The scene order every person crop shares, whatever the camera's modality."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .attributes import IdentityAttributes, sample_identity
from .camera import Camera, Occluder, background, crop_placement, sample_occluder, sample_pose
from .figure import Figure, Pose, build_figure

DrawOccluder = Callable[[np.ndarray, Occluder, Camera, np.random.Generator, int], None]
DrawFigure = Callable[[np.ndarray, Figure, float, float, float], None]


def compose_crop(
    attrs: IdentityAttributes,
    rng: np.random.Generator,
    camera: Camera,
    size: tuple[int, int],
    *,
    modality: str,
    occluder: DrawOccluder,
    figure: DrawFigure,
) -> np.ndarray:
    """Background strip, an occluding passer-by behind, the figure, any other occluder in front.

    ``figure(img, fig, fx, gy, height_px)`` draws the person in the camera's modality;
    the caller applies the camera's optics and noise afterwards.
    """
    if camera.modality != modality:
        raise ValueError(f"camera {camera.cam_id} is {camera.modality}, not {modality}")
    h, w = size
    pose = sample_pose(camera, rng)
    height_px, fx, gy, off = crop_placement(camera, rng, h, w, attrs.height_scale)
    img = np.ascontiguousarray(background(camera, h, 3 * w)[:, off : off + w])
    occ = sample_occluder(camera, rng, h, w)
    behind = occ is not None and occ.kind == "person" and not occ.in_front
    if behind:
        occluder(img, occ, camera, rng, h)
    figure(img, build_figure(attrs, pose, height_px, fx, gy), fx, gy, height_px)
    if occ is not None and not behind:
        occluder(img, occ, camera, rng, h)
    return img


def occluding_person(
    occ: Occluder, cam: Camera, rng: np.random.Generator, h: int
) -> tuple[IdentityAttributes, Figure]:
    """The passer-by of a ``person`` occluder: bigger and lower when in front, else behind."""
    other = sample_identity(occ.other_pid, cam.seed)
    pose = Pose(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(-np.pi, np.pi)))
    scale = 1.08 if occ.in_front else 0.92
    gy = h * (1.02 if occ.in_front else 0.9)
    return other, build_figure(other, pose, h * 0.9 * scale, occ.rect[0], gy)
