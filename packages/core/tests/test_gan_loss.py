"""WGAN-GP losses: closed forms of the penalty, signs, shapes and conditional critics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.core.losses import (
    gradient_penalty,
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
