"""How well the platform follows people within one camera: its detector + tracker
(:func:`aioreid.platform.pipeline.tracking.track_video`) run over a synthetic world's clips
and scored against their ground truth with TrackEval's HOTA, CLEAR (MOTA) and Identity
(IDF1) metric classes — the maintained reference implementation the MOT benchmarks use; the
metrics are not re-implemented here, this module only builds the data they expect.

Clips: the world's long footage (``<world>/footage/cam<N>/``, MOTChallenge ``gt.txt``) when
there is any, else its short clips (``<world>/videos/``, ground truth from their JSON
annotations). Only the frames the pipeline processed are scored (it samples at
``sample_fps`` and skips near-duplicate frames): the ground truth of exactly those frame
indices is taken, so a sampled tracker is not charged for frames it never saw. Boxes whose
track number is 0 (not confirmed yet) are not tracker output, as in ingestion.

Re-entries: the ground truth names people by pid, and in long footage a person walks past
the same camera many times. The pipeline's tracker follows people within one pass (linking
passes is re-identification's job), so by default a person's return after ``reentry_gap_s``
seconds out of the camera's ground truth is a new ground-truth track; ``reentry_gap_s=0``
keeps one track per person for the whole clip (MOTChallenge's convention, which then also
scores re-identification across passes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from trackeval.datasets._base_dataset import _BaseDataset
from trackeval.metrics import CLEAR, HOTA, Identity

#: A box as (x, y, w, h) pixels.
BoxXYWH = tuple[float, float, float, float]
#: Per frame index (0-based, as in the file), the (id, box) of everyone in that frame.
FrameBoxes = Mapping[int, Sequence[tuple[int, BoxXYWH]]]

#: The columns of :func:`format_table`, in order.
TABLE_COLUMNS = (
    "clip",
    "camera",
    "modality",
    "frames",
    "gt_ids",
    "HOTA",
    "DetA",
    "AssA",
    "IDF1",
    "MOTA",
    "IDSW",
)


@dataclass(frozen=True)
class Clip:
    """One clip to score: its video, camera, frame rate and ground truth."""

    name: str
    video: Path
    camera: int
    modality: str
    fps: float
    num_frames: int
    gt: dict[int, list[tuple[int, BoxXYWH]]] = field(repr=False)


# ----------------------------------------------------------------------------- ground truth


def read_mot_gt(path: Path) -> dict[int, list[tuple[int, BoxXYWH]]]:
    """A MOTChallenge ``gt.txt`` as {0-based frame index: [(id, box)]}; lines whose
    ``conf`` column (7th) is 0 are ignored, as MOTChallenge's evaluation does."""
    out: dict[int, list[tuple[int, BoxXYWH]]] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if not line.strip():
            continue
        cols = line.split(",")
        if len(cols) > 6 and float(cols[6]) == 0:
            continue
        frame, ident = int(cols[0]), int(cols[1])
        box = (float(cols[2]), float(cols[3]), float(cols[4]), float(cols[5]))
        out.setdefault(frame - 1, []).append((ident, box))
    return out


def footage_clips(world: Path) -> list[Clip]:
    """The world's long clips (``footage/cam<N>/clip.json`` + ``gt.txt``), by camera."""
    clips = []
    for sidecar in (Path(world) / "footage").glob("cam*/clip.json"):
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        clips.append(
            Clip(
                name=f"footage/{sidecar.parent.name}",
                video=sidecar.parent / meta["video"],
                camera=int(meta["camera"]),
                modality=str(meta["modality"]),
                fps=float(meta["fps"]),
                num_frames=int(meta["num_frames"]),
                gt=read_mot_gt(sidecar.parent / meta.get("gt", "gt.txt")),
            )
        )
    return sorted(clips, key=lambda c: c.camera)


def short_clips(world: Path) -> list[Clip]:
    """The world's short clips (``world.json`` ``videos``), their JSON annotations as truth."""
    root = Path(world)
    manifest = json.loads((root / "world.json").read_text(encoding="utf-8"))
    clips = []
    for v in manifest.get("videos", []):
        ann = json.loads((root / v["annotation"]).read_text(encoding="utf-8"))
        gt = {
            int(f["frame"]): [(int(o["pid"]), tuple(map(float, o["box"]))) for o in f["objects"]]
            for f in ann["frames"]
        }
        clips.append(
            Clip(
                name=str(Path(v["path"]).with_suffix("")),
                video=root / v["path"],
                camera=int(v["camera"]),
                modality=str(v["modality"]),
                fps=float(v["fps"]),
                num_frames=int(v["num_frames"]),
                gt=gt,  # type: ignore[arg-type]
            )
        )
    return clips


def world_clips(world: Path) -> tuple[str, list[Clip]]:
    """(``"footage"`` or ``"clips"``, the clips): the long footage when the world has it."""
    root = Path(world)
    if not (root / "world.json").exists():
        raise FileNotFoundError(f"no world.json in {root}: run `aioreid synth --out {root}`")
    long = footage_clips(root)
    return ("footage", long) if long else ("clips", short_clips(root))


def split_reentries(
    gt: FrameBoxes, fps: float, gap_s: float
) -> dict[int, list[tuple[int, BoxXYWH]]]:
    """``gt`` with each person's passes through the view as separate ids (1, 2, ... in order
    of appearance): a person absent for more than ``gap_s`` seconds starts a new pass."""
    gap = gap_s * fps
    last_seen: dict[int, int] = {}
    pass_of: dict[int, int] = {}
    passes = 0
    out: dict[int, list[tuple[int, BoxXYWH]]] = {}
    for f in sorted(gt):
        dets = []
        for pid, box in gt[f]:
            if pid not in pass_of or f - last_seen[pid] > gap:
                passes += 1
                pass_of[pid] = passes
            last_seen[pid] = f
            dets.append((pass_of[pid], box))
        out[f] = dets
    return out


# ----------------------------------------------------------------------------- scoring


def _boxes(dets: Sequence[tuple[int, BoxXYWH]]) -> np.ndarray:
    return np.array([b for _, b in dets], dtype=float).reshape(-1, 4)


def _contiguous(per_frame: Sequence[Sequence[tuple[int, BoxXYWH]]]) -> dict[int, int]:
    """id → 0..n-1 in id order, as TrackEval's MOTChallenge loader re-numbers them."""
    ids = sorted({i for dets in per_frame for i, _ in dets})
    return {i: k for k, i in enumerate(ids)}


def trackeval_data(gt: FrameBoxes, hyp: FrameBoxes, frames: Sequence[int]) -> dict[str, Any]:
    """The per-sequence ``data`` dict TrackEval's metrics take, over ``frames`` (the
    processed frame indices, in order): ids per timestep re-numbered 0..n-1, and per
    timestep the IoU matrix (ground truth × tracker) computed by TrackEval's own box IoU."""
    gt_t = [list(gt.get(f, ())) for f in frames]
    tr_t = [list(hyp.get(f, ())) for f in frames]
    for f, dets in zip(frames, tr_t, strict=True):
        ids = [i for i, _ in dets]
        if len(ids) != len(set(ids)):
            raise ValueError(f"tracker output repeats an id within frame {f}: {sorted(ids)}")
    gt_map, tr_map = _contiguous(gt_t), _contiguous(tr_t)
    return {
        "num_timesteps": len(frames),
        "num_gt_ids": len(gt_map),
        "num_tracker_ids": len(tr_map),
        "num_gt_dets": sum(len(d) for d in gt_t),
        "num_tracker_dets": sum(len(d) for d in tr_t),
        "gt_ids": [np.array([gt_map[i] for i, _ in d], dtype=int) for d in gt_t],
        "tracker_ids": [np.array([tr_map[i] for i, _ in d], dtype=int) for d in tr_t],
        "similarity_scores": [
            _BaseDataset._calculate_box_ious(_boxes(g), _boxes(t), box_format="xywh")
            for g, t in zip(gt_t, tr_t, strict=True)
        ],
    }


def _metrics() -> dict[str, Any]:
    quiet = {"THRESHOLD": 0.5, "PRINT_CONFIG": False}
    return {"HOTA": HOTA(), "CLEAR": CLEAR(dict(quiet)), "Identity": Identity(dict(quiet))}


def score_sequence(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """TrackEval's raw results of one sequence, per metric class name."""
    return {name: metric.eval_sequence(data) for name, metric in _metrics().items()}


def combine(raw: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """TrackEval's ``combine_sequences`` of {clip: raw results}, per metric."""
    return {
        name: metric.combine_sequences({clip: r[name] for clip, r in raw.items()})
        for name, metric in _metrics().items()
    }


def summary(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, float | int]:
    """The headline numbers (HOTA, DetA, AssA averaged over TrackEval's IoU thresholds, as
    its summaries do)."""
    hota, clear, ident = raw["HOTA"], raw["CLEAR"], raw["Identity"]
    return {
        "HOTA": float(np.mean(hota["HOTA"])),
        "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])),
        "IDF1": float(ident["IDF1"]),
        "MOTA": float(clear["MOTA"]),
        "IDSW": int(clear["IDSW"]),
        "MOTP": float(clear["MOTP"]),
        "recall": float(clear["CLR_Re"]),
        "precision": float(clear["CLR_Pr"]),
    }


@dataclass
class ClipScore:
    """One clip's row of the report and TrackEval's raw results behind it."""

    clip: str
    camera: int | None
    modality: str
    frames: int
    gt_ids: int
    gt_dets: int
    tracker_ids: int
    tracker_dets: int
    scores: dict[str, float | int]
    raw: dict[str, dict[str, Any]] = field(repr=False)
    skipped_gt_dets: int = 0

    def row(self) -> dict[str, Any]:
        """JSON-ready row (no raw arrays)."""
        return {
            "clip": self.clip,
            "camera": self.camera,
            "modality": self.modality,
            "frames": self.frames,
            "gt_ids": self.gt_ids,
            "gt_dets": self.gt_dets,
            "tracker_ids": self.tracker_ids,
            "tracker_dets": self.tracker_dets,
            "skipped_gt_dets": self.skipped_gt_dets,
            **self.scores,
        }


def evaluate_output(
    gt: FrameBoxes,
    hyp: FrameBoxes,
    frames: Sequence[int],
    *,
    clip: str = "clip",
    camera: int | None = None,
    modality: str = "",
) -> ClipScore:
    """Score tracker output ``hyp`` against ``gt`` on the processed ``frames``."""
    data = trackeval_data(gt, hyp, frames)
    raw = score_sequence(data)
    return ClipScore(
        clip=clip,
        camera=camera,
        modality=modality,
        frames=data["num_timesteps"],
        gt_ids=data["num_gt_ids"],
        gt_dets=data["num_gt_dets"],
        tracker_ids=data["num_tracker_ids"],
        tracker_dets=data["num_tracker_dets"],
        scores=summary(raw),
        raw=raw,
    )


def overall(scores: Sequence[ClipScore]) -> ClipScore:
    """All clips as one row: TrackEval's ``combine_sequences`` (sums of the counts behind
    every metric, not a mean of the clips' scores); id counts are summed over clips."""
    raw = combine({s.clip: s.raw for s in scores})
    return ClipScore(
        clip="overall",
        camera=None,
        modality="",
        frames=sum(s.frames for s in scores),
        gt_ids=sum(s.gt_ids for s in scores),
        gt_dets=sum(s.gt_dets for s in scores),
        tracker_ids=sum(s.tracker_ids for s in scores),
        tracker_dets=sum(s.tracker_dets for s in scores),
        scores=summary(raw),
        raw=raw,
        skipped_gt_dets=sum(s.skipped_gt_dets for s in scores),
    )


# ----------------------------------------------------------------------------- the pipeline

#: Runs a tracker over a clip: (processed frame indices, tracker output per frame).
TrackerRun = Callable[[Clip], tuple[list[int], dict[int, list[tuple[int, BoxXYWH]]]]]


def pipeline_tracker(
    detector: str = "background", sample_fps: float = 5.0, dedup: bool = True
) -> TrackerRun:
    """The platform's own detector + tracker, as ingestion runs them, over a whole clip
    (``dedup=False``: keep near-duplicate frames that ingestion would skip)."""
    from aioreid.platform.pipeline.detect import build_detector
    from aioreid.platform.pipeline.frames import SamplingOptions
    from aioreid.platform.pipeline.tracking import track_video

    det = build_detector(detector)

    def run(clip: Clip) -> tuple[list[int], dict[int, list[tuple[int, BoxXYWH]]]]:
        # max_frames: the whole clip, however long (ingestion's cap is for uploads)
        sampling = SamplingOptions(
            sample_fps=sample_fps,
            max_frames=clip.num_frames + 1,
            **({} if dedup else {"dedup_threshold": 0.0}),
        )
        frames: list[int] = []
        hyp: dict[int, list[tuple[int, BoxXYWH]]] = {}
        for tf in track_video(clip.video, det, sampling):
            frames.append(tf.frame.index)
            hyp[tf.frame.index] = [
                (n, (float(b.x), float(b.y), float(b.w), float(b.h)))
                for b, n in zip(tf.boxes, tf.numbers, strict=True)
                if n > 0
            ]
        return frames, hyp

    return run


@dataclass
class TrackingReport:
    """Per-clip rows and the overall row of one evaluation."""

    world: str
    source: str
    detector: str
    sample_fps: float
    dedup: bool
    reentry_gap_s: float
    clips: list[ClipScore]
    overall: ClipScore

    def to_json(self) -> dict[str, Any]:
        return {
            "world": self.world,
            "source": self.source,
            "detector": self.detector,
            "sample_fps": self.sample_fps,
            "dedup": self.dedup,
            "reentry_gap_s": self.reentry_gap_s,
            "metrics": "TrackEval HOTA, CLEAR (MOTA), Identity (IDF1); IoU threshold 0.5",
            "clips": [c.row() for c in self.clips],
            "overall": self.overall.row(),
        }


def skipped_gt_dets(clip: Clip, frames: Sequence[int], sample_fps: float) -> int:
    """People on frames of the sampling grid that were not processed: what skipping
    near-duplicate frames hid from the tracker (and from the scores)."""
    step = max(1, round(clip.fps / sample_fps))  # the grid iter_video_frames samples on
    done = set(frames)
    return sum(len(dets) for f, dets in clip.gt.items() if f % step == 0 and f not in done)


def evaluate_world(
    world: Path,
    detector: str = "background",
    sample_fps: float = 5.0,
    dedup: bool = True,
    reentry_gap_s: float = 2.0,
    tracker: TrackerRun | None = None,
    on_clip: Callable[[ClipScore], None] | None = None,
) -> TrackingReport:
    """Run ``tracker`` (default: the pipeline's, with ``detector`` at ``sample_fps``) over
    every clip of the world and score it; ``on_clip`` sees each clip's row as it is done.
    ``reentry_gap_s``: see the module docstring (0: one ground-truth track per person)."""
    source, clips = world_clips(Path(world))
    if not clips:
        raise FileNotFoundError(f"{world} has no clips: run `aioreid synth` with videos")
    run = tracker or pipeline_tracker(detector, sample_fps, dedup)
    scores = []
    for clip in clips:
        frames, hyp = run(clip)
        gt = split_reentries(clip.gt, clip.fps, reentry_gap_s) if reentry_gap_s > 0 else clip.gt
        score = evaluate_output(
            gt, hyp, frames, clip=clip.name, camera=clip.camera, modality=clip.modality
        )
        score.skipped_gt_dets = skipped_gt_dets(clip, frames, sample_fps)
        scores.append(score)
        if on_clip is not None:
            on_clip(score)
    return TrackingReport(
        str(world), source, detector, sample_fps, dedup, reentry_gap_s, scores, overall(scores)
    )


def format_table(report: TrackingReport) -> str:
    """The report as a fixed-width text table, one line per clip and the overall line."""
    header = (
        f"{'clip':<24} {'cam':>3} {'mod':<3} {'frames':>6} {'gt ids':>6} "
        f"{'HOTA':>6} {'DetA':>6} {'AssA':>6} {'IDF1':>6} {'MOTA':>7} {'IDSW':>5}"
    )
    lines = [
        f"tracking on {report.source} of {report.world} "
        f"(detector {report.detector}, {report.sample_fps:g} fps sampled, "
        + (
            f"a return after {report.reentry_gap_s:g} s is a new track)"
            if report.reentry_gap_s > 0
            else "one track per person)"
        ),
        header,
        "-" * len(header),
    ]
    for s in [*report.clips, report.overall]:
        if s is report.overall:
            lines.append("-" * len(header))
        v = s.scores
        cam = "" if s.camera is None else str(s.camera)
        lines.append(
            f"{s.clip:<24} {cam:>3} {s.modality:<3} {s.frames:>6} {s.gt_ids:>6} "
            f"{v['HOTA']:>6.3f} {v['DetA']:>6.3f} {v['AssA']:>6.3f} {v['IDF1']:>6.3f} "
            f"{v['MOTA']:>7.3f} {v['IDSW']:>5}"
        )
    skipped = report.overall.skipped_gt_dets
    if skipped:
        lines.append(
            f"not scored: {skipped} of {skipped + report.overall.gt_dets} people-in-frame "
            "on sampled frames\n  (frames skipped as near-duplicates; --no-dedup scores them)"
        )
    return "\n".join(lines)
