"""The inference API the platform uses: load, embed, combined queries, version, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from aioreid.encoder.inference import Encoder, EncoderInputError, decode_image
from aioreid.encoder.model import AIOConfig, AIOModel

CFG = AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24, num_classes=5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "final.pt"
    AIOModel(CFG).save(path)
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> Encoder:
    return Encoder.load(checkpoint, device="cpu", batch_size=3)


def _img(seed: int, shape: tuple[int, ...] = (96, 48, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def test_vectors_are_normalised_float32_of_fixed_dim(encoder: Encoder) -> None:
    v = encoder.embed([_img(i) for i in range(7)], "rgb")  # 7 rows over batches of 3
    assert v.shape == (7, encoder.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    t = encoder.embed(["a man in a red shirt", "a woman with a bag"], "text")
    assert t.shape == (2, encoder.dim)


def test_batching_does_not_change_results(encoder: Encoder, checkpoint: Path) -> None:
    imgs = [_img(i) for i in range(5)]
    one_by_one = np.concatenate([encoder.embed([x], "ir") for x in imgs])
    big = Encoder.load(checkpoint, device="cpu", batch_size=64).embed(imgs, "ir")
    np.testing.assert_allclose(one_by_one, big, atol=1e-5)


def test_inputs_as_bytes_paths_and_arrays_agree(encoder: Encoder, tmp_path: Path) -> None:
    rgb = _img(1)
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    path = tmp_path / "x.png"
    path.write_bytes(png.tobytes())
    v = encoder.embed([rgb, png.tobytes(), path], "rgb")
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)
    np.testing.assert_allclose(v[0], v[2], atol=1e-6)


def test_combined_query_differs_from_its_parts(encoder: Encoder) -> None:
    sketch = _img(3, (96, 48))
    text = "a person in a black coat"
    both = encoder.embed_query({"sketch": sketch, "text": text})
    assert both.shape == (encoder.dim,)
    alone = encoder.embed([sketch], "sketch")[0]
    assert not np.allclose(both, alone)
    many = encoder.embed_query([{"sketch": sketch, "text": text}] * 2)
    np.testing.assert_allclose(many[0], both, atol=1e-6)


def test_version_is_stable_and_keys_on_weights(checkpoint: Path, tmp_path: Path) -> None:
    a = Encoder.load(checkpoint, device="cpu")
    b = Encoder.load(checkpoint, device="cpu")
    assert a.version == b.version and a.version.startswith("tiny@")
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    AIOModel(CFG).save(other)
    assert Encoder.load(other, device="cpu").version != a.version


@pytest.mark.parametrize(
    ("batch", "modality", "message"),
    [
        ([np.zeros((32, 16, 4), np.uint8)], "rgb", "HxWx3"),
        ([np.zeros((32, 16), np.uint8)], "rgb", "HxWx3"),
        ([np.zeros((32, 16, 3), np.float32)], "rgb", "uint8"),
        ([b"definitely not an image"], "rgb", "not a decodable image"),
        ([""], "text", "non-empty"),
        (["   "], "text", "non-empty"),
        ([np.zeros((32, 16, 3), np.uint8)], "thermal", "unknown modality"),
        ([Path("/nonexistent/img.jpg")], "sketch", "not found"),
    ],
)
def test_bad_input_gives_clear_errors(
    encoder: Encoder, batch: list, modality: str, message: str
) -> None:
    with pytest.raises(EncoderInputError, match=message):
        encoder.embed(batch, modality)


def test_mixed_combined_queries_are_refused(encoder: Encoder) -> None:
    with pytest.raises(EncoderInputError, match="same modalities"):
        encoder.embed_query([{"text": "a man"}, {"sketch": _img(2, (32, 16))}])
    with pytest.raises(EncoderInputError, match="at least one part"):
        encoder.embed_query({})


def test_huge_images_are_refused_before_decoding() -> None:
    big = np.zeros((9000, 9000), np.uint8)
    ok, png = cv2.imencode(".png", big)
    assert ok
    with pytest.raises(EncoderInputError, match="too large"):
        decode_image(png.tobytes())


def test_missing_checkpoint_and_wrong_backbone(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        Encoder.load(tmp_path / "missing.pt")
    state = torch.load(checkpoint, weights_only=False)
    state["backbone_hash"] = "0" * 16
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match="weights hash"):
        Encoder.load(bad)


def test_inference_does_not_import_the_training_package() -> None:
    """Serving an encoder (API, workers, SDK) needs neither the training code nor its
    dependencies: a fresh interpreter that imports the inference API and builds its
    preprocessing loads no ``aioreid.encoder.training`` module."""
    code = (
        "import json, sys\n"
        "import aioreid.encoder.inference\n"
        "from aioreid.encoder.preprocess import Preprocessor\n"
        "Preprocessor((64, 32), 24, None)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('aioreid.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "aioreid.encoder.inference" in loaded
    training = [m for m in loaded if m.startswith("aioreid.encoder.training")]
    assert not training, f"importing the inference API loaded {training}"
