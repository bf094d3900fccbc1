"""Probability-flow log-likelihood against exact Gaussian-mixture densities."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.likelihood import bits_per_dim, log_likelihood, uniform_dequantize
from polyfold.core.paths import LinearInterpolant, VPCosine
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
FLOW = LinearInterpolant()  # alpha(1) = 0: the N(0, I) prior is exact, t = 0 is the data


def gmm3() -> GaussianMixture:
    return GaussianMixture(
        [[-1.5, 0.0, 0.3], [1.5, 0.5, -0.2]], stds=[0.5, 0.7], weights=[0.3, 0.7]
    )


def flow_denoiser(gmm: GaussianMixture):
    # velocity predictions are defined on all of [0, 1] (x0 from eps is not at t = 1)
    return as_denoiser(gmm.model(FLOW, "velocity"), FLOW, prediction="velocity")


def test_exact_divergence_matches_the_exact_log_density() -> None:
    gmm = gmm3()
    x = gmm.sample(6, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = gmm.log_prob(x)  # t = 0: the data density
    den = flow_denoiser(gmm)
    adaptive = log_likelihood(den, FLOW, x, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(adaptive.logp, exact, rtol=0, atol=1e-6)
    # Dormand-Prince with FSAL: one first call, then 6 per attempted step
    assert (adaptive.nfe - 1) % 6 == 0
    assert adaptive.nfe >= 1 + 6 * adaptive.steps
    fixed = log_likelihood(den, FLOW, x, solver="rk4", steps=24)
    assert fixed.nfe == 96
    torch.testing.assert_close(fixed.logp, exact, rtol=0, atol=1e-5)
    coarse = log_likelihood(den, FLOW, x, solver="euler", steps=24)
    assert (coarse.logp - exact).abs().max() > 10 * (fixed.logp - exact).abs().max()
    torch.testing.assert_close(adaptive.dims, torch.full((6,), 3.0, dtype=F64))
    torch.testing.assert_close(adaptive.bpd, -adaptive.logp / (3 * math.log(2)))


def test_vp_path_from_t_min_with_exact_and_default_prior() -> None:
    gmm = GaussianMixture([[-1.0, 0.5], [1.5, -0.5]], stds=[0.6, 0.4])
    path = VPCosine()
    den = as_denoiser(gmm.model(path, "eps"), path, prediction="eps")
    x = gmm.sample(6, generator=torch.Generator().manual_seed(1), dtype=F64)
    exact = gmm.log_prob(x, path.t_min, path)

    def exact_prior(xe: torch.Tensor) -> torch.Tensor:
        return gmm.log_prob(xe, path.t_max, path)

    r = log_likelihood(den, path, x, rtol=1e-7, atol=1e-8, prior=exact_prior)
    torch.testing.assert_close(r.logp, exact, rtol=0, atol=1e-6)
    # the default prior N(0, sigma(t_max)^2 I) differs only by the prior term
    d = log_likelihood(den, path, x, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(d.delta_logp, r.delta_logp, rtol=0, atol=1e-7)
    s2 = float(path.sigma(path.t_max)) ** 2
    gauss = -0.5 * (d.x_end**2 / s2 + math.log(2 * math.pi * s2)).sum(1)
    torch.testing.assert_close(d.prior_logp, gauss)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe: str) -> None:
    gmm = gmm3()
    den = flow_denoiser(gmm)
    pts = gmm.sample(2, generator=torch.Generator().manual_seed(0), dtype=F64)
    reps = 200
    x = pts.repeat_interleave(reps, 0)  # every row its own probe
    r = log_likelihood(
        den, FLOW, x, divergence="hutchinson", probe=probe, solver="rk4", steps=16,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    lp = r.logp.reshape(2, reps)
    se = lp.std(1) / math.sqrt(reps)
    z = (lp.mean(1) - gmm.log_prob(pts)) / se
    assert bool((z.abs() < 4).all()), z
    assert bool((lp.std(1) > 1e-3).all())  # an estimator, not the exact trace
    # Rademacher probes drop the Jacobian's diagonal from the variance: lower than Gaussian
    other = "gaussian" if probe == "rademacher" else "rademacher"
    r2 = log_likelihood(
        den, FLOW, x, divergence="hutchinson", probe=other, solver="rk4", steps=16,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    sd, sd2 = lp.std(1), r2.logp.reshape(2, reps).std(1)
    rad, gau = (sd, sd2) if probe == "rademacher" else (sd2, sd)
    assert bool((rad < gau).all())


def test_hutchinson_is_reproducible_with_a_generator_and_averages_probes() -> None:
    gmm = gmm3()
    den = flow_denoiser(gmm)
    x = gmm.sample(3, generator=torch.Generator().manual_seed(2), dtype=F64)

    def run(seed: int, n: int = 1) -> torch.Tensor:
        return log_likelihood(
            den, FLOW, x, divergence="hutchinson", n_probes=n, solver="rk4", steps=4,
            generator=torch.Generator().manual_seed(seed),
        ).logp  # fmt: skip

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    exact = log_likelihood(den, FLOW, x, solver="rk4", steps=4).logp
    # Rademacher probes on d = 3: all 8 sign patterns (4 up to sign) average to the exact trace
    many = run(5, n=16)
    assert (many - exact).abs().max() < (run(5) - exact).abs().max()


def test_masked_entries_do_not_count() -> None:
    # a third coordinate independent of the mixture: the likelihood of the first two under a
    # mask equals the 2-D marginal density, and d counts 2
    base = GaussianMixture([[-1.0, 0.5], [1.2, -0.3]], stds=[0.5, 0.8])
    full = GaussianMixture(
        [[-1.0, 0.5, 0.0], [1.2, -0.3, 0.0]], stds=torch.tensor([[0.5, 0.5, 1.0], [0.8, 0.8, 1.0]])
    )
    den = flow_denoiser(full)
    x = full.sample(6, generator=torch.Generator().manual_seed(3), dtype=F64)
    x[:, 2] = 0.0  # padding
    mask = torch.tensor([True, True, False]).expand(6, 3)
    for div in ("exact", "hutchinson"):
        r = log_likelihood(
            den,
            FLOW,
            x,
            mask=mask,
            divergence=div,
            rtol=1e-8,
            atol=1e-9,
            generator=torch.Generator().manual_seed(0),
        )
        assert torch.equal(r.x_end[:, 2], x[:, 2])
        torch.testing.assert_close(r.dims, torch.full((6,), 2.0, dtype=F64))
        if div == "exact":
            torch.testing.assert_close(r.logp, base.log_prob(x[:, :2]), rtol=0, atol=1e-5)
        else:  # z zero on padding: the masked trace is over two dims, still unbiased
            assert bool(r.logp.isfinite().all())


def test_dict_states_sum_over_keys() -> None:
    gmm = gmm3()
    model = gmm.model(FLOW, "velocity")

    def dict_model(x: dict, t: torch.Tensor, cond: object = None) -> dict:
        out = model(torch.cat([x["a"], x["b"]], dim=1), t)
        return {"a": out[:, :1], "b": out[:, 1:]}

    den = as_denoiser(dict_model, {"a": FLOW, "b": FLOW}, prediction="velocity")
    x = gmm.sample(5, generator=torch.Generator().manual_seed(4), dtype=F64)
    r = log_likelihood(
        den, {"a": FLOW, "b": FLOW}, {"a": x[:, :1], "b": x[:, 1:]}, solver="rk4", steps=40
    )
    torch.testing.assert_close(r.logp, gmm.log_prob(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(r.dims, torch.full((5,), 3.0, dtype=F64))


def test_bits_per_dim_formula_and_dequantisation_offset() -> None:
    d = 4
    logp = torch.tensor([-d * math.log(2) * 3.0], dtype=F64)  # 3 bits per dim
    torch.testing.assert_close(bits_per_dim(logp, d), torch.tensor([3.0], dtype=F64))
    # 256 levels on [-1, 1]: bins of 2/256, score_sde's offset of 7 bits
    torch.testing.assert_close(
        bits_per_dim(logp, d, bin_width=2 / 256), torch.tensor([10.0], dtype=F64)
    )
    x = torch.linspace(-1, 1, 256, dtype=F64).expand(3, 256)
    xd = uniform_dequantize(x, 2 / 255, generator=torch.Generator().manual_seed(0))
    assert bool(((xd - x).abs() <= 1 / 255).all())
    assert not torch.equal(xd[0], xd[1])
    with pytest.raises(InputError, match="bin_width"):
        bits_per_dim(logp, d, bin_width=0.0)


def test_likelihood_rejects_bad_arguments() -> None:
    den = flow_denoiser(gmm3())
    x = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(InputError, match="solver"):
        log_likelihood(den, FLOW, x, solver="rk23")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="t_start"):
        log_likelihood(den, FLOW, x, t_start=0.5, t_end=0.2)
    with pytest.raises(InputError, match="divergence"):
        log_likelihood(den, FLOW, x, divergence="trace")  # type: ignore[arg-type]
    nan_den = as_denoiser(gmm3().model(FLOW, "x0"), FLOW, prediction="x0")  # eps = 0/0 at t=0
    with pytest.raises(InputError, match="non-finite"):
        log_likelihood(nan_den, FLOW, x)
