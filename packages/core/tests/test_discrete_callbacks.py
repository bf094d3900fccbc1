"""Masked samplers' per-step callback and the ancestral sampler's proposal hook: call counts,
times, the last state, estimates consistent with the state, no effect on the draws."""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import pytest
import torch

from polyfold.core.discrete import (
    LinearSchedule,
    LogLinearSchedule,
    MaskedProcess,
    sample_ancestral,
    sample_blockwise,
    sample_confidence,
    sample_first_hitting,
)
from polyfold.core.errors import InputError, NonFiniteError
from polyfold.core.samplers import get_sampler

MASK = 9


class RandomModel:
    """A fixed random, time-dependent function of ``x_t`` over 10 tokens (mask id 9)."""

    def __init__(self, length: int) -> None:
        g = torch.Generator().manual_seed(11)
        self.table = torch.randn(10, length, 10, generator=g)
        self.times: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        self.times.append(t.clone())
        return self.table[x_t].mean(1) * 3 + t[:, None, None]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, float, torch.Tensor, torch.Tensor | None]] = []

    def __call__(self, step: int, t: float, x: torch.Tensor, x0: torch.Tensor | None) -> None:
        assert isinstance(t, float)
        self.calls.append((step, t, x, x0))


def _inputs(length: int = 8) -> tuple[MaskedProcess, torch.Tensor, torch.Tensor]:
    process = MaskedProcess(LogLinearSchedule(), MASK)
    x = torch.randint(0, MASK, (3, length), generator=torch.Generator().manual_seed(1))
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[:, :2] = True
    fixed[1, 2:5] = True  # rows have 6, 3 and 6 positions to generate
    return process, x, fixed


SAMPLERS = {
    "ancestral": (partial(sample_ancestral, steps=12), 12),
    "ancestral_exact": (partial(sample_ancestral, steps=5, cache=False), 5),
    "first_hitting": (sample_first_hitting, 6),
    "confidence": (partial(sample_confidence, steps=7), 7),
    "blockwise_ancestral": (
        partial(sample_blockwise, block_length=3, sampler=partial(sample_ancestral, steps=4)),
        3 * 4,
    ),
    "blockwise_first_hitting": (
        partial(sample_blockwise, block_length=3, sampler=sample_first_hitting),
        1 + 3 + 2,  # the most positions to generate per block: [2, 3), [3, 6), [6, 8)
    ),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_callback_once_per_step_ending_at_the_result(name: str) -> None:
    sampler, expected = SAMPLERS[name]
    process, x, fixed = _inputs()
    plain = sampler(
        RandomModel(8), process, x, generator=torch.Generator().manual_seed(2), fixed=fixed
    )
    rec = Recorder()
    out = sampler(
        RandomModel(8),
        process,
        x,
        generator=torch.Generator().manual_seed(2),
        fixed=fixed,
        callback=rec,
    )
    # the callback changes nothing: same draws, same calls
    assert torch.equal(out.tokens, plain.tokens)
    assert out.nfe == plain.nfe
    assert [c[0] for c in rec.calls] == list(range(expected))
    times = [c[1] for c in rec.calls]
    assert times[-1] == 0.0
    assert all(0.0 <= t <= 1.0 for t in times)
    assert all(a >= b for a, b in itertools.pairwise(times))
    assert torch.equal(rec.calls[-1][2], out.tokens)
    masked_before = fixed.numel()
    for _, _, state, x0 in rec.calls:
        assert torch.equal(state[fixed], x[fixed])
        masked_now = int((state == MASK).sum())
        assert masked_now <= masked_before  # tokens are only ever revealed
        masked_before = masked_now
        if x0 is not None:  # the estimate agrees with every revealed token
            assert torch.equal(x0[state != MASK], state[state != MASK])


@pytest.mark.parametrize("name", ["ancestral", "ancestral_exact", "confidence"])
def test_grid_samplers_report_the_uniform_grid(name: str) -> None:
    sampler, steps = SAMPLERS[name]
    process, x, fixed = _inputs()
    rec = Recorder()
    sampler(RandomModel(8), process, x, generator=torch.Generator(), fixed=fixed, callback=rec)
    want = torch.linspace(1, 0, steps + 1, dtype=torch.float64)[1:].tolist()
    assert [c[1] for c in rec.calls] == want


def test_cached_ancestral_steps_are_reported_and_estimates_fill_every_mask() -> None:
    process, x, fixed = _inputs()
    rec = Recorder()
    out = sample_ancestral(
        RandomModel(8), process, x, steps=40, generator=torch.Generator(), fixed=fixed, callback=rec
    )
    assert len(rec.calls) == 40 > out.nfe  # steps that reused cached logits are reported too
    before = x.masked_fill(~fixed, MASK)
    for _, _, state, x0 in rec.calls:
        if bool((before[~fixed] == MASK).any()):
            assert x0 is not None
            assert not (x0[~fixed] == MASK).any()
        else:  # nothing was left to estimate
            assert x0 is None
        before = state


def test_ancestral_reports_steps_after_everything_is_revealed() -> None:
    process = MaskedProcess(LinearSchedule(), MASK)
    x = torch.randint(0, MASK, (2, 5), generator=torch.Generator().manual_seed(3))
    rec = Recorder()
    out = sample_ancestral(
        RandomModel(5),
        process,
        x,
        steps=6,
        generator=torch.Generator(),
        fixed=torch.ones_like(x, dtype=torch.bool),
        callback=rec,
    )
    assert out.nfe == 0
    assert torch.equal(out.tokens, x)
    assert [(c[0], c[3]) for c in rec.calls] == [(i, None) for i in range(6)]


def test_first_hitting_reports_the_latest_clock_of_unfinished_sequences() -> None:
    process, x, fixed = _inputs()
    model, rec = RandomModel(8), Recorder()
    sample_first_hitting(model, process, x, generator=torch.Generator(), fixed=fixed, callback=rec)
    left = (~fixed).sum(1)
    for k, (_, t, _, _) in enumerate(rec.calls):
        unfinished = left > k + 1
        want = float(model.times[k][unfinished].max()) if unfinished.any() else 0.0
        assert t == pytest.approx(want, abs=1e-6)


def test_blockwise_maps_block_times_to_an_overall_clock() -> None:
    process, x, fixed = _inputs(9)
    rec = Recorder()
    sample_blockwise(
        RandomModel(9),
        process,
        x,
        block_length=3,
        sampler=partial(sample_confidence, steps=2),
        generator=torch.Generator(),
        fixed=fixed,
        callback=rec,
    )
    assert [c[1] for c in rec.calls] == pytest.approx([5 / 6, 2 / 3, 1 / 2, 1 / 3, 1 / 6, 0.0])


def test_callback_through_the_registry() -> None:
    process, x, fixed = _inputs()
    rec = Recorder()
    out = get_sampler("first_hitting", kind="masked")(
        RandomModel(8), process, x, steps=99, generator=torch.Generator(), fixed=fixed, callback=rec
    )
    assert len(rec.calls) == 6
    assert torch.equal(rec.calls[-1][2], out.tokens)


class ConstantProposal:
    """Proposes token ``token`` everywhere in the steps starting in ``[lo, hi]``."""

    def __init__(self, token: int, lo: float, hi: float) -> None:
        self.token, self.lo, self.hi = token, lo, hi
        self.seen: list[float] = []

    def active(self, t: float) -> bool:
        return self.lo <= t <= self.hi

    def __call__(self, logits: Any, x_t: torch.Tensor, t: torch.Tensor, generator: Any) -> Any:
        assert t.shape == (x_t.shape[0],)
        assert t.dtype == torch.float64
        self.seen.append(float(t[0]))
        return torch.full_like(x_t, self.token)


def test_proposal_tokens_are_revealed_in_its_window() -> None:
    process, x, fixed = _inputs()
    model, rec = RandomModel(8), Recorder()
    proposal = ConstantProposal(7, 0.5, 1.0)
    out = sample_ancestral(
        model,
        process,
        x,
        steps=10,
        generator=torch.Generator().manual_seed(4),
        fixed=fixed,
        cache=True,
        proposal=proposal,
        callback=rec,
    )
    grid = torch.linspace(1, 0, 11, dtype=torch.float64)
    assert proposal.seen == [float(t) for t in grid[:10] if float(t) >= 0.5]
    # every active step calls the model afresh, cache or not
    called = [float(t[0]) for t in model.times[: len(proposal.seen)]]
    assert called == pytest.approx(proposal.seen, abs=1e-6)
    revealed_in_window = rec.calls[len(proposal.seen) - 1][2]
    assert ((revealed_in_window == 7) | (revealed_in_window == MASK) | fixed).all()
    assert ((revealed_in_window == 7) & ~fixed).any()
    first = rec.calls[0][3]  # x0 of an active step: the proposal's draw where masked
    assert first is not None
    assert (first[~fixed] == 7).all()
    assert torch.equal(first[fixed], x[fixed])
    assert (out.tokens != MASK).all()


def test_an_inactive_proposal_changes_nothing_and_a_bad_one_is_refused() -> None:
    process, x, fixed = _inputs()
    kw: dict[str, Any] = {"steps": 6, "fixed": fixed}
    plain = sample_ancestral(RandomModel(8), process, x, generator=torch.Generator(), **kw)
    idle = sample_ancestral(
        RandomModel(8),
        process,
        x,
        generator=torch.Generator(),
        proposal=ConstantProposal(7, 2.0, 3.0),
        **kw,
    )
    assert torch.equal(idle.tokens, plain.tokens)
    assert idle.nfe == plain.nfe

    class Bad(ConstantProposal):
        def __call__(self, logits: Any, x_t: torch.Tensor, t: Any, generator: Any) -> Any:
            return torch.zeros(x_t.shape[0], 3)

    with pytest.raises(InputError, match=r"proposal: expected integer tokens of shape \(3, 8\)"):
        sample_ancestral(
            RandomModel(8), process, x, generator=torch.Generator(), proposal=Bad(1, 0, 1), **kw
        )


class NaNFrom(RandomModel):
    """:class:`RandomModel` whose logits are NaN at one position from call ``k`` on."""

    def __init__(self, length: int, k: int) -> None:
        super().__init__(length)
        self.k = k

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        out = super().__call__(x_t, t, cond)
        if len(self.times) >= self.k:
            out[0, 3, 0] = float("nan")
        return out


@pytest.mark.parametrize("name", ["ancestral", "blockwise", "confidence", "first_hitting"])
def test_nan_logits_are_reported_not_sampled(name: str) -> None:
    process, x, fixed = _inputs()
    opts: dict[str, Any] = {"steps": 6}
    if name == "blockwise":
        opts = {"block_length": 4, "sampler": partial(sample_ancestral, steps=6)}
    with pytest.raises(NonFiniteError, match=r"logits hold NaN or \+inf from call 2 of"):
        get_sampler(name, "masked")(
            NaNFrom(8, 2), process, x, generator=torch.Generator(), fixed=fixed, **opts
        )


def test_minus_inf_logits_are_legitimate() -> None:
    process, x, fixed = _inputs()

    class Forbids(RandomModel):  # token 0 never allowed: -inf logits are zero probabilities
        def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
            out = super().__call__(x_t, t, cond)
            out[..., 0] = float("-inf")
            return out

    res = sample_ancestral(
        Forbids(8), process, x, steps=6, generator=torch.Generator(), fixed=fixed
    )
    assert not bool((res.tokens[~fixed] == 0).any())
