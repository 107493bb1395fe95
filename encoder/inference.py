"""Inference API the platform uses: load a checkpoint, embed batches and combined queries.

Vectors are float32, L2-normalised, of dimension :attr:`Encoder.dim`. :attr:`Encoder.version`
(backbone id and weights hash + checkpoint hash) is what a vector index keys its collections
on: two encoders with the same version give the same vectors.

One line for your own data::

    Encoder.load("final.pt").embed(["a.jpg", pil_image, rgb_array, png_bytes], "rgb")

Image inputs are file paths, encoded image bytes, PIL images or numpy ``uint8`` arrays in
**RGB** order (H×W×3; IR and sketch may be H×W). Text inputs are non-empty strings. All of
them go through one :class:`~aioreid.encoder.preprocess.Preprocessor` whichever runtime runs
the network:

* ``runtime="torch"`` (default): the PyTorch :class:`~aioreid.encoder.model.AIOModel`;
* ``runtime="onnx"``: the graphs ``aioreid export`` wrote, in ONNX Runtime (see
  :mod:`aioreid.encoder.runtime` and docs/encoder.md). fp32 graphs pass a parity check at
  export (cosine >= 0.9999 to PyTorch for every sample), so an ONNX encoder has the **same
  version** as the PyTorch one of its checkpoint and their vectors share an index; int8
  graphs (``int8=True``) get the version suffix ``+int8``, so switching to them re-indexes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.encoder.model.tokenizers import CANONICAL_ORDER, load_hf_tokenizer
from aioreid.encoder.preprocess import (
    MAX_PIXELS,
    EncoderInputError,
    ImageInput,
    PartInput,
    Preprocessor,
    decode_image,
    is_single_input,
)
from aioreid.encoder.runtime import (
    EncoderRuntime,
    ExportManifestError,
    OnnxRuntime,
    TorchRuntime,
    default_export_dir,
    load_manifest,
    view_name,
)

__all__ = [
    "INT8_SUFFIX",
    "MAX_PIXELS",
    "Encoder",
    "EncoderInputError",
    "ExportManifestError",
    "ImageInput",
    "PartInput",
    "decode_image",
    "resolve_device",
]

#: Version suffix of int8-quantised ONNX graphs: their vectors are not interchangeable with
#: the fp32 ones, so the platform treats them as another encoder (a re-index).
INT8_SUFFIX = "+int8"


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


class Encoder:
    """A trained AIO model ready to embed; see the module docstring for inputs.

    ``Encoder(model, checkpoint_hash)`` wraps an in-memory model in the PyTorch runtime;
    :meth:`load` reads a checkpoint (either runtime), :meth:`from_onnx` an export folder.
    """

    def __init__(
        self, model: AIOModel, checkpoint_hash: str, *, device: str = "auto", batch_size: int = 64
    ) -> None:
        self.device = resolve_device(device)
        text = model.tokenizer.text
        self._setup(
            TorchRuntime(model, self.device),
            config=model.config,
            preprocessor=Preprocessor(
                tuple(model.config.image_size),  # type: ignore[arg-type]
                model.config.text_max_len,
                text.hf if text is not None else None,
            ),
            backbone_id=model.backbone.backbone_id,
            backbone_hash=None,  # computed on first use (hashing the weights takes a moment)
            checkpoint_hash=checkpoint_hash,
            batch_size=batch_size,
        )

    def _setup(
        self,
        runtime: EncoderRuntime,
        *,
        config: AIOConfig,
        preprocessor: Preprocessor,
        backbone_id: str,
        backbone_hash: str | None,
        checkpoint_hash: str,
        batch_size: int,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.preprocessor = preprocessor
        self.backbone_id = backbone_id
        self._backbone_hash = backbone_hash
        self.checkpoint_hash = checkpoint_hash
        self.batch_size = batch_size
        #: Where the checkpoint was loaded from (None for in-memory models).
        self.source: str | None = None

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 64,
        local_files_only: bool = True,
        runtime: str = "torch",
        onnx_dir: str | Path | None = None,
        int8: bool = False,
        threads: int | None = None,
    ) -> Encoder:
        """Rebuild the model recorded in a checkpoint (``final.pt`` or a trainer's ``last.pt``).

        ``runtime="onnx"`` runs the graphs exported from this checkpoint instead (folder
        ``onnx_dir``, default ``<checkpoint dir>/<checkpoint stem>-onnx``; ``int8`` picks the
        quantised ones, ``threads`` caps ONNX Runtime's intra-op threads). An export made
        from another checkpoint raises :class:`ExportManifestError`.
        """
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        blob = path.read_bytes()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        if runtime == "onnx":
            folder = Path(onnx_dir) if onnx_dir is not None else default_export_dir(path)
            encoder = cls.from_onnx(
                folder, device=device, batch_size=batch_size, int8=int8, threads=threads
            )
            if encoder.checkpoint_hash != digest:
                raise ExportManifestError(
                    f"the ONNX export in {folder} was made from another checkpoint (sha256 "
                    f"{encoder.checkpoint_hash}, not {digest} of {path}); run `aioreid export "
                    f"--checkpoint {path} --out {folder}` again"
                )
            encoder.source = str(path.resolve())
            return encoder
        if runtime != "torch":
            raise ValueError(f"unknown encoder runtime {runtime!r}; use 'torch' or 'onnx'")
        if int8:
            raise ValueError("int8 graphs run in the onnx runtime only (runtime='onnx')")
        state: Mapping[str, Any] = torch.load(
            io.BytesIO(blob), map_location="cpu", weights_only=False
        )
        if "model" in state and "optimizer" in state:
            state = state["model"]
        config = AIOConfig.from_dict({**state["config"], "local_files_only": local_files_only})
        model = AIOModel(config)
        model.load_trainable_state_dict(state)
        encoder = cls(model, digest, device=device, batch_size=batch_size)
        encoder.source = str(path.resolve())
        return encoder

    @classmethod
    def from_onnx(
        cls,
        folder: str | Path,
        *,
        int8: bool = False,
        device: str = "auto",
        batch_size: int = 64,
        threads: int | None = None,
    ) -> Encoder:
        """An encoder over an ONNX export folder alone (no checkpoint, no PyTorch model)."""
        folder = Path(folder)
        manifest = load_manifest(folder)
        runtime = OnnxRuntime(
            folder,
            precision="int8" if int8 else "fp32",
            device=device,
            threads=threads,
            manifest=manifest,
        )
        pre = manifest["preprocessing"]
        tokenizer = None
        if pre.get("tokenizer"):
            tokenizer = load_hf_tokenizer(str((folder / pre["tokenizer"]).resolve()))
        encoder = cls.__new__(cls)
        encoder.device = None
        encoder._setup(
            runtime,
            config=AIOConfig.from_dict(manifest["config"]),
            preprocessor=Preprocessor(tuple(pre["image_size"]), pre["text_max_len"], tokenizer),
            backbone_id=manifest["backbone_id"],
            backbone_hash=manifest["backbone_hash"],
            checkpoint_hash=manifest["checkpoint_hash"],
            batch_size=batch_size,
        )
        encoder.source = manifest.get("checkpoint")
        return encoder

    @classmethod
    def untrained(cls, config: AIOConfig, *, seed: int = 0, device: str = "auto") -> Encoder:
        """Randomly initialised tokenizers and heads on the frozen backbone (a control)."""
        torch.manual_seed(seed)
        return cls(AIOModel(config), f"untrained-s{seed}", device=device)

    @property
    def model(self) -> AIOModel:
        """The PyTorch model (PyTorch runtime only)."""
        if not isinstance(self.runtime, TorchRuntime):
            raise AttributeError(
                f"this encoder runs in the {self.runtime.name} runtime and has no PyTorch "
                "model; load it with runtime='torch'"
            )
        return self.runtime.model

    @property
    def runtime_name(self) -> str:
        """``torch``, ``onnx`` or ``onnx-int8``."""
        rt = self.runtime
        return rt.name if rt.precision == "fp32" else f"{rt.name}-{rt.precision}"

    @property
    def dim(self) -> int:
        return self.runtime.dim

    @property
    def backbone_hash(self) -> str:
        if self._backbone_hash is None:
            self._backbone_hash = self.model.backbone.weights_hash()
        return self._backbone_hash

    @property
    def version(self) -> str:
        """``<backbone id>@<weights hash>+<checkpoint hash>``, plus ``+int8`` for int8 graphs.

        The same for the PyTorch and fp32 ONNX runtimes of one checkpoint: their vectors agree
        within the export's parity check, so an index built with one serves the other.
        """
        base = f"{self.backbone_id}@{self.backbone_hash[:8]}+{self.checkpoint_hash}"
        return base + (INT8_SUFFIX if self.runtime.precision == "int8" else "")

    # ------------------------------------------------------------------ parts
    def _embed_parts(self, parts: Mapping[Modality, Sequence[PartInput]], n: int) -> np.ndarray:
        view = tuple(m for m in CANONICAL_ORDER if m in parts)
        if not self.runtime.supports(view):
            raise EncoderInputError(
                f"the {self.runtime_name} runtime has no graph for {view_name(view)} queries; "
                f"export it with `aioreid export --views {view_name(view)}`"
            )
        out = []
        for start in range(0, n, self.batch_size):
            inputs: dict[str, np.ndarray] = {}
            for m, v in parts.items():
                inputs.update(self.preprocessor.arrays(v[start : start + self.batch_size], m))
            out.append(self.runtime.run(view, inputs))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def embed(self, batch: Sequence[PartInput], modality: Modality | str) -> np.ndarray:
        """Embed a batch of one modality → ``N × dim`` float32, L2-normalised.

        Images: file paths, bytes, PIL images or uint8 arrays (a 4-D array is a batch);
        text: strings.
        """
        try:
            modality = Modality.parse(modality)
        except ValueError as exc:
            raise EncoderInputError(str(exc)) from None
        if is_single_input(batch):
            raise EncoderInputError("embed takes a sequence of inputs; wrap a single one in a list")
        return self._embed_parts({modality: list(batch)}, len(batch))

    def embed_query(
        self,
        parts: Mapping[Modality | str, PartInput] | Sequence[Mapping[Modality | str, PartInput]],
    ) -> np.ndarray:
        """Combined queries (e.g. ``{"text": "...", "sketch": img}``) → one vector each.

        A single mapping gives a ``dim`` vector; a list of mappings with the same modalities
        gives ``N × dim``.
        """
        single = isinstance(parts, Mapping)
        queries = [parts] if single else list(parts)  # type: ignore[list-item]
        if not queries:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            keyed = [{Modality.parse(k): v for k, v in q.items()} for q in queries]
        except ValueError as exc:
            raise EncoderInputError(str(exc)) from None
        mods = set(keyed[0])
        if not mods:
            raise EncoderInputError("a query needs at least one part")
        if any(set(q) != mods for q in keyed):
            raise EncoderInputError("all queries in one call must have the same modalities")
        columns = {m: [q[m] for q in keyed] for m in mods}
        vecs = self._embed_parts(columns, len(keyed))
        return vecs[0] if single else vecs
