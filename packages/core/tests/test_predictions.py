"""Prediction conversions and EDM preconditioning."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.paths import EDM, VE, GaussianPath, LinearInterpolant, TrigInterpolant, VPLinear
from polyfold.core.predictions import PREDICTIONS, EDMPrecond, convert, to_x0_eps
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATHS = [VPLinear(), VE(), EDM(), LinearInterpolant(), TrigInterpolant()]


def _truth(path: GaussianPath, x0: Tensor, eps: Tensor, t: Tensor) -> dict[str, Tensor]:
    """Every prediction written out from its definition."""
    a, s = path.alpha(t)[:, None, None], path.sigma(t)[:, None, None]
    da, ds = path.d_alpha(t)[:, None, None], path.d_sigma(t)[:, None, None]
    return {
        "x_t": a * x0 + s * eps,
        "x0": x0,
        "eps": eps,
        "v": a * eps - s * x0,
        "velocity": da * x0 + ds * eps,
        "score": -eps / s,
    }


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_every_conversion_pair(path: GaussianPath) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 2, generator=g, dtype=F64)
    eps = torch.randn(5, 3, 2, generator=g, dtype=F64)
    t = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95], dtype=F64)
    truth = _truth(path, x0, eps, t)
    coefs = {
        "alpha": path.alpha(t),
        "sigma": path.sigma(t),
        "d_alpha": path.d_alpha(t),
        "d_sigma": path.d_sigma(t),
    }
    for source, target in itertools.product(PREDICTIONS, PREDICTIONS):
        out = convert(truth[source], source=source, target=target, x_t=truth["x_t"], **coefs)
        torch.testing.assert_close(out, truth[target], rtol=1e-9, atol=1e-9)
    x0_hat, eps_hat = to_x0_eps(truth["v"], source="v", x_t=truth["x_t"], **coefs)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)


def test_scalar_coefficients_and_vp_identity() -> None:
    path = TrigInterpolant()
    x0, eps = torch.randn(4, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    a, s = float(path.alpha(0.4)), float(path.sigma(0.4))
    x_t, v = a * x0 + s * eps, a * eps - s * x0
    # VP: x0 = alpha x_t - sigma v
    out = convert(v, source="v", target="x0", x_t=x_t, alpha=a, sigma=s)
    torch.testing.assert_close(out, a * x_t - s * v)


def test_conversion_errors() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(InputError, match="d_alpha"):
        convert(x, source="velocity", target="eps", x_t=x, alpha=1.0, sigma=0.5)
    with pytest.raises(InputError, match="d_alpha"):
        convert(x, source="eps", target="velocity", x_t=x, alpha=1.0, sigma=0.5)
    with pytest.raises(InputError, match="source"):
        convert(x, source="noise", target="eps", x_t=x, alpha=1.0, sigma=0.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="coefficient"):
        convert(x, source="eps", target="x0", x_t=x, alpha=torch.ones(3), sigma=0.5)


class _Recorder(nn.Module):
    """A raw network returning a fixed function of its inputs, recording what it got."""

    def forward(self, x: Tensor, c_noise: Tensor, cond: object) -> Tensor:
        self.seen = (x, c_noise, cond)
        return torch.tanh(x) + c_noise[:, None]


def test_edm_precond_formulas() -> None:
    net = _Recorder()
    pre = EDMPrecond(net, path=EDM(), sigma_data=0.5)
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=F64)
    x = torch.randn(4, 6, dtype=F64)
    out = pre.denoise(x, sigma, cond="label")
    sd = 0.5
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
    c_in = 1 / (sigma**2 + sd**2).sqrt()
    c_noise = sigma.log() / 4
    torch.testing.assert_close(net.seen[0], c_in[:, None] * x)
    torch.testing.assert_close(net.seen[1], c_noise)
    assert net.seen[2] == "label"
    expected = c_skip[:, None] * x + c_out[:, None] * (
        torch.tanh(c_in[:, None] * x) + c_noise[:, None]
    )
    torch.testing.assert_close(out, expected)


def test_edm_precond_unit_variance_training_target() -> None:
    # EDM's design: for data of std sigma_data, the network's input c_in (y + n) and its
    # effective target (y - c_skip (y + n)) / c_out both have unit variance.
    g = torch.Generator().manual_seed(0)
    pre = EDMPrecond(_Recorder(), path=EDM(), sigma_data=0.5)
    for s in (0.05, 1.0, 20.0):
        y = 0.5 * torch.randn(20000, generator=g, dtype=F64)
        n = s * torch.randn(20000, generator=g, dtype=F64)
        c_skip, c_out, c_in, _ = pre.coefficients(torch.tensor(s, dtype=F64))
        assert (c_in * (y + n)).var().item() == pytest.approx(1.0, rel=0.05)
        assert ((y - c_skip * (y + n)) / c_out).var().item() == pytest.approx(1.0, rel=0.05)


class _Zero(nn.Module):
    def forward(self, x: Tensor, c_noise: Tensor, cond: object) -> Tensor:
        return torch.zeros_like(x)


@pytest.mark.parametrize("path", [EDM(), VPLinear(), LinearInterpolant()], ids=repr)
def test_edm_precond_on_any_path_is_the_exact_gaussian_denoiser_at_f_zero(
    path: GaussianPath,
) -> None:
    # For x0 ~ N(0, sd^2 I) the posterior mean is c_skip applied in EDM space: F = 0 is optimal.
    sd = 0.7
    pre = EDMPrecond(_Zero(), path=path, sigma_data=sd)
    gmm = GaussianMixture(torch.zeros(1, 3), stds=sd)
    x_t = torch.randn(6, 3, dtype=F64)
    t = torch.linspace(0.1, 0.9, 6, dtype=F64)
    torch.testing.assert_close(pre(x_t, t), gmm.x0_mean(x_t, t, path))
    assert pre.prediction == "x0"
