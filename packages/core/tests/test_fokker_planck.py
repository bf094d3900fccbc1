"""The score Fokker-Planck residual: zero for exact mixture scores, not for perturbed ones; the
Hutchinson estimator is unbiased; the regulariser trains; the ODE-SDE gap; bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.losses import (
    empirical_w2,
    fokker_planck_loss,
    fokker_planck_residual,
    ode_sde_gap,
)
from polyfold.core.paths import VE, VPCosine, VPLinear
from polyfold.core.samplers import uniform_t_grid
from polyfold.core.testing import GaussianMixture

GMM = GaussianMixture([[1.0, -0.5], [-1.0, 0.7]], stds=[0.4, 0.6], weights=[0.3, 0.7])


def scaled(model, factor: float):
    return lambda x, t, cond=None: factor * model(x, t, cond)


@pytest.mark.parametrize("path", [VPCosine(), VPLinear(), VE(sigma_max=10.0)])
def test_exact_mixture_score_has_zero_residual(path) -> None:
    g = torch.Generator().manual_seed(0)
    t = 0.1 + 0.8 * torch.rand(64, generator=g, dtype=torch.float64)
    x0 = GMM.sample(64, generator=g, dtype=torch.float64)
    x = path.perturb(x0, t, torch.randn(64, 2, generator=g, dtype=torch.float64))
    exact = GMM.model(path, "eps")
    r = fokker_planck_residual(exact, x, t, path=path, dt=1e-4)
    wrong = fokker_planck_residual(scaled(exact, 1.1), x, t, path=path, dt=1e-4)
    s2 = path.sigma(t)[:, None] ** 2
    off = float((s2 * wrong).abs().mean())
    assert off > 1e-2
    assert float((s2 * r).abs().max()) < 1e-4 * off  # the central difference's error


def test_hutchinson_residual_is_unbiased() -> None:
    path = VPCosine()
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64).expand(4000, 2).contiguous()
    model = scaled(GMM.model(path, "eps"), 1.2)
    exact = fokker_planck_residual(model, x[:1], 0.5, path=path)
    g = torch.Generator().manual_seed(1)
    est = fokker_planck_residual(model, x, 0.5, path=path, divergence="hutchinson", generator=g)
    torch.testing.assert_close(est.mean(0, keepdim=True), exact, rtol=0.05, atol=0.02)
    assert float(est.std(0).max()) > 0  # really a random estimate


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 2)).double()

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype)], 1))


def test_fokker_planck_regulariser_trains() -> None:
    torch.manual_seed(0)
    path, net = VPCosine(), Net()
    x0 = GMM.sample(256, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def loss(seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return fokker_planck_loss(net, x0, path=path, generator=g)

    before = float(loss(3))
    for i in range(30):
        opt.zero_grad()
        loss(100 + i).backward()
        opt.step()
    assert float(loss(3)) < 0.5 * before


def test_ode_sde_gap_of_the_exact_model_is_small() -> None:
    path = VPCosine()
    den = as_denoiser(GMM.model(path, "eps"), path, prediction="eps")
    x = path.prior_sample((600, 2), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grid = uniform_t_grid(path, 60)
    gap = ode_sde_gap(den, path, x, grid, ode="ddim", generator=torch.Generator().manual_seed(5))
    ref = GMM.sample(600, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert gap.ode.shape == gap.sde.shape == (600, 2)
    # both sample the mixture: their distance is the two-sample noise level
    assert gap.w2 < 2 * empirical_w2(gap.sde, ref)
    assert math.isclose(empirical_w2(gap.ode, gap.ode), 0.0, abs_tol=1e-6)


def test_empirical_w2_of_a_shift() -> None:
    a = torch.randn(300, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert math.isclose(empirical_w2(a, a + torch.tensor([3.0, 4.0])), 5.0, rel_tol=1e-9)


def test_fokker_planck_bad_input() -> None:
    path = VPCosine()
    model = GMM.model(path, "eps")
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(InputError, match="divergence"):
        fokker_planck_residual(model, x, 0.5, path=path, divergence="trace")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="probes"):
        fokker_planck_residual(model, x, 0.5, path=path, probes=-1)
    with pytest.raises(InputError, match="t: expected"):
        fokker_planck_residual(model, x, 0.0, path=path)
    with pytest.raises(InputError, match="t_range"):
        fokker_planck_loss(model, x, path=path, t_range=(0.5, 0.2))
    with pytest.raises(InputError, match="weighting"):
        fokker_planck_loss(model, x, path=path, weighting="snr")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="same shape"):
        empirical_w2(x, x[:2])
