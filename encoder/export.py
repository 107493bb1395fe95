"""ONNX export of a trained AIO encoder, with the parity check that makes it trustworthy.

``export_onnx(checkpoint, out)`` (the ``aioreid export`` command) writes one ONNX graph per
*view* - RGB, IR, sketch, text and every combined query (``sketch+text``, ``rgb+text``, ...,
``rgb+ir+sketch+text``; 15 with a text tokenizer) - because a combined query is ONE token
sequence through the frozen backbone, and its modality standardisation statistics depend on
the combination. Each graph is the whole network from preprocessed arrays to the
L2-normalised feature, with a dynamic batch axis (and a dynamic text length):

* inputs: ``rgb`` / ``ir`` / ``sketch`` ``float32 [batch, 3, H, W]`` (ImageNet-normalised),
  ``text_ids`` / ``text_mask`` ``int64 [batch, length]`` (length <= ``text_max_len``);
* output: ``features`` ``float32 [batch, dim]``.

Preprocessing stays outside the graphs, in :mod:`.preprocess`, shared by both runtimes; its
parameters (image size, mean/std, text max length, tokenizer folder) are written into every
graph's ``metadata_props`` and into ``manifest.json``, with the encoder version and dimension.
The HF tokenizer is saved under ``tokenizer/``, so the folder is self-contained.

The graphs share one weights file: the exporter writes each large initializer once to
``weights.bin`` (``int8/weights.bin`` for the quantised graphs) and every graph refers to it as
ONNX external data, so 15 graphs of a MiniLM encoder take about one model's space.

Parity is part of export: on a fixed sample set (crops, sketches and captions rendered by the
synthetic world's generator; more when ``world`` is given) the cosine between each ONNX vector
and the PyTorch vector of the same input must be >= ``threshold`` (0.9999) for every sample
and view, else :class:`ParityError` names the worst view, sample and cosine and nothing is
written. With ``world`` the zero-shot table is evaluated through both runtimes and every
Rank-1 must match (slow for a big world: an option, also run by benchmarks/bench_export.py).

``int8=True`` also writes dynamically quantised graphs (``onnxruntime.quantization.
quantize_dynamic``: per-channel int8 weights of MatMul and Gather, each layer's output
projections kept fp32; see :func:`_quantize`) under ``int8/``; they are not interchangeable
with the fp32 vectors, so they carry the version suffix ``+int8``. Their cosines are measured
and recorded; below ``int8_threshold`` (0.8: a broken graph, not a lossy one) the export fails
too. Their accuracy change is measured on the zero-shot table (docs/encoder.md).

The exporter is torch's TorchScript-based one (``dynamo=False``): its graphs run several times
faster in ONNX Runtime than the torch.export-based exporter's (docs/encoder.md, "Exporter"),
and it needs no extra package. Data-dependent branches are traced with inputs that take the
general path (text with padding); the parity check would catch a graph that took another.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import logging
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aioreid.encoder.data.records import Modality
from aioreid.encoder.inference import INT8_SUFFIX, Encoder
from aioreid.encoder.model.tokenizers import CANONICAL_ORDER, TextBatch
from aioreid.encoder.preprocess import input_names
from aioreid.encoder.runtime import (
    EXPORT_FORMAT,
    MANIFEST,
    default_export_dir,
    view_name,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "ExportReport",
    "ParityError",
    "all_views",
    "export_encoder",
    "export_onnx",
    "parity_samples",
]

DEFAULT_THRESHOLD = 0.9999
#: Floor for the int8 graphs' per-sample cosine: quantisation costs some agreement (recorded
#: in the manifest); below this the quantised graph is taken to be broken.
DEFAULT_INT8_THRESHOLD = 0.8
OPSET = 17
WEIGHTS = "weights.bin"
TOKENIZER_DIR = "tokenizer"
#: Initializers at least this large go to the shared weights file; smaller ones stay inline.
_EXTERNAL_MIN_BYTES = 1024
_ALIGN = 4096


class ParityError(RuntimeError):
    """ONNX and PyTorch disagree: the worst cosine, its view and sample are in the message."""

    def __init__(self, message: str, *, view: str, cosine: float, sample: int) -> None:
        super().__init__(message)
        self.view, self.cosine, self.sample = view, cosine, sample


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and measured (also in ``manifest.json``)."""

    folder: Path
    version: str
    dim: int
    views: list[str]
    samples: int
    min_cosine: dict[str, float]
    int8_version: str | None = None
    int8_min_cosine: dict[str, float] | None = None
    zeroshot: dict[str, Any] | None = None
    seconds: float = 0.0
    sizes_mb: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "version": self.version,
            "int8_version": self.int8_version,
            "dim": self.dim,
            "views": self.views,
            "samples": self.samples,
            "min_cosine": self.min_cosine,
            "int8_min_cosine": self.int8_min_cosine,
            "zeroshot": self.zeroshot,
            "seconds": round(self.seconds, 1),
            "sizes_mb": self.sizes_mb,
        }


# ------------------------------------------------------------------------------ views


def all_views(has_text: bool = True) -> list[tuple[Modality, ...]]:
    """Every non-empty combination of modalities, singles first, in canonical order."""
    mods = [m for m in CANONICAL_ORDER if has_text or m is not Modality.TEXT]
    return [c for n in range(1, len(mods) + 1) for c in itertools.combinations(mods, n)]


def parse_views(names: Sequence[str], has_text: bool = True) -> list[tuple[Modality, ...]]:
    """``["sketch+text", "rgb"]`` -> views in canonical order (``["all"]``: every view)."""
    if not names or list(names) == ["all"]:
        return all_views(has_text)
    out: list[tuple[Modality, ...]] = []
    for name in names:
        mods = {Modality.parse(p) for p in name.split("+") if p.strip()}
        if not mods:
            raise ValueError(f"empty view {name!r}")
        if Modality.TEXT in mods and not has_text:
            raise ValueError(f"view {name!r} needs text, but this model has no text tokenizer")
        view = tuple(m for m in CANONICAL_ORDER if m in mods)
        if view not in out:
            out.append(view)
    return out


class _ViewGraph(nn.Module):
    """The network of one view, from preprocessed arrays to L2-normalised features."""

    def __init__(self, model: nn.Module, view: tuple[Modality, ...]) -> None:
        super().__init__()
        self.model = model
        self.view = view

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        parts: dict[Modality, Any] = {}
        it = iter(inputs)
        for m in self.view:
            if m is not Modality.TEXT:
                parts[m] = next(it)
        if Modality.TEXT in self.view:
            ids, mask = next(it), next(it)
            parts[Modality.TEXT] = TextBatch(ids, mask.bool())
        return self.model.embed(parts)


def _trace_inputs(encoder: Encoder, view: tuple[Modality, ...]) -> dict[str, np.ndarray]:
    """Example inputs for tracing: batch 2 and, for text, captions of unequal length, so
    that padding masks take their general path."""
    rng = np.random.default_rng(0)
    h, w = encoder.preprocessor.image_size
    out: dict[str, np.ndarray] = {}
    for m in view:
        if m is Modality.TEXT:
            out.update(
                encoder.preprocessor.arrays(
                    ["a man", "a woman in a long red coat carrying a black bag"], m
                )
            )
        else:
            out[m.value] = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _export_graph(encoder: Encoder, view: tuple[Modality, ...], opset: int) -> Any:
    """Trace one view's graph → an in-memory ``onnx.ModelProto``."""
    import onnx

    names = input_names(view)
    example = _trace_inputs(encoder, view)
    args = tuple(torch.from_numpy(example[n]) for n in names)
    axes: dict[str, dict[int, str]] = {"features": {0: "batch"}}
    for n in names:
        axes[n] = {0: "batch", 1: "length"} if n.startswith("text_") else {0: "batch"}
    graph = _ViewGraph(encoder.model, view).eval()
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            graph,
            args,
            buf,
            dynamo=False,
            input_names=names,
            output_names=["features"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


# ----------------------------------------------------------------- shared weights file


class _WeightStore:
    """One external-data file shared by several graphs; identical tensors stored once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[str, tuple[int, int]] = {}
        self._fh = path.open("wb")
        self._size = 0

    def close(self) -> None:
        self._fh.close()

    def externalize(self, model: Any) -> None:
        """Move ``model``'s large initializers into the file (in place, deduplicated)."""
        from onnx import TensorProto, numpy_helper

        for tensor in model.graph.initializer:
            arr = numpy_helper.to_array(tensor)
            data = np.ascontiguousarray(arr).tobytes()
            if len(data) < _EXTERNAL_MIN_BYTES:
                continue
            key = hashlib.sha256(
                f"{tensor.data_type}|{tuple(tensor.dims)}|".encode() + data
            ).hexdigest()
            if key not in self._index:
                pad = (-self._size) % _ALIGN
                self._fh.write(b"\0" * pad)
                offset = self._size + pad
                self._fh.write(data)
                self._size = offset + len(data)
                self._index[key] = (offset, len(data))
            offset, length = self._index[key]
            dims, dtype, name = list(tensor.dims), tensor.data_type, tensor.name
            tensor.Clear()
            tensor.name, tensor.data_type = name, dtype
            tensor.dims.extend(dims)
            tensor.data_location = TensorProto.EXTERNAL
            for k, v in (
                ("location", self.path.name),
                ("offset", str(offset)),
                ("length", str(length)),
            ):
                entry = tensor.external_data.add()
                entry.key, entry.value = k, v


def _set_metadata(model: Any, meta: dict[str, Any]) -> None:
    import onnx

    model.producer_name = "aio-reid"
    onnx.helper.set_model_props(
        model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    )


# ------------------------------------------------------------------------- samples


@dataclass
class ParitySamples:
    """Inputs of every modality, ``n`` each: images of assorted sizes (so resizing is
    exercised both ways) and captions of assorted lengths (so padding is)."""

    rgb: list[np.ndarray]
    ir: list[np.ndarray]
    sketch: list[np.ndarray]
    text: list[str]

    def __len__(self) -> int:
        return len(self.rgb)

    def part(self, modality: Modality) -> list[Any]:
        return list(getattr(self, modality.value))


def parity_samples(n: int = 16, seed: int = 0) -> ParitySamples:
    """``n`` identities drawn by the synthetic world's generator (seeded): an RGB crop, an IR
    crop, a sketch and a caption each."""
    from aioreid.encoder.data.synth import (
        Camera,
        describe,
        render_ir,
        render_rgb,
        render_sketch,
        sample_identity,
    )

    rgb_cam = Camera(1, "rgb", "rgb-1", False, seed)
    ir_cam = Camera(2, "ir", "ir-1", False, seed)
    sizes = [(256, 128), (160, 64), (96, 48), (300, 120)]
    out = ParitySamples([], [], [], [])
    for i in range(n):
        attrs = sample_identity(i, seed)
        rng = np.random.default_rng([seed, i])
        size = sizes[i % len(sizes)]
        out.rgb.append(render_rgb(attrs, rng, rgb_cam, size))
        out.ir.append(render_ir(attrs, rng, ir_cam, size))
        out.sketch.append(render_sketch(attrs, rng, size))
        caption = describe(attrs, rng)
        out.text.append(caption if i % 3 else caption.split(".")[0])
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return num / np.maximum(den, 1e-12)


def _view_vectors(enc: Encoder, view: tuple[Modality, ...], samples: ParitySamples) -> np.ndarray:
    """The samples through ``enc`` as ``view`` queries (sample i's parts together)."""
    if len(view) == 1:
        return enc.embed(samples.part(view[0]), view[0])
    queries = [{m: samples.part(m)[i] for m in view} for i in range(len(samples))]
    return enc.embed_query(queries)


def check_parity(
    reference: Encoder,
    candidate: Encoder,
    views: Sequence[tuple[Modality, ...]],
    samples: ParitySamples,
    *,
    threshold: float,
    label: str = "ONNX",
) -> dict[str, float]:
    """Minimum cosine per view between ``candidate`` and ``reference`` on ``samples``;
    :class:`ParityError` on the worst view when any sample falls below ``threshold``."""
    worst: tuple[float, str, int] | None = None
    mins: dict[str, float] = {}
    for view in views:
        cos = _cosines(
            _view_vectors(candidate, view, samples), _view_vectors(reference, view, samples)
        )
        if not np.isfinite(cos).all():
            cos = np.nan_to_num(cos, nan=-1.0)
        i = int(np.argmin(cos))
        mins[view_name(view)] = float(cos[i])
        if worst is None or cos[i] < worst[0]:
            worst = (float(cos[i]), view_name(view), i)
    if worst is not None and worst[0] < threshold:
        cosine, view, sample = worst
        raise ParityError(
            f"{label} parity failed: worst cosine {cosine:.6f} < {threshold} on the {view} "
            f"path (sample {sample} of {len(samples)}); per-view minimum: "
            + ", ".join(f"{k} {v:.6f}" for k, v in mins.items()),
            view=view,
            cosine=cosine,
            sample=sample,
        )
    return mins


def compare_zeroshot(
    encoders: dict[str, Encoder], world: Path, *, sysu_trials: int = 10
) -> dict[str, dict[str, dict[str, float]]]:
    """The zero-shot table of a synthetic world for each encoder: ``{name: {setting:
    metrics}}``."""
    from aioreid.encoder.zeroshot import evaluate_world
    from aioreid.encoder.zeroshot.encoder_embedder import EncoderEmbedder

    return {
        name: evaluate_world(EncoderEmbedder(enc, name=name), world, sysu_trials=sysu_trials).rows
        for name, enc in encoders.items()
    }


# --------------------------------------------------------------------------- export


#: MatMuls the int8 graphs keep in fp32: each transformer layer's two output projections
#: (attention output and the MLP's second layer; BERT and timm ViT names), whose inputs - the
#: GELU outputs and attention contexts - have the widest ranges, so per-tensor dynamic
#: quantisation of those activations costs the most.
INT8_KEEP_FP32 = re.compile(r"(attention/output/dense|/output/dense|mlp/fc2|attn/proj)/MatMul")


def _quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of one graph: int8 weights (one scale per output channel) of
    MatMul and Gather, activations quantised per call, except :data:`INT8_KEEP_FP32`.

    Per-channel scales and the fp32 output projections are what keep the int8 vectors close
    to PyTorch's (the comparison: docs/encoder.md, "int8"). The image paths suffer most: each
    view's features are standardised before the BN-neck, which magnifies small errors in
    directions the view barely varies along.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(src, load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type == "MatMul" and INT8_KEEP_FP32.search(n.name)]
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # "consider pre-processing": not for dynamic quantisation
    try:
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"],
            per_channel=True,
            nodes_to_exclude=keep,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        logging.disable(previous)


def _dir_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def export_encoder(
    encoder: Encoder,
    out: str | Path,
    *,
    views: Sequence[tuple[Modality, ...]] | None = None,
    int8: bool = False,
    samples: int = 16,
    threshold: float = DEFAULT_THRESHOLD,
    int8_threshold: float = DEFAULT_INT8_THRESHOLD,
    world: str | Path | None = None,
    sysu_trials: int = 10,
    opset: int = OPSET,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export a PyTorch-runtime :class:`Encoder` to ``out`` (see the module docstring).

    The folder is assembled next to ``out`` and moved into place only after the parity check
    passed (an existing export there is replaced); on :class:`ParityError` nothing is written.
    """
    import onnx

    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    if encoder.runtime.name != "torch":
        raise ValueError("export needs an encoder in the PyTorch runtime")
    encoder.model.cpu().eval()
    has_text = encoder.preprocessor.tokenizer is not None
    views = list(views) if views is not None else all_views(has_text)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        base_meta = {
            "aioreid_format": EXPORT_FORMAT,
            "encoder_version": encoder.version,
            "dim": encoder.dim,
            "backbone_id": encoder.backbone_id,
            "checkpoint_hash": encoder.checkpoint_hash,
            "preprocessing": {
                **encoder.preprocessor.describe(),
                "tokenizer": TOKENIZER_DIR if has_text else None,
            },
        }
        graphs: dict[str, dict[str, str]] = {"fp32": {}}
        store = _WeightStore(staging / WEIGHTS)
        try:
            for view in views:
                name = view_name(view)
                say(f"exporting {name}")
                model = _export_graph(encoder, view, opset)
                _set_metadata(
                    model,
                    {
                        **base_meta,
                        "view": name,
                        "precision": "fp32",
                        "inputs": input_names(view),
                        "output": "features",
                    },
                )
                store.externalize(model)
                onnx.save(model, staging / f"{name}.onnx")
                graphs["fp32"][name] = f"{name}.onnx"
        finally:
            store.close()
        if has_text:
            encoder.preprocessor.tokenizer.save_pretrained(staging / TOKENIZER_DIR)
        manifest: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "version": encoder.version,
            "dim": encoder.dim,
            "backbone_id": encoder.backbone_id,
            "backbone_hash": encoder.backbone_hash,
            "checkpoint_hash": encoder.checkpoint_hash,
            "checkpoint": encoder.source,
            "config": encoder.config.to_dict(),
            "preprocessing": base_meta["preprocessing"],
            "inputs": {
                "rgb|ir|sketch": "float32 [batch, 3, H, W], ImageNet-normalised",
                "text_ids": "int64 [batch, length]",
                "text_mask": "int64 [batch, length], 1 = real token",
            },
            "outputs": {"features": "float32 [batch, dim], L2-normalised"},
            "graphs": graphs,
            "exporter": {
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "opset": opset,
                "dynamo": False,
            },
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

        say(f"checking parity on {samples} samples x {len(views)} views")
        sample_set = parity_samples(samples)
        onnx_enc = Encoder.from_onnx(staging, device="cpu", batch_size=encoder.batch_size)
        mins = check_parity(encoder, onnx_enc, views, sample_set, threshold=threshold)
        manifest["parity"] = {
            "threshold": threshold,
            "samples": len(sample_set),
            "sample_set": "synthetic world generator (seed 0): RGB, IR, sketch, caption each",
            "min_cosine": mins,
        }

        report = ExportReport(
            folder=out,
            version=encoder.version,
            dim=encoder.dim,
            views=[view_name(v) for v in views],
            samples=len(sample_set),
            min_cosine=mins,
        )
        int8_enc: Encoder | None = None
        if int8:
            say("quantising to int8")
            (staging / "int8").mkdir()
            graphs["int8"] = {}
            store = _WeightStore(staging / "int8" / WEIGHTS)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    for view in views:
                        name = view_name(view)
                        q = Path(tmp) / f"{name}.onnx"
                        _quantize(staging / f"{name}.onnx", q)
                        model = onnx.load(q)
                        _set_metadata(
                            model,
                            {
                                **base_meta,
                                "encoder_version": encoder.version + INT8_SUFFIX,
                                "view": name,
                                "precision": "int8",
                                "inputs": input_names(view),
                                "output": "features",
                            },
                        )
                        store.externalize(model)
                        onnx.save(model, staging / "int8" / f"{name}.onnx")
                        graphs["int8"][name] = f"int8/{name}.onnx"
            finally:
                store.close()
            manifest["int8_version"] = encoder.version + INT8_SUFFIX
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            int8_enc = Encoder.from_onnx(
                staging, int8=True, device="cpu", batch_size=encoder.batch_size
            )
            int8_mins = check_parity(
                encoder, int8_enc, views, sample_set, threshold=int8_threshold, label="int8"
            )
            manifest["int8_parity"] = {"threshold": int8_threshold, "min_cosine": int8_mins}
            report.int8_version = encoder.version + INT8_SUFFIX
            report.int8_min_cosine = int8_mins

        if world is not None:
            say(f"zero-shot table on {world} through each runtime")
            runs = {"torch": encoder, "onnx": onnx_enc}
            if int8_enc is not None:
                runs["onnx-int8"] = int8_enc
            tables = compare_zeroshot(runs, Path(world), sysu_trials=sysu_trials)
            diff = {
                s: (tables["torch"][s]["R1"], tables["onnx"][s]["R1"])
                for s in tables["torch"]
                if tables["torch"][s]["R1"] != tables["onnx"][s]["R1"]
            }
            if diff:
                raise ParityError(
                    "ONNX parity failed on the zero-shot table: Rank-1 differs on "
                    + ", ".join(f"{s} (torch {a:.2f}, onnx {b:.2f})" for s, (a, b) in diff.items()),
                    view=next(iter(diff)),
                    cosine=float("nan"),
                    sample=-1,
                )
            manifest["zeroshot"] = {"world": str(world), "tables": tables}
            report.zeroshot = manifest["zeroshot"]

        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        report.sizes_mb = {"total": _dir_mb(staging)}
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - t0
    return report


def export_onnx(
    checkpoint: str | Path,
    out: str | Path | None = None,
    *,
    local_files_only: bool = True,
    batch_size: int = 32,
    **options: Any,
) -> ExportReport:
    """Export a checkpoint's encoder to ``out`` (default ``<checkpoint dir>/<stem>-onnx``);
    ``options`` as for :func:`export_encoder`."""
    encoder = Encoder.load(
        checkpoint, device="cpu", batch_size=batch_size, local_files_only=local_files_only
    )
    return export_encoder(
        encoder, out if out is not None else default_export_dir(checkpoint), **options
    )
