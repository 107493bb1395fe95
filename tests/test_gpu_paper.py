"""The GPU recipe (`gpu-paper`): its config, its real-dataset plumbing and its architecture.

No weights can be downloaded here, so the LAION ViT-B/16 is built with fixed-seed random
weights (``pretrained_backbone: false``); everything else is the shipped config: the same
backbone architecture, image size, tokenizers, heads and stages, over tiny fixture trees of
the four datasets the stages read. This proves the path a GPU user takes runs (config ->
data -> training step -> checkpoint -> ``Encoder`` embed -> ONNX export); it cannot say
anything about accuracy, speed on a GPU, or the pretrained weights themselves.
"""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_datasets import (
    build_icfg_pedes,
    build_llcm,
    build_market_sketch_1k,
    build_rstpreid,
)
from typer.testing import CliRunner

from aioreid.encoder.data.datasets import list_datasets
from aioreid.encoder.training.config import TrainConfig, load_config, with_data_roots
from aioreid.encoder.training.trainer import FINAL, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BACKBONE = "timm:vit_base_patch16_clip_224.laion2b"
BUILDERS = {
    "icfg_pedes": build_icfg_pedes,
    "rstpreid": build_rstpreid,
    "llcm": build_llcm,
    "market_sketch_1k": build_market_sketch_1k,
}


@pytest.fixture(scope="module")
def data_parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One parent folder holding fixture trees of every dataset the recipe reads."""
    parent = tmp_path_factory.mktemp("gpu-paper-data")
    for build in BUILDERS.values():
        build(parent)
    return parent


def _smoke_config(cfg: TrainConfig, out: Path, **stage_steps: int) -> TrainConfig:
    """The shipped recipe, made runnable on this CPU: random backbone weights, fp32, the
    smallest PK batch (2 identities x 2 images), stages cut to a step each."""
    stages = [
        s.model_copy(update={"steps": stage_steps.get(s.name, 1), "epochs": None})
        for s in cfg.stages
    ]
    return cfg.model_copy(
        update={
            "model": {**cfg.model, "pretrained_backbone": False},
            "stages": stages,
            "p": 2,
            "k": 2,
            "amp": "off",
            "device": "cpu",
            "workers": 0,
            "warmup_steps": 0,
            "output_dir": out,
            "checkpoint_every": 1,
            "log_every": 1,
        }
    )


def test_shipped_config_is_the_paper_recipe_over_registered_datasets() -> None:
    cfg = load_config("gpu-paper")
    assert cfg.model["backbone"] == BACKBONE
    assert cfg.model["image_size"] == [256, 128] and cfg.model["text_max_len"] == 77
    assert cfg.model.get("pretrained_backbone", True)  # real weights unless a test says not
    assert cfg.world is None and cfg.amp in ("auto", "bf16", "fp16") and cfg.device == "cuda"
    registered = set(list_datasets())
    assert {s.dataset for s in cfg.sources} <= registered
    assert all(s.root is None for s in cfg.sources)  # roots come from the command line
    stage1, stage2 = cfg.stages
    assert (stage1.epochs, stage1.use_real_ir, stage1.use_real_sketch) == (40, False, False)
    assert (stage2.epochs, stage2.use_real_ir, stage2.use_real_sketch) == (80, True, True)
    assert set(stage1.datasets or ()) <= set(stage2.datasets or ()) <= registered
    assert {"llcm", "market_sketch_1k"} <= set(stage2.datasets or ())  # the paper's real pairs
    # zero-shot: no stage trains on a benchmark the suite tests on
    assert not set(stage2.datasets or ()) & {"market1501", "sysu_mm01", "pku_sketch", "cuhk_pedes"}


def test_missing_and_unknown_roots_are_explained(data_parent: Path) -> None:
    cfg = load_config("gpu-paper")
    with pytest.raises(ValueError, match=r"no dataset root for .*llcm") as err:
        Trainer(cfg)
    assert "--data llcm=/path/to/LLCM" in str(err.value) and "stage2-real-paired" in str(err.value)
    partial = with_data_roots(cfg, {"llcm": data_parent / "LLCM"})
    assert partial.missing_roots() == ["icfg_pedes", "rstpreid", "market_sketch_1k"]
    with pytest.raises(ValueError, match=r"--data names market1501.*sources: icfg_pedes"):
        with_data_roots(cfg, {"Market-1501": data_parent})
    full = with_data_roots(partial, data_root=data_parent)
    assert full.missing_roots() == [] and full.sources[2].root == data_parent / "LLCM"


def test_train_command_reports_missing_roots_and_bad_data_options(
    data_parent: Path, tmp_path: Path
) -> None:
    from aioreid.platform.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", "gpu-paper"])
    assert result.exit_code == 2 and "--data icfg_pedes=" in result.output
    result = runner.invoke(app, ["train", "--config", "gpu-paper", "--data", "llcm"])
    assert result.exit_code == 2 and "NAME=PATH" in result.output
    args = ["train", "--config", "gpu-paper", "--data-root", str(data_parent)]
    result = runner.invoke(app, [*args, "--data", f"llcm={tmp_path / 'nowhere'}"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_epochs_become_steps_over_each_stage_s_data(data_parent: Path, tmp_path: Path) -> None:
    cfg = with_data_roots(load_config("gpu-paper"), data_root=data_parent)
    cfg = _smoke_config(cfg, tmp_path)
    stages = [
        s.model_copy(update={"steps": None, "epochs": e})
        for s, e in zip(cfg.stages, (2, 3), strict=True)
    ]
    trainer = Trainer(cfg.model_copy(update={"stages": stages, "model": {"backbone": "tiny"}}))
    # stage 1: ICFG 3 + RSTPReid 2 RGB images; stage 2 adds LLCM 3 and MaSk1K 4 photos
    assert trainer.stage_steps == [2 * (5 // 4), 3 * (12 // 4)]
    # one classifier over every stage's identities: ICFG 2 + RSTPReid 1 + LLCM 2 + MaSk1K 2
    assert trainer.num_classes == 7


@pytest.mark.slow  # 21-30 s on 2 idle cores (ViT-B/16 forward + backward, 6 views of 4 crops)
def test_paper_architecture_trains_a_step_embeds_and_reloads(
    data_parent: Path, tmp_path: Path
) -> None:
    from aioreid.encoder.inference import Encoder
    from aioreid.encoder.model.backbones import TimmViTBackbone

    cfg = with_data_roots(load_config("gpu-paper"), data_root=data_parent)
    # one step, in stage 2: every dataset, real IR and sketches, captioned and uncaptioned rows
    cfg = _smoke_config(cfg, tmp_path / "run", **{"stage1-synthesised": 1})
    cfg = cfg.model_copy(update={"stages": cfg.stages[1:]})
    trainer = Trainer(cfg)
    model = trainer.model
    backbone = model.backbone
    assert isinstance(backbone, TimmViTBackbone)
    assert (backbone.width, backbone.num_layers) == (768, 12)
    assert backbone.backbone_id == f"{BACKBONE}(random)"
    # 256x128 crops -> the 16x8 grid of ViT-B/16's 16-px stride: 128 image tokens + [CLS]
    rgb = model.tokenizer.images["rgb"]
    assert rgb.grid == (16, 8) and rgb.num_tokens() == 128
    assert model.pooling == "cls" and model.text_tokenizer.max_len == 77

    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}
    assert trainable and not any(n.startswith("backbone.") for n in trainable)
    summary = trainer.fit(progress=False, resume=False)
    assert summary["steps"] == 1
    losses = summary["last_losses"]
    for key in ("total", "cc_id", "cc_triplet", "vgmam", "mfb"):
        assert math.isfinite(losses[key]), (key, losses)
    assert "acc_text" in summary["last_metrics"]  # the text views ran on the captioned rows
    after = dict(model.named_parameters())
    changed = [n for n, before in trainable.items() if not torch.equal(after[n], before)]
    assert any(n.startswith("tokenizer.images.rgb") for n in changed)
    assert any(n.startswith("tokenizer.text") for n in changed)
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, frozen[k]), f"frozen backbone weight {k} changed"
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["stage"] == "stage2-real-paired"
    image = np.random.default_rng(0).integers(0, 255, (300, 140, 3), dtype=np.uint8)
    in_memory = Encoder(model.eval(), "in-memory", device="cpu").embed([image], "rgb")
    del trainer, model, backbone, after, trainable, frozen  # keep the peak memory low
    gc.collect()

    # the checkpoint holds no backbone weights and reloads onto the same (random) backbone
    final = tmp_path / "run" / FINAL
    ckpt = torch.load(final, map_location="cpu", weights_only=False)
    assert not any(k.startswith("backbone.") for k in ckpt["state_dict"])
    assert ckpt["config"]["backbone"] == BACKBONE and not ckpt["config"]["pretrained_backbone"]
    encoder = Encoder.load(final, device="cpu", batch_size=2)
    assert encoder.dim == 768
    vecs = {
        "rgb": encoder.embed([image], "rgb"),
        "ir": encoder.embed([image[..., 0]], "ir"),
        "text": encoder.embed(["a woman in a red coat carrying a black bag"], "text"),
        "sketch+text": encoder.embed_query({"sketch": image[..., 1], "text": "a man in black"}),
    }
    for name, v in vecs.items():
        v = np.atleast_2d(v)
        assert v.shape == (1, 768) and np.isfinite(v).all(), name
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4), name
    # the reloaded encoder gives the vectors of the trained model it was saved from
    np.testing.assert_allclose(vecs["rgb"], in_memory, atol=1e-5)


def test_text_views_use_the_captioned_rows_of_a_mixed_batch() -> None:
    """Stage 2 mixes text-ReID identities with caption-less LLCM / Market-Sketch-1K ones:
    the text views and VGMAM run on the captioned rows instead of being dropped."""
    from aioreid.encoder.model import AIOConfig, AIOModel, compute_losses

    torch.manual_seed(0)
    model = AIOModel(
        AIOConfig(backbone="tiny", image_size=(32, 16), patch_size=2, num_classes=4)
    ).train()
    g = torch.Generator().manual_seed(0)
    pids = torch.arange(4).repeat_interleave(2)  # pids 0, 1 captioned; 2, 3 not
    captions = ["a man in a red shirt", "a woman in a white dress"]
    batch = {m: torch.randn(8, 3, 32, 16, generator=g) for m in ("rgb", "ir", "sketch")} | {
        "text": [captions[int(p)] if p < 2 else "" for p in pids],
        "has_text": pids < 2,
        "pids": pids,
    }
    encoded: list[list[str]] = []
    encode = model.encode_text
    model.encode_text = lambda texts: encoded.append(list(texts)) or encode(texts)  # type: ignore[method-assign]
    out = compute_losses(model, batch, generator=torch.Generator().manual_seed(0))
    assert encoded == [[captions[0]] * 2 + [captions[1]] * 2]  # only the captioned rows
    assert {"acc_text", "acc_sketch+text", "acc_rgb+text", "acc_rgb"} <= set(out.metrics)
    assert {"vgmam", "mfb"} <= set(out.losses)
    assert all(math.isfinite(float(v.detach())) for v in out.losses.values())
    out.total.backward()
    assert model.tokenizer.text.embed.weight.grad is not None


def test_timm_weights_come_from_the_local_hugging_face_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a GPU user's offline machine does: timm's hub repo in the HF cache, no network."""
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    from aioreid.encoder.model.backbones import (
        BackboneUnavailableError,
        TimmViTBackbone,
        build_backbone,
    )

    tiny = {"depth": 2, "embed_dim": 64, "num_heads": 2, "img_size": 32}
    name = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(BackboneUnavailableError, match=rf"timm/{name}.*not in the local"):
        build_backbone(f"timm:{name}", **tiny)
    src = timm.create_model(name, pretrained=False, num_classes=0, **tiny)
    repo = tmp_path / f"models--timm--{name}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, snapshot / "model.safetensors"
    )
    cached = build_backbone(f"timm:{name}", **tiny)
    assert cached.backbone_id == f"timm:{name}"
    assert cached.weights_hash() == TimmViTBackbone(src, backbone_id="src").weights_hash()
    ref = build_backbone(f"timm:{name}@{snapshot / 'model.safetensors'}", **tiny)
    assert cached.weights_hash() == ref.weights_hash()
    random = build_backbone(f"timm:{name}", pretrained=False, **tiny)
    assert random.backbone_id.endswith("(random)") and random.weights_hash() != ref.weights_hash()
    assert build_backbone(f"timm:{name}", pretrained=False, **tiny).weights_hash() == (
        random.weights_hash()  # fixed seed: a checkpoint on random weights reloads
    )


@pytest.mark.slow  # ~15 s on 2 idle cores: tracing ViT-B/16, a 330 MB graph, parity run
def test_paper_architecture_exports_its_rgb_path_to_onnx(tmp_path: Path) -> None:
    """The GPU user's export step: the RGB graph of the recipe's architecture (random
    backbone weights, untrained tokenizers), with export's own parity check."""
    pytest.importorskip("onnxruntime")
    from aioreid.encoder.data.records import Modality
    from aioreid.encoder.export import export_encoder
    from aioreid.encoder.inference import Encoder
    from aioreid.encoder.model import AIOConfig, AIOModel

    model_cfg = {**load_config("gpu-paper").model, "pretrained_backbone": False}
    torch.manual_seed(0)
    model = AIOModel(AIOConfig.from_dict({**model_cfg, "num_classes": 4})).eval()
    encoder = Encoder(model, "untrained", device="cpu", batch_size=2)
    report = export_encoder(encoder, tmp_path / "onnx", views=[(Modality.RGB,)], samples=4)
    assert report.views == ["rgb"] and report.dim == 768
    assert report.min_cosine["rgb"] >= 0.9999
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert manifest["preprocessing"]["image_size"] == [256, 128]
    assert manifest["backbone_id"] == f"{BACKBONE}(random)"
    image = np.random.default_rng(1).integers(0, 255, (260, 120, 3), dtype=np.uint8)
    onnx_vec = Encoder.from_onnx(tmp_path / "onnx", device="cpu").embed([image], "rgb")
    torch_vec = encoder.embed([image], "rgb")
    assert float((onnx_vec * torch_vec).sum()) >= 0.9999
