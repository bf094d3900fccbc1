"""Masked-diffusion samplers: exactness on an analytic model, caching, fixed tokens, confidence
remasking, block order, argument checks."""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import pytest
import torch

from polyfold.core.discrete import (
    CosineSchedule,
    LinearSchedule,
    LogLinearSchedule,
    MaskedProcess,
    TokenSample,
    sample_ancestral,
    sample_blockwise,
    sample_confidence,
    sample_first_hitting,
)
from polyfold.core.errors import InputError

VOCAB, MASK = 3, 3  # data tokens 0..2; the model's vocabulary has 4 entries, the last the mask


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's goodness-of-fit p-value of category ``counts`` against ``probs``."""
    expected = counts.sum() * probs
    stat = ((counts - expected) ** 2 / expected).sum()
    dof = torch.tensor((probs.numel() - 1) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(dof, stat / 2))


class JointModel:
    """The exact SUBS model of a known joint law over ``VOCAB**L`` sequences: at each position
    the posterior marginal given the unmasked tokens. Time-agnostic; records its inputs."""

    def __init__(self, length: int, g: torch.Generator) -> None:
        self.outcomes = torch.tensor(list(itertools.product(range(VOCAB), repeat=length)))
        same = (self.outcomes[:, 1:] == self.outcomes[:, :-1]).double().sum(1)
        logp = 2.0 * same + 0.7 * torch.randn(len(self.outcomes), generator=g, dtype=torch.float64)
        self.probs = torch.softmax(logp, 0)  # strongly correlated neighbours
        self.onehot = torch.nn.functional.one_hot(self.outcomes, VOCAB).double()
        self.inputs: list[torch.Tensor] = []
        self.times: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        self.inputs.append(x_t.clone())
        self.times.append(t.clone())
        fits = ((x_t[:, None, :] == MASK) | (x_t[:, None, :] == self.outcomes[None])).all(-1)
        posterior = self.probs * fits
        marginal = torch.einsum(
            "bo,olv->blv", posterior / posterior.sum(1, keepdim=True), self.onehot
        )
        mask_logit = torch.full((*x_t.shape, 1), 30.0)  # SUBS must never let this win
        return torch.cat([marginal.clamp_min(1e-300).log().float(), mask_logit], -1)

    def counts(self, tokens: torch.Tensor) -> torch.Tensor:
        index = (tokens * VOCAB ** torch.arange(tokens.shape[1] - 1, -1, -1)).sum(1)
        return torch.bincount(index, minlength=len(self.outcomes)).double()


def blank(batch: int, length: int) -> torch.Tensor:
    return torch.zeros(batch, length, dtype=torch.long)


def test_first_hitting_and_many_step_ancestral_sample_the_joint_law() -> None:
    model = JointModel(3, torch.Generator().manual_seed(0))
    process = MaskedProcess(CosineSchedule(), MASK)
    x = blank(6000, 3)
    fhs = sample_first_hitting(model, process, x, generator=torch.Generator().manual_seed(1))
    assert fhs.nfe == 3
    assert chi_square_pvalue(model.counts(fhs.tokens), model.probs) > 1e-3
    many = sample_ancestral(
        model, process, x, steps=400, generator=torch.Generator().manual_seed(2)
    )
    assert chi_square_pvalue(model.counts(many.tokens), model.probs) > 1e-3
    # power check: one step draws the three marginals independently, which is far off
    one = sample_ancestral(model, process, x, steps=1, generator=torch.Generator().manual_seed(3))
    assert chi_square_pvalue(model.counts(one.tokens), model.probs) < 1e-6


def test_first_hitting_times_follow_the_analytic_law() -> None:
    """First hitting time from t = 1 with n masked: (1 - alpha(s))**n ~ U(0, 1)."""
    model = JointModel(3, torch.Generator().manual_seed(4))
    schedule = CosineSchedule()
    process = MaskedProcess(schedule, MASK)
    sample_first_hitting(model, process, blank(4000, 3), generator=torch.Generator().manual_seed(5))
    times = torch.stack(model.times).double()  # (3 calls, batch)
    assert (times[1:] < times[:-1]).all()  # every sequence's clock runs backwards
    u = (schedule.mask_prob(times[0]) ** 3).sort().values
    ks = (u - torch.arange(1, 4001, dtype=torch.float64) / 4000).abs().max()
    assert float(ks) < 0.03  # Kolmogorov-Smirnov, 1% level ~0.026
    # each later draw uses the remaining count: the ratio of mask probabilities ~ u**(1/2)
    ratio = schedule.mask_prob(times[1]) / schedule.mask_prob(times[0])
    assert float((ratio**2).mean()) == pytest.approx(0.5, abs=0.02)


def test_first_hitting_batches_sequences_with_different_lengths() -> None:
    model = JointModel(3, torch.Generator().manual_seed(6))
    process = MaskedProcess(LinearSchedule(), MASK)
    x = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    fixed = torch.tensor([[False, False, False], [True, False, True], [True, True, True]])
    out = sample_first_hitting(model, process, x, generator=torch.Generator(), fixed=fixed)
    assert out.nfe == 3
    assert torch.equal(out.tokens[fixed], x[fixed])
    assert (out.tokens != MASK).all()
    masked_counts = [(inputs == MASK).sum(1).tolist() for inputs in model.inputs]
    assert masked_counts == [[3, 1, 0], [2, 0, 0], [1, 0, 0]]


def test_cache_skips_calls_without_changing_the_result() -> None:
    model = JointModel(3, torch.Generator().manual_seed(7))
    process = MaskedProcess(LinearSchedule(), MASK)
    x = blank(2, 3)
    cached = sample_ancestral(
        model, process, x, steps=100, generator=torch.Generator().manual_seed(8)
    )
    states = torch.stack(model.inputs)
    model.inputs.clear()
    plain = sample_ancestral(
        model, process, x, steps=100, generator=torch.Generator().manual_seed(8), cache=False
    )
    assert torch.equal(cached.tokens, plain.tokens)
    assert cached.nfe == len(states) <= 6  # one call per distinct state, at most 2 * 3 reveals
    assert plain.nfe == len(model.inputs) > 50
    distinct = {tuple(s.flatten().tolist()) for s in states}
    assert len(distinct) == len(states)  # never called twice on the same state


SAMPLERS = {
    "ancestral": partial(sample_ancestral, steps=16),
    "first_hitting": sample_first_hitting,
    "confidence": partial(sample_confidence, steps=4),
    "blockwise": partial(
        sample_blockwise, block_length=3, sampler=partial(sample_confidence, steps=2)
    ),
}


class RandomModel:
    """A fixed random function of ``x_t`` over a 10-token vocabulary (mask id 9)."""

    def __init__(self, length: int) -> None:
        g = torch.Generator().manual_seed(11)
        self.table = torch.randn(10, length, 10, generator=g)
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        self.inputs.append(x_t.clone())
        return self.table[x_t].mean(1) * 3


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("pattern", ["prefix", "suffix", "infill"])
def test_fixed_tokens_never_change(name: str, pattern: str) -> None:
    length = 8
    model = RandomModel(length)
    process = MaskedProcess(LogLinearSchedule(), 9)
    x = torch.randint(0, 9, (5, length), generator=torch.Generator().manual_seed(12))
    fixed = torch.zeros_like(x, dtype=torch.bool)
    where = {"prefix": slice(0, 3), "suffix": slice(5, 8), "infill": slice(2, 6)}[pattern]
    fixed[:, where] = True
    fixed[1, 0] = True  # and a per-sequence one
    out = SAMPLERS[name](
        model, process, x, generator=torch.Generator().manual_seed(13), fixed=fixed
    )
    assert isinstance(out, TokenSample)
    assert torch.equal(out.tokens[fixed], x[fixed])
    assert (out.tokens[~fixed] != 9).all()
    assert out.nfe == len(model.inputs) > 0
    for seen in model.inputs:
        assert torch.equal(seen[fixed], x[fixed])
    again = SAMPLERS[name](
        model, process, x, generator=torch.Generator().manual_seed(13), fixed=fixed
    )
    assert torch.equal(again.tokens, out.tokens)  # same seed, same output


class PeakedModel:
    """Predicts token ``l % 3`` at position ``l`` with a confidence that grows with ``l``."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        self.inputs.append(x_t.clone())
        batch, length = x_t.shape
        logits = torch.zeros(batch, length, 4)
        position = torch.arange(length)
        logits[:, position, position % 3] = 0.5 * position.float()
        return logits


def test_confidence_reveals_most_confident_first_and_everything_by_the_end() -> None:
    model = PeakedModel()
    process = MaskedProcess(LinearSchedule(), MASK)
    out = sample_confidence(
        model, process, blank(2, 8), steps=8, generator=torch.Generator(), temperature=0
    )
    assert (out.tokens != MASK).all()
    assert torch.equal(out.tokens[0], torch.arange(8) % 3)  # greedy picks the peaks
    assert out.nfe == 8
    for step, seen in enumerate(model.inputs):  # one per step, right to left
        assert ((seen == MASK).sum(1) == 8 - step).all()
        assert (seen[:, 8 - step :] != MASK).all()


@pytest.mark.parametrize("steps", [3, 5, 20])
def test_confidence_counts_follow_the_schedule(steps: int) -> None:
    model = PeakedModel()
    schedule = CosineSchedule()
    process = MaskedProcess(schedule, MASK)
    out = sample_confidence(
        model, process, blank(3, 12), steps=steps, generator=torch.Generator().manual_seed(1)
    )
    assert (out.tokens != MASK).all()
    grid = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    left = torch.round(12 * schedule.mask_prob(grid)).long().tolist()
    seen = [int((s[0] == MASK).sum()) for s in model.inputs]
    calls = [n for n, after in itertools.pairwise(left) if after < n]
    assert seen == calls  # a step that would reveal nothing makes no call
    assert out.nfe == len(calls) <= min(steps, 12)


@pytest.mark.parametrize(
    "inner",
    [partial(sample_ancestral, steps=6), sample_first_hitting, partial(sample_confidence, steps=2)],
)
def test_blocks_are_decoded_left_to_right(inner: Any) -> None:
    length, block = 8, 3  # blocks [0, 3), [3, 6), [6, 8)
    model = RandomModel(length)
    process = MaskedProcess(LinearSchedule(), 9)
    out = sample_blockwise(
        model,
        process,
        blank(4, length),
        block_length=block,
        sampler=inner,
        generator=torch.Generator().manual_seed(2),
    )
    assert (out.tokens != 9).all()
    assert out.nfe == len(model.inputs)
    block_of = torch.arange(length) // block
    current = []
    for seen in model.inputs:
        masked = seen == 9
        now = int(block_of[masked.any(0)].min())
        current.append(now)
        assert masked[:, block_of > now].all()  # later blocks still masked
        assert not masked[:, block_of < now].any()  # earlier blocks done
    assert current == sorted(current)
    assert set(current) == {0, 1, 2}
    if inner is sample_first_hitting:
        assert out.nfe == length


def test_samplers_never_output_the_mask_token() -> None:
    """The analytic model gives the mask a logit of 30, far above the rest: SUBS removes it."""
    model = JointModel(3, torch.Generator().manual_seed(9))
    process = MaskedProcess(LinearSchedule(), MASK)
    for name, sampler in SAMPLERS.items():
        out = sampler(model, process, blank(50, 3), generator=torch.Generator().manual_seed(10))
        assert (out.tokens < MASK).all(), name


def test_bad_arguments_raise_input_error() -> None:
    model = RandomModel(4)
    process = MaskedProcess(LinearSchedule(), 9)
    g = torch.Generator()
    x = blank(2, 4)
    with pytest.raises(InputError, match="steps"):
        sample_ancestral(model, process, x, steps=0, generator=g)
    with pytest.raises(InputError, match="steps"):
        sample_confidence(model, process, x, steps=2.5, generator=g)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="temperature"):
        sample_confidence(model, process, x, steps=2, generator=g, temperature=-1.0)
    with pytest.raises(InputError, match="block_length"):
        sample_blockwise(
            model, process, x, block_length=0, sampler=sample_first_hitting, generator=g
        )
    with pytest.raises(InputError, match="fixed"):
        sample_first_hitting(model, process, x, generator=g, fixed=torch.ones(2, 5).bool())
    with pytest.raises(InputError, match="fixed"):
        sample_first_hitting(model, process, x, generator=g, fixed=torch.ones(2, 4))
    with pytest.raises(InputError, match="x: expected an integer tensor"):
        sample_first_hitting(model, process, x.float(), generator=g)
    with pytest.raises(InputError, match="generator"):
        sample_first_hitting(model, process, x, generator=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="precision"):
        sample_ancestral(model, process, x, steps=3, generator=g, precision=torch.float16)
    with pytest.raises(InputError, match="model: expected float logits"):
        sample_ancestral(lambda x, t, c: torch.zeros(2, 4, 9), process, x, steps=3, generator=g)
