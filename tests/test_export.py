"""ONNX export with parity, the ONNX runtime behind Encoder, one-line feature extraction, the
`export` / `embed` commands and the platform on `encoder.runtime=onnx` (a tiny model)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from platform_fixtures import jpeg, make_settings, person_image
from typer.testing import CliRunner

from aioreid.encoder import export as export_mod
from aioreid.encoder.data.records import Modality
from aioreid.encoder.export import (
    ParityError,
    all_views,
    export_onnx,
    parity_samples,
)
from aioreid.encoder.inference import Encoder, EncoderInputError, ExportManifestError
from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.encoder.runtime import OnnxRuntime, view_name
from aioreid.platform.cli import app

CFG = AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)
runner = CliRunner()


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def calibrated_model(seed: int = 0) -> AIOModel:
    """An untrained tiny model whose per-view standardisation statistics are measured on
    sample inputs, as training would leave them. Without this every input maps to about the
    same vector (cosine > 0.999 between different images) and parity would prove nothing."""
    torch.manual_seed(seed)
    model = AIOModel(CFG).eval()
    enc = Encoder(model, "calibration", device="cpu")
    samples = parity_samples(24, seed=11)
    with torch.no_grad():
        for key, name in model._center_names.items():
            view = tuple(Modality.parse(m) for m in key.split("+"))
            inputs: dict[str, np.ndarray] = {}
            for m in view:
                inputs.update(enc.preprocessor.arrays(samples.part(m), m))
            parts = {m: torch.from_numpy(inputs[m.value]) for m in view if m is not Modality.TEXT}
            if Modality.TEXT in view:
                from aioreid.encoder.model.tokenizers import TextBatch

                parts[Modality.TEXT] = TextBatch(
                    torch.from_numpy(inputs["text_ids"]),
                    torch.from_numpy(inputs["text_mask"]).bool(),
                )
            tokens, mask, _ = model.tokenize(parts)
            feats = model.projection(model.pool(model.backbone(tokens, mask), mask))
            getattr(model, name).copy_(feats.mean(0))
            getattr(model, name + "_var").copy_(feats.var(0))
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return calibrated_model().save(tmp_path_factory.mktemp("ckpt") / "final.pt")


def test_the_test_model_tells_inputs_apart(torch_encoder: Encoder) -> None:
    v = torch_encoder.embed(parity_samples(6, seed=3).rgb, "rgb")
    cross = v @ v.T
    assert cross[~np.eye(6, dtype=bool)].max() < 0.99


@pytest.fixture(scope="module")
def torch_encoder(checkpoint: Path) -> Encoder:
    return Encoder.load(checkpoint, device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def exported(checkpoint: Path, one_torch_thread: None):  # type: ignore[no-untyped-def]
    """Every view (15), fp32, to the default folder next to the checkpoint."""
    return export_onnx(checkpoint, samples=6)


@pytest.fixture(scope="module")
def onnx_encoder(exported, checkpoint: Path) -> Encoder:  # type: ignore[no-untyped-def]
    return Encoder.load(checkpoint, runtime="onnx", device="cpu", batch_size=8)


# ---------------------------------------------------------------------------- export


def test_every_path_is_exported_with_parity_per_sample(
    exported,  # type: ignore[no-untyped-def]
    torch_encoder: Encoder,
    onnx_encoder: Encoder,
) -> None:
    assert exported.folder == Path(torch_encoder.source).parent / "final-onnx"
    assert len(exported.views) == 15 and {"rgb", "ir", "sketch", "text"} <= set(exported.views)
    assert {"sketch+text", "rgb+text", "rgb+ir+sketch+text"} <= set(exported.views)
    assert min(exported.min_cosine.values()) >= 0.9999
    # our own check, per sample, on other samples (5: not the traced batch size of 2)
    samples = parity_samples(5, seed=7)
    for view in all_views():
        if len(view) == 1:
            a = onnx_encoder.embed(samples.part(view[0]), view[0])
            b = torch_encoder.embed(samples.part(view[0]), view[0])
        else:
            queries = [{m: samples.part(m)[i] for m in view} for i in range(5)]
            a, b = onnx_encoder.embed_query(queries), torch_encoder.embed_query(queries)
        assert a.shape == (5, torch_encoder.dim) and a.dtype == np.float32
        cos = _cos(a, b)
        assert (cos >= 0.9999).all(), (view_name(view), cos)


def test_metadata_and_manifest_describe_version_dim_and_preprocessing(
    exported,  # type: ignore[no-untyped-def]
    torch_encoder: Encoder,
) -> None:
    folder = exported.folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == torch_encoder.version and manifest["dim"] == 64
    pre = manifest["preprocessing"]
    assert pre["image_size"] == [64, 32] and pre["text_max_len"] == 24
    assert pre["mean"] == pytest.approx([0.485, 0.456, 0.406]) and len(pre["std"]) == 3
    assert (folder / pre["tokenizer"] / "tokenizer_config.json").is_file()
    assert set(manifest["parity"]["min_cosine"]) == set(exported.views)
    model = onnx.load(folder / "sketch+text.onnx", load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["encoder_version"] == torch_encoder.version and meta["dim"] == "64"
    assert meta["view"] == "sketch+text" and json.loads(meta["inputs"]) == [
        "sketch",
        "text_ids",
        "text_mask",
    ]
    assert json.loads(meta["preprocessing"])["image_size"] == [64, 32]
    # dynamic batch (and text length) axes
    dims = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
    assert dims["sketch"] == ["batch", 3, 64, 32] and dims["text_ids"] == ["batch", "length"]
    # the 15 graphs share one weights file: each large tensor is stored once
    referenced = 0
    for f in folder.glob("*.onnx"):
        for t in onnx.load(f, load_external_data=False).graph.initializer:
            ext = {e.key: e.value for e in t.external_data}
            if ext:
                assert ext["location"] == "weights.bin"
                referenced += int(ext["length"])
    weights = (folder / "weights.bin").stat().st_size
    assert referenced > 5 * weights
    assert sum(f.stat().st_size for f in folder.glob("*.onnx")) < weights


def test_onnx_runtime_gives_the_torch_vectors_and_version(
    torch_encoder: Encoder, onnx_encoder: Encoder, tmp_path: Path
) -> None:
    assert onnx_encoder.runtime_name == "onnx" and onnx_encoder.version == torch_encoder.version
    assert onnx_encoder.dim == torch_encoder.dim and onnx_encoder.source == torch_encoder.source
    rgb = person_image(1)
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    path = tmp_path / "p.png"
    path.write_bytes(png.tobytes())
    # one line, every input kind: array, bytes, path (str and Path), PIL image
    inputs = [rgb, png.tobytes(), str(path), path, Image.fromarray(rgb)]
    a = onnx_encoder.embed(inputs, "rgb")
    b = torch_encoder.embed(inputs, "rgb")
    assert (_cos(a, b) >= 0.9999).all()
    np.testing.assert_allclose(a, a[0:1].repeat(5, 0), atol=1e-5)  # same image, any form
    grey = Image.fromarray(rgb).convert("L")
    np.testing.assert_allclose(
        onnx_encoder.embed([grey], "ir"), onnx_encoder.embed([np.asarray(grey)], "ir"), atol=1e-6
    )
    t = onnx_encoder.embed(["a man in a red coat", "a woman"], "text")
    assert (
        _cos(t, torch_encoder.embed(["a man in a red coat", "a woman"], "text")) >= 0.9999
    ).all()
    one = onnx_encoder.embed_query({"sketch": rgb[..., 0], "text": "a man in black"})
    assert one.shape == (64,)
    with pytest.raises(EncoderInputError, match="wrap a single one"):
        onnx_encoder.embed(Image.fromarray(rgb), "rgb")
    with pytest.raises(EncoderInputError, match="non-empty"):
        onnx_encoder.embed([" "], "text")
    with pytest.raises(AttributeError, match="no PyTorch model"):
        _ = onnx_encoder.model


def test_text_preprocessing_matches_the_model_tokenizer(torch_encoder: Encoder) -> None:
    captions = ["a man", "a woman in a long red coat carrying a black bag " * 4]
    ids, mask = torch_encoder.preprocessor.text(captions)
    batch = torch_encoder.model.encode_text(captions)
    np.testing.assert_array_equal(ids, batch.ids.numpy())
    np.testing.assert_array_equal(mask.astype(bool), batch.mask.numpy())
    assert ids.shape[1] == 24  # truncated to text_max_len


def test_export_from_another_checkpoint_is_refused(
    exported,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    torch.manual_seed(5)
    other = AIOModel(CFG).save(tmp_path / "other.pt")
    with pytest.raises(ExportManifestError, match="another checkpoint"):
        Encoder.load(other, runtime="onnx", onnx_dir=exported.folder, device="cpu")
    with pytest.raises(ExportManifestError, match="no ONNX export"):
        Encoder.load(other, runtime="onnx", device="cpu")


def test_int8_export_has_its_own_version(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    report = export_onnx(
        checkpoint, out, views=[(Modality.RGB,), (Modality.TEXT,)], int8=True, samples=4
    )
    assert report.int8_version == report.version + "+int8"
    assert set(report.int8_min_cosine or {}) == {"rgb", "text"}
    fp32 = Encoder.load(checkpoint, runtime="onnx", onnx_dir=out, device="cpu")
    q = Encoder.load(checkpoint, runtime="onnx", onnx_dir=out, int8=True, device="cpu")
    assert q.runtime_name == "onnx-int8" and q.version == report.int8_version != fp32.version
    images = [person_image(i) for i in range(4)]
    cos = _cos(q.embed(images, "rgb"), fp32.embed(images, "rgb"))
    assert (cos > 0.9).all()
    model = onnx.load(out / "int8" / "rgb.onnx", load_external_data=False)
    assert any(n.op_type == "MatMulInteger" for n in model.graph.node)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["encoder_version"] == report.int8_version and meta["precision"] == "int8"
    # a view that was not exported is a clear error
    with pytest.raises(EncoderInputError, match="no graph for sketch"):
        fp32.embed([images[0][..., 0]], "sketch")


def _corrupting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the exporter write graphs whose large weights carry 5 % noise."""
    from onnx import numpy_helper

    real = export_mod._export_graph
    rng = np.random.default_rng(0)

    def corrupt(encoder, view, opset):  # type: ignore[no-untyped-def]
        model = real(encoder, view, opset)
        for t in model.graph.initializer:
            arr = numpy_helper.to_array(t)
            if arr.dtype == np.float32 and arr.size >= 1000:
                noise = rng.standard_normal(arr.shape).astype(np.float32) * 0.05 * arr.std()
                t.CopyFrom(numpy_helper.from_array(arr + noise, t.name))
        return model

    monkeypatch.setattr(export_mod, "_export_graph", corrupt)


def test_broken_parity_fails_loudly_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _corrupting(monkeypatch)
    out = tmp_path / "bad"
    with pytest.raises(ParityError, match=r"worst cosine 0\.\d+ < 0\.9999 on the ir path") as e:
        export_onnx(checkpoint, out, views=[(Modality.IR,)], samples=4)
    assert e.value.view == "ir" and e.value.cosine < 0.9999
    assert not out.exists() and not list(tmp_path.glob(".bad-*"))
    result = runner.invoke(
        app, ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--views", "text"]
    )
    assert result.exit_code == 1, result.output
    assert "parity failed" in result.output and "text path" in result.output
    assert not out.exists()


def test_a_threshold_above_one_cannot_pass(checkpoint: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            *("export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x")),
            *("--views", "rgb", "--samples", "2", "--threshold", "1.01"),
        ],
    )
    assert result.exit_code == 1 and "worst cosine" in result.output


# ------------------------------------------------------------------------------- CLI


def test_export_and_embed_commands_end_to_end(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-onnx"
    result = runner.invoke(
        app,
        [
            *("export", "--checkpoint", str(checkpoint), "--out", str(out)),
            *("--views", "rgb,text", "--samples", "3", "--json", str(tmp_path / "r.json")),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "exported 2 graphs" in result.output and "rgb" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["min_cosine"]["rgb"] >= 0.9999
    files = []
    for i in range(3):
        f = tmp_path / f"img{i}.jpg"
        f.write_bytes(jpeg(person_image(i)))
        files.append(str(f))
    feats = tmp_path / "feats.npy"
    args = ["embed", "--checkpoint", str(checkpoint), "--modality", "rgb", *files]
    result = runner.invoke(
        app, [*args, "--out", str(feats), "--runtime", "onnx", "--onnx-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    onnx_feats = np.load(feats)
    assert onnx_feats.shape == (3, 64) and onnx_feats.dtype == np.float32
    assert "(3, 64)" in result.output and "tiny@" in result.output
    result = runner.invoke(app, [*args, "--out", str(feats), "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    assert (_cos(np.load(feats), onnx_feats) >= 0.9999).all()
    captions = tmp_path / "captions.txt"
    captions.write_text("a man in a red coat\n\na woman with a bag\n")
    result = runner.invoke(
        app,
        [
            *("embed", "--checkpoint", str(checkpoint), "--modality", "text", "a person in black"),
            *("--text-file", str(captions), "--out", str(feats), "--runtime", "torch"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert np.load(feats).shape == (3, 64)
    bad = runner.invoke(app, ["embed", "--checkpoint", str(checkpoint), str(tmp_path / "no.jpg")])
    assert bad.exit_code == 2 and "not found" in bad.output


# --------------------------------------------------------------------------- platform


def test_platform_ingests_and_searches_on_the_onnx_runtime(
    pg_url: str,
    exported,  # type: ignore[no-untyped-def]
    checkpoint: Path,
    torch_encoder: Encoder,
    tmp_path: Path,
) -> None:
    from aioreid.platform.pipeline.ingest import ingest_bytes
    from aioreid.platform.pipeline.reindex import check_encoder
    from aioreid.platform.search.service import SearchService
    from aioreid.platform.services import Services

    base = make_settings(tmp_path, pg_url)

    def services(**encoder: object) -> Services:
        cfg = base.encoder.model_copy(update={"checkpoint": checkpoint, **encoder})
        return Services.from_settings(base.model_copy(update={"encoder": cfg}), migrate=False)

    svc = services(runtime="onnx")
    try:
        assert isinstance(svc.encoder.runtime, OnnxRuntime)
        assert svc.encoder.version == torch_encoder.version
        for i in range(4):
            res = ingest_bytes(svc, jpeg(person_image(i)), f"p{i}.jpg", camera=f"cam{i}")
            assert res.status == "done"
        hits = SearchService(svc).search({"rgb": jpeg(person_image(2))}).hits
        assert hits[0].camera == "cam2" and hits[0].score > 0.95
        top = hits[0].score
        combined = SearchService(svc).search({"text": "a man", "sketch": person_image(3)})
        assert combined.hits
        live = svc.live_collection()
    finally:
        svc.close()
    # the PyTorch runtime serves the same collection: same version, no re-index
    svc = services(runtime="torch")
    try:
        assert check_encoder(svc) is None and svc.live_collection() == live
        hits = SearchService(svc).search({"rgb": jpeg(person_image(2))}).hits
        assert hits[0].camera == "cam2" and hits[0].score == pytest.approx(top, abs=1e-4)
    finally:
        svc.close()


def test_int8_runtime_is_another_encoder_for_the_platform(checkpoint: Path, tmp_path: Path) -> None:
    from aioreid.platform.services import load_encoder

    out = tmp_path / "q8"
    export_onnx(checkpoint, out, views=[(Modality.RGB,)], int8=True, samples=2)
    cfg = make_settings(tmp_path, None).encoder.model_copy(
        update={"runtime": "onnx", "onnx_dir": out, "onnx_int8": True}
    )
    q = load_encoder(checkpoint, cfg)
    assert q.version.endswith("+int8")
    # an index generation keyed on the fp32 version still gets its own (fp32) vectors
    fp32 = load_encoder(checkpoint, cfg, version=q.version.removesuffix("+int8"))
    assert fp32.runtime_name == "onnx" and not fp32.version.endswith("+int8")
    back = load_encoder(checkpoint, cfg, version=q.version)
    assert back.runtime_name == "onnx-int8"


def test_bad_pil_and_bytes_inputs_give_clear_errors(torch_encoder: Encoder) -> None:
    buf = io.BytesIO()
    Image.fromarray(person_image(0)).save(buf, format="PNG")
    v = torch_encoder.embed([buf.getvalue(), Image.open(io.BytesIO(buf.getvalue()))], "rgb")
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)
    with pytest.raises(EncoderInputError, match="must be an array, PIL image"):
        torch_encoder.embed([12], "rgb")


def test_export_checks_rank1_on_a_world_s_zero_shot_table(
    checkpoint: Path, tiny_world: Path, tmp_path: Path
) -> None:
    views = [(Modality.RGB,), (Modality.IR,), (Modality.SKETCH,), (Modality.TEXT,)]
    report = export_onnx(
        checkpoint,
        tmp_path / "w",
        views=[*views, (Modality.SKETCH, Modality.TEXT)],
        samples=2,
        world=tiny_world,
        sysu_trials=1,
    )
    assert report.zeroshot is not None
    tables = report.zeroshot["tables"]
    assert set(tables) == {"torch", "onnx"} and "text+sketch→RGB" in tables["torch"]
    for setting, row in tables["torch"].items():
        assert tables["onnx"][setting]["R1"] == row["R1"], setting
        assert tables["onnx"][setting]["mAP"] == pytest.approx(row["mAP"], abs=0.05), setting
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["zeroshot"]["tables"]["onnx"] == tables["onnx"]
