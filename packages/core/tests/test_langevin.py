"""Langevin samplers on a 2-D correlated Gaussian, where the exact answer is known.

Target N(MU, SIGMA) with correlation 0.8: the precision has eigenvalues 1/1.8 (along (1, 1)) and
5 (along (1, -1), the "stiff" direction, variance 0.2). For ULA with step h the stationary variance
along an eigenvector of precision λ is 1 / (λ (1 - h λ / 2)): at h = 0.01 the bias is 2.5% of the
stiff variance (0.205, below sampling error), at h = 0.2 it doubles it (0.4), while MALA at
h = 0.2 stays exact. 4000 chains give standard errors of about 0.02 on variances and means;
tolerances are about 4 standard errors.
"""

import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.langevin import (
    annealed_langevin,
    langevin,
    mala,
)

MU = torch.tensor([1.0, -1.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
PRECISION = torch.linalg.inv(SIGMA)
CHAINS = 4000


def energy(x: torch.Tensor) -> torch.Tensor:
    d = x - MU
    return 0.5 * ((d @ PRECISION) * d).sum(1)


def score(x: torch.Tensor) -> torch.Tensor:
    return -(x - MU) @ PRECISION


def noisy_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Score of N(MU, SIGMA + sigma^2 I): the data distribution perturbed at level sigma."""
    cov = SIGMA + sigma[0] ** 2 * torch.eye(2, dtype=x.dtype)
    return -(x - MU) @ torch.linalg.inv(cov)


def noisy_energy(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    cov = SIGMA + sigma[0] ** 2 * torch.eye(2, dtype=x.dtype)
    d = x - MU
    return 0.5 * ((d @ torch.linalg.inv(cov)) * d).sum(1)


def stiff_variance(x: torch.Tensor) -> float:
    return ((x[:, 0] - x[:, 1]) / math.sqrt(2)).var().item()


def assert_gaussian(x: torch.Tensor, cov: torch.Tensor = SIGMA, tol: float = 0.08) -> None:
    torch.testing.assert_close(x.mean(0), MU, rtol=0, atol=tol)
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0, atol=tol)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def start(seed: int = 1) -> torch.Tensor:
    return torch.zeros(CHAINS, 2, dtype=torch.float64) + 0.1 * torch.randn(
        CHAINS, 2, generator=gen(seed), dtype=torch.float64
    )


def test_ula_with_small_steps_reaches_mean_and_covariance():
    # 800 steps of 0.01: over four relaxation times of the slow direction (1 / (h * 0.56)).
    out = langevin(start(), energy=energy, generator=gen(), steps=800, step_size=0.01)
    assert out.n_evals == 800
    assert out.acceptance is None
    assert_gaussian(out.samples)
    assert abs(stiff_variance(out.samples) - 0.2) < 0.03


def test_score_and_energy_give_the_same_chain():
    a = langevin(start(), energy=energy, generator=gen(5), steps=20, step_size=0.05)
    b = langevin(start(), score=score, generator=gen(5), steps=20, step_size=0.05)
    torch.testing.assert_close(a.samples, b.samples)


def test_mala_is_unbiased_where_ula_is_not():
    ula = langevin(start(), energy=energy, generator=gen(), steps=300, step_size=0.2)
    out = mala(start(), energy=energy, generator=gen(), steps=300, step_size=0.2)
    assert stiff_variance(ula.samples) > 0.33  # theory: 0.4, twice the target
    assert abs(stiff_variance(out.samples) - 0.2) < 0.03
    assert_gaussian(out.samples)
    assert out.acceptance is not None
    assert out.acceptance.shape == (CHAINS,)
    assert out.n_evals == 301


def test_mala_acceptance_falls_as_the_step_grows():
    rates = [
        mala(start(), energy=energy, generator=gen(), steps=40, step_size=h).acceptance_rate
        for h in (1e-4, 0.05, 1.0)
    ]
    assert rates[0] > 0.99
    assert rates[0] > rates[1] > rates[2]
    assert rates[2] < 0.2


def test_annealed_langevin_reaches_the_data_distribution():
    # NCSN schedule: 8 geometric levels 3 -> 0.1, alpha_i = eps * sigma_i^2 / sigma_L^2.
    sigmas = torch.logspace(math.log10(3.0), -1.0, 8)
    x0 = 3.0 * torch.randn(CHAINS, 2, generator=gen(9), dtype=torch.float64)  # the wide prior
    out = annealed_langevin(
        x0, sigmas=sigmas, score=noisy_score, generator=gen(), steps_per_level=200, eps=0.01
    )
    assert out.n_evals == 1600
    # The last level samples N(MU, SIGMA + 0.1^2 I) up to a 1% ULA bias.
    assert_gaussian(out.samples, SIGMA + 0.01 * torch.eye(2, dtype=torch.float64))


def test_annealed_energy_matches_score_and_denoises():
    kwargs = {"sigmas": [1.0, 0.5, 0.25], "steps_per_level": 5, "eps": 0.02}
    a = annealed_langevin(start(), score=noisy_score, generator=gen(3), **kwargs)
    b = annealed_langevin(start(), energy=noisy_energy, generator=gen(3), **kwargs)
    torch.testing.assert_close(a.samples, b.samples)
    c = annealed_langevin(
        start(), score=noisy_score, generator=gen(3), final_denoise=True, **kwargs
    )
    sigma = torch.full((CHAINS,), 0.25, dtype=torch.float64)
    torch.testing.assert_close(c.samples, a.samples + 0.25**2 * noisy_score(a.samples, sigma))


def test_clamping_keeps_samples_in_the_box():
    box = (-0.5, 0.75)
    for out in (
        langevin(start(), energy=energy, generator=gen(), steps=50, step_size=0.1, clamp=box),
        annealed_langevin(
            start(), sigmas=[1.0, 0.3], score=noisy_score, generator=gen(), steps_per_level=20,
            eps=0.05, clamp=box,
        ),
    ):  # fmt: skip
        assert out.samples.min() >= box[0]
        assert out.samples.max() <= box[1]
        assert (out.samples == box[1]).any()  # the target's mass outside the box is cut


def test_same_seed_same_samples_and_x0_untouched():
    x0 = start()
    before = x0.clone()
    for run in (
        lambda g: langevin(x0, energy=energy, generator=g, steps=5, step_size=0.1),
        lambda g: mala(x0, energy=energy, generator=g, steps=5, step_size=0.1),
        lambda g: annealed_langevin(
            x0, sigmas=[1.0, 0.5], score=noisy_score, generator=g, steps_per_level=3, eps=0.1
        ),
    ):
        assert torch.equal(run(gen(11)).samples, run(gen(11)).samples)
        assert not torch.equal(run(gen(11)).samples, run(gen(12)).samples)
    assert torch.equal(x0, before)


BASE = {"energy": energy, "steps": 1, "step_size": 0.1}
ANNEALED = {"sigmas": [1.0], "score": noisy_score, "steps_per_level": 1, "eps": 0.1}


@pytest.mark.parametrize(
    ("sampler", "kwargs", "match"),
    [
        (langevin, {**BASE, "energy": None}, "exactly one"),
        (langevin, {**BASE, "score": score}, "exactly one"),
        (langevin, {**BASE, "step_size": 0.0}, "step_size must be"),
        (langevin, {**BASE, "steps": -1}, "steps must be"),
        (langevin, {**BASE, "generator": None}, "generator must be"),
        (langevin, {**BASE, "x0": torch.zeros(0, 2)}, "x0 must hold"),
        (langevin, {**BASE, "x0": torch.zeros(3, dtype=torch.int64)}, "x0 must be"),
        (langevin, {**BASE, "noise_scale": -1.0}, "noise_scale must be"),
        (langevin, {**BASE, "clamp": (1.0, 0.0)}, "clamp must be"),
        (langevin, {**BASE, "energy": lambda x: x}, r"energy\(x\) must return a \(4000,\)"),
        (langevin, {**BASE, "energy": lambda x: x.sum(1).detach()}, "differentiable"),
        (langevin, {**BASE, "energy": None, "score": lambda x: x[:, 0]}, r"score\(x\) must"),
        (mala, {**BASE, "step_size": -1.0}, "step_size must be"),
        (mala, {**BASE, "steps": 0}, "steps must be"),
        (annealed_langevin, {**ANNEALED, "sigmas": [0.5, 1.0]}, "non-increasing"),
        (annealed_langevin, {**ANNEALED, "sigmas": []}, "sigmas must be"),
        (annealed_langevin, {**ANNEALED, "sigmas": [1.0, -1.0]}, "sigmas must be"),
        (annealed_langevin, {**ANNEALED, "steps_per_level": 0}, "steps_per_level must be"),
        (annealed_langevin, {**ANNEALED, "eps": 0.0}, "eps must be"),
    ],
)
def test_bad_arguments_raise_input_error(sampler, kwargs, match):
    kwargs = {"x0": start(), "generator": gen(), **kwargs}
    with pytest.raises(InputError, match=match):
        sampler(kwargs.pop("x0"), **kwargs)
