"""Bring-your-own ONNX detector: tiny YOLO-shaped graphs built here with the onnx helpers.

The graphs put out fixed candidate boxes (in model-input pixels) whose scores are scaled by
the mean input pixel of the rows where the letterboxed frame should land. So a white frame
gives the scores as written and a black frame gives none, and the tests see both the
letterboxing and the [0, 1] input scaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from aioreid.platform.pipeline.detect import Box, build_detector
from aioreid.platform.pipeline.detect_onnx import (
    OnnxDetector,
    build_onnx_detector,
    letterbox,
)

# Frames are 240 x 480 (h x w); the model input is 320 x 320. Scale 2/3, so the frame
# becomes 160 x 320, centred with 80 rows of padding above and below.
FRAME_HW = (240, 480)
INPUT = 320
SCALE, PAD_Y = 2 / 3, 80.0

# Candidates in frame pixels: (x, y, w, h, person score, other-class score, objectness).
PERSON = (60, 30, 40, 120, 0.9, 0.05, 1.0)
PERSON_ECHO = (64, 33, 40, 120, 0.7, 0.05, 1.0)  # the same person, weaker: NMS drops it
PERSON_2 = (300, 60, 50, 150, 0.8, 0.1, 1.0)
BAG = (200, 150, 40, 40, 0.02, 0.95, 1.0)  # another class
FAINT = (400, 40, 30, 90, 0.1, 0.0, 1.0)  # under the score threshold
CANDIDATES = [PERSON, PERSON_ECHO, PERSON_2, BAG, FAINT]


def _to_input(c: tuple[float, ...]) -> list[float]:
    """A frame-pixel candidate as centre-size in model-input pixels."""
    x, y, w, h = c[:4]
    return [(x + w / 2) * SCALE, (y + h / 2) * SCALE + PAD_Y, w * SCALE, h * SCALE]


def _rows(layout: str, candidates: list[tuple[float, ...]]) -> np.ndarray:
    """One image's raw output in ``layout``, two classes (person = 0, other = 1).

    Padded with empty candidates to 16, so there are more boxes than values per box, as in
    real models (thousands of anchors): the layout can be told from the shape.
    """
    candidates = candidates + [(0, 0, 0, 0, 0.0, 0.0, 0.0)] * (16 - len(candidates))
    if layout == "v8":
        return np.array([[*_to_input(c), c[4], c[5]] for c in candidates], np.float32).T
    return np.array([[*_to_input(c), c[6], c[4], c[5]] for c in candidates], np.float32)


def _model(
    path: Path,
    raw: np.ndarray,
    input_shape: list[int | str] | None = None,
    scale_by_pixels: bool = True,
) -> Path:
    """A graph: ``raw`` (one image's output), its scores times the mean of the frame's rows."""
    input_shape = input_shape or [1, 3, INPUT, INPUT]
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)
    out_shape = ["batch", *raw.shape] if isinstance(input_shape[0], str) else [1, *raw.shape]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    # The rows the frame fills (no padding), then the mean over C, H, W: shape (N, 1, 1),
    # which broadcasts against the (1, rows, cols) constants.
    frame_rows = [int(PAD_Y), int(PAD_Y + FRAME_HW[0] * SCALE)]
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["frame"]),
        helper.make_node("ReduceMean", ["frame"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "mean_shape"], ["mean"]),
    ]
    boxes, scores = _split_scores(raw)
    inits = [
        helper.make_tensor("boxes", TensorProto.FLOAT, [1, *raw.shape], boxes.ravel()),
        helper.make_tensor("scores", TensorProto.FLOAT, [1, *raw.shape], scores.ravel()),
        helper.make_tensor("starts", TensorProto.INT64, [1], frame_rows[:1]),
        helper.make_tensor("ends", TensorProto.INT64, [1], frame_rows[1:]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [2]),
        helper.make_tensor("mean_shape", TensorProto.INT64, [3], [-1, 1, 1]),
    ]
    if scale_by_pixels:
        nodes.append(helper.make_node("Mul", ["scores", "mean"], ["scaled"]))
    else:  # still read the input, but ignore its values
        nodes += [
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["scores", "nothing"], ["scaled"]),
        ]
        inits.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
    nodes.append(helper.make_node("Add", ["boxes", "scaled"], ["output0"]))
    graph = helper.make_graph(nodes, "tiny_yolo", [image], [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _split_scores(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(box coordinates with zeroed scores, scores with zeroed coordinates) of ``raw``."""
    v8 = raw.shape[0] < raw.shape[1]
    boxes, scores = raw.copy(), raw.copy()
    if v8:
        boxes[4:], scores[:4] = 0, 0
    else:
        boxes[:, 4:], scores[:, :4] = 0, 0
    return boxes, scores


def _white() -> np.ndarray:
    return np.full((*FRAME_HW, 3), 255, np.uint8)


def _near(found: Box, c: tuple[float, ...]) -> bool:
    return (
        max(abs(a - b) for a, b in zip((found.x, found.y, found.w, found.h), c[:4], strict=True))
        <= 1
    )


def _assert_persons(boxes: list[Box], layout: str) -> None:
    assert len(boxes) == 2, boxes  # the echo, the bag and the faint one are gone
    first, second = sorted(boxes, key=lambda b: b.x)
    assert _near(first, PERSON) and _near(second, PERSON_2)
    assert first.score == pytest.approx(0.9, abs=1e-3)  # white frame: mean pixel exactly 1.0
    assert second.score == pytest.approx(0.8, abs=1e-3)


@pytest.mark.parametrize("layout", ["v8", "v5"])
def test_yolo_layouts_give_person_boxes_in_frame_pixels(tmp_path: Path, layout: str) -> None:
    path = _model(tmp_path / f"{layout}.onnx", _rows(layout, CANDIDATES))
    det = OnnxDetector(path)
    assert det.input_size == (INPUT, INPUT)
    boxes = det.detect([_white(), np.zeros((*FRAME_HW, 3), np.uint8)])
    _assert_persons(boxes[0], layout)
    assert boxes[1] == []  # a black frame scales every score to 0


def test_v5_confidence_is_objectness_times_class_score(tmp_path: Path) -> None:
    unsure = (*PERSON[:6], 0.5)  # the model is only half sure there is an object
    det = OnnxDetector(_model(tmp_path / "v5.onnx", _rows("v5", [unsure]), scale_by_pixels=False))
    (box,) = det.detect([_white()])[0]
    assert box.score == pytest.approx(0.45, abs=1e-3)


def test_person_class_and_threshold_are_options(tmp_path: Path) -> None:
    path = _model(tmp_path / "v8.onnx", _rows("v8", CANDIDATES))
    bags = build_onnx_detector(f"{path}?person_class=1&min_score=0.5").detect([_white()])[0]
    assert len(bags) == 1 and _near(bags[0], BAG)
    strict = build_onnx_detector(f"{path}?min_score=0.85").detect([_white()])[0]
    assert len(strict) == 1 and _near(strict[0], PERSON)
    with pytest.raises(ValueError, match="unknown onnx detector option 'klass'"):
        build_onnx_detector(f"{path}?klass=1")
    with pytest.raises(ValueError, match="person class 5 but the model has 2"):
        build_onnx_detector(f"{path}?person_class=5")


def test_build_detector_loads_onnx_models(tmp_path: Path) -> None:
    path = _model(tmp_path / "v8.onnx", _rows("v8", CANDIDATES))
    det = build_detector(f"onnx:{path}")
    assert det.name == "onnx"
    boxes = det.detect([_white(), _white()])
    for frame_boxes in boxes:
        _assert_persons(frame_boxes, "v8")


def test_dynamic_input_is_letterboxed_to_640_and_batched(tmp_path: Path) -> None:
    # A dynamic graph sees 640 x 640 inputs: the frame is scaled by 4/3 and padded by 160.
    scale, pad = 640 / 480, (640 - 240 * 640 / 480) / 2
    x, y, w, h = PERSON[:4]
    row = [(x + w / 2) * scale, (y + h / 2) * scale + pad, w * scale, h * scale, 0.9, 0.0]
    raw = np.zeros((6, 16), np.float32)  # v8: channels first
    raw[:, :2] = np.array([row, row], np.float32).T
    dynamic = ["batch", 3, "height", "width"]
    path = _model(tmp_path / "dyn.onnx", raw, input_shape=dynamic, scale_by_pixels=False)
    det = OnnxDetector(path)
    assert det.input_size == (640, 640)
    boxes = det.detect([_white()] * 3)  # one batch of three frames
    assert [len(b) for b in boxes] == [1, 1, 1]
    assert all(_near(b[0], PERSON) for b in boxes)


def test_boxes_past_the_frame_are_clipped(tmp_path: Path) -> None:
    spill = (-20, 180, 60, 120, 0.9, 0.0, 1.0)  # runs off the left and the bottom
    det = OnnxDetector(_model(tmp_path / "v8.onnx", _rows("v8", [spill, spill, spill])))
    (box,) = det.detect([_white()])[0]
    assert (box.x, box.y, box.x + box.w, box.y + box.h) == (0, 180, 40, FRAME_HW[0])


def test_letterbox_keeps_aspect_and_centres() -> None:
    img, lb = letterbox(_white(), (INPUT, INPUT))
    assert img.shape == (INPUT, INPUT, 3) and lb.scale == pytest.approx(SCALE)
    assert (lb.pad_x, lb.pad_y) == (0.0, PAD_Y)
    assert img[0, 0, 0] == 114 and img[int(PAD_Y), 0, 0] == 255


def test_unusable_models_are_readable_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ValueError, match=r"model not found: .*nope\.onnx"):
        build_detector(f"onnx:{missing}")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match=r"junk\.onnx: not a loadable ONNX model"):
        build_detector(f"onnx:{junk}")
    # (1, 4, 50): four values per box leave no room for a class score.
    flat = _model(tmp_path / "flat.onnx", np.zeros((4, 50), np.float32))
    with pytest.raises(ValueError, match=r"flat\.onnx: v8 output needs at least 5 values"):
        OnnxDetector(flat)
    square = _model(tmp_path / "square.onnx", np.zeros((6, 6), np.float32))
    with pytest.raises(ValueError, match=r"square\.onnx: .*ambiguous"):
        OnnxDetector(square)
    assert OnnxDetector(square, layout="v8").detect([_white()]) == [[]]
    with pytest.raises(ValueError, match=r"onnx:/path/to/model\.onnx"):
        build_detector("onnx:")
