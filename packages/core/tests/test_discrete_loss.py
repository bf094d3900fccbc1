"""Masking schedules, the forward process, SUBS and the MDLM loss."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from polyfold.core.discrete import (
    CosineSchedule,
    LinearSchedule,
    LogLinearSchedule,
    MaskedProcess,
    MaskSchedule,
    masked_diffusion_loss,
    sample_times,
)
from polyfold.core.errors import InputError

SCHEDULES: dict[str, MaskSchedule] = {
    "linear": LinearSchedule(),
    "cosine": CosineSchedule(),
    "loglinear": LogLinearSchedule(eps=1e-3),
}
MASK = 5  # data tokens 0..4, the model's vocabulary is 6


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_endpoints_derivative_weight_and_inverse(name: str) -> None:
    schedule = SCHEDULES[name]
    t = torch.linspace(0.01, 1.0, 100, dtype=torch.float64, requires_grad=True)
    alpha = schedule.alpha(t)
    (grad,) = torch.autograd.grad(alpha.sum(), t)
    t = t.detach()
    assert torch.allclose(schedule.alpha_derivative(t), grad, rtol=1e-10)
    assert torch.allclose(schedule.weight(t), -grad / (1 - alpha.detach()), rtol=1e-8)
    assert (grad < 0).all()
    assert torch.allclose(schedule.time_of_mask_prob(schedule.mask_prob(t)), t, rtol=1e-10)
    ends = schedule.alpha(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert float(ends[0]) == 1.0
    assert float(ends[1]) == pytest.approx(1e-3 if name == "loglinear" else 0.0, abs=1e-15)
    # the masking probability is exact where 1 - alpha would cancel
    tiny = torch.tensor([1e-9], dtype=torch.float32)
    assert float(schedule.mask_prob(tiny)) > 0
    assert float(schedule.weight(tiny)) == pytest.approx(
        float(schedule.weight(tiny.double())), rel=1e-4
    )


def test_noise_masks_at_rate_one_minus_alpha_and_never_kept_positions() -> None:
    process = MaskedProcess(CosineSchedule(), MASK)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, MASK, (4, 5000), generator=g)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    keep = torch.zeros_like(x0, dtype=torch.bool)
    keep[:, :100] = True
    x_t = process.noise(x0, t, generator=g, keep=keep)
    masked = x_t == MASK
    assert torch.equal(x_t[~masked], x0[~masked])  # unmasked tokens are the data
    assert not masked[keep].any()
    rate = masked[:, 100:].double().mean(1)
    assert torch.allclose(rate, process.schedule.mask_prob(t.double()), atol=0.025)


def test_subs_logits_never_predict_mask_and_carry_over_unmasked() -> None:
    process = MaskedProcess(LinearSchedule(), MASK)
    x_t = torch.tensor([[0, MASK, 3, MASK]])
    logits = torch.randn(1, 4, 6)
    logits[..., MASK] = 100.0
    out = process.subs_logits(logits, x_t)
    assert torch.isneginf(out[..., MASK]).all()
    probs = out.softmax(-1)
    assert torch.equal(probs[0, 0], torch.eye(6)[0])
    assert torch.equal(probs[0, 2], torch.eye(6)[3])
    assert torch.allclose(probs[0, 1, :MASK], logits[0, 1, :MASK].softmax(-1))


def iid_data(batch: int, length: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens drawn i.i.d. from a fixed distribution ``pi`` over 5 tokens, and ``log pi``."""
    log_pi = torch.log_softmax(torch.tensor([1.0, 0.2, -0.5, 0.7, -1.3]), 0)
    x0 = torch.multinomial(log_pi.exp(), batch * length, replacement=True, generator=g)
    return x0.reshape(batch, length), log_pi


def exact_iid_model(log_pi: torch.Tensor) -> Any:
    """The exact posterior of i.i.d. data: ``pi`` at every position (mask logit arbitrary)."""

    def model(x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        logits = torch.cat([log_pi, torch.tensor([50.0])])  # SUBS must ignore the 50
        return logits.expand(*x_t.shape, 6).clone()

    return model


def test_loss_is_the_weighted_cross_entropy_on_masked_positions() -> None:
    g = torch.Generator().manual_seed(1)
    x0, log_pi = iid_data(3, 40, g)
    process = MaskedProcess(CosineSchedule(), MASK)
    t = torch.tensor([0.2, 0.5, 0.9])
    out = masked_diffusion_loss(exact_iid_model(log_pi), process, x0, generator=g, t=t)
    masked = out.x_t == MASK
    weight = (math.pi / 2) * torch.sin(t * math.pi / 2) / (1 - torch.cos(t * math.pi / 2))
    expected = torch.where(masked, -log_pi[x0] * weight[:, None], torch.zeros(()))
    assert torch.allclose(out.token_loss, expected, rtol=1e-5)
    assert out.num_tokens == 120
    assert float(out.loss) == pytest.approx(float(expected.sum() / 120), rel=1e-5)
    assert float(out.bits_per_token) == pytest.approx(float(out.loss) / math.log(2))


@pytest.mark.parametrize("name", SCHEDULES)
def test_nelbo_of_the_exact_model_is_the_data_entropy(name: str) -> None:
    """For i.i.d. data and the exact model, E[w(t) #masked H] integrates to H per token."""
    g = torch.Generator().manual_seed(2)
    x0, log_pi = iid_data(4000, 16, g)
    process = MaskedProcess(SCHEDULES[name], MASK)
    out = masked_diffusion_loss(exact_iid_model(log_pi), process, x0, generator=g)
    entropy = float(-(log_pi.exp() * log_pi).sum())
    # loglinear: alpha(1) = eps leaves eps of the tokens unmasked at t = 1, a 1e-3 bias
    assert float(out.loss) == pytest.approx(entropy, rel=0.02)


def test_padding_is_ignored() -> None:
    g = torch.Generator().manual_seed(3)
    x0, log_pi = iid_data(2, 12, g)
    valid = torch.ones_like(x0, dtype=torch.bool)
    valid[0, 7:] = False
    valid[1, 10:] = False
    process = MaskedProcess(LinearSchedule(), MASK)
    model = exact_iid_model(log_pi)
    t = torch.tensor([0.999, 0.999])  # nearly everything valid gets masked
    padded = x0.masked_fill(~valid, MASK)  # pads may hold anything, even the mask id
    out = masked_diffusion_loss(
        model, process, padded, generator=torch.Generator().manual_seed(0), valid=valid, t=t
    )
    other = x0.masked_fill(~valid, 2)
    again = masked_diffusion_loss(
        model, process, other, generator=torch.Generator().manual_seed(0), valid=valid, t=t
    )
    assert out.num_tokens == 17
    assert torch.equal(out.x_t[~valid], padded[~valid])  # pads are never masked or changed
    assert (out.token_loss[~valid] == 0).all()
    assert float(out.loss) == pytest.approx(float(out.token_loss.sum()) / 17)
    assert float(out.loss) == pytest.approx(float(again.loss))


def test_loss_backpropagates_and_mask_logit_is_ignored() -> None:
    g = torch.Generator().manual_seed(4)
    x0, _ = iid_data(2, 10, g)
    process = MaskedProcess(LogLinearSchedule(), MASK)
    table = torch.randn(10, 6, requires_grad=True)

    def model(x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return table.expand(x_t.shape[0], -1, -1) + cond

    t = torch.tensor([0.6, 0.8])
    low = masked_diffusion_loss(
        model, process, x0, generator=torch.Generator().manual_seed(0), t=t, cond=0.0
    )
    low.loss.backward()
    assert table.grad is not None
    assert table.grad[:, MASK].abs().max() == 0
    assert table.grad[:, :MASK].abs().max() > 0
    bump = torch.zeros(6)
    bump[MASK] = 1e4
    high = masked_diffusion_loss(
        model, process, x0, generator=torch.Generator().manual_seed(0), t=t, cond=bump
    )
    assert high.loss.item() == pytest.approx(low.loss.item(), rel=1e-6)


def test_sample_times_are_stratified() -> None:
    t = sample_times(8, generator=torch.Generator().manual_seed(0), t_min=0.0)
    assert ((t >= 0) & (t < 1)).all()
    assert torch.equal(torch.floor(t.sort().values * 8), torch.arange(8.0))  # one per 1/8 bin


def test_bad_arguments_raise_input_error() -> None:
    g = torch.Generator().manual_seed(5)
    process = MaskedProcess(LinearSchedule(), MASK)
    x0 = torch.zeros(2, 4, dtype=torch.long)

    def model(x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return torch.zeros(*x_t.shape, 6)

    with pytest.raises(InputError, match="mask_id"):
        MaskedProcess(LinearSchedule(), -1)
    with pytest.raises(InputError, match="schedule"):
        MaskedProcess("linear", 3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="eps"):
        LogLinearSchedule(eps=1.0)
    with pytest.raises(InputError, match="x0"):
        masked_diffusion_loss(model, process, x0.float(), generator=g)
    with pytest.raises(InputError, match="x0: the data contains the mask token"):
        masked_diffusion_loss(model, process, x0 + MASK, generator=g)
    with pytest.raises(InputError, match="valid"):
        masked_diffusion_loss(model, process, x0, generator=g, valid=torch.ones(2, 3).bool())
    with pytest.raises(InputError, match=r"t: times must lie in \(0, 1\]"):
        masked_diffusion_loss(model, process, x0, generator=g, t=torch.tensor([0.0, 0.5]))
    with pytest.raises(InputError, match="t_min"):
        masked_diffusion_loss(model, process, x0, generator=g, t_min=0.0)
    with pytest.raises(InputError, match="t: expected"):
        masked_diffusion_loss(model, process, x0, generator=g, t=torch.tensor([0.5]))
    with pytest.raises(InputError, match=r"model: expected float logits of shape \(B, L, V\)"):
        masked_diffusion_loss(lambda x, t, c: torch.zeros(*x.shape, 4), process, x0, generator=g)
