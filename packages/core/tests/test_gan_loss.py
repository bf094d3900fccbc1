"""GAN losses: closed forms of the WGAN-GP and R1 penalties and of the non-saturating losses,
signs, shapes and conditional critics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.core.losses import (
    gradient_penalty,
    nonsaturating_critic_loss,
    nonsaturating_generator_loss,
    nonsaturating_r1_critic_loss,
    r1_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_gp_critic_loss,
)


def _linear_critic(shape: tuple[int, ...], scale: float) -> nn.Module:
    d = int(torch.tensor(shape).prod())
    lin = nn.Linear(d, 1, bias=True)
    with torch.no_grad():
        w = torch.randn(1, d, generator=torch.Generator().manual_seed(0))
        lin.weight.copy_(scale * w / w.norm())
    return nn.Sequential(nn.Flatten(), lin)


@pytest.mark.parametrize("shape", [(6,), (3, 5), (2, 3, 4)])
def test_penalty_is_zero_for_unit_norm_linear_critic(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(8, *shape, generator=g), torch.randn(8, *shape, generator=g)
    gp = gradient_penalty(_linear_critic(shape, 1.0), real, fake)
    assert float(gp.detach()) == pytest.approx(0.0, abs=1e-10)


def test_penalty_of_scaled_linear_critic_is_squared_excess() -> None:
    # |grad| = 3 everywhere, so the penalty is (3 - 1)^2 = 4
    real, fake = torch.randn(5, 4, 7), torch.randn(5, 4, 7)
    gp = gradient_penalty(_linear_critic((4, 7), 3.0), real, fake)
    assert float(gp.detach()) == pytest.approx(4.0, rel=1e-5)


def test_penalty_trains_the_critic() -> None:
    critic = _linear_critic((4,), 3.0)
    gp = gradient_penalty(critic, torch.randn(6, 4), torch.randn(6, 4))
    gp.backward()
    lin = critic[1]
    assert isinstance(lin, nn.Linear)
    assert lin.weight.grad is not None
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|: along w, with norm 2 * 2 = 4
    assert float(lin.weight.grad.norm()) == pytest.approx(4.0, rel=1e-4)


def test_signs() -> None:
    real_s, fake_s = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 1.0])
    assert float(wgan_critic_loss(real_s, fake_s)) == pytest.approx(-3.0)
    assert float(wgan_generator_loss(fake_s)) == pytest.approx(0.0)
    assert float(wgan_generator_loss(torch.tensor([1.0, 3.0]))) == pytest.approx(-2.0)


class _Conditional(nn.Module):
    """Projection-style critic: a linear score plus a per-class offset."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 1)
        self.offset = nn.Embedding(3, 1)
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.seen = y
        return self.lin(x.flatten(1)).squeeze(1) + self.offset(y).squeeze(1)


def test_gp_critic_loss_passes_cond_and_reports_parts() -> None:
    critic = _Conditional()
    real, fake = torch.randn(4, 3, 4), torch.randn(4, 3, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 1])
    loss, parts = wgan_gp_critic_loss(critic, real, fake, y, gp_weight=10.0)
    assert critic.seen is y
    assert loss.ndim == 0
    with torch.no_grad():
        w = float(critic(real, y).mean() - critic(fake, y).mean())
        gnorm = float(critic.lin.weight.norm())
    assert parts["wasserstein"] == pytest.approx(w, rel=1e-5)
    assert parts["gradient_penalty"] == pytest.approx((gnorm - 1) ** 2, rel=1e-4)
    assert float(loss) == pytest.approx(-w + 10 * (gnorm - 1) ** 2, rel=1e-4)
    loss.backward()
    assert fake.grad is None  # the critic step never trains the generator


def test_seeded_interpolates_are_reproducible() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(5, 2, 3), torch.randn(5, 2, 3)
    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_input() -> None:
    critic = _linear_critic((4,), 1.0)
    with pytest.raises(InputError, match="fake: expected the shape"):
        gradient_penalty(critic, torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(InputError, match="gp_weight"):
        wgan_gp_critic_loss(critic, torch.randn(3, 4), torch.randn(3, 4), gp_weight=-1.0)
    with pytest.raises(InputError, match="one score per example"):
        gradient_penalty(lambda x: x.sum(), torch.randn(3, 4), torch.randn(3, 4))


def test_nonsaturating_losses_by_hand() -> None:
    # softplus(0) = ln 2, softplus(-ln 3) = ln(1 + 1/3) = ln(4/3), softplus(ln 3) = ln 4
    ln3 = math.log(3.0)
    real_s, fake_s = torch.tensor([0.0, ln3]), torch.tensor([0.0, -ln3])
    half = (math.log(2.0) + math.log(4 / 3)) / 2
    assert float(nonsaturating_critic_loss(real_s, fake_s)) == pytest.approx(2 * half, rel=1e-6)
    assert float(nonsaturating_generator_loss(torch.tensor([ln3]))) == pytest.approx(
        math.log(4 / 3), rel=1e-6
    )
    assert float(nonsaturating_generator_loss(fake_s)) == pytest.approx(
        (math.log(2.0) + math.log(4.0)) / 2, rel=1e-6
    )


def test_generator_loss_does_not_saturate() -> None:
    # a confident critic (D(fake) = -20): d/dD softplus(-D) = -sigmoid(-D) ~ -1, where the
    # saturating log(1 - sigmoid(D)) would give ~ -2e-9
    d = torch.tensor([-20.0], requires_grad=True)
    nonsaturating_generator_loss(d).backward()
    assert d.grad is not None
    assert float(d.grad[0]) == pytest.approx(-1.0, abs=1e-8)


@pytest.mark.parametrize("shape", [(6,), (3, 5), (2, 3, 4)])
def test_r1_of_linear_critic_is_squared_weight_norm(shape: tuple[int, ...]) -> None:
    # D(x) = w.x + b: grad_x D = w everywhere, so R1 = |w|^2 = 2.5^2
    real = torch.randn(7, *shape, generator=torch.Generator().manual_seed(2))
    r1 = r1_penalty(_linear_critic(shape, 2.5), real)
    assert float(r1.detach()) == pytest.approx(6.25, rel=1e-5)


def test_r1_of_quadratic_critic() -> None:
    # D(x) = -|x|^2 / 2: grad = -x, so R1 = mean_i |x_i|^2
    real = torch.randn(9, 2, 3, generator=torch.Generator().manual_seed(4))
    r1 = r1_penalty(lambda x: -0.5 * (x**2).flatten(1).sum(1), real)
    assert float(r1.detach()) == pytest.approx(float((real**2).flatten(1).sum(1).mean()), rel=1e-5)


def test_r1_trains_the_critic() -> None:
    critic = _linear_critic((4,), 3.0)
    r1_penalty(critic, torch.randn(6, 4)).backward()
    lin = critic[1]
    assert isinstance(lin, nn.Linear)
    assert lin.weight.grad is not None
    # d/dw |w|^2 = 2 w: norm 2 * 3 = 6
    assert float(lin.weight.grad.norm()) == pytest.approx(6.0, rel=1e-5)


def test_ns_r1_critic_loss_passes_cond_and_reports_parts() -> None:
    critic = _Conditional()
    g = torch.Generator().manual_seed(5)
    real = torch.randn(4, 3, 4, generator=g)
    fake = torch.randn(4, 3, 4, generator=g).requires_grad_(True)
    y = torch.tensor([0, 1, 2, 1])
    loss, parts = nonsaturating_r1_critic_loss(critic, real, fake, y, r1_gamma=0.5)
    assert critic.seen is y
    with torch.no_grad():
        d_real = float(torch.nn.functional.softplus(-critic(real, y)).mean())
        d_fake = float(torch.nn.functional.softplus(critic(fake, y)).mean())
        w2 = float(critic.lin.weight.norm() ** 2)  # the class offset has no x-gradient
    assert parts["d_real"] == pytest.approx(d_real, rel=1e-5)
    assert parts["d_fake"] == pytest.approx(d_fake, rel=1e-5)
    assert parts["r1"] == pytest.approx(w2, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(d_real + d_fake + 0.25 * w2, rel=1e-5)
    loss.backward()
    assert fake.grad is None  # the critic step never trains the generator
    assert critic.lin.weight.grad is not None


def test_ns_r1_critic_loss_without_penalty() -> None:
    critic = _linear_critic((3, 2), 4.0)
    real, fake = torch.randn(5, 3, 2), torch.randn(5, 3, 2)
    loss, parts = nonsaturating_r1_critic_loss(critic, real, fake, r1_gamma=0.0)
    with torch.no_grad():
        plain = nonsaturating_critic_loss(critic(real).squeeze(1), critic(fake).squeeze(1))
    assert float(loss.detach()) == pytest.approx(float(plain), rel=1e-6)
    assert parts["r1"] == 0.0


def test_ns_r1_bad_input() -> None:
    critic = _linear_critic((4,), 1.0)
    real = torch.randn(3, 4)
    for gamma in (-1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(InputError, match="r1_gamma"):
            nonsaturating_r1_critic_loss(critic, real, real, r1_gamma=gamma)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="fake: expected the shape"):
        nonsaturating_r1_critic_loss(critic, real, torch.randn(2, 4), r1_gamma=1.0)
    with pytest.raises(InputError, match="real: expected"):
        r1_penalty(critic, torch.arange(12).reshape(3, 4))
    with pytest.raises(InputError, match="one score per example"):
        r1_penalty(lambda x: x.sum(), real)
