"""Archive-scale synthetic footage: one long clip per camera of a world, with MOTChallenge
ground truth, for evaluating detection + tracking the way the MOT community does.

People make *trips*: a trip walks a route of several cameras of the world's site (cameras sit
at seeded positions on a map; the walk between two of them takes a seeded travel time), so
the same identity appears on one camera, disappears, and shows up on the next a plausible
time later; identities make several trips over the footage and never two at once. Within a
camera's view a visit is a straight walk on the floor from an entry to an exit — the left or
right edge, or a doorway at the far end — sometimes with a pause, so people enter and leave,
cross each other at different depths and occlude one another. Held-out cameras only see test
identities, as in the rest of the world.

Layout (``<world>`` is the folder written by ``generate_world``)::

    <world>/footage/footage.json       options, start time, travel times, list of clips
    <world>/footage/cam<N>/clip.mp4    the camera's clip (clip.avi, MJPG, where OpenCV
                                       cannot write mp4)
    <world>/footage/cam<N>/gt.txt      MOTChallenge ground truth (see :func:`render_camera`)
    <world>/footage/cam<N>/clip.json   sidecar: fps, start (ISO), width, height, num_frames,
                                       camera, modality, ...

All cameras start recording at the same wall-clock time, so ``start + frame / fps`` compares
across cameras. Rendering is streaming: each frame is written as soon as it is drawn and its
ground-truth lines appended, so memory does not grow with the clip length; the visit plan
(a few numbers per visit) is the only thing held for the whole clip. Everything is a pure
function of the world's seed and the options: the same seed gives the same ``gt.txt`` bytes.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import shutil
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .attributes import IdentityAttributes
from .camera import Camera, background, finish
from .draw import SHIFT, pts
from .figure import Figure, Pose, build_figure
from .render_ir import draw_figure_ir
from .render_rgb import draw_figure_rgb
from .video import EPOCH, open_writer, video_extension
from .world import FOOTAGE, WorldManifest

#: Footage recording start (all cameras): two hours after the short clips' epoch.
FOOTAGE_START = EPOCH + timedelta(hours=2)
INDEX = "footage.json"

# random-stream ids (second element of every seed sequence), apart from world.py's and video's
_PLAN, _SITE, _FINISH = 21, 22, 23
#: Walking the floor from the far end to the camera is about this many body heights.
_DEPTH_HEIGHTS = 6.0
#: Floor depth of the far-end doorway (0: horizon, 1: bottom of the image).
_DOOR_DEPTH = 0.08
#: Keep a person this many seconds between two trips (no teleporting back).
_TRIP_GAP_S = 5.0
#: Refused trips in a row after which a camera's visit quota is given up.
_MAX_REFUSED = 200


@dataclass(frozen=True)
class FootageOptions:
    """Length and look of the footage: ``minutes`` per clip, ``fps``, frame ``size`` (H, W),
    and how busy the cameras are (``visits_per_minute``: walks through each camera's view
    per minute on average). ``workers`` (one camera per process) and ``progress`` change
    nothing in the output."""

    minutes: float
    fps: int = 10
    size: tuple[int, int] = (240, 320)
    visits_per_minute: float = 12.0
    workers: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"clip minutes must be > 0, got {self.minutes}")
        if self.fps < 1:
            raise ValueError(f"fps must be >= 1, got {self.fps}")
        if len(self.size) != 2 or min(self.size) < 64:
            raise ValueError(f"frame size must be (H, W) with both >= 64, got {self.size}")
        if not self.visits_per_minute > 0:
            raise ValueError("visits_per_minute must be > 0")

    @property
    def seconds(self) -> float:
        """Clip length in seconds."""
        return self.minutes * 60.0

    @property
    def num_frames(self) -> int:
        """Frames per clip."""
        return max(1, round(self.seconds * self.fps))


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Visit:
    """One walk through one camera's view, in scene coordinates: ``u`` is x / image width
    (0..1 in view), ``d`` the floor depth (0: horizon, 1: bottom edge). The walk starts at
    ``start`` seconds into the clip, takes ``walk_s`` seconds plus a ``pause_s`` stop at
    fraction ``pause_at`` of the way."""

    pid: int
    camera: int
    start: float
    u0: float
    d0: float
    u1: float
    d1: float
    walk_s: float
    pause_at: float
    pause_s: float
    yaw: float
    phase0: float
    cadence: float

    @property
    def end(self) -> float:
        """When the person has left the view."""
        return self.start + self.walk_s + self.pause_s

    def at(self, t: float) -> tuple[float, float, float, bool]:
        """(u, d, seconds walked so far, walking?) at clip time ``t``."""
        elapsed = t - self.start
        stop = self.pause_at * self.walk_s
        if elapsed <= stop:
            walked, moving = elapsed, True
        elif elapsed <= stop + self.pause_s:
            walked, moving = stop, False
        else:
            walked, moving = elapsed - self.pause_s, True
        f = min(1.0, max(0.0, walked / self.walk_s))
        return self.u0 + (self.u1 - self.u0) * f, self.d0 + (self.d1 - self.d0) * f, walked, moving


def person_height_px(depth: float, h: int) -> float:
    """Pixel height of an average person whose feet are at floor depth ``depth`` (the same
    perspective as the short clips' walkers)."""
    return h * (0.3 + 0.28 * depth)


def _endpoint(
    rng: np.random.Generator, side: str, door_u: float, size: tuple[int, int]
) -> tuple[float, float]:
    """(u, d) of an entry/exit: just outside the left/right edge (the whole figure hidden),
    or the doorway at the far end (people appear and vanish there)."""
    h, w = size
    if side == "door":
        return door_u, _DOOR_DEPTH
    d = float(rng.uniform(0.2, 0.95))
    margin = 0.45 * person_height_px(d, h) / w
    return (-margin if side == "left" else 1.0 + margin), d


def _sample_visit(
    rng: np.random.Generator, pid: int, cam: int, start: float, door_u: float, size: tuple[int, int]
) -> Visit:
    h, w = size
    sides = ["left", "right", "door"]
    entry = sides[int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
    # never leave where one came in: the walk would stay at the edge and look like a glitch
    others = [s for s in sides if s != entry]
    exit_ = others[int(rng.integers(2))] if entry == "door" else others[0]
    if entry != "door" and rng.random() < 0.2:
        exit_ = "door"
    u0, d0 = _endpoint(rng, entry, door_u, size)
    u1, d1 = _endpoint(rng, exit_, door_u, size)
    mean_h = person_height_px((d0 + d1) / 2, h)
    dx = (u1 - u0) * w / mean_h  # body heights across the image
    dz = (d1 - d0) * _DEPTH_HEIGHTS  # body heights towards the camera
    speed = float(rng.uniform(0.65, 0.95))  # body heights per second (~1.1-1.6 m/s)
    paused = rng.random() < 0.2
    return Visit(
        pid=pid,
        camera=cam,
        start=start,
        u0=u0,
        d0=d0,
        u1=u1,
        d1=d1,
        walk_s=max(0.5, math.hypot(dx, dz) / speed),
        pause_at=float(rng.uniform(0.3, 0.7)),
        pause_s=float(rng.uniform(2.0, 8.0)) if paused else 0.0,
        # figure yaw: 0 faces the camera, +pi/2 walks to the image's right
        yaw=math.atan2(dx, dz) + float(rng.normal(0.0, 0.1)),
        phase0=float(rng.uniform(0.0, 2 * math.pi)),
        cadence=float(rng.uniform(0.8, 1.0)),
    )


@dataclass(frozen=True)
class Site:
    """Where the cameras are: seconds of walking between every pair, and each camera's
    far-end doorway (u)."""

    travel: dict[tuple[int, int], float]
    doors: dict[int, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "travel_s": {f"{a}-{b}": round(s, 2) for (a, b), s in sorted(self.travel.items())},
            "doors_u": {str(c): round(u, 3) for c, u in sorted(self.doors.items())},
        }


def build_site(cameras: Sequence[Camera], seed: int, scale_s: float) -> Site:
    """Seeded camera map: cameras at random points of a square crossed in about ``scale_s``
    seconds; a walk between two takes the straight-line time plus detours (x1.0-1.3)."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, _SITE])
    ids = [c.cam_id for c in cameras]
    pos = rng.uniform(0.0, 1.0, (len(ids), 2))
    travel: dict[tuple[int, int], float] = {}
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i < j:
                dist = float(np.hypot(*(pos[i] - pos[j]))) / math.sqrt(2)
                s = scale_s * (0.15 + dist) * float(rng.uniform(1.0, 1.3))
                travel[(a, b)] = travel[(b, a)] = s
    doors = {c: float(rng.uniform(0.2, 0.8)) for c in ids}
    return Site(travel, doors)


def _route(rng: np.random.Generator, first: int, cams: list[int], site: Site) -> list[int]:
    """Cameras of one trip: ``first``, then mostly nearby cameras not yet visited."""
    length = min(len(cams), 1 + int(rng.poisson(1.3)))
    route = [first]
    while len(route) < length:
        left = [c for c in cams if c not in route]
        near = np.array([site.travel[(route[-1], c)] for c in left])
        p = np.exp(-near / max(1e-6, near.mean()))
        route.append(left[int(rng.choice(len(left), p=p / p.sum()))])
    return route


def site_scale_s(options: FootageOptions) -> float:
    """Seconds to cross the site: a few minutes for archive-length footage, shrunk for short
    footage so that people still reach a second camera before the clip ends."""
    return min(180.0, max(2.0, options.seconds / 5.0))


def plan_visits(
    cameras: Sequence[Camera],
    pids: Sequence[int],
    test_pids: Iterable[int],
    options: FootageOptions,
    seed: int,
) -> tuple[Site, dict[int, list[Visit]]]:
    """Trips of identities across the cameras until each camera gets about
    ``visits_per_minute`` visits per minute; returns the site and each camera's visits
    sorted by start time (only visits that overlap the clip)."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, _PLAN])
    scale = site_scale_s(options)
    site = build_site(cameras, seed, scale)
    test = set(test_pids)
    held = {c.cam_id for c in cameras if c.held_out}
    test_pool = [p for p in pids if p in test]
    # a held-out camera nobody may pass (no test identities) stays empty
    cams = [c.cam_id for c in cameras if c.cam_id not in held or test_pool]
    clip_s = options.seconds
    quota = options.visits_per_minute * options.minutes
    busy: dict[int, list[tuple[float, float]]] = {}
    visits: dict[int, list[Visit]] = {c.cam_id: [] for c in cameras}
    fails = dict.fromkeys(cams, 0)
    # a hard bound on trips drawn, in case trips keep landing outside the clip
    for _ in range(100 * math.ceil(quota * len(cams)) + 1000):
        # start each trip where visits are most lacking, so every camera gets its share; a
        # camera whose people are all busy (few test identities for a held-out camera) is
        # given up after many refused trips
        short = [c for c in cams if len(visits[c]) < quota and fails[c] < _MAX_REFUSED]
        if not short:
            break
        deficit = np.array([quota - len(visits[c]) for c in short])
        first = short[int(rng.choice(len(short), p=deficit / deficit.sum()))]
        pool = test_pool if first in held else pids
        pid = int(pool[int(rng.integers(len(pool)))])
        mine = [c for c in cams if c not in held or pid in test]
        route = _route(rng, first, mine, site)
        # trips start before the clip too: the archive opens on people already walking
        t = float(rng.uniform(-scale * len(route), clip_s))
        trip: list[Visit] = []
        for k, cam in enumerate(route):
            v = _sample_visit(rng, pid, cam, t, site.doors[cam], options.size)
            trip.append(v)
            if k + 1 < len(route):
                t = v.end + site.travel[(cam, route[k + 1])]
        span = (trip[0].start - _TRIP_GAP_S, trip[-1].end + _TRIP_GAP_S)
        if any(a < span[1] and span[0] < b for a, b in busy.get(pid, [])):
            fails[first] += 1  # one person, one place at a time
            continue
        fails[first] = 0
        busy.setdefault(pid, []).append(span)
        for v in trip:
            if v.end >= 0.0 and v.start < clip_s:
                visits[v.camera].append(v)
    for cam in visits:
        visits[cam].sort(key=lambda v: (v.start, v.pid))
    return site, visits


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Placed:
    pid: int
    y: float
    fig: Figure


def _clipped_box(
    box: tuple[float, float, float, float], w: int, h: int
) -> tuple[int, int, int, int] | None:
    """The in-frame part of a figure box as integer (x, y, w, h), or None when less than
    30% of the figure is in the frame or the sliver is tiny (the short clips' rule)."""
    x0, y0, x1, y1 = box
    cx0, cy0 = max(0.0, x0), max(0.0, y0)
    cx1, cy1 = min(float(w), x1), min(float(h), y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    full = (x1 - x0) * (y1 - y0)
    if (cx1 - cx0) * (cy1 - cy0) < 0.3 * full or cx1 - cx0 < 4 or cy1 - cy0 < 8:
        return None
    bx, by = math.floor(cx0), math.floor(cy0)
    return bx, by, min(w - bx, math.ceil(cx1) - bx), min(h - by, math.ceil(cy1) - by)


def _silhouette(fig: Figure, x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the figure's pixels in the region of ``shape`` at (x0, y0)."""
    mask = np.zeros(shape, np.uint8)
    offset = np.array([x0, y0], np.float32)
    cv2.fillPoly(mask, [pts(part.poly - offset) for part in fig.parts], 1, shift=SHIFT)
    return mask.astype(bool)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _visibility(fig: Figure, nearer: Sequence[Figure], w: int, h: int) -> float:
    """Share of the person's silhouette inside the frame and not hidden by a nearer person.

    Pixel masks are drawn only when something cuts the person (frame edge or another box):
    most people in most frames are whole, and that costs nothing.
    """
    box = fig.box
    cutters = [q for q in nearer if _overlaps(box, q.box)]
    inside = box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h
    if not cutters and inside:
        return 1.0
    x0, y0 = math.floor(box[0]), math.floor(box[1])
    shape = (max(1, math.ceil(box[3]) - y0), max(1, math.ceil(box[2]) - x0))
    own = _silhouette(fig, x0, y0, shape)
    area = int(own.sum())
    if area == 0:
        return 0.0
    seen = np.zeros_like(own)
    # only the part of the region inside the frame can be seen
    seen[max(0, -y0) : max(0, h - y0), max(0, -x0) : max(0, w - x0)] = True
    seen &= own
    for q in cutters:
        seen &= ~_silhouette(q, x0, y0, shape)
    return float(seen.sum()) / area


def _place(
    active: Iterable[Visit],
    t: float,
    ids: Mapping[int, IdentityAttributes],
    size: tuple[int, int],
    horizon: float,
) -> list[_Placed]:
    """Pose and project everyone in view at ``t``, far to near (painter's order)."""
    h, w = size
    floor_top = horizon * h
    out = []
    for v in active:
        u, d, walked, moving = v.at(t)
        y = floor_top + d * (h - floor_top)
        # standing: legs together, turned a little towards the camera
        pose = (
            Pose(v.phase0 + 2 * math.pi * v.cadence * 1.1 * walked, v.yaw)
            if moving
            else Pose(v.phase0, v.yaw * 0.5, amplitude=0.0)
        )
        fig = build_figure(ids[v.pid], pose, person_height_px(d, h), u * w, y)
        out.append(_Placed(v.pid, y, fig))
    out.sort(key=lambda p: (p.y, p.pid))
    return out


def _gt_lines(frame: int, placed: Sequence[_Placed], w: int, h: int) -> tuple[list[str], set[int]]:
    """MOTChallenge lines of one frame (1-based ``frame``) and the pids they name."""
    lines, pids = [], set()
    for k, p in enumerate(placed):
        clipped = _clipped_box(p.fig.box, w, h)
        if clipped is None:
            continue
        vis = _visibility(p.fig, [q.fig for q in placed[k + 1 :]], w, h)
        bx, by, bw, bh = clipped
        lines.append(f"{frame},{p.pid},{bx},{by},{bw},{bh},1,1,{vis:.3f}\n")
        pids.add(p.pid)
    return lines, pids


def _draw_frame(
    bg: np.ndarray,
    placed: Sequence[_Placed],
    ids: Mapping[int, IdentityAttributes],
    cam: Camera,
    fin_seed: list[int],
) -> np.ndarray:
    """The camera's frame as BGR for the writer: scene, people far to near, camera optics.

    The optics' random draws come from the same seed every frame (as in the short clips): a
    fixed camera keeps its resolution, blur and sensor pattern from one frame to the next.
    """
    img = bg.copy()
    ir = cam.modality == "ir"
    draw = draw_figure_ir if ir else draw_figure_rgb
    for p in placed:
        draw(img, p.fig, ids[p.pid])
    frame = finish(img, cam, np.random.default_rng(fin_seed))
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if ir else cv2.COLOR_RGB2BGR)


def render_camera(
    cam: Camera,
    visits: Sequence[Visit],
    ids: Mapping[int, IdentityAttributes],
    options: FootageOptions,
    out_dir: Path,
) -> dict[str, Any]:
    """Render one camera's clip, frame by frame, into ``out_dir``; returns the sidecar.

    ``gt.txt`` lines are MOTChallenge's ``frame,id,bb_left,bb_top,bb_width,bb_height,1,1,
    visibility``: ``frame`` is 1-based (file frame index + 1); ``id`` is the world's pid
    as is (already >= 1, so the same person has the same id on every camera and in
    ``world.json``); the box is the person's extent clipped to the frame (people are listed
    while at least 30% of their box is in view); ``visibility`` is the share of their
    silhouette inside the frame and not hidden by a nearer person. Lines come in frame order.
    """
    h, w = options.size
    bg = background(cam, h, w)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"clip{video_extension()}"
    pending = deque(visits)
    active: list[Visit] = []
    seen: set[int] = set()
    fin_seed = [cam.seed & 0xFFFFFFFF, _FINISH, cam.cam_id]
    writer = open_writer(video, options.fps, options.size)
    try:
        with (out_dir / "gt.txt").open("w", encoding="ascii", newline="\n") as gt:
            for i in range(options.num_frames):
                t = i / options.fps
                while pending and pending[0].start <= t:
                    active.append(pending.popleft())
                active = [v for v in active if v.end >= t]
                placed = _place(active, t, ids, options.size, cam.style.horizon)
                writer.write(_draw_frame(bg, placed, ids, cam, fin_seed))
                lines, pids = _gt_lines(i + 1, placed, w, h)
                gt.writelines(lines)  # streamed: nothing per frame is kept
                seen |= pids
    finally:
        writer.release()
    sidecar = {
        "video": video.name,
        "gt": "gt.txt",
        "camera": cam.cam_id,
        "camera_name": cam.name,
        "modality": cam.modality,
        "fps": options.fps,
        "width": w,
        "height": h,
        "num_frames": options.num_frames,
        "start": FOOTAGE_START.isoformat(),
        "gt_id": "pid",
        "visits": len(visits),
        "pids": sorted(seen),
    }
    (out_dir / "clip.json").write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8")
    return sidecar


# ----------------------------------------------------------------------------- the world

_CTX: dict[str, Any] = {}
# fork keeps start-up cheap (the identities are inherited); spawn where fork is missing
_START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def _init_worker(ctx: dict[str, Any]) -> None:
    _CTX.clear()
    _CTX.update(ctx)


def _render_job(job: tuple[Camera, list[Visit]]) -> dict[str, Any]:
    cam, visits = job
    out = _CTX["root"] / FOOTAGE / f"cam{cam.cam_id}"
    return render_camera(cam, visits, _CTX["identities"], _CTX["options"], out)


def _cameras(manifest: WorldManifest) -> list[Camera]:
    return [
        Camera(c["id"], c["modality"], c["name"], c["held_out"], manifest.seed)
        for c in manifest.cameras
    ]


def write_footage(world: Path, options: FootageOptions) -> dict[str, Any]:
    """Render one long clip per camera of the world at ``world`` (see the module docstring
    for the layout); replaces any previous ``footage/``. Returns ``footage.json``'s content.
    """
    root = Path(world)
    manifest = WorldManifest.load(root)
    cams = _cameras(manifest)
    ids = {i["pid"]: IdentityAttributes.from_dict(i["attributes"]) for i in manifest.identities}
    site, visits = plan_visits(cams, sorted(ids), manifest.test_pids, options, manifest.seed)
    if (root / FOOTAGE).exists():
        shutil.rmtree(root / FOOTAGE)
    (root / FOOTAGE).mkdir(parents=True)
    jobs = [(c, visits[c.cam_id]) for c in cams]
    ctx = {"root": root, "identities": ids, "options": options}
    bar = tqdm(total=len(jobs), desc="synth footage", unit="clip", disable=not options.progress)
    try:
        if options.workers <= 1 or len(jobs) <= 1:
            _init_worker(ctx)
            sidecars = []
            for job in jobs:
                sidecars.append(_render_job(job))
                bar.update()
        else:
            # as in generate_world: no OpenCV thread pool may be running across a fork
            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                mpc = mp.get_context(_START_METHOD)
                n = min(options.workers, len(jobs))
                with mpc.Pool(n, initializer=_init_worker, initargs=(ctx,)) as pool:
                    sidecars = []
                    for sc in pool.imap(_render_job, jobs):
                        sidecars.append(sc)
                        bar.update()
            finally:
                cv2.setNumThreads(threads)
    finally:
        bar.close()
    index = {
        "world_seed": manifest.seed,
        "options": {k: v for k, v in asdict(options).items() if k not in ("workers", "progress")},
        "start": FOOTAGE_START.isoformat(),
        "site": site.to_json(),
        "clips": [f"cam{sc['camera']}/clip.json" for sc in sidecars],
    }
    (root / FOOTAGE / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return index
