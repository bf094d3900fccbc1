"""Denoising Langevin Gibbs: the integrator alone when switched off, the chain keeps p_t."""

from __future__ import annotations

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.paths import VPLinear
from polyfold.core.samplers.dmcmc import denoising_langevin_gibbs, estimate_time
from polyfold.core.samplers.teleport import GaussianScore, handover_grid
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()
MIX = GaussianMixture([[-2.0, 0.0], [2.0, 0.5]], stds=[0.4, 0.5], weights=[0.3, 0.7])
DEN = as_denoiser(MIX.model(PATH, "eps"), PATH, prediction="eps")
APPROX = GaussianScore.fit(MIX.sample(4000, generator=torch.Generator().manual_seed(9), dtype=F64))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_handover_grid_keeps_the_end_and_the_spacing() -> None:
    grid = S.uniform_t_grid(PATH, 4, t_start=0.9, t_end=0.1)
    out = handover_grid(grid, 0.5)
    torch.testing.assert_close(out, torch.linspace(0.5, 0.1, 5, dtype=F64))
    assert torch.equal(handover_grid(grid, 0.9), grid)
    with pytest.raises(InputError, match="t_first"):
        handover_grid(grid, 0.95)


def test_zero_steps_is_the_plain_integrator() -> None:
    x = torch.randn(64, 2, generator=_gen(0), dtype=F64)
    grid = S.log_snr_grid(PATH, 8, t_start=1.0, t_end=1e-3)
    plain = S.unipc(DEN, PATH, x, grid, order=3)
    dlg = denoising_langevin_gibbs(DEN, PATH, x, grid, steps=0, sampler="unipc", order=3)
    assert torch.equal(plain.x, dlg.x)
    assert dlg.nfe == plain.nfe
    assert dlg.chain_times == (1.0,)


def test_time_estimate_recovers_the_noise_level() -> None:
    x0 = MIX.sample(4000, generator=_gen(1), dtype=F64)
    for t in (0.2, 0.5):
        xt = PATH.perturb(x0, t, torch.randn(x0.shape, generator=_gen(2), dtype=F64))
        assert estimate_time(PATH, xt, APPROX, 0.05, 0.95) == pytest.approx(t, abs=0.03)


def test_chain_keeps_the_marginal_and_counts_calls() -> None:
    """Started on p_t, Langevin-Gibbs stays on p_t (mean and variance) and lowers no quality."""
    t = 0.4
    x0 = MIX.sample(4000, generator=_gen(3), dtype=F64)
    xt = PATH.perturb(x0, t, torch.randn(x0.shape, generator=_gen(4), dtype=F64))
    grid = S.log_snr_grid(PATH, 6, t_start=t, t_end=1e-3)
    out = denoising_langevin_gibbs(
        DEN, PATH, xt, grid, approx=APPROX, steps=3, delta=0.05, t_low=0.35, generator=_gen(5)
    )
    assert out.nfe == 3 + 6
    assert len(out.chain_times) == 4
    assert all(0.35 <= s <= t for s in out.chain_times)
    assert out.chain_x is not None
    torch.testing.assert_close(out.chain_x.mean(0), xt.mean(0), atol=0.06, rtol=0.0)
    torch.testing.assert_close(out.chain_x.var(0), xt.var(0), atol=0.0, rtol=0.06)
    truth = MIX.sample(4000, generator=_gen(6), dtype=F64)
    plain = S.unipc(DEN, PATH, xt, grid)
    assert sliced_wasserstein(out.x, truth) < 1.5 * sliced_wasserstein(plain.x, truth) + 0.02


def test_bad_input() -> None:
    x = torch.randn(4, 2, generator=_gen(0), dtype=F64)
    grid = S.log_snr_grid(PATH, 4, t_start=0.5, t_end=1e-3)
    with pytest.raises(InputError, match="steps"):
        denoising_langevin_gibbs(DEN, PATH, x, grid, steps=-1)
    with pytest.raises(InputError, match="approx"):
        denoising_langevin_gibbs(DEN, PATH, x, grid, steps=1)
    with pytest.raises(InputError, match="delta"):
        denoising_langevin_gibbs(DEN, PATH, x, grid, approx=APPROX, delta=2.0)
    with pytest.raises(InputError, match="t_low, t_high"):
        denoising_langevin_gibbs(DEN, PATH, x, grid, approx=APPROX, t_low=0.6, t_high=0.55)
    with pytest.raises(InputError, match="sampler"):
        denoising_langevin_gibbs(DEN, PATH, x, grid, approx=APPROX, sampler="nope")
    with pytest.raises(InputError, match="unknown option"):
        denoising_langevin_gibbs(DEN, PATH, x, grid, approx=APPROX, sampler="ddim", order=3)
