"""Samplers: polyfold against diffusers' schedulers on Gaussian-mixture targets.

Both libraries drive the same exact model (the noise prediction of a Gaussian mixture from
:mod:`polyfold.core.testing`, evaluated in closed form for its diagonal covariances) on the same
discrete schedule (:class:`~polyfold.core.paths.DiscreteDDPM` is diffusers' DDPM betas, 1000
steps, ``linear`` and ``scaled_linear``), from the same start, on the same time grid: every
diffusers scheduler runs with its default spacing and final step (DDIM with ``clip_sample=False``),
polyfold receives that scheduler's own noise levels ``sigma/alpha`` (mapped to ``t`` through the
path's exact inverse log-SNR) and starts from the state diffusers' model first sees,
``scale_model_input(noise * init_noise_sigma)`` (Euler and Heun start at ``sigma_max`` times the
noise in ``sigma/alpha`` space). The model is evaluated at the noise level each library
believes the state is at, so its value at a given state is identical in both. Besides the
matching sampler (same algorithm, except DPM-Solver++ 3M whose third-order term diffusers halves,
and singlestep DPM-Solver++ whose intermediate points polyfold places at half the log-SNR step),
polyfold runs a few variants on the same grids (UniPC bh1 orders 2-3, bh2 order 3, iPNDM, tAB-DEIS
orders 2-3). PNDM: diffusers' last step (step 0 to ``alphas_cumprod[0]``) has zero length,
polyfold leaves it out (one call fewer).

Per run: ``ode_error``, the RMS distance to the exact endpoint of the probability-flow ODE from
the same start (a 600-step RK4 in ``log(sigma/alpha)`` written here, independent
of both libraries; deterministic samplers only); ``sw2``, the sliced Wasserstein-2 distance to
20000 exact mixture samples (64 directions, 1%..99% quantiles); ``us_per_step``, the sampler's
own time per model call, measured with a model returning a fixed tensor whose call time is
subtracted: for diffusers ``set_timesteps`` and the sampling loop (the scheduler built once), for
polyfold building a grid of as many points (``uniform_t_grid``) and the sampler call on the
scheduler's grid. One CPU thread for both libraries.

Summary: ``worst_error_ratio_nfe_le_10`` = max over (path, dim, NFE <= 10) of the best polyfold
``ode_error`` over the best diffusers one; ``worst_overhead_ratio`` = max over matching sampler
pairs of polyfold's over diffusers' per-step overhead (each pair's time summed over its runs);
``worst_overhead_ratio_single_run`` the same ratio for the worst single run.

Few-step methods (issue 25), on UniPCMultistep's grids: analytical teleportation
(``_samplers_teleport.py``: ``teleport+<sampler>`` rows, ``teleport_skip_fraction`` and quality
ratios), Denoising Langevin Gibbs (``dlg+unipc-bh2-3``, stochastic, so in ``sw2`` only:
``dmcmc_sw2_over_integrator_sw2``) and DC-Solver (``_samplers_dc.py``: ``dc+unipc-bh2-<order>``,
``teleport+dc+unipc-bh2-3``, ``dc_*`` keys) and USF (``_samplers_usf.py``: searched schedules
``usf+dc`` and ``teleport+usf+dc`` (hand-over and DC ratios searched too), one of them selected
per target and NFE
on held-out calibration noise: ``usf_nfe_for_peer_nfe10_error``,
``usf_selected_worst_error_ratio_nfe_le_10``, ``search_seconds``);
``best_polyfold_sampler_nfe_le_10`` names polyfold's best row per target and NFE;
``worst_error_ratio_nfe_le_10`` counts every deterministic polyfold row;
``nfe_for_peer_nfe10_error`` is the largest over targets of the smallest budget where polyfold's
best reaches the best diffusers error at NFE 10. k-diffusion is not installed here, so diffusers
stays the only peer. Domain rows (``_samplers_domains.py``, JSON ``domain_rows``, ``domain_*``
keys): GDSS QM9 at 10-20 calls and TSDiff forecasts at NFE 4-10, today's best plain sampler
against USF schedules (with DC ratios; TSDiff also after teleportation) searched on the model's
own calibration noise, scored by validity,
uniqueness, FCD and CRPS and by the error to a high-NFE sample from the same noise.

``--quick`` (about 4-5 CPU-minutes, not 1-2: the per-row sliced W2 against 20000 samples, the
exact references and DC's calibration alone take about 3): the ``linear`` schedule only, NFE
4, 6, 8, 10, 20; USF searched in one round on 1024 calibration noises, ranked on 2048
held-out ones (a full run: three rounds, 2048 and 4096); DLG's eight settings chosen on 512
calibration noises against 5000 draws of the data (a full run: against 20000). Every summary
key is present and computed the same way, selections still on calibration noise only, but the
goals of issue 25 are defined on the full run, not on ``--quick``. The domain rows add a few
CPU-minutes.

Run: ``python apps/bench/samplers.py [--quick] [--no-domains] [--scaled-linear-64] [--out FILE]``
(diffusers required; ``--no-domains``: the mixture test-bed only; ``--scaled-linear-64``: only
the scaled_linear target at dimension 64, the one that decided ``usf_nfe_for_peer_nfe10_error``,
with the full run's settings, its summary keys over that target alone).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]
from _samplers_dc import (  # type: ignore[import-not-found]
    dc_rows,
    nfe_for_peer_nfe10_error,
    summarize_dc,
)
from _samplers_domains import (  # type: ignore[import-not-found]
    configure_domains,
    domain_rows,
    summarize_domains,
)
from _samplers_teleport import (  # type: ignore[import-not-found]
    configure_dlg,
    dlg_rows,
    summarize_dlg,
    summarize_teleport,
    teleport_rows,
)
from _samplers_usf import (  # type: ignore[import-not-found]
    best_per_nfe,
    configure,
    summarize_usf,
    usf_rows,
)
from torch import Tensor

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.dtypes import F64
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.paths import DiscreteDDPM
from polyfold.core.testing import GaussianMixture

BATCH = 512


# -- the exact model ----------------------------------------------------------------------------


class MixtureEps:
    """Closed-form exact noise prediction ``eps(x; alpha, sigma)`` of a mixture with diagonal
    covariances."""

    def __init__(self, gmm: GaussianMixture) -> None:
        self.mu = gmm.means  # (K, d)
        self.var = torch.diagonal(gmm.covs, dim1=-2, dim2=-1)  # (K, d)
        self.logw = gmm.weights.log()

    def __call__(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """``eps = sum_k r_k sigma (x - alpha mu_k) / (alpha^2 S_k + sigma^2)`` (no division by
        ``sigma``, so exact down to ``sigma = 0``), ``r_k`` the posterior responsibilities."""
        diff = x.to(F64)[:, None, :] - alpha * self.mu
        var = alpha**2 * self.var + sigma**2
        logp = self.logw - 0.5 * (diff**2 / var + var.log()).sum(-1)
        resp = torch.softmax(logp, dim=1)[..., None]
        return (resp * sigma * diff / var).sum(1).to(x.dtype)


def make_target(dim: int, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    k = 4
    means = 1.5 * torch.randn(k, dim, generator=g, dtype=F64)
    stds = 0.3 + 0.5 * torch.rand(k, dim, generator=g, dtype=F64)
    return GaussianMixture(means, stds=stds, weights=torch.tensor([0.1, 0.2, 0.3, 0.4]))


def check_model(gmm: GaussianMixture, eps: MixtureEps, path: DiscreteDDPM) -> None:
    """The closed form agrees with polyfold.core.testing's exact predictions."""
    x = torch.randn(64, gmm.dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    for t in (0.05, 0.5, 0.95):
        tt = torch.full((64,), t, dtype=F64)
        a, s = float(path.alpha(tt[:1])), float(path.sigma(tt[:1]))
        torch.testing.assert_close(eps(x, a, s), gmm.eps(x, tt, path), rtol=1e-8, atol=1e-8)


def alpha_sigma(s_tilde: float) -> tuple[float, float]:
    """VP ``(alpha, sigma)`` at ``sigma/alpha = s_tilde``."""
    a = 1.0 / math.sqrt(1.0 + s_tilde**2)
    return a, s_tilde * a


# -- the exact probability-flow ODE endpoint ----------------------------------------------------


def reference(eps: MixtureEps, x: Tensor, s_start: float, s_end: float, steps: int = 600) -> Tensor:
    """RK4 on ``dy/du = s eps(alpha y, s)``, ``y = x/alpha``, ``u = log s``, then (to ``s = 0``)
    on ``dy/ds = eps``; float64. Returns ``x`` at ``s_end`` (``alpha y``)."""
    a0, _ = alpha_sigma(s_start)
    y = x.to(F64) / a0

    def f_u(y: Tensor, u: float) -> Tensor:
        s = math.exp(u)
        a, sig = alpha_sigma(s)
        return s * eps(a * y, a, sig)

    def f_s(y: Tensor, s: float) -> Tensor:
        a, sig = alpha_sigma(s)
        return eps(a * y, a, sig)

    def rk4(
        f: Callable[[Tensor, float], Tensor], y: Tensor, u0: float, u1: float, n: int
    ) -> Tensor:
        h = (u1 - u0) / n
        for i in range(n):
            u = u0 + i * h
            k1 = f(y, u)
            k2 = f(y + 0.5 * h * k1, u + 0.5 * h)
            k3 = f(y + 0.5 * h * k2, u + 0.5 * h)
            k4 = f(y + h * k3, u + h)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y

    s_low = max(s_end, 0.02)
    y = rk4(f_u, y, math.log(s_start), math.log(s_low), steps)
    if s_end < s_low:
        y = rk4(f_s, y, s_low, s_end, 40)
    return alpha_sigma(s_end)[0] * y


# -- the two libraries on one schedule ------------------------------------------------------------


@dataclass
class Pair:
    """A diffusers scheduler and the polyfold sampler run on its grid."""

    name: str
    make: Callable[[dict[str, Any]], Any]  # diffusers scheduler from the schedule kwargs
    steps: Callable[[int], int]  # num_inference_steps for an NFE budget (0: infeasible)
    polyfold: Callable[..., S.SampleResult]  # (den, path, x, grid, sched) -> result
    extras: dict[str, Callable[..., S.SampleResult]]  # polyfold-only variants on the same grid


def _grid_sigmas(sched: Any) -> list[float]:
    """``sigma/alpha`` of the scheduler's grid, noisiest first, after ``set_timesteps``. PNDM's
    last step, from step 0 to ``alphas_cumprod[0]``, has zero length and is left out."""
    kind = type(sched).__name__
    ac = sched.alphas_cumprod.double()

    def s_of(k: int) -> float:
        return float(((1 - ac[k]) / ac[k]).sqrt())

    if kind == "HeunDiscreteScheduler":
        sig = sched.sigmas.double().tolist()
        return [sig[0], *sig[1:-1:2], sig[-1]]
    if kind == "DDIMScheduler":
        final = 0.0 if sched.config.set_alpha_to_one else s_of(0)
        return [s_of(int(k)) for k in sched.timesteps] + [final]
    if kind == "PNDMScheduler":
        return [s_of(int(k)) for k in sorted(sched._timesteps.tolist(), reverse=True)]
    out: list[float] = sched.sigmas.double().tolist()
    return out


def _singlestep_plan(sched: Any) -> list[int]:
    """diffusers' singlestep order list as polyfold's per-step orders (a k-th order step
    spans k grid intervals there; polyfold's outer grid keeps every step boundary)."""
    orders, i, lst = [], 0, list(sched.order_list)
    while i < len(lst):
        k = 1
        while i + k < len(lst) and lst[i + k] == k + 1:
            k += 1
        orders.append(k)
        i += k
    return orders


def _to_t(path: DiscreteDDPM, sigmas: list[float]) -> Tensor:
    lam = torch.tensor([-2.0 * math.log(s) if s > 0 else math.inf for s in sigmas], dtype=F64)
    return path.t_from_log_snr(lam)


def pairs() -> list[Pair]:
    import diffusers as D

    def ms(order: int) -> Callable[..., S.SampleResult]:
        return lambda d, p, x, g, s: S.dpm_solver_pp(d, p, x, g, order=order)

    def singlestep(d: Any, p: Any, x: Tensor, g: Tensor, s: Any) -> S.SampleResult:
        plan = _singlestep_plan(s)
        bounds = [0]
        for k in plan:
            bounds.append(bounds[-1] + k)
        return S.dpm_solver_pp(d, p, x, g[bounds], method="singlestep", orders=plan)

    same = {"steps": lambda n: n}
    return [
        Pair(
            "DPMSolverMultistep-2M",
            lambda kw: D.DPMSolverMultistepScheduler(**kw, solver_order=2),
            same["steps"],
            ms(2),
            {
                "unipc-bh1-2": lambda d, p, x, g, s: S.unipc(d, p, x, g, variant="bh1"),
                "unipc-bh1-3": lambda d, p, x, g, s: S.unipc(d, p, x, g, order=3, variant="bh1"),
            },
        ),
        Pair(
            "DPMSolverMultistep-3M",
            lambda kw: D.DPMSolverMultistepScheduler(**kw, solver_order=3),
            same["steps"],
            ms(3),
            {
                "unipc-bh2-3": lambda d, p, x, g, s: S.unipc(d, p, x, g, order=3),
                "ipndm": lambda d, p, x, g, s: S.pndm(d, p, x, g, variant="ipndm"),
            },
        ),
        Pair(
            "DPMSolverSinglestep",
            lambda kw: D.DPMSolverSinglestepScheduler(**kw),
            same["steps"],
            singlestep,
            {},
        ),
        Pair(
            "UniPCMultistep",
            lambda kw: D.UniPCMultistepScheduler(**kw),
            same["steps"],
            lambda d, p, x, g, s: S.unipc(d, p, x, g, order=2, variant="bh2"),
            {},
        ),
        Pair(
            "DEISMultistep",
            lambda kw: D.DEISMultistepScheduler(**kw),
            same["steps"],
            lambda d, p, x, g, s: S.deis(d, p, x, g, order=2, basis="log_rho"),
            {
                "deis-tAB-2": lambda d, p, x, g, s: S.deis(d, p, x, g, order=2),
                "deis-tAB-3": lambda d, p, x, g, s: S.deis(d, p, x, g, order=3),
            },
        ),
        Pair(
            "EulerDiscrete",
            lambda kw: D.EulerDiscreteScheduler(**kw),
            same["steps"],
            lambda d, p, x, g, s: S.euler(d, p, x, g, variable="sigma"),
            {},
        ),
        Pair(
            "HeunDiscrete",
            lambda kw: D.HeunDiscreteScheduler(**kw),
            lambda n: (n + 1) // 2,
            lambda d, p, x, g, s: S.heun(d, p, x, g, variable="sigma"),
            {},
        ),
        Pair(
            "PNDM",
            lambda kw: D.PNDMScheduler(**kw),
            lambda n: n - 9 if n >= 13 else 0,
            lambda d, p, x, g, s: S.pndm(d, p, x, g),
            {},
        ),
        Pair(
            "DDIM",
            lambda kw: D.DDIMScheduler(**kw, clip_sample=False),
            same["steps"],
            lambda d, p, x, g, s: S.ddim(d, p, x, g),
            {},
        ),
    ]


def noise_levels(sched: Any) -> dict[float, float]:
    """``sigma/alpha`` of every timestep the scheduler passes to the model (after
    ``set_timesteps``): from ``alphas_cumprod`` (DDIM, PNDM) or its ``sigmas`` table."""
    if type(sched).__name__ in ("DDIMScheduler", "PNDMScheduler"):
        ac = sched.alphas_cumprod.double()
        ks = set(sched.timesteps.tolist())
        return {float(k): float(((1 - ac[k]) / ac[k]).sqrt()) for k in ks}
    n = len(sched.timesteps)
    times, sigmas = sched.timesteps.double().tolist(), sched.sigmas[:n].double().tolist()
    return dict(zip(times, sigmas, strict=True))


def start_state(sched: Any, steps: int, x_t: Tensor) -> Tensor:
    """The state the model first sees, ``scale_model_input(x_t * init_noise_sigma)``: diffusers'
    start in the ``x = alpha x0 + sigma eps`` space (``sigma/alpha``-space schedulers start from
    ``x_t * sigma_max`` there, i.e. ``alpha(t_max) sigma_max x_t`` here)."""
    sched.set_timesteps(steps)
    out: Tensor = sched.scale_model_input(x_t * sched.init_noise_sigma, sched.timesteps[0])
    return out


def run_diffusers(
    sched: Any, steps: int, x_t: Tensor, model: Callable[[Tensor, Tensor], Tensor]
) -> tuple[Tensor, int]:
    """diffusers' sampling loop, ``set_timesteps`` included; ``model(input, timestep)``."""
    sched.set_timesteps(steps)
    x = x_t * sched.init_noise_sigma
    nfe = 0
    for t in sched.timesteps:
        out = model(sched.scale_model_input(x, t), t)
        nfe += 1
        x = sched.step(out, t, x).prev_sample
    return x, nfe


# -- metrics --------------------------------------------------------------------------------------


def rms(a: Tensor, b: Tensor) -> float:
    return float((a.to(F64) - b.to(F64)).pow(2).mean().sqrt())


# -- the benchmark ------------------------------------------------------------------------------


class Case:
    """One target: a schedule, a dimension, its mixture, initial noise and exact references."""

    def __init__(self, sched_name: str, kw: dict[str, Any], dim: int) -> None:
        self.name, self.kw, self.dim = sched_name, kw, dim
        self.path = DiscreteDDPM(
            kind=kw["beta_schedule"], beta_start=kw["beta_start"], beta_end=kw["beta_end"]
        )
        gmm = make_target(dim, seed=dim)
        self.target = gmm
        self.eps = MixtureEps(gmm)
        check_model(gmm, self.eps, self.path)
        self.truth = gmm.sample(20000, generator=torch.Generator().manual_seed(1), dtype=F64)
        self.x_t = torch.randn(BATCH, dim, generator=torch.Generator().manual_seed(2))
        self.fixed = torch.zeros(BATCH, dim)
        self.den_fixed = as_denoiser(self.fixed_model, self.path, prediction="eps")
        self.call_cost = time_call(self._hundred_calls, repeats=5) / 100
        self.refs: dict[tuple[float, float, float], Tensor] = {}

    def model(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        """The exact model for polyfold: its noise level from the path at ``t``."""
        tt = t[:1].to(F64)
        return self.eps(x, float(self.path.alpha(tt)), float(self.path.sigma(tt)))

    def eps_at(self, x: Tensor, s_tilde: float) -> Tensor:
        """The exact model for diffusers: its noise level from the scheduler's tables."""
        return self.eps(x, *alpha_sigma(s_tilde))

    def fixed_model(self, *args: Any) -> Tensor:
        """The timing model: a fixed tensor."""
        return self.fixed

    def _hundred_calls(self) -> None:
        for _ in range(100):
            self.fixed_model(self.x_t, 0.5)

    def reference(self, x_start: Tensor, sig: list[float]) -> Tensor:
        """The exact ODE endpoint at ``sig[-1]`` from ``x_start`` at ``sig[0]`` (cached)."""
        key = (sig[0], sig[-1], float(x_start.abs().sum()))
        if key not in self.refs:
            self.refs[key] = reference(self.eps, x_start, sig[0], sig[-1])
        return self.refs[key]


def _row(
    case: Case, lib: str, sampler: str, x: Any, nfe: int, budget: int, ref: Tensor, us: float
) -> dict[str, Any]:
    assert isinstance(x, Tensor)
    return {
        "library": lib,
        "sampler": sampler,
        "path": case.name,
        "dim": case.dim,
        "nfe": nfe,
        "budget": budget,
        "ode_error": rms(x, ref),
        "sw2": sliced_wasserstein(x, case.truth),
        "us_per_step": us,
    }


def _sched_grid(pair: Pair, case: Case, steps: int) -> Tensor:
    """The scheduler's time grid of ``steps`` steps."""
    sched = pair.make(case.kw)
    sched.set_timesteps(steps)
    return _to_t(case.path, _grid_sigmas(sched))


def bench_pair(case: Case, pair: Pair, budget: int) -> tuple[list[dict[str, Any]], float, float]:
    """Rows of one scheduler pair at one NFE budget, and the two per-step overheads."""
    steps = pair.steps(budget)
    sched = pair.make(case.kw)  # built once, as a user would; set_timesteps is timed
    sched.set_timesteps(steps)
    sig = _grid_sigmas(sched)
    grid = _to_t(case.path, sig)
    path, x_t = case.path, case.x_t
    x_start = start_state(sched, steps, x_t)  # both libraries start here
    ref = case.reference(x_start, sig)

    levels = noise_levels(sched)
    out_d, nfe_d = run_diffusers(sched, steps, x_t, lambda x, t: case.eps_at(x, levels[float(t)]))
    res = pair.polyfold(as_denoiser(case.model, path, prediction="eps"), path, x_start, grid, sched)

    def fixed_eps(x: Tensor, t: Tensor) -> Tensor:
        return case.fixed

    # polyfold's counterpart of set_timesteps: building a grid of as many points
    t_grid = time_call(partial(S.uniform_t_grid, path, len(grid) - 1), repeats=5)
    t_d = time_call(lambda: run_diffusers(sched, steps, x_t, fixed_eps), repeats=5)
    t_p = t_grid + time_call(
        partial(pair.polyfold, case.den_fixed, path, x_start, grid, sched), repeats=5
    )
    us_d = (t_d - nfe_d * case.call_cost) / nfe_d * 1e6
    us_p = (t_p - res.nfe * case.call_cost) / res.nfe * 1e6
    rows = [
        _row(case, "diffusers", pair.name, out_d, nfe_d, budget, ref, us_d),
        _row(case, "polyfold", pair.name, res.x, res.nfe, budget, ref, us_p),
    ]
    for extra, fn in pair.extras.items():
        res = fn(as_denoiser(case.model, path, prediction="eps"), path, x_start, grid, sched)
        t_x = t_grid + time_call(partial(fn, case.den_fixed, path, x_start, grid, sched), repeats=3)
        us_x = (t_x - res.nfe * case.call_cost) / res.nfe * 1e6
        rows.append(_row(case, "polyfold", extra, res.x, res.nfe, budget, ref, us_x))
    if pair.name == "UniPCMultistep":  # the few-step methods on this scheduler's grids
        rows += teleport_rows(case, case.target, x_start, grid, ref, budget, _row)
        rows += dc_rows(case, case.target, x_start, grid, ref, budget, _row)
        rows += usf_rows(case, case.target, x_start, grid, ref, budget, _row)
        rows += dlg_rows(
            case, case.target, x_start, partial(_sched_grid, pair, case), ref, budget, _row
        )
    return rows, us_p, us_d


def main(argv: list[str] | None = None) -> None:
    skip = {
        "--no-domains": "leave out the domain rows (QM9, TSDiff): the mixture test-bed only",
        "--scaled-linear-64": "the scaled_linear target at dimension 64 only (full settings)",
    }
    args = parse_args(__doc__.splitlines()[0], argv, skip)
    try:
        import diffusers  # noqa: F401
    except ImportError:
        print("diffusers is not installed: pip install diffusers (the peer of this benchmark)")
        return
    torch.set_num_threads(1)
    quick = args.quick
    configure(quick)
    configure_dlg(quick)
    configure_domains(quick)
    nfes = [4, 6, 8, 10, 20] if quick else [4, 6, 8, 10, 15, 20, 50]
    dims = [2, 16, 64]
    schedules = {
        "linear": {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02},
        "scaled_linear": {
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "beta_end": 0.012,
        },
    }
    if quick:
        schedules = {"linear": schedules["linear"]}
    if args.scaled_linear_64:  # issue 25's hardest target alone
        schedules, dims = {"scaled_linear": schedules["scaled_linear"]}, [64]
    rows: list[dict[str, Any]] = []
    overhead: dict[str, list[float]] = {}
    ref_error = 0.0
    started = time.perf_counter()
    for sched_name, kw in schedules.items():
        for dim in dims:
            case = Case(sched_name, {**kw, "num_train_timesteps": 1000}, dim)
            if dim == dims[0]:  # the reference's own error: 600 steps against 1200
                ac = case.path.alphas_cumprod.double()
                s_top = float(((1 - ac[-1]) / ac[-1]).sqrt())
                coarse = reference(case.eps, case.x_t, s_top, 0.0)
                ref_error = max(
                    ref_error, rms(coarse, reference(case.eps, case.x_t, s_top, 0.0, 1200))
                )
            for pair in pairs():
                for budget in nfes:
                    if pair.steps(budget) <= 0:
                        continue
                    new, us_p, us_d = bench_pair(case, pair, budget)
                    rows += new
                    overhead.setdefault(pair.name, []).extend([us_p, us_d])
            print(f"# {sched_name} dim={dim}: {time.perf_counter() - started:.0f}s", flush=True)

    summary = {**summarize(rows, overhead), **summarize_teleport(rows), **summarize_dlg(rows)}
    summary.update(summarize_dc(rows))
    summary.update(nfe_for_peer_nfe10_error(rows))
    summary.update(summarize_usf(rows))
    summary["best_polyfold_sampler_nfe_le_10"] = best_per_nfe(rows)
    domain = [] if args.no_domains else domain_rows()  # issue 25's: QM9 and TSDiff, plain vs USF
    if domain:
        summary.update(summarize_domains(domain))
    cols = ["library", "sampler", "path", "dim", "nfe", "ode_error", "sw2", "us_per_step"]
    print_table(rows, cols)
    print()
    dcols = ["domain", "calls", "sampler", "nfe", "calib_error", "ref_error", "validity"]
    print_table(domain, [*dcols, "uniqueness", "fcd", "crps", "best_plain", "search_seconds"])
    print()
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(f"reference ODE error (600 vs 1200 RK4 steps, RMS): {ref_error:.2e}")
    write_json(
        args.out,
        rows,
        summary,
        quick=quick,
        batch=BATCH,
        nfe_budgets=nfes,
        reference_error=ref_error,
        threads=1,
        targets=[f"{name}/{dim}" for name in schedules for dim in dims],
        domain_rows=domain,
    )


def summarize(rows: list[dict[str, Any]], overhead: dict[str, list[float]]) -> dict[str, Any]:
    """The goal figures: ``R`` (error, NFE <= 10) and ``S`` (per-step overhead, per pair: total
    polyfold over total diffusers time across its rows), plus the worst single row of ``S``."""
    worst, where = 0.0, None
    keys = {(r["path"], r["dim"], r["budget"]) for r in rows if r["budget"] <= 10}
    for key in sorted(keys):
        best = {}
        for lib in ("polyfold", "diffusers"):
            errs = [
                r["ode_error"]
                for r in rows
                if (r["path"], r["dim"], r["budget"]) == key
                and r["library"] == lib
                and not r.get("stochastic")
            ]
            best[lib] = min(errs)
        ratio = best["polyfold"] / best["diffusers"]
        if ratio > worst:
            worst, where = ratio, key
    ratios, row_worst = {}, 0.0
    for name, vals in overhead.items():
        p, d = vals[0::2], vals[1::2]
        ratios[name] = sum(p) / sum(d)
        row_worst = max(row_worst, *(a / b for a, b in zip(p, d, strict=True)))
    worst_pair = max(ratios, key=ratios.__getitem__)
    return {
        "worst_error_ratio_nfe_le_10": worst,
        "worst_error_ratio_at": list(where) if where else None,
        "worst_overhead_ratio": ratios[worst_pair],
        "worst_overhead_pair": worst_pair,
        "overhead_ratio_per_pair": ratios,
        "worst_overhead_ratio_single_run": row_worst,
    }


if __name__ == "__main__":
    main()
