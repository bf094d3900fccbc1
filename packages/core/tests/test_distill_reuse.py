"""Distillation steps with the samplers' arithmetic: DDIM step and Karras grid."""

from __future__ import annotations

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import karras_sigmas, progressive_distillation_target
from polyfold.core.dtypes import F64
from polyfold.core.paths import EDM, GaussianPath, LinearInterpolant, VPCosine
from polyfold.core.samplers import ddim, karras_grid
from polyfold.core.samplers.steps import ddim_step
from polyfold.core.testing import GaussianMixture

PATHS = [VPCosine(), EDM(sigma_max=20.0), LinearInterpolant()]
IDS = ["vpcos", "edm", "linear"]


def _teacher(path: GaussianPath):  # type: ignore[no-untyped-def]
    gmm = GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], stds=[0.3, 0.5])
    return as_denoiser(gmm.model(path, "eps"), path, prediction="eps")


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_ddim_step_is_the_samplers_deterministic_ddim(path: GaussianPath) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, generator=gen, dtype=F64)
    t = torch.tensor([0.9, 0.7, 0.5, 0.3], dtype=F64)
    s = torch.tensor([0.6, 0.2, 0.45, 0.05], dtype=F64)
    den = _teacher(path)
    out, _ = ddim_step(den, path, x, t, s)
    for b in range(4):
        ref = ddim(den, path, x[b : b + 1], torch.stack([t[b], s[b]])).x
        assert isinstance(ref, torch.Tensor)
        torch.testing.assert_close(out[b : b + 1], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_progressive_target_reproduces_two_sampler_ddim_steps(path: GaussianPath) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 2, generator=gen, dtype=F64)
    t, t_mid, s = 0.8, 0.55, 0.3
    den = _teacher(path)
    x0 = progressive_distillation_target(den, x, t, t_mid, s, path=path, target="x0")
    tt = torch.tensor([t, s], dtype=F64)
    (a_t, a_s), (s_t, s_s) = path.alpha(tt).tolist(), path.sigma(tt).tolist()
    one_step = a_s * x0 + s_s * (x - a_t * x0) / s_t
    two_steps = ddim(den, path, x, torch.tensor([t, t_mid, s], dtype=F64)).x
    assert isinstance(two_steps, torch.Tensor)
    torch.testing.assert_close(one_step, two_steps, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize(
    ("n", "lo", "hi", "rho"),
    [(2, 0.002, 80.0, 7.0), (18, 0.002, 80.0, 7.0), (1281, 0.002, 80.0, 7.0), (11, 0.01, 5.0, 3.0)],
)
def test_karras_sigmas_are_the_samplers_karras_grid(
    n: int, lo: float, hi: float, rho: float
) -> None:
    sig = karras_sigmas(n, lo, hi, rho)
    i = torch.arange(n, dtype=F64) / (n - 1)
    closed = (lo ** (1 / rho) + i * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho
    torch.testing.assert_close(sig, closed, rtol=1e-13, atol=0.0)
    assert sig[0].item() == closed[0].item()
    assert sig[-1].item() == closed[-1].item()
    path = EDM(lo, hi, rho)
    grid_sigmas = path.sigma(karras_grid(path, n - 1, rho=rho))
    assert torch.equal(sig, grid_sigmas.flip(0))
    assert bool((sig[1:] > sig[:-1]).all())
