"""Feynman-Kac correctors on exact Gaussian denoisers: uniform weights when the target is the
model, closed-form annealed / product / tilted targets, dict states, errors."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers.grids import uniform_t_grid
from polyfold.core.samplers.stochastic import euler_maruyama
from polyfold.core.steering import anneal, cfg_product, fkc, product, reward_tilt
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()


def gauss(mean: float, std: float):
    return as_denoiser(GaussianMixture([[mean]], stds=std).model(PATH), PATH, prediction="eps")


def prior(n: int, seed: int = 0, dim: int = 1) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def moments(x: torch.Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.var())


def test_target_equal_to_the_model_keeps_uniform_weights_and_is_euler_maruyama() -> None:
    d = gauss(1.0, 0.5)
    grid = uniform_t_grid(PATH, 20)
    x = prior(256)
    base = euler_maruyama(d, PATH, x, grid, generator=torch.Generator().manual_seed(3))
    for target in (anneal(d, 1.0), product(d, d, (0.5, 0.5)), cfg_product(d, d, 3.0)):
        gen = torch.Generator().manual_seed(3)
        res = fkc(target, PATH, x, grid, generator=gen, final_resample=False)
        assert res.resampled == []
        assert min(res.ess) == pytest.approx(256, rel=1e-9)
        assert torch.allclose(res.log_weights, torch.full((256,), -math.log(256), dtype=F64))
        if len(target.experts) == 1:
            assert torch.equal(res.x, base.x)  # the base sampler, bit for bit
        else:
            assert torch.allclose(res.x, base.x, atol=1e-12)


@pytest.mark.parametrize("beta", [2.0, 0.5])
def test_annealing_matches_the_tempered_gaussian(beta: float) -> None:
    d = gauss(1.0, 0.5)  # q^beta = N(1, 0.25 / beta)
    res = fkc(
        anneal(d, beta),
        PATH,
        prior(3000),
        uniform_t_grid(PATH, 100),
        generator=torch.Generator().manual_seed(1),
    )
    mean, var = moments(res.x)
    assert mean == pytest.approx(1.0, abs=0.05)
    assert var == pytest.approx(0.25 / beta, rel=0.12)
    assert res.resampled  # the weights did matter
    assert len(res.ess) == 101


def test_product_of_experts_matches_the_gaussian_product() -> None:
    p1, p2 = 1 / 0.25, 1 / 0.64
    res = fkc(
        product(gauss(1.0, 0.5), gauss(-0.5, 0.8)),
        PATH,
        prior(3000),
        uniform_t_grid(PATH, 100),
        generator=torch.Generator().manual_seed(2),
    )
    mean, var = moments(res.x)
    assert mean == pytest.approx((p1 * 1.0 - p2 * 0.5) / (p1 + p2), abs=0.05)
    assert var == pytest.approx(1 / (p1 + p2), rel=0.12)
    assert res.calls == 2 * 3000 * 100
    assert res.nfe == 200


def test_reward_tilt_matches_the_tilted_gaussian_and_beats_no_weights() -> None:
    d = gauss(0.0, 1.0)  # N(0, 1) exp(1.5 x) = N(1.5, 1)
    res = fkc(
        reward_tilt(d, lambda x: 1.5 * x[:, 0], lam=1.0),
        PATH,
        prior(3000),
        uniform_t_grid(PATH, 50),
        generator=torch.Generator().manual_seed(4),
    )
    mean, var = moments(res.x)
    assert mean == pytest.approx(1.5, abs=0.08)
    assert var == pytest.approx(1.0, rel=0.15)


def test_dict_states_with_masks_keep_padding_and_count_only_valid_entries() -> None:
    def eps(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # every entry ~ N(1, 0.25)
        a = PATH.alpha(t.to(F64)).reshape(-1, *[1] * (v.ndim - 1))
        s = PATH.sigma(t.to(F64)).reshape(a.shape)
        x0 = 1.0 + a * 0.25 / (a * a * 0.25 + s * s) * (v - a)
        return (v - a * x0) / s

    two = as_denoiser(lambda x, t, c: {k: eps(v, t) for k, v in x.items()}, PATH, prediction="eps")
    x = {"a": prior(400, 1, 1), "b": prior(400, 2, 2)}
    mask = {"a": None, "b": torch.tensor([True, False]).expand(400, 2)}
    seen = []
    res = fkc(
        anneal(two, 2.0),
        PATH,
        x,
        uniform_t_grid(PATH, 60),
        mask=mask,
        generator=torch.Generator().manual_seed(0),
        callback=lambda i, t, xi, x0: seen.append(i),
    )
    assert seen == list(range(60))
    assert bool(torch.isin(res.x["b"][:, 1], x["b"][:, 1] * 2**-0.5).all())  # padding kept
    for v in (res.x["a"][:, 0], res.x["b"][:, 0]):
        assert float(v.var()) == pytest.approx(0.125, rel=0.25)


def test_bad_input_names_the_argument() -> None:
    d = gauss(0.0, 1.0)
    grid = uniform_t_grid(PATH, 5)
    with pytest.raises(InputError, match="resampling: expected one of"):
        fkc(anneal(d, 2.0), PATH, prior(8), grid, resampling="bogus")
    with pytest.raises(InputError, match=r"reward: returned nan at step 0"):
        fkc(reward_tilt(d, lambda x: torch.full((x.shape[0],), math.nan)), PATH, prior(8), grid)
    with pytest.raises(InputError, match="beta"):
        anneal(d, -1.0)
    with pytest.raises(InputError, match="ess_threshold"):
        fkc(anneal(d, 2.0), PATH, prior(8), grid, ess_threshold=2.0)
