"""Sequence pooling and per-view standardisation of the AIO feature."""

from __future__ import annotations

import torch

from aioreid.encoder.data.records import Modality
from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.encoder.model.aio import view_key
from aioreid.encoder.model.backbones import minilm_path, sentence_transformers_pooling


def _model(**kw: object) -> AIOModel:
    torch.manual_seed(0)
    return AIOModel(AIOConfig(backbone="tiny", image_size=(32, 16), text_max_len=16, **kw))


def test_minilm_pools_by_mean_as_it_was_pretrained() -> None:
    assert sentence_transformers_pooling(minilm_path()) == "mean"


def test_mean_pooling_ignores_padding() -> None:
    m = _model(pooling="mean")
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(m.pool(hidden, mask), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(_model(pooling="cls").pool(hidden, mask), torch.tensor([[1.0, 1.0]]))


def test_views_are_standardised_with_batch_then_running_statistics() -> None:
    m = _model()
    m.train()
    feats = torch.randn(64, m.embed_dim) * 3 + 5
    out = m.center(feats, (Modality.IR,))
    assert out.mean(0).abs().max() < 1e-4
    assert (out.std(0, unbiased=False) - 1).abs().max() < 1e-3
    for _ in range(200):  # running statistics converge to the data's
        m.center(torch.randn(64, m.embed_dim) * 3 + 5, (Modality.IR,))
    m.eval()
    assert (m.center_ir - 5).abs().max() < 1.0
    single = m.center(torch.full((1, m.embed_dim), 5.0), (Modality.IR,))
    assert single.abs().max() < 0.5  # the running mean maps to about zero


def test_unseen_combination_uses_its_parts_statistics() -> None:
    m = _model()
    m.eval()
    m.center_rgb.fill_(2.0)
    m.center_ir.fill_(4.0)
    key = view_key((Modality.IR, Modality.RGB))
    assert key == "rgb+ir" and key not in m._center_names
    out = m.center(torch.full((1, m.embed_dim), 3.0), (Modality.RGB, Modality.IR))
    assert out.abs().max() < 1e-3


def test_visual_words_are_word_mixtures() -> None:
    x = torch.randn(6, 3, 32, 16, generator=torch.Generator().manual_seed(1))
    m = _model(image_vocab=True).eval()
    tok = m.tokenizer
    assert tok.vocab_ids.numel() > 10  # attribute + filler words of the tokenizer's vocab
    with torch.no_grad():
        tokens, _ = tok._part(Modality.RGB, x)
        words = tok.text.embed.weight[tok.vocab_ids]
        n = tokens.shape[1]
        mix = tokens - tok.text.pos_embed[1 : 1 + n] - tok.modality_embedding(Modality.RGB)
    # Every image token is a convex mixture of the visual words' embeddings.
    assert bool((mix >= words.min(0).values - 1e-5).all())
    assert bool((mix <= words.max(0).values + 1e-5).all())
    assert float(mix.std(0).mean()) > 0  # different images read as different mixtures
