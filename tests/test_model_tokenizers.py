"""Multimodal tokenizers: image grids, text encoding, combined sequences, attribute masking."""

from __future__ import annotations

import pytest
import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model import (
    AIOConfig,
    AIOModel,
    ImageTokenizer,
    TextBatch,
    build_backbone,
    mask_attribute_words,
    normalize_images,
)
from aioreid.encoder.model.tokenizers import IBN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


H, W = 32, 16


@pytest.fixture(scope="module")
def model() -> AIOModel:
    torch.manual_seed(0)
    cfg = AIOConfig(backbone="tiny", image_size=(H, W), patch_size=2, num_classes=4)
    return AIOModel(cfg).eval()


def test_image_tokenizer_grids() -> None:
    t = ImageTokenizer(64)  # defaults: 128x64, stem /4, patch 4
    assert t.grid == (8, 4) and t.num_tokens() == 32
    assert t(torch.randn(2, 3, 128, 64)).shape == (2, 32, 64)
    big = ImageTokenizer(64, image_size=(256, 128))
    assert big.grid == (16, 8) and big.num_tokens() == 128
    # another input size: position embeddings are interpolated
    assert t(torch.randn(1, 3, 256, 128)).shape == (1, 128, 64)


def test_image_tokenizer_replicates_single_channel() -> None:
    t = ImageTokenizer(32, image_size=(H, W), patch_size=2).eval()
    gray = torch.rand(2, 1, H, W)
    assert torch.allclose(t(gray), t(gray.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="channels"):
        t(torch.rand(1, 4, H, W))


def test_ibn_splits_channels() -> None:
    ibn = IBN(8)
    assert ibn.inorm.num_features == 4 and ibn.bnorm.num_features == 4
    assert ibn(torch.randn(2, 8, 5, 5)).shape == (2, 8, 5, 5)


def test_normalize_images() -> None:
    x = torch.full((1, 1, 2, 2), 0.485)
    y = normalize_images(x)
    assert y.shape == (1, 3, 2, 2) and abs(float(y[0, 0, 0, 0])) < 1e-6


def test_text_encoding(model: AIOModel) -> None:
    tb = model.encode_text(["a man in a red shirt", "a woman"])
    assert isinstance(tb, TextBatch) and len(tb) == 2
    assert tb.ids.dtype == torch.long and tb.mask.dtype == torch.bool
    assert tb.mask[0].all() and not tb.mask[1].all()
    long_caption = " ".join(["word"] * 200)
    assert model.encode_text([long_caption]).ids.shape[1] == 77
    with pytest.raises(ValueError, match="empty"):
        model.encode_text(["fine", "   "])
    with pytest.raises(ValueError):
        model.encode_text([])
    tokens, mask = model.tokenizer.text(tb)
    assert tokens.shape == (2, tb.ids.shape[1], model.width)
    assert torch.equal(mask, tb.mask)


def test_text_embeddings_start_from_backbone_tables(model: AIOModel) -> None:
    text = model.text_tokenizer
    assert text.pretrained_words
    words = model.backbone.word_embeddings()
    pos = model.backbone.position_embeddings()
    assert words is not None and pos is not None
    assert torch.equal(text.embed.weight.detach(), words)
    assert torch.equal(text.pos_embed.detach(), pos[:77])


def test_combined_query_is_one_sequence(model: AIOModel) -> None:
    b = 3
    rgb, ir, sk = (torch.randn(b, 3, H, W) for _ in range(3))
    text = model.encode_text(["a man", "a woman in a long red dress", "a boy"])
    n_img = model.tokenizer.images["rgb"].num_tokens()
    n_txt = text.ids.shape[1]
    tokens, mask, spans = model.tokenize({"text": text, "sketch": sk})
    assert tokens.shape == (b, 1 + n_img + n_txt, model.width)
    assert mask.shape == tokens.shape[:2] and mask[:, 0].all()
    assert spans == {Modality.SKETCH: (1, 1 + n_img), Modality.TEXT: (1 + n_img, 1 + n_img + n_txt)}
    full, _, spans4 = model.tokenize(
        {Modality.TEXT: text, Modality.IR: ir, Modality.SKETCH: sk, Modality.RGB: rgb}
    )
    assert full.shape[1] == 1 + 3 * n_img + n_txt
    assert list(spans4) == [Modality.RGB, Modality.IR, Modality.SKETCH, Modality.TEXT]
    # explicit order (VGMAM uses text first)
    _, _, spans_o = model.tokenize({"rgb": rgb, "text": text}, order=("text", "rgb"))
    assert spans_o[Modality.TEXT][0] == 1
    with pytest.raises(ValueError, match="batch size"):
        model.tokenize({"rgb": rgb, "ir": ir[:2]})
    with pytest.raises(ValueError):
        model.tokenize({})


def test_modality_embeddings_differ(model: AIOModel) -> None:
    embs = [model.tokenizer.modality_embedding(m) for m in Modality]
    for i in range(len(embs)):
        for j in range(i + 1, len(embs)):
            assert not torch.allclose(embs[i], embs[j])
    # the same image read as RGB vs IR gives different tokens (separate tokenizers + embedding)
    img = torch.randn(2, 3, H, W)
    t_rgb, _, _ = model.tokenize({"rgb": img})
    t_ir, _, _ = model.tokenize({"ir": img})
    assert not torch.allclose(t_rgb, t_ir)


def test_mask_attribute_words(model: AIOModel) -> None:
    text = model.text_tokenizer
    caps = ["a man in a red shirt", "the xylophones are here", "xylophones and a car"]
    attrs = ("man", "red", "shirt", "xylophones")
    g = torch.Generator().manual_seed(0)
    masked, labels = mask_attribute_words(text, caps, attrs, prob=1.0, generator=g)
    orig = text.encode_text(caps)
    mid = text.mask_token_id
    assert mid is not None
    # caption 0: man, red, shirt all masked; labels hold the original ids
    sel = labels[0] != -100
    assert int(sel.sum()) == 3
    assert torch.equal(labels[0][sel], orig.ids[0][sel])
    assert (masked.ids[0][sel] == mid).all()
    # a multi-piece word is masked as a whole (x ##yl ##ophone ##s)
    assert int((labels[1] != -100).sum()) == 4
    # prob 0 still masks at least one word per caption that has any; none otherwise
    _, l0 = mask_attribute_words(text, caps, ("man", "red", "shirt"), prob=0.0, generator=g)
    assert int((l0[0] != -100).sum()) == 1
    assert int((l0[1] != -100).sum()) == 0 and int((l0[2] != -100).sum()) == 0
    # unmasked positions unchanged
    assert torch.equal(masked.ids[labels == -100], orig.ids[labels == -100])


def test_timm_backbone_in_model() -> None:
    b = build_backbone(
        "timm:vit_tiny_patch16_224",
        pretrained=False,
        depth=2,
        embed_dim=64,
        num_heads=2,
        img_size=32,
    )
    cfg = AIOConfig(backbone="timm:vit_tiny_patch16_224", image_size=(H, W), patch_size=2)
    m = AIOModel(cfg, backbone=b).eval()
    assert not m.text_tokenizer.pretrained_words  # a ViT has no word table: random init
    with torch.inference_mode():
        f = m.embed({"rgb": torch.randn(2, 3, H, W), "text": ["a man", "a woman in red"]})
    assert f.shape == (2, 64)
    assert torch.allclose(f.norm(dim=1), torch.ones(2), atol=1e-5)
