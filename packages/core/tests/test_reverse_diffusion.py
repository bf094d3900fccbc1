"""score_sde's reverse diffusion, the Langevin corrector and GDSS's S4 on analytic targets."""

from __future__ import annotations

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VE, VPLinear
from polyfold.core.samplers import get_sampler
from polyfold.core.testing import GaussianMixture

GMM = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]], stds=[0.6, 0.8], weights=[0.4, 0.6])
VP = VPLinear()
VEP = VE(sigma_min=0.01, sigma_max=5.0)


def _den(path):
    return as_denoiser(GMM.model(path, "eps"), path, prediction="eps")


def _prior(path, n=3000, seed=0):
    return path.prior_sample((n, 2), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("path", [VP, VEP], ids=["vp", "ve"])
@pytest.mark.parametrize("name", ["reverse_diffusion", "reverse_diffusion_pc", "s4"])
def test_samples_have_the_mixtures_moments(path, name):
    grid = S.uniform_t_grid(path, 150, append_zero=name != "s4")
    gen = torch.Generator().manual_seed(1)
    res = get_sampler(name)(_den(path), path, _prior(path), grid, generator=gen)
    mean, cov = GMM.moments()
    torch.testing.assert_close(res.x.mean(0), mean.float(), atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(res.x.T), cov.float(), atol=0.15, rtol=0)


@pytest.mark.parametrize(
    ("name", "options", "per_step", "draws"),
    [
        ("reverse_diffusion", {}, 1, 1),
        ("reverse_diffusion_pc", {"n_corrector": 2}, 3, 3),
        ("s4", {}, 1, 3),
    ],
)
def test_model_calls_and_noise_draws_per_step(name, options, per_step, draws):
    calls = []

    def noise(x, generator):
        calls.append(x.shape)
        return torch.randn(x.shape, generator=generator)

    grid = S.uniform_t_grid(VP, 7)
    res = get_sampler(name)(_den(VP), VP, _prior(VP, 8), grid, noise=noise, **options)
    assert res.nfe == 7 * per_step
    assert len(calls) == 7 * draws


def test_one_step_to_the_data_is_the_score_step_without_noise():
    """From ``s`` to the data point on VE: ``x + sigma_s^2 score = x - sigma_s eps``."""
    x = _prior(VEP, 16)
    grid = torch.tensor([0.7, float(S.zero_time(VEP))], dtype=torch.float64)
    res = S.reverse_diffusion(_den(VEP), VEP, x, grid, generator=torch.Generator())
    sig = float(VEP.sigma(torch.tensor(0.7, dtype=torch.float64)))
    want = x - sig * GMM.eps(x, torch.full((16,), 0.7), VEP)
    torch.testing.assert_close(res.x, want, atol=1e-5, rtol=1e-5)


def test_vp_step_matches_ddpm_chain():
    """On VP the predictor is ``(2 - sqrt(1 - beta)) x + beta score + sqrt(beta) z``."""
    x = _prior(VP, 16)
    grid = torch.tensor([0.6, 0.5, 0.4], dtype=torch.float64)
    zs = []

    def noise(v, generator):
        zs.append(torch.randn(v.shape, generator=generator))
        return zs[-1]

    res = S.reverse_diffusion(_den(VP), VP, x, grid, noise=noise, generator=torch.Generator())
    t = torch.tensor([0.6, 0.5], dtype=torch.float64)
    abar = VP.alpha(t) ** 2
    beta = (1 - abar[0] / abar[1]).item()
    sig = VP.sigma(t[0]).item()
    x1 = (2 - (1 - beta) ** 0.5) * x - beta / sig * GMM.eps(x, torch.full((16,), 0.6), VP)
    x1 = x1 + beta**0.5 * zs[0]
    assert not torch.equal(res.x, x1)  # a second (noise-free) step follows
    one = S.reverse_diffusion(
        _den(VP), VP, x, grid[:2], noise=lambda v, g: zs[0], generator=torch.Generator()
    )
    x1_mean = x1 - beta**0.5 * zs[0]
    torch.testing.assert_close(one.x, x1_mean, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["reverse_diffusion_pc", "s4"])
def test_dict_state_per_key_paths_mask_and_seed(name):
    paths = {"a": VP, "b": VEP}
    g0 = torch.Generator().manual_seed(3)
    x = {"a": VP.prior_sample((6, 4, 2), generator=g0), "b": VEP.prior_sample((6, 3), generator=g0)}
    mask = {"a": torch.rand(6, 4, generator=g0) > 0.3, "b": None}

    def den(s, t):
        e = {"a": 0.1 * s["a"], "b": 0.05 * s["b"]}
        return as_denoiser(lambda v, tt, c=None: e, paths, prediction="eps")(s, t)

    grid = S.uniform_t_grid(VP, 5)
    run = get_sampler(name)
    a = run(den, paths, x, grid, mask=mask, generator=torch.Generator().manual_seed(9))
    b = run(den, paths, x, grid, mask=mask, generator=torch.Generator().manual_seed(9))
    c = run(den, paths, x, grid, mask=mask, generator=torch.Generator().manual_seed(10))
    assert set(a.x) == {"a", "b"}
    for k in x:
        assert torch.equal(a.x[k], b.x[k])
        assert not torch.equal(a.x[k], c.x[k])
    pad = ~mask["a"]
    assert torch.equal(a.x["a"][pad], x["a"][pad])
    assert not torch.equal(a.x["a"][~pad], x["a"][~pad])


def test_bad_options_and_s4_grid_to_the_data_are_refused():
    x, grid = _prior(VP, 4), S.uniform_t_grid(VP, 3)
    with pytest.raises(InputError, match="snr"):
        S.reverse_diffusion_pc(_den(VP), VP, x, grid, snr=0.0)
    with pytest.raises(InputError, match="n_corrector"):
        S.reverse_diffusion(_den(VP), VP, x, grid, n_corrector=-1)
    with pytest.raises(InputError, match="scale_eps"):
        S.s4(_den(VP), VP, x, grid, scale_eps=-1.0)
    with pytest.raises(InputError, match="s4: the grid must end before the data point"):
        S.s4(_den(VP), VP, x, S.uniform_t_grid(VP, 3, append_zero=True))
