"""The exact Gaussian-mixture references."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from polyfold.core.errors import InputError
from polyfold.core.paths import EDM, GaussianPath, LinearInterpolant, PFGMPath, VPCosine, VPLinear
from polyfold.core.predictions import PREDICTIONS, convert
from polyfold.core.testing import NULL_LABEL, GaussianMixture, ks_critical, ks_statistic

F64 = torch.float64
PATHS = [VPLinear(), VPCosine(), EDM(), LinearInterpolant()]


def _gmm(d: int = 3, labels: bool = False) -> GaussianMixture:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, d, d, generator=g, dtype=F64)
    covs = a @ a.mT / d + 0.05 * torch.eye(d, dtype=F64)
    means = 2.0 * torch.randn(3, d, generator=g, dtype=F64)
    return GaussianMixture(
        means, covs, weights=[0.2, 0.3, 0.5], labels=[0, 1, 1] if labels else None
    )


def _torch_reference(gmm: GaussianMixture, t: float, path: GaussianPath) -> MixtureSameFamily:
    tt = torch.tensor(t, dtype=F64)
    a, s = float(path.alpha(tt)), float(path.sigma(tt))
    cov = a * a * gmm.covs + s * s * torch.eye(gmm.dim, dtype=F64)
    return MixtureSameFamily(Categorical(gmm.weights), MultivariateNormal(a * gmm.means, cov))


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_log_prob_matches_torch_distributions(path: GaussianPath) -> None:
    gmm = _gmm()
    x = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(1)) * 2
    for t in (0.1, 0.5, 0.9):
        torch.testing.assert_close(
            gmm.log_prob(x, t, path), _torch_reference(gmm, t, path).log_prob(x)
        )
        torch.testing.assert_close(gmm.marginal(t, path).log_prob(x), gmm.log_prob(x, t, path))
    ref0 = MixtureSameFamily(Categorical(gmm.weights), MultivariateNormal(gmm.means, gmm.covs))
    torch.testing.assert_close(gmm.log_prob(x), ref0.log_prob(x))


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_score_is_the_gradient_of_log_prob_and_tweedie_holds(path: GaussianPath) -> None:
    gmm = _gmm()
    x = (torch.randn(6, 3, dtype=F64) * 2).requires_grad_(True)
    t = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95], dtype=F64)
    (grad,) = torch.autograd.grad(gmm.log_prob(x, t, path).sum(), x)
    x = x.detach()
    score = gmm.score(x, t, path)
    torch.testing.assert_close(score, grad, rtol=1e-8, atol=1e-10)
    a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
    torch.testing.assert_close(gmm.x0_mean(x, t, path), (x + s**2 * score) / a)


def test_x0_mean_matches_monte_carlo_posterior() -> None:
    gmm = _gmm(d=2)
    path = VPLinear()
    g = torch.Generator().manual_seed(1)
    x0 = gmm.sample(200_000, generator=g, dtype=F64)
    t = 0.3
    tt = torch.tensor(t, dtype=F64)
    a, s = float(path.alpha(tt)), float(path.sigma(tt))
    x_t = torch.tensor([[0.5, -1.0], [2.0, 1.0]], dtype=F64)
    for xi, exact in zip(x_t, gmm.x0_mean(x_t, t, path), strict=True):
        logw = -((xi - a * x0) ** 2).sum(1) / (2 * s * s)
        w = torch.softmax(logw, 0)
        mc = (w[:, None] * x0).sum(0)
        ess = 1.0 / (w**2).sum()
        assert ess > 500
        torch.testing.assert_close(mc, exact, atol=0.05, rtol=0)


def test_samples_match_the_moments() -> None:
    gmm = _gmm(d=2)
    x = gmm.sample(40_000, generator=torch.Generator().manual_seed(2), dtype=F64)
    mean, cov = gmm.moments()
    torch.testing.assert_close(x.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.1, rtol=0.03)
    # one 1-D component: exact KS check of the sampler
    one = GaussianMixture([[1.0]], stds=2.0)
    y = one.sample(5000, generator=torch.Generator().manual_seed(3), dtype=F64)[:, 0]
    assert ks_statistic(y, lambda v: torch.special.ndtr((v - 1.0) / 2.0)) < ks_critical(5000)


@pytest.mark.parametrize("path", [VPLinear(), LinearInterpolant()], ids=repr)
def test_exact_model_gives_every_prediction_consistently(path: GaussianPath) -> None:
    gmm = _gmm()
    x = torch.randn(5, 3, dtype=F64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=F64)
    eps_model = gmm.model(path, "eps")
    eps = eps_model(x, t)
    coefs = {
        "alpha": path.alpha(t),
        "sigma": path.sigma(t),
        "d_alpha": path.d_alpha(t),
        "d_sigma": path.d_sigma(t),
    }
    for pred in PREDICTIONS:
        out = gmm.model(path, pred)(x, t)
        torch.testing.assert_close(
            out, convert(eps, source="eps", target=pred, x_t=x, **coefs), rtol=1e-8, atol=1e-9
        )
    eps_model(x.float(), 0.5)
    assert eps_model.nfe == 2
    assert eps_model(x.float(), 0.5).dtype == torch.float32


def test_conditional_mixture() -> None:
    gmm = _gmm(labels=True)
    path = VPLinear()
    x = torch.randn(4, 3, dtype=F64)
    t = 0.4
    log_c = [math.log(0.2), math.log(0.8)]  # class priors: sums of their components' weights
    per_class = torch.stack([gmm.log_prob(x, t, path, cond=c) for c in (0, 1)])
    joint = torch.logsumexp(per_class + torch.tensor(log_c, dtype=F64)[:, None], 0)
    torch.testing.assert_close(gmm.log_prob(x, t, path), joint)
    # class 0 is the single first component
    only = GaussianMixture(gmm.means[:1], gmm.covs[:1])
    torch.testing.assert_close(gmm.score(x, t, path, cond=0), only.score(x, t, path))
    # per-example labels, NULL_LABEL meaning unconditional
    mixed = gmm.score(x, t, path, cond=torch.tensor([0, 1, NULL_LABEL, 0]))
    torch.testing.assert_close(mixed[2], gmm.score(x, t, path)[2])
    torch.testing.assert_close(mixed[3], only.score(x, t, path)[3])
    samples = gmm.sample(500, generator=torch.Generator().manual_seed(0), cond=0, dtype=F64)
    torch.testing.assert_close(samples.mean(0), gmm.means[0], atol=0.3, rtol=0)
    with pytest.raises(InputError, match="cond"):
        gmm.score(x, t, path, cond=5)
    with pytest.raises(InputError, match="labels"):
        _gmm().score(x, t, path, cond=0)


def test_input_validation_and_event_shape() -> None:
    with pytest.raises(InputError, match="path"):
        _gmm().score(torch.zeros(2, 3), 0.5, PFGMPath(8))
    with pytest.raises(InputError, match="means"):
        GaussianMixture(torch.zeros(3))
    with pytest.raises(InputError, match="weights"):
        GaussianMixture(torch.zeros(2, 2), weights=[1.0, -1.0])
    with pytest.raises(InputError, match="positive semi-definite"):
        GaussianMixture(torch.zeros(1, 2), -torch.eye(2)[None])
    seq = GaussianMixture(torch.zeros(2, 6), stds=[0.5, 1.0], event_shape=(3, 2))
    x = seq.sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 2)
    assert seq.x0_mean(x, 0.5, VPLinear()).shape == (4, 3, 2)
    with pytest.raises(InputError, match="x"):
        seq.score(torch.zeros(4, 6), 0.5, VPLinear())
