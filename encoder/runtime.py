"""Swappable runtimes behind :class:`~aioreid.encoder.inference.Encoder`.

A runtime maps the preprocessed arrays of one *view* (a modality or a combination of them,
e.g. ``(SKETCH, TEXT)``) to ``float32 [B, dim]`` L2-normalised features. Preprocessing (image
decoding, resizing, tokenisation) is not the runtime's job: :mod:`.preprocess` does it once,
for every runtime alike.

* :class:`TorchRuntime` - the :class:`~aioreid.encoder.model.AIOModel` in PyTorch (CPU or
  CUDA). Any view, the training code's own forward pass.
* :class:`OnnxRuntime` - the graphs ``aioreid export`` wrote (one per view, see
  :mod:`.export`), run by ONNX Runtime: its CPU provider, or its CUDA provider when the
  installed onnxruntime has it and the device asks for it. fp32 graphs give the PyTorch
  vectors within the export's parity check (cosine >= 0.9999 per sample), so both share an
  encoder version; int8 graphs do not, and have their own version.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aioreid.encoder.data.records import Modality

__all__ = [
    "MANIFEST",
    "EncoderRuntime",
    "ExportManifestError",
    "OnnxRuntime",
    "RuntimeName",
    "TorchRuntime",
    "default_export_dir",
    "load_manifest",
    "onnx_providers",
    "view_name",
]

RuntimeName = Literal["torch", "onnx"]
MANIFEST = "manifest.json"
EXPORT_FORMAT = "aioreid.onnx/1"


class ExportManifestError(FileNotFoundError):
    """An ONNX export folder is missing, incomplete or from another checkpoint."""


def view_name(view: Sequence[Modality]) -> str:
    """``(SKETCH, TEXT)`` -> ``"sketch+text"`` (canonical order given by the caller)."""
    return "+".join(m.value for m in view)


class EncoderRuntime(ABC):
    """Runs the network on preprocessed arrays; see the module docstring."""

    #: "torch" or "onnx".
    name: str
    #: "fp32" or "int8" (weights of the network that runs).
    precision: str = "fp32"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature dimension."""

    @abstractmethod
    def run(self, view: tuple[Modality, ...], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Named inputs of ``view`` (see :func:`~aioreid.encoder.preprocess.input_names`) →
        ``float32 [B, dim]``, L2-normalised."""

    def supports(self, view: tuple[Modality, ...]) -> bool:
        """Whether this runtime can embed ``view`` (every view, unless overridden)."""
        return True

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "precision": self.precision}


class TorchRuntime(EncoderRuntime):
    """The PyTorch model, in eval mode on ``device``, under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model: Any, device: Any) -> None:
        self.model = model.to(device).eval()
        self.device = device

    @property
    def dim(self) -> int:
        return int(self.model.embed_dim)

    def run(self, view: tuple[Modality, ...], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        import torch

        from aioreid.encoder.model.tokenizers import TextBatch

        parts: dict[Modality, Any] = {}
        for m in view:
            if m is Modality.TEXT:
                ids = torch.from_numpy(inputs["text_ids"]).to(self.device)
                mask = torch.from_numpy(inputs["text_mask"]).to(self.device, torch.bool)
                parts[m] = TextBatch(ids, mask)
            else:
                parts[m] = torch.from_numpy(inputs[m.value]).to(self.device)
        with torch.inference_mode():
            out = self.model.embed(parts)
        return np.ascontiguousarray(out.float().cpu().numpy(), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": str(self.device)}


def onnx_providers(device: str = "auto") -> list[str | tuple[str, dict[str, Any]]]:
    """ONNX Runtime execution providers for a device spec (``auto``, ``cpu``, ``cuda[:N]``).

    ``auto`` takes the CUDA provider when the installed onnxruntime offers it (the
    ``onnxruntime-gpu`` wheel), else the CPU one; ``cuda`` without it is an error.
    """
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    has_cuda = "CUDAExecutionProvider" in available
    if device == "auto":
        return (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if has_cuda
            else ["CPUExecutionProvider"]
        )
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if not has_cuda:
            raise RuntimeError(
                f"device {device!r} asks for ONNX Runtime's CUDA provider, but the installed "
                f"onnxruntime offers only {sorted(available)}; install onnxruntime-gpu or use "
                "device 'cpu'"
            )
        _, _, index = device.partition(":")
        options = {"device_id": int(index)} if index else {}
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
    raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")


def default_export_dir(checkpoint: str | Path) -> Path:
    """Where ``aioreid export`` writes a checkpoint's graphs unless told otherwise:
    ``final.pt`` -> ``final-onnx/`` next to it."""
    path = Path(checkpoint)
    return path.parent / f"{path.stem}-onnx"


def load_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and check an export's ``manifest.json``."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ExportManifestError(
            f"no ONNX export in {folder} ({MANIFEST} missing); run `aioreid export "
            "--checkpoint CKPT --out DIR` first"
        )
    data = json.loads(path.read_text())
    if data.get("format") != EXPORT_FORMAT:
        raise ExportManifestError(
            f"{path}: not an aio-reid ONNX export (format {data.get('format')!r}, expected "
            f"{EXPORT_FORMAT!r})"
        )
    return data


class OnnxRuntime(EncoderRuntime):
    """ONNX Runtime sessions over an export folder, one per view, opened on first use."""

    name = "onnx"

    def __init__(
        self,
        folder: str | Path,
        *,
        precision: str = "fp32",
        device: str = "auto",
        threads: int | None = None,
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.manifest = dict(manifest) if manifest is not None else load_manifest(self.folder)
        graphs = self.manifest.get("graphs", {}).get(precision)
        if not graphs:
            have = sorted(self.manifest.get("graphs", {}))
            hint = " (export with --int8)" if precision == "int8" else ""
            raise ExportManifestError(
                f"the export in {self.folder} has no {precision} graphs{hint}; it has {have}"
            )
        self.precision = precision
        self.graphs: dict[str, str] = dict(graphs)
        self.providers = onnx_providers(device)
        self.threads = threads
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def supports(self, view: tuple[Modality, ...]) -> bool:
        return view_name(view) in self.graphs

    def session(self, view: tuple[Modality, ...]) -> Any:
        """The ONNX Runtime session of ``view`` (created once, thread-safe)."""
        key = view_name(view)
        with self._lock:
            sess = self._sessions.get(key)
            if sess is not None:
                return sess
            if key not in self.graphs:
                raise KeyError(key)
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                options.intra_op_num_threads = int(self.threads)
            # No busy-waiting between calls: spinning threads would steal the cores from the
            # decoding, detection and database work around the encoder (and from PyTorch).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = ort.InferenceSession(
                str(self.folder / self.graphs[key]), options, providers=self.providers
            )
            self._sessions[key] = sess
            return sess

    def run(self, view: tuple[Modality, ...], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        sess = self.session(view)
        feeds = {i.name: inputs[i.name] for i in sess.get_inputs()}
        (out,) = sess.run(["features"], feeds)
        return np.ascontiguousarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        active = None
        if self._sessions:
            active = next(iter(self._sessions.values())).get_providers()
        return {
            **super().describe(),
            "folder": str(self.folder),
            "providers": active or [p if isinstance(p, str) else p[0] for p in self.providers],
        }
