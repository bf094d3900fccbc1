"""Analytical teleportation: exact on Gaussian targets, the plain sampler when switched off."""

from __future__ import annotations

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers.teleport import GaussianScore, MixtureScore, choose_skip, teleport
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()
COV = torch.tensor([[1.0, 0.6, 0.0], [0.6, 0.8, -0.2], [0.0, -0.2, 0.3]], dtype=F64)
MEAN = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
GAUSS = GaussianMixture(MEAN[None], COV[None])
MIX = GaussianMixture([[-2.0, 0.0], [2.0, 0.5]], stds=[0.4, 0.5], weights=[0.3, 0.7])


def _noise(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_gaussian_denoiser_is_the_exact_posterior_mean() -> None:
    g = GaussianScore.from_moments(MEAN, COV)
    x = _noise(16, 3)
    for t in (0.1, 0.5, 0.9):
        a, s = float(PATH.alpha(t)), float(PATH.sigma(t))
        torch.testing.assert_close(g.x0(x, a, s), GAUSS.x0_mean(x, t, PATH))


def test_gaussian_flow_matches_a_fine_ode_solve() -> None:
    g = GaussianScore.from_moments(MEAN, COV)
    x = _noise(32, 3)
    den = as_denoiser(GAUSS.model(PATH, "eps"), PATH, prediction="eps")
    grid = S.log_snr_grid(PATH, 400, t_start=1.0, t_end=0.2)
    fine = S.dpm_solver_pp(den, PATH, x, grid, order=3).x
    torch.testing.assert_close(g.flow(x, PATH, 1.0, 0.2), fine, rtol=0, atol=2e-5)


def test_teleport_is_exact_on_a_gaussian_target() -> None:
    """Teleporting to t = 0.4 and a fine solve from there lands on the exact flow's endpoint."""
    g = GaussianScore.from_moments(MEAN, COV)
    x = _noise(32, 3)
    den = as_denoiser(GAUSS.model(PATH, "x0"), PATH, prediction="x0")
    grid = S.log_snr_grid(PATH, 400, t_start=0.4, t_end=1e-3)
    out = teleport(den, PATH, x, grid, approx=g, sampler="dpm_solver_pp", order=3)
    torch.testing.assert_close(out.x, g.flow(x, PATH, 1.0, 1e-3), rtol=0.0, atol=1e-4)
    assert out.nfe == 400


def test_switched_off_is_the_plain_sampler() -> None:
    g = GaussianScore.fit(MIX.sample(500, generator=torch.Generator().manual_seed(1), dtype=F64))
    x = _noise(64, 2)
    den = as_denoiser(MIX.model(PATH, "eps"), PATH, prediction="eps")
    grid = S.log_snr_grid(PATH, 8, t_start=1.0, t_end=1e-3)
    plain = S.unipc(den, PATH, x, grid, order=3)
    tele = teleport(den, PATH, x, grid, approx=g, sampler="unipc", order=3)
    assert torch.equal(plain.x, tele.x)
    assert plain.nfe == tele.nfe


def test_choose_skip_skips_everything_on_a_gaussian_and_less_on_a_mixture() -> None:
    x = _noise(256, 3)
    exact = GaussianScore.from_moments(MEAN, COV)
    den = as_denoiser(GAUSS.model(PATH, "eps"), PATH, prediction="eps")
    full = choose_skip(den, PATH, exact, x, tol=1e-6, t_end=0.05)
    assert full.t_skip == pytest.approx(0.05)
    assert max(full.errors) < 1e-8
    assert full.nfe == len(full.times) == 32

    data = MIX.sample(4000, generator=torch.Generator().manual_seed(2), dtype=F64)
    g = GaussianScore.fit(data)
    den = as_denoiser(MIX.model(PATH, "eps"), PATH, prediction="eps")
    x2 = _noise(256, 2)
    loose = choose_skip(den, PATH, g, x2, tol=0.05, t_end=0.05, points=40)
    tight = choose_skip(den, PATH, g, x2, tol=0.005, t_end=0.05, points=40)
    assert 0.05 < loose.t_skip < tight.t_skip < 1.0
    assert 0.0 < loose.fraction < 0.95
    assert tight.at(0.05) == loose.t_skip  # another tolerance from the same calibration
    assert tight.at(0.005) == tight.t_skip
    # the chosen hand-over keeps the endpoint close to the plain solve
    grid_full = S.log_snr_grid(PATH, 200, t_start=1.0, t_end=1e-3)
    ref = S.dpm_solver_pp(den, PATH, x2, grid_full, order=3).x
    grid = S.log_snr_grid(PATH, 200, t_start=tight.t_skip, t_end=1e-3)
    out = teleport(den, PATH, x2, grid, approx=g, sampler="dpm_solver_pp", order=3).x
    scale = float(ref.pow(2).mean().sqrt())
    assert float((out - ref).pow(2).mean().sqrt()) < 0.05 * scale


def test_mixture_with_one_cluster_flows_like_the_gaussian() -> None:
    data = GAUSS.sample(3000, generator=torch.Generator().manual_seed(3), dtype=F64)
    mix = MixtureScore.fit(data, 1, shrinkage=0.0, steps=64)
    g = GaussianScore.fit(data)
    x = _noise(32, 3)
    flows = mix.flow(x, PATH, 1.0, 0.3), g.flow(x, PATH, 1.0, 0.3)
    torch.testing.assert_close(*flows, atol=2e-3, rtol=0.0)


def test_mixture_recovers_separated_clusters() -> None:
    data = MIX.sample(4000, generator=torch.Generator().manual_seed(4), dtype=F64)
    mix = MixtureScore.fit(data, 2, shrinkage=0.0, generator=torch.Generator().manual_seed(0))
    x = _noise(64, 2)
    for t in (0.3, 0.6):
        a, s = float(PATH.alpha(t)), float(PATH.sigma(t))
        torch.testing.assert_close(mix.x0(x, a, s), MIX.x0_mean(x, t, PATH), atol=0.08, rtol=0.0)


def test_bad_input() -> None:
    g = GaussianScore.from_moments(MEAN, COV)
    den = as_denoiser(GAUSS.model(PATH, "eps"), PATH, prediction="eps")
    grid = S.log_snr_grid(PATH, 4, t_start=0.5, t_end=1e-3)
    with pytest.raises(InputError, match="x: expected shape"):
        teleport(den, PATH, _noise(4, 2), grid, approx=g)
    with pytest.raises(InputError, match="at or below t_start"):
        teleport(den, PATH, _noise(4, 3), grid, approx=g, t_start=0.4)
    with pytest.raises(InputError, match="sampler"):
        teleport(den, PATH, _noise(4, 3), grid, approx=g, sampler="nope")
    with pytest.raises(InputError, match="one GaussianPath"):
        teleport(den, {"x": PATH}, _noise(4, 3), grid, approx=g)
    with pytest.raises(InputError, match="k: expected"):
        MixtureScore.fit(_noise(10, 2), 6)
    with pytest.raises(InputError, match="cov: expected"):
        GaussianScore.from_moments(MEAN, COV[:2])
