"""Bring your own person detector: a YOLO-style ONNX model run by onnxruntime.

``build_detector("onnx:/models/yolov8n.onnx")`` loads the model at that path.
Options follow a ``?``, e.g. ``onnx:/models/yolov5s.onnx?person_class=0&min_score=0.4``:

* ``person_class`` (default 0, COCO's person): the class whose boxes are kept;
* ``min_score`` (default 0.25): the confidence a box needs. YOLOv5 confidence is objectness
  times class score, YOLOv8 has the class score alone;
* ``nms_iou`` (default 0.45): the overlap above which the weaker of two boxes goes;
* ``layout`` (``auto``, ``v8`` or ``v5``): the output layout (below), if ``auto`` guesses
  wrong.

What the model must look like:

* input: one NCHW float tensor, RGB scaled to [0, 1]. The frame is letterboxed to the
  input's height and width (grey 114 padding, aspect kept) when the graph fixes them,
  else to 640 x 640;
* output: one of the two common YOLO layouts, boxes as centre x, centre y, width and
  height in input pixels:

  - ``v8`` (YOLOv8/11): ``(1, 4 + nc, N)``, then one score per class;
  - ``v5`` (YOLOv5/7): ``(1, N, 5 + nc)``, then objectness, then one score per class.

  ``auto`` takes the smaller of the last two dimensions for the per-box values (N is
  thousands of anchors, 4 + nc is tens).

Models that already include NMS (``(1, N, 6)`` end-to-end exports) are not this layout:
export without it. The session uses the CUDA provider when onnxruntime has one, else the
CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .detect import Box

DEFAULT_SIZE = 640
_PAD_VALUE = 114
_LAYOUTS = ("auto", "v8", "v5")
_MAX_BATCH = 8


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: ``scale``, then ``pad_x``/``pad_y``."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """``img`` resized to fit ``size`` (h, w) with its aspect kept, centred on grey."""
    h, w = img.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out = np.full((th, tw, 3), _PAD_VALUE, np.uint8)
    out[top : top + nh, left : left + nw] = resized
    return out, Letterbox(scale, float(left), float(top))


@dataclass
class OnnxDetector:
    """A YOLO-style ONNX person detector (see the module docstring for the model contract)."""

    path: Path
    person_class: int = 0
    min_score: float = 0.25
    nms_iou: float = 0.45
    layout: str = "auto"
    max_boxes: int = 300
    name: str = "onnx"
    input_size: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.layout not in _LAYOUTS:
            raise ValueError(f"{self.path}: layout must be one of {_LAYOUTS}, not {self.layout!r}")
        self._session = _load_session(self.path)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: a detector takes one input image, not {len(inputs)}")
        self._input = inputs[0].name
        self._dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self.input_size = _input_size(self.path, inputs[0].shape)
        self._batch = _static_batch(inputs[0].shape)
        shape = outputs[0].shape
        if shape and len(shape) != 3:  # an empty shape: unknown until the first run
            raise ValueError(
                f"{self.path}: output {outputs[0].name!r} has shape {shape}; expected a YOLO "
                "output (1, 4+nc, N) or (1, N, 5+nc)"
            )
        if shape and all(isinstance(d, int) for d in shape[1:]):
            # A fixed output shape can be checked now rather than on the first frame.
            decode_yolo(np.zeros(shape[1:], np.float32), self.person_class, self.layout, self.path)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        out: list[list[Box]] = []
        # Batch the window when the graph allows it, a few frames at a time to bound memory.
        step = self._batch or _MAX_BATCH
        for i in range(0, len(frames), step):
            chunk = [_rgb(f) for f in frames[i : i + step]]
            fitted = [letterbox(f, self.input_size) for f in chunk]
            batch = np.stack([img for img, _ in fitted]).transpose(0, 3, 1, 2)
            batch = (batch.astype(np.float32) / 255.0).astype(self._dtype)
            raw = np.asarray(self._session.run(None, {self._input: batch})[0], np.float32)
            if raw.ndim != 3 or raw.shape[0] != len(chunk):
                raise ValueError(
                    f"{self.path}: output has shape {raw.shape} for {len(chunk)} images; "
                    "expected (images, 4+nc, N) or (images, N, 5+nc)"
                )
            for j, (f, (_, lb)) in enumerate(zip(chunk, fitted, strict=True)):
                out.append(self._boxes(raw[j], lb, f.shape[:2]))
        return out

    def _boxes(self, raw: np.ndarray, lb: Letterbox, frame_hw: tuple[int, int]) -> list[Box]:
        """Person boxes in frame pixels from one image's raw output."""
        xywh, scores = decode_yolo(raw, self.person_class, self.layout, self.path)
        keep = scores >= self.min_score
        xywh, scores = xywh[keep], scores[keep]
        if len(scores) == 0:
            return []
        rects = _to_frame(xywh, lb, frame_hw)
        idx = cv2.dnn.NMSBoxes(
            rects.tolist(), scores.tolist(), self.min_score, self.nms_iou, top_k=self.max_boxes
        )
        boxes = []
        for k in np.ravel(idx).astype(int):
            # Round the corners, not the size, so a box never drifts by a rounding pixel.
            x, y, w, h = rects[k].tolist()
            x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
            if x1 > x0 and y1 > y0:
                boxes.append(Box(x0, y0, x1 - x0, y1 - y0, min(1.0, float(scores[k]))))
        return boxes


def decode_yolo(
    raw: np.ndarray, person_class: int, layout: str = "auto", path: Path | str = "model"
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 4)`` centre-size boxes and ``(N,)`` person scores from one image's output."""
    if raw.ndim != 2:
        raise ValueError(f"{path}: one image's output should be 2-D, got shape {raw.shape}")
    if layout == "auto":
        if raw.shape[0] == raw.shape[1]:
            raise ValueError(
                f"{path}: output {raw.shape} is square, so its layout is ambiguous; "
                "pass layout=v8 or layout=v5"
            )
        layout = "v8" if raw.shape[0] < raw.shape[1] else "v5"
    rows = raw.T if layout == "v8" else raw  # one row per candidate box
    first_class = 4 if layout == "v8" else 5
    classes = rows.shape[1] - first_class
    if classes < 1:
        raise ValueError(
            f"{path}: {layout} output needs at least {first_class + 1} values per box, "
            f"got {rows.shape[1]} (output {raw.shape})"
        )
    if not 0 <= person_class < classes:
        raise ValueError(f"{path}: person class {person_class} but the model has {classes}")
    scores = rows[:, first_class + person_class]
    if layout == "v5":
        scores = scores * rows[:, 4]  # objectness times class score
    return rows[:, :4], scores


def _to_frame(xywh: np.ndarray, lb: Letterbox, frame_hw: tuple[int, int]) -> np.ndarray:
    """Centre-size boxes in input pixels to ``x, y, w, h`` in frame pixels, clipped."""
    h, w = frame_hw
    x0 = np.clip((xywh[:, 0] - xywh[:, 2] / 2 - lb.pad_x) / lb.scale, 0, w)
    y0 = np.clip((xywh[:, 1] - xywh[:, 3] / 2 - lb.pad_y) / lb.scale, 0, h)
    x1 = np.clip((xywh[:, 0] + xywh[:, 2] / 2 - lb.pad_x) / lb.scale, 0, w)
    y1 = np.clip((xywh[:, 1] + xywh[:, 3] / 2 - lb.pad_y) / lb.scale, 0, h)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def build_onnx_detector(spec: str) -> OnnxDetector:
    """An :class:`OnnxDetector` from ``PATH[?key=value&...]`` (see the module docstring)."""
    path, _, query = spec.partition("?")
    if not path:
        raise ValueError("onnx detector needs a model path: onnx:/path/to/model.onnx")
    kwargs: dict[str, Any] = {}
    casts = {"person_class": int, "min_score": float, "nms_iou": float, "layout": str}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in casts:
            raise ValueError(f"unknown onnx detector option {key!r}; known: {sorted(casts)}")
        try:
            kwargs[key] = casts[key](value)
        except ValueError:
            raise ValueError(f"onnx detector option {key}={value!r} is not valid") from None
    return OnnxDetector(Path(path), **kwargs)


def providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, always the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _load_session(path: Path) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ValueError(f"ONNX detector model not found: {path}")
    try:
        return ort.InferenceSession(str(path), providers=providers())
    except Exception as exc:  # onnxruntime raises its own exception types, no common base
        raise ValueError(f"{path}: not a loadable ONNX model ({exc})") from None


def _input_size(path: Path, shape: Sequence[Any]) -> tuple[int, int]:
    """(h, w) of an NCHW input: the graph's own when fixed, else the default."""
    if len(shape) != 4:
        raise ValueError(f"{path}: input has shape {list(shape)}; expected NCHW (1, 3, H, W)")
    if isinstance(shape[1], int) and shape[1] != 3:
        raise ValueError(f"{path}: input has {shape[1]} channels; expected 3 (RGB)")
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return h, w
    return DEFAULT_SIZE, DEFAULT_SIZE


def _static_batch(shape: Sequence[Any]) -> int | None:
    """The batch size the graph fixes, None when it takes any."""
    return shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None


def _rgb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img
