"""sample_categorical: the PyTorch reference and the Triton kernel (interpreted on CPU) draw from
the exact softmax distribution; float32 Gumbel noise is truncated, float64 is not."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops.categorical import (
    _gumbel_from_uniform,
    sample_categorical,
    sample_categorical_reference,
    sample_categorical_triton,
)

SAMPLERS = {"reference": sample_categorical_reference, "triton": sample_categorical_triton}


def chi_square_pvalue(samples: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's goodness-of-fit p-value of ``samples`` (category ids) against ``probs``;
    a draw of a zero-probability category gives 0."""
    counts = torch.bincount(samples.flatten(), minlength=probs.numel()).double()
    possible = probs > 0
    if counts[~possible].sum() > 0:
        return 0.0
    expected = samples.numel() * probs[possible].double()
    stat = ((counts[possible] - expected) ** 2 / expected).sum()
    dof = torch.tensor((int(possible.sum()) - 1) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(dof, stat / 2))


def peaked_logits(vocab: int, hot: int, generator: torch.Generator) -> torch.Tensor:
    """``hot`` categories at random places hold ~all the mass; the rest share ~1e-3 of it."""
    logits = torch.randn(vocab, generator=generator) * 0.5 - 12.0
    where = torch.randperm(vocab, generator=generator)[:hot]
    logits[where] = torch.randn(hot, generator=generator)
    return logits


def grouped(
    samples: torch.Tensor, probs: torch.Tensor, hot: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Merge the non-hot categories into one cell, so that every expected count is large."""
    cell = torch.full((probs.numel(),), hot.numel(), dtype=torch.long)
    cell[hot] = torch.arange(hot.numel())
    merged = torch.zeros(hot.numel() + 1, dtype=torch.float64).index_add_(0, cell, probs)
    return cell[samples], merged


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("precision", [torch.float64, torch.float32])
def test_small_vocabulary_matches_softmax(name: str, precision: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(37, generator=g) * 1.5
    samples = SAMPLERS[name](logits.expand(12000, 37), generator=g, precision=precision)
    assert samples.shape == (12000,)
    assert samples.dtype == torch.long
    assert chi_square_pvalue(samples, torch.softmax(logits.double(), 0)) > 1e-3


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("vocab", [1000, 2100])  # one block with a ragged tail; three blocks
def test_large_vocabulary_matches_softmax(name: str, vocab: int) -> None:
    g = torch.Generator().manual_seed(2)
    logits = peaked_logits(vocab, 24, g)
    samples = SAMPLERS[name](logits.expand(2000, vocab), generator=g)
    probs = torch.softmax(logits.double(), 0)
    hot = probs.topk(24).indices
    cells, merged = grouped(samples, probs, hot)
    assert chi_square_pvalue(cells, merged) > 1e-3


@pytest.mark.parametrize("name", SAMPLERS)
def test_disallowed_categories_are_never_drawn(name: str) -> None:
    g = torch.Generator().manual_seed(3)
    vocab, rows = 37, 8000
    logits = torch.randn(vocab, generator=g)
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[logits.topk(3).indices] = True  # the likeliest ones, so a leak would show
    banned[vocab - 1] = True
    per_row = torch.rand(rows, vocab, generator=g) < 0.3
    per_row[:, 0] = False
    sample = SAMPLERS[name]
    broadcast = sample(logits.expand(rows, vocab), generator=g, disallowed=banned)
    assert not banned[broadcast].any()
    probs = torch.softmax(logits.double().masked_fill(banned, -math.inf), 0)
    assert chi_square_pvalue(broadcast, probs) > 1e-3
    drawn = sample(logits.expand(rows, vocab), generator=g, disallowed=per_row)
    assert not per_row.gather(1, drawn[:, None]).any()


@pytest.mark.parametrize("name", SAMPLERS)
def test_bfloat16_logits_and_leading_dimensions(name: str) -> None:
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(37, generator=g) * 2).bfloat16()
    samples = SAMPLERS[name](logits.expand(40, 300, 37), generator=g)
    assert samples.shape == (40, 300)
    assert chi_square_pvalue(samples, torch.softmax(logits.double(), 0)) > 1e-3


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_seed_same_draws(name: str) -> None:
    logits = torch.randn(5, 100, generator=torch.Generator().manual_seed(5))
    first = SAMPLERS[name](logits, generator=torch.Generator().manual_seed(9))
    second = SAMPLERS[name](logits, generator=torch.Generator().manual_seed(9))
    other = SAMPLERS[name](logits, generator=torch.Generator().manual_seed(10))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_dispatch_uses_the_reference_on_cpu() -> None:
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(6))
    picked = sample_categorical(logits, generator=torch.Generator().manual_seed(1))
    reference = sample_categorical_reference(logits, generator=torch.Generator().manual_seed(1))
    assert torch.equal(picked, reference)


def float32_gumbel_max_minor_prob(gap: float) -> float:
    """Exact probability that float32 Gumbel-max draws category 1 of logits ``[0, -gap]``.

    ``torch.rand`` in float32 returns the multiples of ``2**-24`` in [0, 1), each with
    probability ``2**-24``; the noise is the sampler's own transform of them. Category 1 wins
    when ``-gap + g1 > g0``; the noise is monotone in ``u``, so for each ``u1`` the winning
    ``u0`` form a prefix of the grid, counted with ``searchsorted``. Only the top ``u1`` values
    can win at all (the noise is at least ``≈ -4.5``).
    """
    grid = torch.arange(2**24, dtype=torch.float32) * 2.0**-24
    noise = _gumbel_from_uniform(grid)  # sorted
    top = noise[-50_000:]
    wins = torch.searchsorted(noise, top - torch.tensor(gap, dtype=torch.float32), right=False)
    assert int(wins[0]) == 0  # the omitted u1 values cannot win
    return float(wins.double().sum()) * 2.0**-48


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log1p(-p))


def test_float32_gumbel_noise_is_truncated() -> None:
    """The paper's numerical issue: float32 noise tops out at ~16.64, float64 at ~36.7."""
    top32 = _gumbel_from_uniform(torch.tensor(1 - 2.0**-24, dtype=torch.float32))
    top64 = _gumbel_from_uniform(torch.tensor(1 - 2.0**-53, dtype=torch.float64))
    assert float(top32) == pytest.approx(-math.log(2.0**-24), abs=1e-3)  # 16.64
    assert float(top64) == pytest.approx(-math.log(2.0**-53), abs=1e-3)  # 36.74
    g = torch.Generator().manual_seed(7)
    u = torch.rand(2_000_000, generator=g)
    assert u.dtype == torch.float32
    assert torch.equal(u * 2**24, (u * 2**24).round())  # the 2**-24 grid assumed above


def test_float32_sampling_lowers_entropy_float64_matches() -> None:
    """Exact law of float32 Gumbel-max on a peaked two-category distribution: the rare category
    is drawn far less often than its probability (entropy drops), increasingly with the gap.
    A detectable sampling test needs ~1e9 draws (the effect lives on categories with
    probability below ~1e-7), so the float32 law is computed exactly over the uniform grid and
    the float64 sampler is checked by sampling on a peaked case it must get right.
    """
    ratios = []
    for gap in (16.0, 17.0, 18.0):
        exact = 1.0 / (1.0 + math.exp(gap))
        p32 = float32_gumbel_max_minor_prob(gap)
        ratios.append(p32 / exact)
        assert binary_entropy(p32) < binary_entropy(exact)
    assert ratios[0] < 0.9
    assert ratios[1] < 0.5
    assert ratios[2] < 0.15
    assert ratios[0] > ratios[1] > ratios[2]
    # float64: a category ~1e-4 as likely as the mode is drawn at its exact rate.
    g = torch.Generator().manual_seed(8)
    logits = torch.tensor([0.0, -9.0, -9.0, -9.0, -9.0])
    samples = sample_categorical_reference(logits.expand(2_000_000, 5), generator=g)
    probs = torch.softmax(logits.double(), 0)
    assert chi_square_pvalue(samples, probs) > 1e-3
    assert (samples != 0).sum() > 300  # ~494 expected


def test_bad_arguments_raise_input_error() -> None:
    logits = torch.zeros(4, 6)
    with pytest.raises(InputError, match="logits"):
        sample_categorical(torch.zeros(4, 6, dtype=torch.long))
    with pytest.raises(InputError, match="logits"):
        sample_categorical(torch.zeros(4, 0))
    with pytest.raises(InputError, match="precision"):
        sample_categorical(logits, precision=torch.float16)
    with pytest.raises(InputError, match="disallowed"):
        sample_categorical(logits, disallowed=torch.zeros(5, dtype=torch.bool))
    with pytest.raises(InputError, match="disallowed"):
        sample_categorical(logits, disallowed=torch.zeros(6))
    with pytest.raises(InputError, match="every category"):
        sample_categorical(logits, disallowed=torch.ones(6, dtype=torch.bool))
    with pytest.raises(InputError, match="disallowed"):  # would grow the output
        sample_categorical(logits[0], disallowed=torch.zeros(4, 6, dtype=torch.bool))
