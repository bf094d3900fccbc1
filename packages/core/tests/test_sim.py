"""Score Implicit Matching: the gradient estimator against the exact divergence gradient on
Gaussians, its fixed point, the step and Trainer recipes, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import (
    SIMDistiller,
    sim_distillation_step,
    sim_gradient,
    sim_loss,
    sim_trainer_loss,
)
from polyfold.core.errors import InputError
from polyfold.core.paths import VPCosine
from polyfold.core.testing import GaussianMixture
from polyfold.core.train import Trainer

PATH = VPCosine()
MU_P, STD_P = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.7


def gauss_eps(mean: Tensor, std: Tensor | float):
    """Exact eps-prediction of N(mean, std^2 I) on PATH, differentiable in x, mean and std."""

    def model(x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1)
        a, s = PATH.alpha(tt), PATH.sigma(tt)
        return s * (x - a * mean) / (a * a * std**2 + s * s)

    return model


def divergence(d: str, y: Tensor, c: float) -> Tensor:
    sq = y.pow(2).sum(1)
    return sq if d == "l2" else torch.sqrt(sq + c * c) - c


@pytest.mark.parametrize("distance", ["l2", "pseudo_huber"])
def test_sim_gradient_matches_exact_divergence_gradient(distance: str) -> None:
    """Generator x = theta + e^rho z with its exact online score: the mean SIM gradient equals
    the gradient of D = E_{x_t ~ q_sg} d(eps_p - eps_q) through the generator's score."""
    n, t, c = 200_000, 0.4, 0.5
    theta = torch.tensor([0.2, 0.3], dtype=torch.float64, requires_grad=True)
    rho = torch.tensor(math.log(1.3), dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = (theta + rho.exp() * z).detach()
    prior = as_denoiser(gauss_eps(MU_P, STD_P), PATH, prediction="eps")
    online = as_denoiser(gauss_eps(theta.detach(), rho.exp().detach()), PATH, prediction="eps")
    grad = sim_gradient(x, prior, online, path=PATH, distance=distance, huber_c=c, t=t, noise=eps)
    sim_theta, sim_rho = grad.mean(0), (grad * (x - theta.detach())).sum(1).mean()
    # the exact gradient: samples fixed (stop-gradient distribution), the score moves
    tt = torch.full((n,), t, dtype=torch.float64)
    x_t = PATH.alpha(tt)[:, None] * x + PATH.sigma(tt)[:, None] * eps
    y = gauss_eps(MU_P, STD_P)(x_t, tt) - gauss_eps(theta, rho.exp())(x_t, tt)
    d_theta, d_rho = torch.autograd.grad(divergence(distance, y, c).mean(), (theta, rho))
    torch.testing.assert_close(sim_theta, d_theta, rtol=0.03, atol=3e-3)
    torch.testing.assert_close(sim_rho, d_rho, rtol=0.03, atol=3e-3)
    assert d_theta.norm() > 0.05  # the check is not vacuous


@pytest.mark.parametrize("distance", ["l2", "pseudo_huber"])
def test_sim_gradient_is_zero_at_the_teacher(distance: str) -> None:
    g = GaussianMixture([[1.0, -0.5], [-1.0, 0.5]], stds=0.4)
    prior = as_denoiser(g.model(PATH, "eps"), PATH, prediction="eps")
    x = g.sample(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grad = sim_gradient(x, prior, prior, path=PATH, distance=distance)
    assert grad.abs().max() == 0
    y = x.clone().requires_grad_(True)
    sim_loss(y, prior, prior, path=PATH).backward()
    assert y.grad is not None
    assert y.grad.abs().max() == 0


def test_sim_gradient_descends_towards_the_teacher() -> None:
    """A shifted generator's gradient points along the shift (descent moves it back)."""
    shift = torch.tensor([0.8, 0.0], dtype=torch.float64)
    prior = as_denoiser(gauss_eps(MU_P, STD_P), PATH, prediction="eps")
    online = as_denoiser(gauss_eps(MU_P + shift, STD_P), PATH, prediction="eps")
    x = MU_P + shift + STD_P * torch.randn(4096, 2, dtype=torch.float64)
    grad = sim_gradient(x, prior, online, path=PATH, generator=torch.Generator().manual_seed(2))
    assert float(grad.mean(0) @ shift) > 0


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor([-1.5, 1.5]))
        self.log_scale = nn.Parameter(torch.tensor(0.0))

    def forward(self, z: Tensor) -> Tensor:
        return self.shift + self.log_scale.exp() * z


class ScoreNet(nn.Module):
    """eps-model of a Gaussian N(m, s^2 I) with learnable m, s (exact family)."""

    def __init__(self, m: Tensor, s: float) -> None:
        super().__init__()
        self.m = nn.Parameter(m.clone())
        self.log_s = nn.Parameter(torch.tensor(math.log(s)))

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        return gauss_eps(self.m, self.log_s.exp())(x, t)


def _gap(gen: Affine) -> float:
    return float((gen.shift.detach() - MU_P.float()).norm())


def test_sim_step_moves_the_generator_to_the_teacher() -> None:
    torch.manual_seed(0)
    prior = as_denoiser(gauss_eps(MU_P.float(), STD_P), PATH, prediction="eps")
    gen = Affine()
    score = ScoreNet(gen.shift.detach(), 1.0)
    opt = torch.optim.Adam(gen.parameters(), lr=0.05)
    sopt = torch.optim.Adam(score.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(3)
    before = _gap(gen)
    for _ in range(60):
        out = sim_distillation_step(
            gen,
            prior,
            opt,
            score_model=score,
            score_opt=sopt,
            path=PATH,
            batch_size=256,
            noise_shape=(2,),
            score_steps=2,
            generator=g,
        )
    assert set(out) == {"score", "divergence", "student"}
    assert _gap(gen) < 0.3 * before


def test_sim_trainer_steps_reduce_the_divergence(tmp_path: Path) -> None:
    torch.manual_seed(0)
    prior = as_denoiser(gauss_eps(MU_P.float(), STD_P), PATH, prediction="eps")
    gen = Affine()
    model = SIMDistiller(gen, ScoreNet(gen.shift.detach(), 1.0))
    z = torch.utils.data.TensorDataset(torch.randn(2048, 2))
    before = _gap(gen)
    trainer = Trainer(
        model,
        sim_trainer_loss(prior, path=PATH),
        z,
        out_dir=tmp_path,
        max_steps=60,
        batch_size=256,
        lr=0.05,
        warmup_steps=0,
        quiet=True,
        device="cpu",
        checkpoint_every=1000,
    )
    trainer.fit()
    assert _gap(gen) < 0.3 * before


def test_sim_bad_input() -> None:
    prior = as_denoiser(gauss_eps(MU_P, STD_P), PATH, prediction="eps")
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(InputError, match="distance"):
        sim_gradient(x, prior, prior, path=PATH, distance="l1")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="huber_c"):
        sim_gradient(x, prior, prior, path=PATH, huber_c=-1.0)
    with pytest.raises(InputError, match="score_steps"):
        sim_distillation_step(
            Affine(),
            prior,
            torch.optim.SGD(Affine().parameters(), lr=0.1),
            score_model=ScoreNet(MU_P.float(), 1.0),
            score_opt=torch.optim.SGD(ScoreNet(MU_P.float(), 1.0).parameters(), lr=0.1),
            path=PATH,
            batch_size=4,
            noise_shape=(2,),
            score_steps=-1,
        )
    with pytest.raises(InputError, match="SIMDistiller"):
        sim_trainer_loss(prior, path=PATH)(Affine(), torch.zeros(4, 2), torch.Generator())
