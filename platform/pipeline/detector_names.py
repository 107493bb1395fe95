"""The person detectors by name: the one list that the API, the CLI, the console and the
benchmarks offer. Kept apart from :mod:`.detect` (OpenCV, numpy) so that the API schemas
and the SDK can name the detectors without importing them."""

from __future__ import annotations

from typing import Literal

#: Built by :func:`aioreid.platform.pipeline.detect.build_detector`.
DETECTOR_NAMES = ("crops", "background", "hog")

#: The names as a type, for request schemas (an OpenAPI enum).
DetectorName = Literal[DETECTOR_NAMES]  # type: ignore[valid-type]

#: A YOLO-style ONNX person detector on the local disk; the CLI only (a path on the server).
ONNX_PREFIX = "onnx:"

#: Help text for a command-line option that takes a detector.
DETECTOR_HELP = f"{', '.join(DETECTOR_NAMES)} or {ONNX_PREFIX}PATH (a YOLO-style ONNX model)"
