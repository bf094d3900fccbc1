"""Samplers against exact references: orders of convergence and the target mixture.

The model is the exact denoiser of a 2-D Gaussian mixture (:mod:`polyfold.core.testing`), so the
only errors are the samplers' own.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from polyfold.core import samplers as S
from polyfold.core.denoiser import ModelDenoiser, as_denoiser
from polyfold.core.paths import VE, GaussianPath, LinearInterpolant, VPLinear
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
SMOOTH = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]], stds=[0.7, 0.9], weights=[0.4, 0.6])
TARGET = GaussianMixture([[-1.5, 0.5], [1.0, -0.5]], stds=[0.5, 0.7], weights=[0.4, 0.6])
NS = [20, 40, 80, 160]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _setup(path: GaussianPath, gmm: GaussianMixture, n: int, pred: str = "eps", seed: int = 1):
    den = as_denoiser(gmm.model(path, pred), path, prediction=pred)  # type: ignore[arg-type]
    x = path.prior_sample((n, 2), generator=torch.Generator().manual_seed(seed), dtype=F64)
    return den, x


# -- orders of convergence ----------------------------------------------------------------

Solver = Callable[[ModelDenoiser, GaussianPath, Tensor, Tensor], S.SampleResult]
# UniPC lowers its order over the last steps (reference behaviour): off to measure the formula
UNI = {"lower_order_final": False}

ORDERS: dict[str, tuple[Solver, str, float]] = {
    # name: (solver, grid kind, expected order)
    "euler_t": (lambda d, p, x, g: S.euler(d, p, x, g), "t", 1),
    "heun_t": (lambda d, p, x, g: S.heun(d, p, x, g), "t", 2),
    "midpoint_t": (lambda d, p, x, g: S.midpoint(d, p, x, g), "t", 2),
    "rk4_t": (lambda d, p, x, g: S.rk4(d, p, x, g), "t", 4),
    "euler_sigma": (lambda d, p, x, g: S.euler(d, p, x, g, variable="sigma"), "lam", 1),
    "heun_sigma": (lambda d, p, x, g: S.heun(d, p, x, g, variable="sigma"), "lam", 2),
    "midpoint_sigma": (lambda d, p, x, g: S.midpoint(d, p, x, g, variable="sigma"), "lam", 2),
    "rk4_sigma": (lambda d, p, x, g: S.rk4(d, p, x, g, variable="sigma"), "lam", 4),
    "edm_heun": (lambda d, p, x, g: S.edm_heun(d, p, x, g), "lam", 2),
    "ddim": (lambda d, p, x, g: S.ddim(d, p, x, g), "lam", 1),
    "dpm_solver_1": (lambda d, p, x, g: S.dpm_solver(d, p, x, g, order=1), "lam", 1),
    "dpm_solver_2": (lambda d, p, x, g: S.dpm_solver(d, p, x, g, order=2), "lam", 2),
    "dpm_solver_3": (lambda d, p, x, g: S.dpm_solver(d, p, x, g, order=3), "lam", 3),
    "dpm_solver_2m": (
        lambda d, p, x, g: S.dpm_solver(d, p, x, g, order=2, method="multistep"),
        "lam",
        2,
    ),
    "dpm_solver_3m": (
        lambda d, p, x, g: S.dpm_solver(d, p, x, g, order=3, method="multistep"),
        "lam",
        3,
    ),
    "dpm_solver_pp_2s": (
        lambda d, p, x, g: S.dpm_solver_pp(d, p, x, g, order=2, method="singlestep"),
        "lam",
        2,
    ),
    "dpm_solver_pp_3s": (
        lambda d, p, x, g: S.dpm_solver_pp(d, p, x, g, order=3, method="singlestep"),
        "lam",
        3,
    ),
    "dpm_solver_pp_2m": (lambda d, p, x, g: S.dpm_solver_pp(d, p, x, g, order=2), "lam", 2),
    "dpm_solver_pp_3m": (lambda d, p, x, g: S.dpm_solver_pp(d, p, x, g, order=3), "lam", 3),
    "unip_2": (lambda d, p, x, g: S.unipc(d, p, x, g, order=2, corrector=False, **UNI), "lam", 2),
    "unipc_bh1_1": (
        lambda d, p, x, g: S.unipc(d, p, x, g, order=1, variant="bh1", **UNI),
        "lam",
        2,
    ),
    "unipc_bh1_2": (
        lambda d, p, x, g: S.unipc(d, p, x, g, order=2, variant="bh1", **UNI),
        "lam",
        3,
    ),
    "unipc_bh2_1": (
        lambda d, p, x, g: S.unipc(d, p, x, g, order=1, variant="bh2", **UNI),
        "lam",
        2,
    ),
    "unipc_bh2_2": (
        lambda d, p, x, g: S.unipc(d, p, x, g, order=2, variant="bh2", **UNI),
        "lam",
        3,
    ),
    "unipc_bh2_2_eps": (
        lambda d, p, x, g: S.unipc(d, p, x, g, order=2, prediction="eps", **UNI),
        "lam",
        3,
    ),
    "unipc_bh2_3": (lambda d, p, x, g: S.unipc(d, p, x, g, order=3, **UNI), "lam", 4),
    "deis_1": (lambda d, p, x, g: S.deis(d, p, x, g, order=1), "t", 1),
    "deis_2": (lambda d, p, x, g: S.deis(d, p, x, g, order=2), "t", 2),
    "deis_3": (lambda d, p, x, g: S.deis(d, p, x, g, order=3), "t", 3),
    "deis_3_log_rho": (lambda d, p, x, g: S.deis(d, p, x, g, basis="log_rho"), "lam", 3),
    # pseudo linear multistep with the papers' constant-step coefficients: second order on
    # the non-uniform steps of any usable grid
    "pndm": (lambda d, p, x, g: S.pndm(d, p, x, g), "lam", 2),
    "ipndm": (lambda d, p, x, g: S.pndm(d, p, x, g, variant="ipndm"), "lam", 2),
}


@pytest.fixture(scope="module")
def order_problem():
    path = VPLinear()
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        den, x = _setup(path, SMOOTH, 48)
        t_end = float(path.t_from_log_snr(torch.tensor(4.0, dtype=F64)))
        grids = {
            "t": {n: S.uniform_t_grid(path, n, t_end=t_end) for n in NS},
            "lam": {n: S.log_snr_grid(path, n, t_end=t_end) for n in NS},
        }
        # the exact endpoint of the probability-flow ODE: RK4 in t with 640 steps, checked by a
        # second, independent solver
        ref = S.rk4(den, path, x, S.uniform_t_grid(path, 640, t_end=t_end)).x
        check = S.dpm_solver(den, path, x, S.log_snr_grid(path, 300, t_end=t_end), order=3).x
        assert float((ref - check).abs().max()) < 1e-7
    return path, den, x, grids, ref


@pytest.mark.parametrize("name", list(ORDERS))
def test_order_of_convergence(name: str, order_problem) -> None:
    path, den, x, grids, ref = order_problem
    solver, kind, order = ORDERS[name]
    errors = []
    for n in NS:
        out = solver(den, path, x, grids[kind][n]).x
        errors.append(float((out - ref).pow(2).sum(1).mean().sqrt()))
    slope = -np.polyfit(np.log(NS), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.4, f"{name}: slope {slope:.2f}, errors {errors}"


def test_rk4_on_a_flow_is_fourth_order_to_the_data_point() -> None:
    path = LinearInterpolant()
    den, x = _setup(path, SMOOTH, 32, pred="velocity")
    ref = S.rk4(den, path, x, S.uniform_t_grid(path, 300)).x
    errors = [
        float((S.rk4(den, path, x, S.uniform_t_grid(path, n)).x - ref).abs().max())
        for n in (8, 16, 32)
    ]
    assert math.log2(errors[0] / errors[1]) > 3.5
    assert math.log2(errors[1] / errors[2]) > 3.5
    # the DDIM step of the linear interpolant is its Euler step
    g = S.uniform_t_grid(path, 12)
    torch.testing.assert_close(S.ddim(den, path, x, g).x, S.euler(den, path, x, g).x)


# -- the target distribution at high NFE ----------------------------------------------------


def sliced_w2(samples: Tensor, gmm: GaussianMixture, n_proj: int = 32) -> float:
    """Sliced Wasserstein-2 distance of samples to the mixture, on the 0.5%..99.5% quantiles.

    Each projection of a Gaussian mixture is a 1-D mixture, whose exact quantiles are found by
    bisection of its CDF; the distance compares them with the samples' quantiles.
    """
    d = torch.randn(samples.shape[1], n_proj, generator=torch.Generator().manual_seed(0), dtype=F64)
    d = d / d.norm(dim=0)
    q = torch.linspace(0.005, 0.995, 199, dtype=F64)
    emp = torch.quantile(samples.to(F64) @ d, q, dim=0)  # (Q, P)
    m = (gmm.means @ d)[:, None, :]  # (K, 1, P)
    s = torch.einsum("ip,kij,jp->kp", d, gmm.covs, d).sqrt()[:, None, :]
    w = gmm.weights[:, None, None]
    lo, hi = torch.full_like(emp, -50.0), torch.full_like(emp, 50.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        cdf = (w * 0.5 * (1 + torch.erf((mid[None] - m) / (s * math.sqrt(2.0))))).sum(0)
        below = cdf < q[:, None]
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return float((emp - 0.5 * (lo + hi)).pow(2).mean().sqrt())


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


DISTRIBUTION: dict[str, Callable[[ModelDenoiser, GaussianPath, Tensor], S.SampleResult]] = {
    "euler": lambda d, p, x: S.euler(d, p, x, S.uniform_t_grid(p, 120)),
    "heun": lambda d, p, x: S.heun(
        d, p, x, S.karras_grid(p, 40, append_zero=True), variable="sigma"
    ),
    "midpoint": lambda d, p, x: S.midpoint(
        d, p, x, S.log_snr_grid(p, 40, append_zero=True), variable="sigma"
    ),
    "rk4": lambda d, p, x: S.rk4(d, p, x, S.uniform_t_grid(p, 40)),
    "ddim": lambda d, p, x: S.ddim(d, p, x, S.uniform_t_grid(p, 100, append_zero=True)),
    "ddim_eta": lambda d, p, x: S.ddim(
        d, p, x, S.uniform_t_grid(p, 100, append_zero=True), eta=0.5, generator=_gen()
    ),
    "ddpm_small": lambda d, p, x: S.ddpm(
        d, p, x, S.uniform_t_grid(p, 100, append_zero=True), generator=_gen()
    ),
    "ddpm_large": lambda d, p, x: S.ddpm(
        d, p, x, S.uniform_t_grid(p, 100, append_zero=True), variance="large", generator=_gen()
    ),
    "euler_maruyama": lambda d, p, x: S.euler_maruyama(
        d, p, x, S.uniform_t_grid(p, 200, append_zero=True), generator=_gen()
    ),
    "predictor_corrector": lambda d, p, x: S.predictor_corrector(
        d, p, x, S.uniform_t_grid(p, 100, append_zero=True), generator=_gen()
    ),
    "predictor_corrector_ancestral": lambda d, p, x: S.predictor_corrector(
        d, p, x, S.uniform_t_grid(p, 60, append_zero=True), predictor="ancestral", generator=_gen()
    ),
    "dpm_solver_3": lambda d, p, x: S.dpm_solver(d, p, x, S.log_snr_grid(p, 15), order=3),
    "dpm_solver_fast": lambda d, p, x: S.dpm_solver(
        d, p, x, S.log_snr_grid(p, 11), orders=S.singlestep_orders(31, 3)
    ),
    "dpm_solver_3m": lambda d, p, x: S.dpm_solver(
        d, p, x, S.log_snr_grid(p, 40), order=3, method="multistep"
    ),
    "dpm_solver_pp_2s": lambda d, p, x: S.dpm_solver_pp(
        d, p, x, S.log_snr_grid(p, 20, append_zero=True), method="singlestep"
    ),
    "dpm_solver_pp_2m": lambda d, p, x: S.dpm_solver_pp(
        d, p, x, S.log_snr_grid(p, 40, append_zero=True)
    ),
    "dpm_solver_pp_3m": lambda d, p, x: S.dpm_solver_pp(
        d, p, x, S.log_snr_grid(p, 40, append_zero=True), order=3
    ),
    "sde_dpm_solver_pp_2m": lambda d, p, x: S.sde_dpm_solver_pp_2m(
        d, p, x, S.log_snr_grid(p, 100, append_zero=True), generator=_gen()
    ),
    "unipc_bh1": lambda d, p, x: S.unipc(
        d, p, x, S.log_snr_grid(p, 30, append_zero=True), variant="bh1", order=3
    ),
    "unipc_bh2": lambda d, p, x: S.unipc(d, p, x, S.log_snr_grid(p, 30, append_zero=True)),
    "deis": lambda d, p, x: S.deis(d, p, x, S.uniform_t_grid(p, 40, append_zero=True)),
    "pndm": lambda d, p, x: S.pndm(d, p, x, S.uniform_t_grid(p, 40)),
    "ipndm": lambda d, p, x: S.pndm(d, p, x, S.log_snr_grid(p, 40), variant="ipndm"),
    "edm_heun_churn": lambda d, p, x: S.edm_heun(
        d, p, x, S.karras_grid(p, 60, append_zero=True), s_churn=20.0, generator=_gen()
    ),
    "time_shift_ddim": lambda d, p, x: S.ddim(
        d, p, x, S.uniform_t_grid(p, 100, append_zero=True), time_shift=S.TimeShift(4, 0.5)
    ),
}


def test_exact_samples_are_within_the_threshold() -> None:
    for seed in range(3):
        exact = TARGET.sample(4000, generator=torch.Generator().manual_seed(seed), dtype=F64)
        assert sliced_w2(exact, TARGET) < 0.04


@pytest.mark.parametrize("name", list(DISTRIBUTION))
def test_sampler_reaches_the_mixture(name: str) -> None:
    path = VE() if name == "heun" else VPLinear()
    den, x = _setup(path, TARGET, 4000, seed=2)
    out = DISTRIBUTION[name](den, path, x).x
    sw = sliced_w2(out, TARGET)
    mean, cov = TARGET.moments()
    assert sw < 0.05, f"{name}: sliced W2 {sw:.3f}"
    assert float((out.mean(0) - mean).abs().max()) < 0.06
    assert float((out.T.cov() - cov).abs().max()) < 0.12


def test_the_threshold_detects_wrong_samples() -> None:
    path = VPLinear()
    den, x = _setup(path, TARGET, 4000, seed=2)
    early = S.ddim(den, path, x, S.uniform_t_grid(path, 100, t_end=0.1)).x  # stops at sigma~0.3
    assert sliced_w2(early, TARGET) > 0.05
    coarse = S.ddim(den, path, x, S.uniform_t_grid(path, 20, append_zero=True)).x
    assert sliced_w2(coarse, TARGET) > 0.05
