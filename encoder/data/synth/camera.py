"""Cameras of the synthetic world: seeded per-camera scene, lighting, viewpoint habits and
image degradation (blur, noise, low resolution). RGB and IR cameras share the geometry code;
IR cameras render a thermal scene instead of a coloured one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .figure import Pose

#: Salts of the per-camera random streams.
_STYLE_STREAM = 101


@dataclass(frozen=True)
class Camera:
    """A static camera: 1-based world id, ``modality`` ``"rgb"`` or ``"ir"``, display name,
    whether it is held out (test identities only) and the world seed it belongs to."""

    cam_id: int
    modality: str
    name: str
    held_out: bool = False
    seed: int = 0

    @property
    def style(self) -> CameraStyle:
        """The camera's seeded look (cached)."""
        return camera_style(self.seed, self.cam_id, self.modality)

    def to_dict(self) -> dict[str, object]:
        """Manifest entry."""
        return {
            "id": self.cam_id,
            "modality": self.modality,
            "held_out": self.held_out,
            "name": self.name,
        }


@dataclass(frozen=True)
class SceneObject:
    """A background object: kind, box (x, y, w, h) in scene fractions, RGB colour or IR level."""

    kind: str
    box: tuple[float, float, float, float]
    colour: tuple[int, int, int]
    level: int


@dataclass(frozen=True)
class CameraStyle:
    """Everything that makes one camera's images look like that camera's."""

    outdoor: bool
    wall: tuple[int, int, int]
    floor: tuple[int, int, int]
    horizon: float
    floor_texture: str
    objects: tuple[SceneObject, ...]
    gain: tuple[float, float, float]
    gradient: float
    brightness: float
    blur: tuple[float, float]
    noise: float
    resolution: tuple[float, float]
    yaw_modes: tuple[float, ...]
    scale: tuple[float, float]
    occlusion: float
    wall_level: int
    floor_level: int
    ir_gain: float
    ir_offset: float
    hotspot: float
    stripe_noise: float


@lru_cache(maxsize=64)
def camera_style(seed: int, cam_id: int, modality: str) -> CameraStyle:
    """Seeded style of camera ``cam_id`` (independent of every other camera)."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, cam_id, _STYLE_STREAM])
    outdoor = bool(rng.random() < 0.45)
    if outdoor:
        wall = tuple(int(v) for v in rng.integers(90, 200, 3))
        floor_tex = str(rng.choice(["asphalt", "paving", "grass"]))
        floor = {"asphalt": (78, 78, 82), "paving": (150, 140, 128), "grass": (80, 120, 60)}[
            floor_tex
        ]
    else:
        wall = tuple(int(v) for v in rng.integers(120, 235, 3))
        floor_tex = str(rng.choice(["tiles", "planks", "carpet"]))
        floor = tuple(int(v) for v in rng.integers(60, 190, 3))
    floor = tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in floor)
    objects: list[SceneObject] = []
    n_obj = int(rng.integers(3, 7))
    kinds = ["door", "window", "poster", "pole", "plant", "bench", "lamp"]
    if outdoor:
        kinds = ["tree", "window", "pole", "car", "sign", "door", "lamp"]
    for _ in range(n_obj):
        kind = str(rng.choice(kinds))
        x = float(rng.uniform(0.0, 1.0))
        sizes = {
            "door": (0.12, 0.45),
            "window": (0.16, 0.22),
            "poster": (0.08, 0.12),
            "pole": (0.025, 0.9),
            "plant": (0.1, 0.2),
            "bench": (0.25, 0.1),
            "lamp": (0.05, 0.06),
            "tree": (0.2, 0.6),
            "car": (0.45, 0.25),
            "sign": (0.08, 0.1),
        }[kind]
        w = sizes[0] * float(rng.uniform(0.7, 1.3))
        h = sizes[1] * float(rng.uniform(0.8, 1.2))
        if kind in ("bench", "car", "plant"):
            y = 0.0  # stands on the floor line
        elif kind in ("pole", "tree"):
            y = 0.0
        else:
            y = float(rng.uniform(0.08, 0.45))
        colour = tuple(int(v) for v in rng.integers(20, 235, 3))
        level = {
            "lamp": 235,
            "window": 40,
            "car": 120,
            "plant": 85,
            "tree": 80,
            "pole": 70,
            "door": 95,
            "poster": 100,
            "bench": 75,
            "sign": 90,
        }[kind]
        objects.append(SceneObject(kind, (x, y, w, h), colour, int(level + rng.integers(-15, 16))))
    cast = rng.uniform(0.82, 1.18, 3)
    cast = cast / cast.mean()
    view = rng.random()
    if view < 0.35:
        yaw_modes = (0.0, math.pi)  # corridor: people come and go
    elif view < 0.7:
        yaw_modes = (math.pi / 2, -math.pi / 2)  # crossing
    else:
        yaw_modes = (math.pi / 4, -3 * math.pi / 4, -math.pi / 4, 3 * math.pi / 4)
    ir = modality == "ir"
    res_lo = float(rng.uniform(0.25, 0.45) if ir else rng.uniform(0.3, 0.7))
    return CameraStyle(
        outdoor=outdoor,
        wall=wall,  # type: ignore[arg-type]
        floor=floor,  # type: ignore[arg-type]
        horizon=float(rng.uniform(0.62, 0.82)),
        floor_texture=floor_tex,
        objects=tuple(objects),
        gain=(float(cast[0]), float(cast[1]), float(cast[2])),
        gradient=float(rng.uniform(-0.25, 0.25)),
        brightness=float(rng.uniform(0.75, 1.15)),
        blur=(0.3, float(rng.uniform(0.8, 1.6) if ir else rng.uniform(0.5, 1.3))),
        noise=float(rng.uniform(4.0, 9.0) if ir else rng.uniform(2.0, 6.0)),
        resolution=(res_lo, min(1.0, res_lo + 0.35)),
        yaw_modes=yaw_modes,
        scale=(float(rng.uniform(0.78, 0.86)), float(rng.uniform(0.9, 0.97))),
        occlusion=float(rng.uniform(0.12, 0.35)),
        wall_level=int(rng.integers(55, 110)),
        floor_level=int(rng.integers(35, 90)),
        ir_gain=float(rng.uniform(0.8, 1.1)),
        ir_offset=float(rng.uniform(-10, 15)),
        hotspot=float(rng.uniform(0.0, 0.25)),
        stripe_noise=float(rng.uniform(0.0, 4.0)),
    )


def _scene_rng(cam: Camera, h: int, w: int) -> np.random.Generator:
    return np.random.default_rng([cam.seed & 0xFFFFFFFF, cam.cam_id, h, w, 7])


def _draw_objects(
    img: np.ndarray, st: CameraStyle, h: int, w: int, horizon_px: int, ir: bool
) -> None:
    unit = h  # object sizes are fractions of the scene height
    for ob in st.objects:
        x, y, ow, oh = ob.box
        x0 = int(x * w)
        pw, ph = max(2, int(ow * unit)), max(2, int(oh * unit))
        base = horizon_px - int(y * unit)
        col: tuple[int, ...] | int = ob.level if ir else ob.colour
        dark: tuple[int, ...] | int = (
            int(ob.level * 0.8) if ir else tuple(int(c * 0.6) for c in ob.colour)
        )
        if ob.kind == "pole":
            cv2.rectangle(img, (x0, base - int(0.9 * h)), (x0 + pw, base), dark, -1)
        elif ob.kind == "tree":
            cv2.rectangle(
                img,
                (x0 + pw // 2 - 3, base - ph // 2),
                (x0 + pw // 2 + 3, base),
                (60 if ir else (70, 50, 30)),
                -1,
            )
            cv2.ellipse(
                img,
                (x0 + pw // 2, base - ph // 2 - ph // 4),
                (pw // 2, ph // 3),
                0,
                0,
                360,
                (ob.level if ir else (50, 100 + ob.colour[1] // 4, 45)),
                -1,
            )
        elif ob.kind == "plant":
            cv2.rectangle(img, (x0, base - ph // 3), (x0 + pw // 2, base), dark, -1)
            cv2.ellipse(
                img,
                (x0 + pw // 4, base - ph // 2),
                (pw // 2, ph // 3),
                0,
                0,
                360,
                (ob.level if ir else (40, 120, 50)),
                -1,
            )
        elif ob.kind == "lamp":
            cv2.ellipse(
                img,
                (x0, base - ph),
                (pw // 2, ph // 2),
                0,
                0,
                360,
                (ob.level if ir else (250, 245, 220)),
                -1,
            )
        elif ob.kind == "window":
            cv2.rectangle(img, (x0, base - ph), (x0 + pw, base), col, -1)
            cv2.rectangle(img, (x0, base - ph), (x0 + pw, base), dark, 2)
            cv2.line(img, (x0 + pw // 2, base - ph), (x0 + pw // 2, base), dark, 1)
        else:
            cv2.rectangle(img, (x0, base - ph), (x0 + pw, base), col, -1)
            cv2.rectangle(img, (x0, base - ph), (x0 + pw, base), dark, 1)
            if ob.kind == "car":
                for wx in (x0 + pw // 5, x0 + 4 * pw // 5):
                    cv2.circle(img, (wx, base), max(2, ph // 4), (30 if ir else (25, 25, 25)), -1)


@lru_cache(maxsize=64)
def background(cam: Camera, h: int, w: int) -> np.ndarray:
    """The camera's scene (h×w×3 RGB or h×w IR), drawn once and cached. Read-only."""
    st = cam.style
    ir = cam.modality == "ir"
    rng = _scene_rng(cam, h, w)
    horizon_px = int(st.horizon * h)
    if ir:
        img = np.full((h, w), st.wall_level, np.uint8)
        ramp = np.linspace(st.floor_level + 15, st.floor_level - 10, h - horizon_px)
        img[horizon_px:] = np.clip(ramp, 0, 255).astype(np.uint8)[:, None]
    else:
        img = np.empty((h, w, 3), np.uint8)
        img[:horizon_px] = st.wall
        ramp = np.linspace(0.85, 1.1, h - horizon_px)[:, None, None]
        img[horizon_px:] = np.clip(np.asarray(st.floor)[None, None, :] * ramp, 0, 255)
    line = int(st.floor_level * 0.8) if ir else tuple(int(c * 0.75) for c in st.floor)
    if st.floor_texture in ("tiles", "paving"):
        y, step = horizon_px, 6.0
        while y < h:
            cv2.line(img, (0, int(y)), (w, int(y)), line, 1)
            step *= 1.35
            y += step
        for k in range(-8, 9):
            x_top = w / 2 + k * w / 10
            cv2.line(img, (int(x_top), horizon_px), (int(w / 2 + k * w / 4), h), line, 1)
    elif st.floor_texture == "planks":
        for k in range(0, w, max(8, w // 24)):
            cv2.line(img, (k, horizon_px), (int(k + (k - w / 2) * 0.3), h), line, 1)
    if not ir and not st.outdoor:
        cv2.rectangle(
            img, (0, horizon_px - 4), (w, horizon_px), tuple(int(c * 0.7) for c in st.wall), -1
        )  # skirting board
    _draw_objects(img, st, h, w, horizon_px, ir)
    # low-frequency texture so the background is not flat
    small = rng.normal(0.0, 1.0, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
    tex = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    amp = 6.0 if st.floor_texture in ("grass", "carpet", "asphalt") else 3.0
    mod = tex * 7.0 + fine * amp
    out = img.astype(np.float32) + (mod if ir else mod[:, :, None])
    out = np.clip(out, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def light_map(cam: Camera, h: int, w: int) -> np.ndarray:
    """Per-pixel gain (h×w×3 for RGB, h×w for IR): colour cast, gradient, IR hot-spot."""
    st = cam.style
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)
    grad = 1.0 + st.gradient * xs[None, :] - 0.1 * ys[:, None]
    if cam.modality == "ir":
        r2 = (xs[None, :] * 1.6) ** 2 + ys[:, None] ** 2
        out = grad * (1.0 + st.hotspot * (0.5 - r2)) * st.ir_gain
    else:
        out = grad[:, :, None] * np.asarray(st.gain, np.float32)[None, None, :] * st.brightness
    out = out.astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """A fixed 512×512×3 Gaussian noise tile; images slice it at seeded offsets."""
    t = np.random.default_rng(20240501).normal(0.0, 1.0, (512, 512, 3)).astype(np.float32)
    t.setflags(write=False)
    return t


def sample_pose(cam: Camera, rng: np.random.Generator) -> Pose:
    """A walking pose with this camera's habitual viewpoints."""
    st = cam.style
    yaw = float(st.yaw_modes[int(rng.integers(len(st.yaw_modes)))] + rng.normal(0.0, 0.3))
    phase = float(rng.uniform(0.0, 2 * math.pi))
    amp = float(rng.uniform(0.1, 0.35) if rng.random() < 0.12 else rng.uniform(0.6, 1.15))
    return Pose(phase=phase, yaw=yaw, amplitude=amp)


def finish(
    img: np.ndarray, cam: Camera, rng: np.random.Generator, lighting: float = 1.0
) -> np.ndarray:
    """Apply the camera's lighting, low resolution, blur and noise to a rendered frame.

    ``img`` is h×w×3 (RGB camera) or h×w (IR camera) uint8; returns the same shape.
    """
    st = cam.style
    h, w = img.shape[:2]
    ir = cam.modality == "ir"
    gain = light_map(cam, h, w)
    f = img.astype(np.float32) * gain * np.float32(lighting)
    if ir:
        f += np.float32(st.ir_offset)
    res = float(rng.uniform(*st.resolution))
    if res < 0.95:
        sw_, sh_ = max(8, round(w * res)), max(8, round(h * res))
        f = cv2.resize(
            cv2.resize(f, (sw_, sh_), interpolation=cv2.INTER_AREA),
            (w, h),
            interpolation=cv2.INTER_LINEAR,
        )
    sigma = float(rng.uniform(*st.blur))
    if rng.random() < 0.15:  # motion blur
        k = int(rng.integers(3, 8))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        f = cv2.filter2D(f, -1, kern)
    elif sigma > 0.35:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    tile = _noise_tile()
    oy = int(rng.integers(0, tile.shape[0] - h)) if h < tile.shape[0] else 0
    ox = int(rng.integers(0, tile.shape[1] - w)) if w < tile.shape[1] else 0
    th, tw = min(h, tile.shape[0]), min(w, tile.shape[1])
    noise = tile[oy : oy + th, ox : ox + tw]
    if (th, tw) != (h, w):
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)
    if ir:
        f += noise[:, :, 0] * np.float32(st.noise)
        if st.stripe_noise > 0.5:
            f += noise[0, :, 1][None, :] * np.float32(st.stripe_noise)  # column fixed pattern
    else:
        f += noise * np.float32(st.noise)
    return np.clip(f, 0, 255).astype(np.uint8)


def crop_placement(
    cam: Camera, rng: np.random.Generator, h: int, w: int, height_scale: float
) -> tuple[float, float, float, int]:
    """Where a detected person sits in an h×w crop: (height_px, foot_x, ground_y, bg offset).

    Detection boxes normalise the person's size, so the identity's stature only leaks in a
    little (``height_scale ** 0.3``).
    """
    st = cam.style
    frac = float(rng.uniform(*st.scale))
    height_px = h * frac / height_scale**0.7
    foot_x = w / 2 + float(rng.normal(0.0, 0.05 * w))
    ground_y = h - float(rng.uniform(0.01, 0.07)) * h
    if rng.random() < 0.1:  # badly aligned detection
        foot_x += float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.25) * w)
        ground_y += float(rng.uniform(-0.05, 0.12) * h)
    offset = int(rng.integers(0, 2 * w + 1))
    return height_px, foot_x, ground_y, offset


@dataclass(frozen=True)
class Occluder:
    """Something between the camera and the person: ``kind`` is ``box`` (bin, bench, car
    bonnet rising from the bottom), ``pole`` or ``person`` (another pedestrian, whose
    identity stream is ``other_pid``); ``rect`` is (x0, y0, x1, y1) in pixels; ``shade`` in
    [0, 1] picks the colour / temperature."""

    kind: str
    rect: tuple[int, int, int, int]
    shade: float
    other_pid: int = 0
    in_front: bool = True


def sample_occluder(cam: Camera, rng: np.random.Generator, h: int, w: int) -> Occluder | None:
    """A random partial occlusion for one crop, or None (camera's occlusion rate)."""
    if rng.random() >= cam.style.occlusion:
        return None
    kind = str(rng.choice(["box", "pole", "person"], p=[0.4, 0.25, 0.35]))
    shade = float(rng.random())
    if kind == "box":
        top = int(h * rng.uniform(0.55, 0.85))
        x0 = int(rng.uniform(-0.3, 0.5) * w)
        x1 = x0 + int(rng.uniform(0.5, 1.2) * w)
        return Occluder("box", (x0, top, x1, h), shade)
    if kind == "pole":
        x0 = int(rng.uniform(0.0, 0.9) * w)
        return Occluder("pole", (x0, 0, x0 + int(rng.integers(5, 14)), h), shade)
    side = 1 if rng.random() < 0.5 else -1
    cx = int(w / 2 + side * rng.uniform(0.45, 0.75) * w)
    return Occluder(
        "person",
        (cx, 0, cx, h),
        shade,
        other_pid=1_000_000 + int(rng.integers(0, 1_000_000)),
        in_front=bool(rng.random() < 0.6),
    )
