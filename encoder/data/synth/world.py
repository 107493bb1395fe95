"""The synthetic world: plan identities, cameras and splits, render every image in parallel
and write the public layouts, the sketches, the video clips and ``world.json``.

Everything is a pure function of ``(seed, config)``: each image has its own random stream
(``np.random.default_rng([seed, stream, pid, cam, k])``), so the files are byte-identical
whatever the number of workers. Identity split: ``train_fraction`` of the pids train, the
rest are held out for testing; the last camera of each modality (when a modality has two or
more) is a held-out camera that only test identities walk past (zero-shot: unseen people and
unseen cameras). SYSU ``val_id.txt`` and CUHK ``"val"`` take about a tenth of the training
identities; ``world.json`` marks them ``"val": true`` (their ``split`` stays ``"train"``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from . import layouts as L
from .attributes import IdentityAttributes, sample_identity
from .camera import Camera, background, light_map
from .captions import describe, tokenize
from .render_ir import render_ir
from .render_rgb import render_distractor, render_rgb
from .render_sketch import render_sketch
from .video import ClipSpec, render_clip, video_extension

GENERATOR_VERSION = "aio-synth-1.0"
MANIFEST = "world.json"
#: Folder of the long per-camera clips (``footage.write_footage``); a new world drops it.
FOOTAGE = "footage"

# random-stream ids (second element of every seed sequence)
_RGB, _IR, _SKETCH, _DISTRACTOR, _CAPTION, _PLAN, _SPLIT, _VIDEO_PLAN = 1, 2, 3, 4, 6, 13, 7, 8


@dataclass
class SynthConfig:
    """Size and shape of a synthetic world (defaults: 100 identities, 4 RGB + 2 IR cameras).

    ``images_per_camera``, ``sketches``, ``captions`` and ``people_per_video`` are inclusive
    (min, max) ranges sampled per identity / clip. ``distractors`` is the number of Market
    ``0000`` distractor and of ``-1`` junk images each (``None``: max(2, identities // 10)).
    ``workers`` and ``progress`` change nothing in the output.
    """

    identities: int = 100
    seed: int = 0
    height: int = 256
    width: int = 128
    rgb_cameras: int = 4
    ir_cameras: int = 2
    images_per_camera: tuple[int, int] = (2, 4)
    sketches: tuple[int, int] = (1, 2)
    captions: tuple[int, int] = (2, 3)
    train_fraction: float = 0.75
    videos_per_camera: int = 1
    video_seconds: float = 3.0
    video_fps: int = 10
    workers: int = 2
    progress: bool = True
    distractors: int | None = None
    video_size: tuple[int, int] = (240, 320)
    people_per_video: tuple[int, int] = (2, 4)

    def __post_init__(self) -> None:
        for name in ("images_per_camera", "sketches", "captions", "video_size", "people_per_video"):
            val = tuple(int(v) for v in getattr(self, name))
            if len(val) != 2:
                raise ValueError(f"{name} must be a pair, got {val}")
            setattr(self, name, val)
        lo_ok = {"images_per_camera": 1, "sketches": 1, "captions": 1, "people_per_video": 1}
        for name, lo in lo_ok.items():
            a, b = getattr(self, name)
            if not lo <= a <= b:
                raise ValueError(f"{name} must satisfy {lo} <= min <= max, got {(a, b)}")
        if self.identities < 2:
            raise ValueError("a world needs at least 2 identities (train and test)")
        if not 1 <= self.rgb_cameras <= 9:
            raise ValueError("rgb_cameras must be 1..9 (Market-1501 camera ids are one digit)")
        if self.ir_cameras < 0:
            raise ValueError("ir_cameras must be >= 0")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError("train_fraction must be in (0, 1)")
        if self.height < 32 or self.width < 16:
            raise ValueError("image size too small (min 32×16)")
        if self.video_fps < 1 or self.video_seconds <= 0:
            raise ValueError("video_fps must be >= 1 and video_seconds > 0")

    def to_dict(self) -> dict[str, Any]:
        """Output-relevant fields (no ``workers``/``progress``), JSON-ready."""
        d = asdict(self)
        d.pop("workers")
        d.pop("progress")
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@dataclass
class WorldManifest:
    """Contents of ``world.json``.

    * ``cameras``: ``{id, modality, held_out, name, market_cam, sysu_cam}``;
    * ``identities``: ``{pid, split, val, attributes, captions, sketches}`` (sketch paths are
      relative to the world root);
    * ``images``: ``{pid, camera, modality, index, files}`` for every rendered crop;
    * ``videos``: ``{camera, modality, path, annotation, fps, num_frames, start, pids}``;
    * ``layouts``: dataset name → folder relative to the root; ``counts``: what was written.
    """

    seed: int
    generator_version: str
    image_size: list[int]
    config: dict[str, Any]
    cameras: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    layouts: dict[str, str]
    images: list[dict[str, Any]]
    videos: list[dict[str, Any]]
    counts: dict[str, int]
    root: Path | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without ``root``)."""
        d = asdict(self)
        d.pop("root")
        return d

    def save(self, path: Path) -> Path:
        """Write as JSON to ``path`` (a file, or a directory → ``<dir>/world.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> WorldManifest:
        """Read ``world.json`` (give the file or the world directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**data, root=path.parent)

    @property
    def train_pids(self) -> list[int]:
        """Training identities (including the SYSU/CUHK validation ones)."""
        return [i["pid"] for i in self.identities if i["split"] == "train"]

    @property
    def test_pids(self) -> list[int]:
        """Held-out test identities."""
        return [i["pid"] for i in self.identities if i["split"] == "test"]

    def identity(self, pid: int) -> dict[str, Any]:
        """The manifest entry of ``pid``."""
        for i in self.identities:
            if i["pid"] == pid:
                return i
        raise KeyError(pid)

    def attributes(self, pid: int) -> IdentityAttributes:
        """``pid``'s attributes as the dataclass."""
        return IdentityAttributes.from_dict(self.identity(pid)["attributes"])


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Job:
    """One unit of parallel work: render one image / clip and write it to ``files``."""

    kind: str
    pid: int
    cam: int
    index: int
    files: tuple[str, ...]
    clip_pids: tuple[int, ...] = ()


def build_cameras(config: SynthConfig) -> list[Camera]:
    """World cameras: RGB ids 1..R, IR ids R+1..R+I; the last of each modality is held out
    when the modality has at least two cameras."""
    cams = []
    for k in range(config.rgb_cameras):
        held = config.rgb_cameras >= 2 and k == config.rgb_cameras - 1
        cams.append(Camera(k + 1, "rgb", f"rgb-{k + 1}", held, config.seed))
    for k in range(config.ir_cameras):
        held = config.ir_cameras >= 2 and k == config.ir_cameras - 1
        cams.append(Camera(config.rgb_cameras + k + 1, "ir", f"ir-{k + 1}", held, config.seed))
    return cams


def split_identities(config: SynthConfig) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) pid lists; val ⊂ train."""
    n = config.identities
    rng = np.random.default_rng([config.seed & 0xFFFFFFFF, _SPLIT])
    n_train = min(n - 1, max(1, round(n * config.train_fraction)))
    perm = rng.permutation(np.arange(1, n + 1))
    train = sorted(int(p) for p in perm[:n_train])
    test = sorted(int(p) for p in perm[n_train:])
    n_val = max(1, round(0.1 * n_train)) if n_train >= 4 else 0
    val = sorted(int(p) for p in rng.choice(train, size=n_val, replace=False)) if n_val else []
    return train, val, test


@dataclass
class _Plan:
    jobs: list[_Job]
    manifest: WorldManifest
    sysu_ids: tuple[list[int], list[int], list[int]]
    cuhk: list[dict[str, Any]]


def _plan(config: SynthConfig, cams: list[Camera], ids: dict[int, IdentityAttributes]) -> _Plan:
    seed = config.seed & 0xFFFFFFFF
    train, val, test = split_identities(config)
    test_set, val_set = set(test), set(val)
    rgb_cams = [c for c in cams if c.modality == "rgb"]
    ir_cams = [c for c in cams if c.modality == "ir"]
    sysu_of = {c.cam_id: L.sysu_cam("rgb", k) for k, c in enumerate(rgb_cams)}
    sysu_of.update({c.cam_id: L.sysu_cam("ir", k) for k, c in enumerate(ir_cams)})
    frame_rng = np.random.default_rng([seed, _PLAN])
    frames = {c.cam_id: 0 for c in rgb_cams}

    def next_frame(cam: int) -> int:
        frames[cam] += int(frame_rng.integers(5, 80))
        return frames[cam]

    jobs: list[_Job] = []
    images: list[dict[str, Any]] = []
    identities: list[dict[str, Any]] = []
    cuhk: list[dict[str, Any]] = []
    counts = {"rgb_images": 0, "ir_images": 0, "sketches": 0, "distractors": 0, "junk": 0}
    lo, hi = config.images_per_camera
    for pid in range(1, config.identities + 1):
        attrs = ids[pid]
        is_test = pid in test_set
        rng = np.random.default_rng([seed, pid, _PLAN])
        mine = [c for c in cams if is_test or not c.held_out]
        files: dict[tuple[int, int], list[str]] = {}
        per_cam: dict[int, int] = {}
        for c in mine:
            n = int(rng.integers(lo, hi + 1))
            per_cam[c.cam_id] = n
            for k in range(n):
                files[(c.cam_id, k)] = [L.sysu_path(sysu_of[c.cam_id], pid, 0)]  # renumbered
        # SYSU numbering per (folder, pid)
        sysu_n: dict[int, int] = {}
        for (cam, _k), fl in files.items():
            slot = sysu_of[cam]
            sysu_n[slot] = sysu_n.get(slot, 0) + 1
            fl[0] = L.sysu_path(slot, pid, sysu_n[slot])
        my_rgb = [c.cam_id for c in mine if c.modality == "rgb"]
        # Market-1501
        query_cams: set[int] = set()
        if is_test and len(my_rgb) >= 2:
            for cam in my_rgb:
                if rng.random() < 0.5:
                    query_cams.add(cam)
            if not query_cams:
                query_cams.add(my_rgb[int(rng.integers(len(my_rgb)))])
            if len(query_cams) == len(my_rgb):
                query_cams.discard(sorted(query_cams)[-1])
        for cam in my_rgb:
            for k in range(per_cam[cam]):
                name = L.market_name(pid, cam, next_frame(cam))
                split = (
                    "bounding_box_train"
                    if not is_test
                    else "query"
                    if (cam in query_cams and k == 0)
                    else "bounding_box_test"
                )
                files[(cam, k)].append(L.market_path(split, name))
        # PKU-Sketch photos: two RGB cameras (or two shots of one)
        order = [my_rgb[i] for i in rng.permutation(len(my_rgb))]
        shots = (
            [(order[0], 0), (order[1], 0)]
            if len(order) >= 2
            else [(order[0], 0), (order[0], min(1, per_cam[order[0]] - 1))]
        )
        for j, key in enumerate(shots[:2] if shots[0] != shots[-1] else shots[:1]):
            files[key].append(L.pku_photo(pid, j + 1))
        # CUHK-PEDES images + captions
        n_cap = int(rng.integers(config.captions[0], config.captions[1] + 1))
        caps = [
            describe(attrs, np.random.default_rng([seed, _CAPTION, pid, k])) for k in range(n_cap)
        ]
        order = [my_rgb[i] for i in rng.permutation(len(my_rgb))][:2]
        cuhk_imgs = [(cam, per_cam[cam] - 1) for cam in order]
        split_name = "test" if is_test else ("val" if pid in val_set else "train")
        for j, (cam, k) in enumerate(cuhk_imgs):
            fp = L.cuhk_file(pid, cam, k)
            files[(cam, k)].append(L.cuhk_path(fp))
            mine_caps = caps[j :: len(cuhk_imgs)]
            cuhk.append(
                {
                    "split": split_name,
                    "captions": mine_caps,
                    "file_path": fp,
                    "processed_tokens": [tokenize(c) for c in mine_caps],
                    "id": pid,
                }
            )
        # sketches
        n_sk = int(rng.integers(config.sketches[0], config.sketches[1] + 1))
        sketch_files = []
        for k in range(n_sk):
            fl = [L.sketch_path(pid, k)] + ([L.pku_sketch(pid)] if k == 0 else [])
            sketch_files.append(fl[0])
            jobs.append(_Job("sketch", pid, 0, k, tuple(fl)))
        counts["sketches"] += n_sk
        for c in mine:
            for k in range(per_cam[c.cam_id]):
                fl = tuple(files[(c.cam_id, k)])
                jobs.append(_Job(c.modality, pid, c.cam_id, k, fl))
                images.append(
                    {
                        "pid": pid,
                        "camera": c.cam_id,
                        "modality": c.modality,
                        "index": k,
                        "files": list(fl),
                    }
                )
                counts[f"{c.modality}_images"] += 1
        identities.append(
            {
                "pid": pid,
                "split": "test" if is_test else "train",
                "val": pid in val_set,
                "attributes": attrs.to_dict(),
                "captions": caps,
                "sketches": sketch_files,
            }
        )
    # Market distractors (0000) and junk (-1)
    n_d = config.distractors if config.distractors is not None else max(2, config.identities // 10)
    drng = np.random.default_rng([seed, _DISTRACTOR])
    for kind, pid in (("distractor", 0), ("junk", -1)):
        for i in range(n_d):
            cam = rgb_cams[int(drng.integers(len(rgb_cams)))].cam_id
            name = L.market_name(pid, cam, next_frame(cam), box=int(drng.integers(2, 5)))
            jobs.append(_Job(kind, pid, cam, i, (L.market_path("bounding_box_test", name),)))
            images.append(
                {
                    "pid": pid,
                    "camera": cam,
                    "modality": "rgb",
                    "index": i,
                    "files": [L.market_path("bounding_box_test", name)],
                }
            )
            counts["distractors" if pid == 0 else "junk"] += 1
    # videos
    videos: list[dict[str, Any]] = []
    ext = video_extension()
    for c in cams:
        eligible = test if c.held_out else list(range(1, config.identities + 1))
        for clip in range(config.videos_per_camera):
            vr = np.random.default_rng([seed, _VIDEO_PLAN, c.cam_id, clip])
            n = min(
                len(eligible),
                int(vr.integers(config.people_per_video[0], config.people_per_video[1] + 1)),
            )
            pids = tuple(sorted(int(p) for p in vr.choice(eligible, size=n, replace=False)))
            vpath, apath = L.video_paths(c.cam_id, clip, ext)
            spec = ClipSpec(
                c, clip, pids, config.video_seconds, config.video_fps, config.video_size
            )
            jobs.insert(0, _Job("video", 0, c.cam_id, clip, (vpath, apath), pids))
            videos.append(
                {
                    "camera": c.cam_id,
                    "modality": c.modality,
                    "path": vpath,
                    "annotation": apath,
                    "fps": config.video_fps,
                    "num_frames": spec.num_frames,
                    "start": spec.start.isoformat(),
                    "pids": list(pids),
                }
            )
    counts["videos"] = len(videos)
    counts["video_frames"] = sum(v["num_frames"] for v in videos)
    counts["images_total"] = sum(
        counts[k] for k in ("rgb_images", "ir_images", "sketches", "distractors", "junk")
    )
    counts["image_files"] = sum(len(j.files) for j in jobs if j.kind != "video")
    cam_entries = []
    for c in cams:
        e = c.to_dict()
        e["market_cam"] = c.cam_id if c.modality == "rgb" else None
        e["sysu_cam"] = sysu_of[c.cam_id]
        cam_entries.append(e)
    manifest = WorldManifest(
        seed=config.seed,
        generator_version=GENERATOR_VERSION,
        image_size=[config.height, config.width],
        config=config.to_dict(),
        cameras=cam_entries,
        identities=identities,
        layouts={
            "market1501": L.MARKET,
            "sysu_mm01": L.SYSU,
            "pku_sketch": L.PKU,
            "cuhk_pedes": L.CUHK,
            "sketches": L.SKETCHES,
            "videos": L.VIDEOS,
        },
        images=images,
        videos=videos,
        counts=counts,
    )
    return _Plan(jobs, manifest, (sorted(set(train) - val_set), val, test), cuhk)


# ----------------------------------------------------------------------------- rendering

_CTX: dict[str, Any] = {}
# fork keeps worker start-up cheap and works from unguarded scripts; spawn elsewhere
_START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def _init_worker(ctx: dict[str, Any]) -> None:
    _CTX.clear()
    _CTX.update(ctx)
    if _START_METHOD != "fork":  # a forked child must not touch OpenCV's inherited pool
        cv2.setNumThreads(1)


def _write(root: Path, rel: tuple[str, ...], data: bytes) -> None:
    for r in rel:
        (root / r).write_bytes(data)


def _run(job: _Job) -> tuple[int, int]:
    """Render and write one job; returns (images rendered, files written)."""
    root: Path = _CTX["root"]
    cams: dict[int, Camera] = _CTX["cameras"]
    ids: dict[int, IdentityAttributes] = _CTX["identities"]
    seed: int = _CTX["seed"] & 0xFFFFFFFF
    size: tuple[int, int] = _CTX["size"]
    if job.kind == "video":
        spec = ClipSpec(
            cams[job.cam],
            job.index,
            job.clip_pids,
            _CTX["video_seconds"],
            _CTX["video_fps"],
            _CTX["video_size"],
        )
        render_clip(spec, ids, root / job.files[0], root / job.files[1])
        return 0, 2
    if job.kind == "sketch":
        img = render_sketch(
            ids[job.pid], np.random.default_rng([seed, _SKETCH, job.pid, job.index]), size
        )
    elif job.kind in ("distractor", "junk"):
        img = render_distractor(
            cams[job.cam],
            np.random.default_rng([seed, _DISTRACTOR, job.pid + 1, job.index]),
            junk=job.kind == "junk",
            size=size,
        )
    else:
        stream = _RGB if job.kind == "rgb" else _IR
        rng = np.random.default_rng([seed, stream, job.pid, job.cam, job.index])
        fn = render_rgb if job.kind == "rgb" else render_ir
        img = fn(ids[job.pid], rng, cams[job.cam], size)
    _write(root, job.files, L.encode_jpeg(img))
    return 1, len(job.files)


def generate_world(out_dir: Path, config: SynthConfig | None = None) -> WorldManifest:
    """Write a whole synthetic world under ``out_dir`` and return its manifest.

    Existing layout folders of a previous world (and ``world.json``) in ``out_dir`` are
    replaced; nothing else there is touched.
    """
    config = config or SynthConfig()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    for d in (*L.ALL_DIRS, FOOTAGE):  # footage of an older world would not match this one
        if (root / d).exists():
            shutil.rmtree(root / d)
    (root / MANIFEST).unlink(missing_ok=True)

    cams = build_cameras(config)
    ids = {pid: sample_identity(pid, config.seed) for pid in range(1, config.identities + 1)}
    plan = _plan(config, cams, ids)
    for job in plan.jobs:
        for f in job.files:
            (root / f).parent.mkdir(parents=True, exist_ok=True)
    for sub in ("bounding_box_train", "bounding_box_test", "query"):
        (root / L.MARKET / sub).mkdir(parents=True, exist_ok=True)
    L.write_sysu_ids(root, *plan.sysu_ids)
    L.write_cuhk_json(root, plan.cuhk)

    size = (config.height, config.width)
    for c in cams:  # warm the caches (used as is by the in-process path; cheap to redo)
        background(c, size[0], 3 * size[1])
        light_map(c, *size)
        if config.videos_per_camera:
            background(c, *config.video_size)
            light_map(c, *config.video_size)
    ctx = {
        "root": root,
        "cameras": {c.cam_id: c for c in cams},
        "identities": ids,
        "seed": config.seed,
        "size": size,
        "video_seconds": config.video_seconds,
        "video_fps": config.video_fps,
        "video_size": config.video_size,
    }
    bar = tqdm(total=len(plan.jobs), desc="synth world", unit="job", disable=not config.progress)
    try:
        if config.workers <= 1:
            _init_worker(ctx)
            for job in plan.jobs:
                _run(job)
                bar.update()
        else:
            # OpenCV's thread pool must not be running when we fork (the children would
            # deadlock in it): drop to one thread for the pool's lifetime, then restore.
            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                mpc = mp.get_context(_START_METHOD)
                with mpc.Pool(config.workers, initializer=_init_worker, initargs=(ctx,)) as pool:
                    for _ in pool.imap_unordered(_run, plan.jobs, chunksize=8):
                        bar.update()
            finally:
                cv2.setNumThreads(threads)
    finally:
        bar.close()
    manifest = plan.manifest
    manifest.root = root
    manifest.save(root / MANIFEST)
    return manifest
