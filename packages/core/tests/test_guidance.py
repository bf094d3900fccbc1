"""Guidance wrappers on exact Gaussian-mixture denoisers: CFG, CFG++, classifier, observation,
inpainting."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import Denoised, as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.guidance import (
    cfg,
    cfg_pp,
    cfg_pp_equivalent_scale,
    classifier_guidance,
    inpaint,
    observation_guidance,
)
from polyfold.core.paths import VPCosine, VPLinear
from polyfold.core.samplers.dpm_solver import dpm_solver_pp
from polyfold.core.samplers.grids import log_snr_grid, uniform_t_grid
from polyfold.core.samplers.repaint import repaint
from polyfold.core.samplers.stochastic import ddim
from polyfold.core.testing import NULL_LABEL, GaussianMixture

F64 = torch.float64
PATH = VPCosine()


def labelled_gmm() -> GaussianMixture:
    return GaussianMixture(
        [[-2.0, 0.0], [2.0, 0.5], [0.5, 2.0]], stds=[0.5, 0.4, 0.6], labels=[0, 1, 1]
    )


def points(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64) * 1.5


def t_of(n: int, value: float) -> torch.Tensor:
    return torch.full((n,), value, dtype=F64)


def pair(gmm: GaussianMixture, label: int = 1):
    """Conditional / unconditional denoisers over one counted network."""
    model = gmm.model(PATH, "eps")
    cond = as_denoiser(model, PATH, prediction="eps", cond=label)
    return model, cond


# -- classifier-free guidance ------------------------------------------------------------------
def test_cfg_scale_one_and_zero_are_the_conditional_and_unconditional_models_exactly() -> None:
    gmm = labelled_gmm()
    _, cond = pair(gmm)
    uncond = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps", cond=NULL_LABEL)
    x, t = points(), t_of(64, 0.4)
    c, u = cond(x, t), uncond(x, t)
    for other in (NULL_LABEL, uncond):  # null condition (batched) or a separate denoiser
        one, zero = cfg(cond, other, 1.0)(x, t), cfg(cond, other, 0.0)(x, t)
        assert torch.equal(one.x0, c.x0)
        assert torch.equal(one.eps, c.eps)
        assert torch.equal(zero.x0, u.x0)
        assert torch.equal(zero.eps, u.eps)
    # through the interpolation itself (not a shortcut): both ends exact
    g = cfg(cond, NULL_LABEL, 1.0)
    assert torch.equal(g._combine(c, u).x0, c.x0)
    g0 = cfg(cond, NULL_LABEL, 0.0)
    assert torch.equal(g0._combine(c, u).eps, u.eps)


def test_cfg_formula_batched_equals_two_calls_and_nfe_is_honest() -> None:
    gmm = labelled_gmm()
    model, cond = pair(gmm)
    x, t = points(), t_of(64, 0.6)
    c = cond(x, t)
    u = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps", cond=NULL_LABEL)(x, t)
    model.nfe = 0
    batched = cfg(cond, NULL_LABEL, 3.0)
    out = batched(x, t)
    assert model.nfe == 1
    assert batched.nfe == 1
    expect = u.x0 + 3.0 * (c.x0 - u.x0)
    torch.testing.assert_close(out.x0, expect, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.eps, u.eps + 3.0 * (c.eps - u.eps), rtol=1e-12, atol=1e-12)
    # the guided pair stays consistent: x = alpha x0 + sigma eps
    a, s = PATH.alpha(t)[:, None], PATH.sigma(t)[:, None]
    torch.testing.assert_close(a * out.x0 + s * out.eps, x, rtol=1e-10, atol=1e-10)
    model.nfe = 0
    two = cfg(cond, NULL_LABEL, 3.0, batch=False)
    out2 = two(x, t)
    assert model.nfe == 2
    assert two.nfe == 2
    torch.testing.assert_close(out2.x0, out.x0, rtol=1e-12, atol=1e-12)
    # per-example labels are concatenated with the null label row by row
    labels = torch.tensor([0, 1] * 32)
    cond_rows = as_denoiser(model, PATH, prediction="eps", cond=labels)
    model.nfe = 0
    out3 = cfg(cond_rows, NULL_LABEL, 2.0)(x, t)
    assert model.nfe == 1
    c_rows = cond_rows(x, t)
    torch.testing.assert_close(out3.eps, u.eps + 2.0 * (c_rows.eps - u.eps), rtol=1e-12, atol=1e-12)


def test_guidance_interval_switches_at_its_bounds() -> None:
    gmm = labelled_gmm()
    model, cond = pair(gmm)
    lo, hi = 0.3, 0.7
    g = cfg(cond, NULL_LABEL, 4.0, interval=(lo, hi))
    full = cfg(cond, NULL_LABEL, 4.0)
    x = points(4)
    below, above = math.nextafter(lo, 0.0), math.nextafter(hi, 1.0)
    for tv, guided in ((lo, True), (hi, True), (0.5, True), (below, False), (above, False)):
        t = t_of(4, tv)
        model.nfe = 0
        out = g(x, t)
        ref = full(x, t) if guided else cond(x, t)
        assert torch.equal(out.eps, ref.eps), tv
        if not guided:
            assert model.nfe == 2  # g: the conditional model alone (ref: one more)
    # per example in one batch
    t = torch.tensor([below, lo, hi, above], dtype=F64)
    out, ref_g, ref_c = g(x, t), full(x, t), cond(x, t)
    inside = torch.tensor([False, True, True, False])
    torch.testing.assert_close(out.x0[inside], ref_g.x0[inside], rtol=0, atol=1e-14)
    torch.testing.assert_close(out.x0[~inside], ref_c.x0[~inside], rtol=0, atol=1e-14)


def test_cfg_pp_scale_zero_is_the_unconditional_ddim_trajectory() -> None:
    gmm = labelled_gmm()
    _, cond = pair(gmm)
    uncond = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps", cond=NULL_LABEL)
    x = PATH.prior_sample((32, 2), generator=torch.Generator().manual_seed(3), dtype=F64)
    grid = uniform_t_grid(PATH, 8, append_zero=True)
    plain = ddim(uncond, PATH, x, grid).x
    pp = ddim(cfg_pp(cond, NULL_LABEL, 0.0), PATH, x, grid).x
    assert torch.equal(pp, plain)


def test_cfg_pp_renoises_with_unconditional_eps_and_matches_its_cfg_scale() -> None:
    gmm = labelled_gmm()
    _, cond = pair(gmm)
    uncond = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps", cond=NULL_LABEL)
    x, t = points(), t_of(64, 0.5)
    c, u = cond(x, t), uncond(x, t)
    out = cfg_pp(cond, NULL_LABEL, 0.4)(x, t)
    assert torch.equal(out.eps, u.eps)
    torch.testing.assert_close(out.x0, u.x0 + 0.4 * (c.x0 - u.x0), rtol=1e-12, atol=1e-12)
    # one DDIM step with CFG++ lam equals one with CFG at the equivalent scale
    t0, t1 = 0.5, 0.42
    w = cfg_pp_equivalent_scale(0.4, PATH, t0, t1)
    assert w > 0.4
    grid = torch.tensor([t0, t1], dtype=F64)
    step_pp = ddim(cfg_pp(cond, NULL_LABEL, 0.4), PATH, x, grid).x
    step_cfg = ddim(cfg(cond, NULL_LABEL, w), PATH, x, grid).x
    torch.testing.assert_close(step_pp, step_cfg, rtol=1e-10, atol=1e-10)


def test_guidance_rejects_bad_arguments() -> None:
    gmm = labelled_gmm()
    _, cond = pair(gmm)
    with pytest.raises(InputError, match=r"lambda"):
        cfg_pp(cond, NULL_LABEL, 1.5)
    with pytest.raises(InputError, match="interval"):
        cfg(cond, NULL_LABEL, 2.0, interval=(0.8, 0.2))
    plain = cond.__call__  # a bare callable is not a network: no null condition possible
    with pytest.raises(InputError, match="null condition"):
        cfg(plain, NULL_LABEL, 2.0)
    with pytest.raises(InputError, match="scale"):
        cfg(cond, NULL_LABEL, float("nan"))


# -- classifier and observation guidance --------------------------------------------------------
def test_classifier_guidance_with_the_exact_classifier_gives_the_conditional_score() -> None:
    gmm = labelled_gmm()
    uncond = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps")

    def grad_log_p_y(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Bayes: log p(y | x_t) = log p_t(x | y) - log p_t(x) + log p(y)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp = gmm.log_prob(xg, t, PATH, cond=1) - gmm.log_prob(xg, t, PATH)
            return torch.autograd.grad(lp.sum(), xg)[0]

    x = points(48, seed=5)
    for tv in (0.2, 0.6, 0.9):
        t = t_of(48, tv)
        out = classifier_guidance(uncond, grad_log_p_y, 1.0, paths=PATH)(x, t)
        torch.testing.assert_close(out.eps, gmm.eps(x, t, PATH, cond=1), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(out.x0, gmm.x0_mean(x, t, PATH, cond=1), rtol=1e-9, atol=1e-9)


def test_observation_guidance_gradient_and_pull_toward_the_observation() -> None:
    gmm = GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], stds=0.5)
    path = VPLinear()
    den = as_denoiser(gmm.model(path, "eps"), path, prediction="eps")
    y = torch.tensor([2.0, 0.0], dtype=F64)

    def energy(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ((x0 - y) ** 2).sum(-1)

    x, t = points(16), t_of(16, 0.5)
    guided = observation_guidance(den, energy, 2.0, paths=path)
    out, base = guided(x, t), den(x, t)
    # eps' = eps + scale sigma grad_x E(x0_hat(x)), the gradient through the denoiser
    xg = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(energy(den(xg, t).x0, t).sum(), xg)[0]
    sigma = path.sigma(t)[:, None]
    torch.testing.assert_close(out.eps, base.eps + 2.0 * sigma * grad, rtol=1e-10, atol=1e-10)
    a = path.alpha(t)[:, None]
    torch.testing.assert_close(a * out.x0 + sigma * out.eps, x, rtol=1e-10, atol=1e-10)
    unscaled = observation_guidance(den, energy, 2.0, paths=path, sigma_scaling=False)(x, t)
    torch.testing.assert_close(unscaled.eps, base.eps + 2.0 * grad, rtol=1e-10, atol=1e-10)
    # sampling: the fraction of samples in the observed mode rises from ~1/2 to ~all
    x1 = path.prior_sample((200, 2), generator=torch.Generator().manual_seed(2), dtype=F64)
    grid = log_snr_grid(path, 20, append_zero=True)
    free = dpm_solver_pp(den, path, x1, grid).x
    pulled = dpm_solver_pp(guided, path, x1, grid).x
    near_free = ((free - y).norm(dim=-1) < 1.5).double().mean().item()
    near_pulled = ((pulled - y).norm(dim=-1) < 1.5).double().mean().item()
    assert 0.3 < near_free < 0.7
    assert near_pulled > 0.95
    assert (pulled - y).norm(dim=-1).mean() < 0.5 * (free - y).norm(dim=-1).mean()


# -- inpainting ---------------------------------------------------------------------------------
RHO, MU = 0.8, (1.0, -0.5)


def correlated() -> GaussianMixture:
    return GaussianMixture([list(MU)], torch.tensor([[[1.0, RHO], [RHO, 1.0]]], dtype=F64))


def test_inpaint_keeps_the_known_entries_and_a_consistent_pair() -> None:
    gmm = correlated()
    den = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps")
    n = 64
    y = torch.tensor([2.0, 0.0], dtype=F64).expand(n, 2)
    known = torch.tensor([True, False]).expand(n, 2)
    wrapped = inpaint(den, y, known, paths=PATH)
    x, t = points(n), t_of(n, 0.5)
    d = wrapped(x, t)
    assert torch.equal(d.x0[:, 0], y[:, 0])
    a, s = PATH.alpha(t)[:, None], PATH.sigma(t)[:, None]
    torch.testing.assert_close(a * d.x0 + s * d.eps, x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d.x0[:, 1], den(x, t).x0[:, 1], rtol=0, atol=0)
    # any sampler: the known entries end at the observation
    x1 = PATH.prior_sample((n, 2), generator=torch.Generator().manual_seed(0), dtype=F64)
    grid = log_snr_grid(PATH, 10, append_zero=True)
    for out in (
        dpm_solver_pp(wrapped, PATH, x1, grid).x,
        ddim(wrapped, PATH, x1, grid, eta=1.0, generator=torch.Generator().manual_seed(1)).x,
    ):
        torch.testing.assert_close(out[:, 0], y[:, 0], rtol=0, atol=1e-12)
    # without the final denoising step: the state's known entries are y re-noised (DPM-Solver
    # is exact on constant predictions), and project() sets them
    short = dpm_solver_pp(wrapped, PATH, x1, grid[:-1]).x
    t_end = float(grid[-2])
    a_e, s_e = (
        PATH.alpha(torch.tensor(t_end, dtype=F64)),
        PATH.sigma(torch.tensor(t_end, dtype=F64)),
    )
    a_0, s_0 = PATH.alpha(grid[0]), PATH.sigma(grid[0])
    eps0 = (x1[:, 0] - a_0 * y[:, 0]) / s_0
    torch.testing.assert_close(short[:, 0], a_e * y[:, 0] + s_e * eps0, rtol=1e-9, atol=1e-9)
    assert torch.equal(wrapped.project(short)[:, 0], y[:, 0])


def test_repaint_unknown_entry_follows_the_gaussian_conditional_mean() -> None:
    gmm = correlated()
    den = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps")
    n, y1 = 400, 2.0
    target = MU[1] + RHO * (y1 - MU[0])  # E[x2 | x1 = y1] = 0.3; Var = 1 - rho^2
    y = torch.tensor([y1, 0.0], dtype=F64).expand(n, 2)
    known = torch.tensor([True, False]).expand(n, 2)
    x = PATH.prior_sample((n, 2), generator=torch.Generator().manual_seed(4), dtype=F64)
    grid = uniform_t_grid(PATH, 16, append_zero=True)

    def run(resamples: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(5)
        out = repaint(
            den, PATH, x, grid, y, known, jump_length=1, resamples=resamples, generator=gen
        )
        assert out.nfe == 16 * resamples
        torch.testing.assert_close(out.x[:, 0], y[:, 0], rtol=0, atol=1e-12)
        return out.x[:, 1]

    se = math.sqrt((1 - RHO**2) / n)
    err = abs(run(12).mean().item() - target)  # measured: about 2 se (RePaint's own bias)
    assert err < 4 * se, (err, se)
    # plain replacement (no resampling) is biased (about 11 se): resampling fixes the mean
    plain_err = abs(run(1).mean().item() - target)
    assert plain_err > max(3 * err, 5 * se), (plain_err, err)


def test_inpaint_rejects_bad_masks() -> None:
    gmm = correlated()
    den = as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps")
    y = torch.zeros(4, 2, dtype=F64)
    with pytest.raises(InputError, match="known"):
        inpaint(den, y, torch.ones(4, 2), paths=PATH)
    with pytest.raises(InputError, match="mask"):
        inpaint(den, y, torch.ones(3, dtype=torch.bool), paths=PATH)
    with pytest.raises(InputError, match="resamples"):
        repaint(den, PATH, y, [0.5, 0.2], y, y > 0, resamples=0)


def test_wrappers_are_denoisers_returning_denoised() -> None:
    gmm = labelled_gmm()
    _, cond = pair(gmm)
    x, t = points(4), t_of(4, 0.3)
    assert isinstance(cfg(cond, NULL_LABEL, 2.0)(x, t), Denoised)


def test_drop_labels_replaces_each_label_with_probability_p():
    from polyfold.core.guidance import drop_labels

    y = torch.arange(5).repeat(4000)
    out = drop_labels(y, 0.25, 9, torch.Generator().manual_seed(0))
    dropped = out == 9
    assert torch.equal(out[~dropped], y[~dropped])
    assert abs(dropped.float().mean().item() - 0.25) < 0.02
    assert torch.equal(drop_labels(y, 0.0, 9), y)
    with pytest.raises(InputError, match="p_uncond"):
        drop_labels(y, 1.0, 9)
