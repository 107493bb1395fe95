"""Whole-person verification: crops with no whole person (bare wall, legs only, two people in
one box) never reach the index, and real people still do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aioreid.encoder.data.synth import SynthConfig, build_cameras, sample_identity
from aioreid.encoder.data.synth.video import ClipSpec, render_clip, video_extension
from aioreid.platform.pipeline.detect import (
    BackgroundSubtractionDetector,
    Box,
    Detector,
    build_detector,
)
from aioreid.platform.pipeline.frames import Frame, SamplingOptions, iter_video_frames
from aioreid.platform.pipeline.verify import (
    VerifiedDetector,
    VerifyRules,
    fit_scale,
    holds_person_shape,
    split_two_people,
    verify_window,
)

H, W = 240, 320
FRAMES = 10

#: A decoded clip: its sampled frames and, per frame index, the true boxes.
Clip = tuple[list[Frame], dict[int, list[Box]]]


def _height_at(foot_y: int) -> int:
    """This scene's perspective: a person whose feet are lower in the frame is taller."""
    return round(0.75 * foot_y - 50)


def _person_box(x: int, foot_y: int) -> Box:
    h = _height_at(foot_y)
    return Box(x, foot_y - h, max(8, h // 3), h)


def _scene(
    walkers: list[tuple[int, int, int]], moving_camera: bool = False
) -> tuple[list[np.ndarray], list[list[Box]]]:
    """Frames of a textured static scene with figures walking across, and their true boxes
    per frame. ``walkers``: (start x, foot y, pixels per frame)."""
    rng = np.random.default_rng(0)
    wall = rng.integers(80, 120, (H, W, 3), dtype=np.uint8)
    frames, truth = [], []
    for i in range(FRAMES):
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8) if moving_camera else wall.copy()
        boxes = []
        for x0, foot, speed in walkers:
            b = _person_box(x0 + speed * i, foot)
            _draw_figure(img, b)
            boxes.append(b)
        frames.append(img)
        truth.append(boxes)
    return frames, truth


def _draw_figure(img: np.ndarray, b: Box) -> None:
    """Head, full-width torso, two legs: a silhouette, not a block."""

    def part(x0: float, y0: float, x1: float, y1: float, colour: tuple[int, int, int]) -> None:
        img[
            b.y + round(y0 * b.h) : b.y + round(y1 * b.h),
            b.x + round(x0 * b.w) : b.x + round(x1 * b.w),
        ] = colour

    part(0.3, 0.0, 0.7, 0.15, (220, 170, 140))  # head
    part(0.0, 0.15, 1.0, 0.55, (200, 40, 40))  # coat
    part(0.2, 0.55, 0.45, 1.0, (30, 30, 190))  # legs
    part(0.55, 0.55, 0.8, 1.0, (30, 30, 190))


def test_bare_wall_box_is_rejected_and_person_kept() -> None:
    frames, truth = _scene([(10, 200, 12), (200, 150, -10)])
    wall = Box(240, 20, 30, 90)  # a patch of wall nobody walks past
    boxes = [[*t, wall] for t in truth]
    kept = verify_window(frames, boxes)
    assert all(wall not in k for k in kept)
    assert all(set(t) <= set(k) for t, k in zip(truth, kept, strict=True))


def test_legs_only_box_is_rejected_by_the_scene_scale() -> None:
    walkers = [(10, 200, 12), (280, 150, -10), (130, 230, 10)]
    frames, truth = _scene(walkers)
    # The lower 40% of the third walker, its middle: feet where they should be, the shape
    # of a person and all foreground, but far too short for a person standing there.
    legs = [_legs(t[2]) for t in truth]
    assert all(holds_person_shape(b) for b in legs)
    kept = verify_window(frames, [[*t, legs[i]] for i, t in enumerate(truth)])
    assert all(legs[i] not in k for i, k in enumerate(kept))
    assert sum(len(k) for k in kept) == sum(len(t) for t in truth)  # every whole person stays
    line = fit_scale([b for t in truth for b in t])
    assert line is not None
    a, c = line
    assert a * 200 + c == pytest.approx(_height_at(200), rel=0.05)


def _legs(b: Box) -> Box:
    top = round(0.6 * b.h)
    return Box(b.x + b.w // 4, b.y + top, b.w // 2, b.h - top)


def test_two_people_side_by_side_are_split_into_two_boxes() -> None:
    # Two walkers shoulder to shoulder: one foreground blob, one box around both.
    width = _person_box(0, 210).w
    frames, truth = _scene([(20, 210, 20), (20 + width + 1, 210, 20)])
    raw = BackgroundSubtractionDetector().detect(frames)
    assert len(raw[3]) == 1, "the shipped detector merges the pair"
    assert all(person.iou(raw[3][0]) < 0.5 for person in truth[3])
    kept = verify_window(frames, raw)[3]
    assert len(kept) == 2
    for person in truth[3]:
        assert max(person.iou(k) for k in kept) > 0.7


def test_split_needs_a_valley() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[10:90, 20:70] = 255  # one wide blob, no gap
    box = Box(20, 10, 50, 80)
    assert split_two_people(box, mask) == [box]
    mask[10:90, 43:47] = 0  # a clear gap down the middle
    halves = split_two_people(box, mask)
    assert [(b.x, b.w) for b in halves] == [(20, 23), (47, 23)]


def test_moving_camera_keeps_person_shaped_boxes() -> None:
    # Every frame is fresh noise: no background model, so only shape and scale can judge.
    frames, truth = _scene([(10, 200, 12)], moving_camera=True)
    flat = Box(100, 100, 90, 40)  # wider than tall: no standing person
    kept = verify_window(frames, [[*t, flat] for t in truth])
    assert kept == truth


def test_single_image_gets_shape_rules_only() -> None:
    img = np.full((160, 80, 3), 100, np.uint8)
    person, flat = Box(10, 10, 40, 120), Box(0, 0, 80, 50)
    assert verify_window([img], [[person, flat]]) == [[person]]


def test_build_detector_returns_verified_detectors() -> None:
    det = build_detector("background")
    assert isinstance(det, VerifiedDetector) and det.name == "background"
    assert build_detector("hog").name == "hog"
    # Too few frames for a background: nothing, not the whole frame.
    assert det.detect([np.zeros((120, 160, 3), np.uint8)]) == [[]]


# ------------------------------------------------------------------ on rendered clips


def _count_matches(found: list[Box], truth: list[Box]) -> int:
    """Detections matching a distinct true box at IoU >= 0.5, best score first."""
    free = list(truth)
    n = 0
    for box in sorted(found, key=lambda b: -b.score):
        ious = [box.iou(t) for t in free]
        if ious and max(ious) >= 0.5:
            free.pop(ious.index(max(ious)))
            n += 1
    return n


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """One 4 s clip per camera of a small world (4 RGB, 2 IR), four walkers each."""
    root = tmp_path_factory.mktemp("clips")
    seed = 3
    ids = {p: sample_identity(p, seed) for p in range(1, 5)}
    out: list[Clip] = []
    for cam in build_cameras(SynthConfig(seed=seed)):
        video = root / f"cam{cam.cam_id}{video_extension()}"
        ann = render_clip(
            ClipSpec(cam, 0, (1, 2, 3, 4), 4.0, 10), ids, video, Path(f"{video}.json")
        )
        truth = {f["frame"]: [Box(*o["box"]) for o in f["objects"]] for f in ann["frames"]}
        out.append((list(iter_video_frames(video, SamplingOptions(sample_fps=5.0))), truth))
    return out


def _precision_recall(detector: Detector, clips: list[Clip]) -> tuple[float, float]:
    """Precision and recall at IoU 0.5 over the clips, in ingestion's windows of 24."""
    correct = found = true = 0
    for frames, truth in clips:
        for start in range(0, len(frames), 24):
            window = frames[start : start + 24]
            for f, boxes in zip(window, detector.detect([f.image for f in window]), strict=True):
                correct += _count_matches(boxes, truth[f.index])
                found += len(boxes)
                true += len(truth[f.index])
    return correct / found, correct / true


def test_verification_raises_precision_on_rendered_clips(clips: list[Clip]) -> None:
    shipped_p, shipped_r = _precision_recall(BackgroundSubtractionDetector(), clips)
    p, r = _precision_recall(build_detector("background"), clips)
    assert p >= shipped_p + 0.05, (shipped_p, p)
    assert p >= 0.85
    # Some people are half hidden by others or cut by the frame edge: no detector here finds
    # those, so recall has a floor, not a target of 1.
    assert r >= 0.5 and r >= shipped_r, (shipped_r, r)


def test_rules_alone_raise_precision_of_the_shipped_detector(clips: list[Clip]) -> None:
    shipped_p, shipped_r = _precision_recall(BackgroundSubtractionDetector(), clips)
    ruled = VerifiedDetector(BackgroundSubtractionDetector(), VerifyRules(fg_threshold=28))
    p, r = _precision_recall(ruled, clips)
    assert p > shipped_p and r >= 0.95 * shipped_r, (shipped_p, p, shipped_r, r)


def test_one_list_of_detectors_is_what_every_surface_offers() -> None:
    from aioreid.platform.api.schemas import FolderIngestRequest
    from aioreid.platform.pipeline.detect import RAW_DETECTORS, build_detector
    from aioreid.platform.pipeline.detector_names import DETECTOR_HELP, DETECTOR_NAMES

    assert set(RAW_DETECTORS) == set(DETECTOR_NAMES)
    for name in DETECTOR_NAMES:  # every name offered builds
        assert hasattr(build_detector(name), "detect")
    offered = FolderIngestRequest.model_json_schema()["properties"]["detector"]["enum"]
    assert offered == list(DETECTOR_NAMES)
    assert all(name in DETECTOR_HELP for name in DETECTOR_NAMES)
    with pytest.raises(ValueError, match="crops, background, hog or onnx:PATH"):
        build_detector("yolo")
