"""The DiT denoiser and the causal LM: shapes, padding masks, causality, time conditioning."""

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.text.model import (
    CausalTransformer,
    DiffusionTransformer,
    TransformerConfig,
    build_model,
)


def _batch(vocab: int, b: int = 3, length: int = 20) -> torch.Tensor:
    return torch.randint(6, vocab, (b, length), generator=torch.Generator().manual_seed(0))


def test_shapes_and_core_denoiser_signature(tiny_mdlm: DiffusionTransformer) -> None:
    x = _batch(tiny_mdlm.cfg.vocab_size)
    t = torch.full((3,), 0.5)
    logits = tiny_mdlm(x, t, None)  # core calls model(x_t, t, cond)
    assert logits.shape == (3, 20, tiny_mdlm.cfg.vocab_size)
    assert torch.isfinite(logits).all()


def test_padding_does_not_leak(tiny_mdlm: DiffusionTransformer, tiny_ar: CausalTransformer) -> None:
    x = _batch(tiny_mdlm.cfg.vocab_size)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, 12:] = False
    mask[1, 5:] = False
    y = x.clone()
    y[~mask] = torch.randint(6, tiny_mdlm.cfg.vocab_size, (int((~mask).sum()),))
    assert not torch.equal(x, y)
    t = torch.tensor([0.3, 0.7, 0.9])
    a, b = tiny_mdlm(x, t, mask), tiny_mdlm(y, t, mask)
    torch.testing.assert_close(a[mask], b[mask])
    a, b = tiny_ar(x, mask), tiny_ar(y, mask)
    torch.testing.assert_close(a[mask], b[mask])
    # and without the mask the padded positions do change the valid outputs
    assert not torch.allclose(tiny_mdlm(x, t)[mask], tiny_mdlm(y, t)[mask])


def test_causal_model_does_not_look_ahead(tiny_ar: CausalTransformer) -> None:
    x = _batch(tiny_ar.cfg.vocab_size)
    y = x.clone()
    y[:, 10:] = torch.randint(6, tiny_ar.cfg.vocab_size, (3, 10))
    torch.testing.assert_close(tiny_ar(x)[:, :10], tiny_ar(y)[:, :10])
    assert not torch.allclose(tiny_ar(x)[:, 10:], tiny_ar(y)[:, 10:])
    # the bidirectional model does look ahead
    t = torch.full((3,), 0.5)
    m = DiffusionTransformer(tiny_ar.cfg)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    assert not torch.allclose(m(x, t)[:, :10], m(y, t)[:, :10])


def test_time_conditioning_and_positions(tiny_mdlm: DiffusionTransformer) -> None:
    x = _batch(tiny_mdlm.cfg.vocab_size, b=1)
    a = tiny_mdlm(x, torch.tensor([0.1]))
    b = tiny_mdlm(x, torch.tensor([0.9]))
    assert not torch.allclose(a, b)
    # rotary positions: the same token at different distances from another one differs
    same = torch.full((1, 8), 7)
    same[0, 0] = 8
    out = tiny_mdlm(same, torch.tensor([0.5]))
    assert not torch.allclose(out[0, 2], out[0, 6])


def test_sequence_log_prob_matches_logits(tiny_ar: CausalTransformer) -> None:
    x = _batch(tiny_ar.cfg.vocab_size, b=2, length=6)
    lp = tiny_ar(x).log_softmax(-1)
    expected = sum(lp[:, i, x[:, i + 1]].diagonal() for i in range(5))
    torch.testing.assert_close(tiny_ar.sequence_log_prob(x), expected)


def test_errors(tiny_mdlm: DiffusionTransformer) -> None:
    x = _batch(tiny_mdlm.cfg.vocab_size, b=2, length=40)
    with pytest.raises(InputError, match="exceeds the model's context"):
        tiny_mdlm(x, torch.full((2,), 0.5))
    with pytest.raises(InputError, match="t: expected"):
        tiny_mdlm(x[:, :10], torch.full((3,), 0.5))
    with pytest.raises(InputError, match="mask: expected a bool"):
        tiny_mdlm(x[:, :10], torch.full((2,), 0.5), torch.ones(2, 10))
    with pytest.raises(InputError, match="d_model"):
        TransformerConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(InputError, match="model_class"):
        build_model("Nope", {"vocab_size": 10})
    rebuilt = build_model("DiffusionTransformer", tiny_mdlm.config)
    assert isinstance(rebuilt, DiffusionTransformer)
