"""Detection quality: precision and recall of the person detectors against the ground-truth
boxes of the synthetic world's clips, per camera modality, before and after the whole-person
verification (``aioreid.platform.pipeline.verify``).

    python benchmarks/bench_detectors.py [--world DIR] [--sample-fps 2,5] [--ablate]
                                         [--detectors background,hog] [--onnx MODEL.onnx]

The detectors see what ingestion shows them. Each clip is decoded by ``iter_video_frames`` at
``--sample-fps`` (2 is the pipeline's default, 5 the demo's), with near-duplicate frames
skipped, and cut into windows of ``--window`` consecutive sampled frames (24, as in
ingestion). A sampled frame is scored against the annotation of the same frame index. A
detection is correct if it overlaps an unmatched true box with IoU >= ``--iou`` (0.5).
Detections are taken highest score first, each true box matches at most once, as in
COCO/VOC. The ground truth includes people at the frame edge (>= 30% visible) and people
half hidden by others. Neither detector can separate those, so recall stays well below 1.

Variants, all in the same run:

* ``shipped``: the raw detector as it shipped (``RAW_DETECTORS[name]()``);
* ``shipped+rules`` (background only): the same detector, its boxes put through the
  whole-person rules. This is the effect of verification alone;
* ``verified``: what ``build_detector(name)`` returns now, which is what ingestion uses;
* with ``--ablate``, ``verified-<rule>``: the same with one rule switched off.

Without ``--world``, a small world (12 identities, 4 RGB + 2 IR cameras, 4 clips of 4 s at
10 fps per camera) is synthesised into a temporary folder first (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2

from aioreid.encoder.data.synth import SynthConfig, generate_world
from aioreid.platform.pipeline.detect import (
    RAW_DETECTORS,
    BackgroundSubtractionDetector,
    Box,
    Detector,
    build_detector,
)
from aioreid.platform.pipeline.frames import Frame, SamplingOptions, iter_video_frames
from aioreid.platform.pipeline.verify import VerifiedDetector, VerifyRules

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "detectors.json"


@dataclass
class Clip:
    """One annotated clip, decoded as ingestion decodes it."""

    path: str
    modality: str
    frames: list[Frame]
    truth: dict[int, list[Box]]  # frame index -> true boxes


@dataclass
class Tally:
    """Counts behind precision and recall."""

    correct: int = 0
    detections: int = 0
    truths: int = 0

    def add(self, other: Tally) -> None:
        self.correct += other.correct
        self.detections += other.detections
        self.truths += other.truths

    def summary(self) -> dict[str, float]:
        return {
            "precision": round(self.correct / self.detections, 4) if self.detections else 0.0,
            "recall": round(self.correct / self.truths, 4) if self.truths else 0.0,
            "correct": self.correct,
            "detections": self.detections,
            "truths": self.truths,
        }


def synth_world(out: Path, seed: int) -> Path:
    """A small world with clips only worth measuring: few identities, one shot per camera."""
    cfg = SynthConfig(
        identities=12,
        seed=seed,
        images_per_camera=(1, 1),
        sketches=(1, 1),
        captions=(1, 1),
        distractors=0,
        videos_per_camera=4,
        video_seconds=4.0,
        workers=2,
        progress=False,
    )
    generate_world(out, cfg)
    return out


def load_clips(world: Path, sample_fps: float) -> list[Clip]:
    """Every clip of ``world`` with its per-frame true boxes, sampled at ``sample_fps``."""
    manifest = json.loads((world / "world.json").read_text(encoding="utf-8"))
    clips = []
    for video in manifest["videos"]:
        ann = json.loads((world / video["annotation"]).read_text(encoding="utf-8"))
        truth = {f["frame"]: [Box(*o["box"]) for o in f["objects"]] for f in ann["frames"]}
        frames = list(iter_video_frames(world / video["path"], SamplingOptions(sample_fps)))
        clips.append(Clip(video["path"], video["modality"], frames, truth))
    return clips


def count_matches(found: Sequence[Box], truth: Sequence[Box], iou: float) -> int:
    """Detections that match a distinct true box at ``iou`` or more, best score first."""
    free = list(truth)
    correct = 0
    for box in sorted(found, key=lambda b: -b.score):
        overlaps = [box.iou(t) for t in free]
        if overlaps and max(overlaps) >= iou:
            free.pop(overlaps.index(max(overlaps)))
            correct += 1
    return correct


def evaluate(
    detector: Detector, clips: Sequence[Clip], window: int, iou: float
) -> tuple[dict[str, Tally], float]:
    """Tallies per modality (and ``all``) and the seconds spent in ``detect``."""
    tallies: dict[str, Tally] = {}
    seconds = 0.0
    for clip in clips:
        tally = tallies.setdefault(clip.modality, Tally())
        for start in range(0, len(clip.frames), window):
            chunk = clip.frames[start : start + window]
            t0 = time.perf_counter()
            boxes = detector.detect([f.image for f in chunk])
            seconds += time.perf_counter() - t0
            for frame, found in zip(chunk, boxes, strict=True):
                truth = clip.truth.get(frame.index, [])
                tally.add(Tally(count_matches(found, truth, iou), len(found), len(truth)))
    total = Tally()
    for t in list(tallies.values()):
        total.add(t)
    tallies["all"] = total
    return tallies, seconds


def variants(
    names: Sequence[str], onnx: Path | None, ablate: bool = False
) -> list[tuple[str, str, Callable[[], Any]]]:
    """``(detector, variant, factory)`` for every detector measured."""
    out: list[tuple[str, str, Callable[[], Any]]] = []
    for name in names:
        out.append((name, "shipped", RAW_DETECTORS[name]))
        if name == "background":
            # The shipped detector's own threshold for the rules' background model too.
            rules = VerifyRules(fg_threshold=BackgroundSubtractionDetector().threshold)
            out.append(
                (
                    name,
                    "shipped+rules",
                    lambda r=rules: VerifiedDetector(RAW_DETECTORS["background"](), r),
                )
            )
        out.append((name, "verified", lambda n=name: build_detector(n)))
        if ablate:
            out += [(name, f"verified-{rule}", _without(name, rule)) for rule in ABLATIONS[name]]
    if onnx is not None:
        from aioreid.platform.pipeline.detect_onnx import OnnxDetector

        out.append(("onnx", "shipped", lambda: OnnxDetector(onnx)))
        out.append(("onnx", "verified", lambda: build_detector(f"onnx:{onnx}")))
    return out


#: ``--ablate``: each rule switched off in turn (the rest of ``build_detector``'s set-up kept).
ABLATIONS: dict[str, dict[str, dict[str, float]]] = {
    "background": {
        "split": {"split_aspect": 0.0},
        "scale": {"scale_support": 10**9},
        "shape": {"min_aspect": 0.0, "max_aspect": 1e9},
    },
    "hog": {"fill": {"min_fill": 0.0}, "scale": {"scale_support": 10**9}},
}


def _without(name: str, rule: str) -> Callable[[], VerifiedDetector]:
    def factory() -> VerifiedDetector:
        det = build_detector(name)
        assert isinstance(det, VerifiedDetector)
        return VerifiedDetector(det.inner, replace(det.rules, **ABLATIONS[name][rule]))

    return factory


def _fmt_row(run: dict[str, Any], modalities: Sequence[str]) -> str:
    cells = [f"{run['detector']:<11}{run['variant']:<15}"]
    for m in modalities:
        s = run["modalities"][m]
        cells.append(f"{s['precision']:>7.3f}{s['recall']:>7.3f}")
    cells.append(f"{run['ms_per_frame']:>9.1f}")
    return "".join(cells)


def _ratios(runs: list[dict[str, Any]], modalities: Sequence[str]) -> list[dict[str, Any]]:
    """verified / shipped precision and recall, per detector, rate and modality."""
    out = []
    base = {(r["sample_fps"], r["detector"]): r for r in runs if r["variant"] == "shipped"}
    for r in runs:
        b = base.get((r["sample_fps"], r["detector"]))
        if r["variant"] == "shipped" or b is None:
            continue
        ratio = {"sample_fps": r["sample_fps"], "detector": r["detector"], "variant": r["variant"]}
        for m in modalities:
            new, old = r["modalities"][m], b["modalities"][m]
            for k in ("precision", "recall"):
                ratio[f"{m}_{k}"] = round(new[k] / old[k], 3) if old[k] else None
        out.append(ratio)
    return out


def run(args: argparse.Namespace, world: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    modalities = ["rgb", "ir", "all"]
    for fps in args.sample_fps:
        clips = load_clips(world, fps)
        frames = sum(len(c.frames) for c in clips)
        people = sum(len(c.truth.get(f.index, [])) for c in clips for f in c.frames)
        per_mod = {m: sum(c.modality == m for c in clips) for m in ("rgb", "ir")}
        print(
            f"\nsample_fps {fps:g}: {len(clips)} clips ({per_mod['rgb']} rgb, {per_mod['ir']} ir), "
            f"{frames} sampled frames, {people} true boxes; IoU >= {args.iou}, "
            f"windows of {args.window}"
        )
        print(
            f"{'detector':<11}{'variant':<15}"
            + "".join(f"{m + ' P':>7}{m + ' R':>7}" for m in modalities)
            + f"{'ms/frame':>9}"
        )
        for name, variant, factory in variants(args.detectors, args.onnx, args.ablate):
            tallies, seconds = evaluate(factory(), clips, args.window, args.iou)
            entry = {
                "sample_fps": fps,
                "detector": name,
                "variant": variant,
                "modalities": {m: tallies.get(m, Tally()).summary() for m in modalities},
                "ms_per_frame": round(1000 * seconds / max(1, frames), 2),
            }
            runs.append(entry)
            print(_fmt_row(entry, modalities), flush=True)
    ratios = _ratios(runs, modalities)
    print("\nverified / shipped (precision, recall):")
    for r in ratios:
        cells = "  ".join(f"{m} P x{r[f'{m}_precision']} R x{r[f'{m}_recall']}" for m in modalities)
        print(f"  fps {r['sample_fps']:g} {r['detector']:<11}{r['variant']:<15}{cells}")
    return {"runs": runs, "ratios": ratios}


def _fps_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"rates must be > 0: {text!r}")
    return values


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in RAW_DETECTORS or n == "crops"]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown detectors {unknown}; use background, hog")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=None, help="world folder (default: synthesise)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthesised world")
    ap.add_argument("--sample-fps", type=_fps_list, default=[2.0, 5.0], help="e.g. 2,5")
    ap.add_argument("--window", type=int, default=24)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--detectors", type=_names, default=["background", "hog"])
    ap.add_argument("--onnx", type=Path, default=None, help="also measure this ONNX model")
    ap.add_argument("--ablate", action="store_true", help="also each rule switched off")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    tmp = None
    world = args.world
    if world is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_detectors_"))
        world = synth_world(tmp / "world", args.seed)
    try:
        config = json.loads((world / "world.json").read_text(encoding="utf-8"))["config"]
        result = run(args, world)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "world": str(args.world) if args.world else f"synthesised (seed {args.seed})",
        "world_config": config,
        "iou": args.iou,
        "window": args.window,
        **result,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "opencv": cv2.__version__,
            "python": sys.version.split()[0],
        },
    }
    print(f"\n{result['seconds']} s in all")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
