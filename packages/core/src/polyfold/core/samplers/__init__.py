"""Samplers: pure functions of a denoiser, a path, a starting state and a decreasing time grid.

Every sampler is called as ``sampler(denoiser, paths, x, grid, *, ..., mask=None)`` and returns
a :class:`SampleResult` (final state and number of model calls). ``denoiser`` is a
:class:`~polyfold.core.denoiser.Denoiser` (wrap a network with
:func:`~polyfold.core.denoiser.as_denoiser`), ``paths`` the path or a dict of paths for dict
states, ``x`` the state at ``grid[0]`` (e.g. ``path.prior_sample``), ``grid`` decreasing times
from :mod:`~polyfold.core.samplers.grids`; random draws come from ``generator`` (stochastic
samplers also take ``noise``, a :data:`~polyfold.core.samplers._core.NoiseFn` shaping their
Gaussian noise, e.g. symmetric for adjacency matrices); padded entries of masked states stay
untouched; ``callback(step, t, x, x0)`` (:data:`StepCallback`) sees every step. Samplers by
name: :func:`get_sampler`, :func:`available_samplers`. Samplers work in the half log-SNR
through the path's methods and never special-case a schedule. No sampler returns NaN: a state
that is not finite at the end raises :class:`~polyfold.core.errors.NonFiniteError` naming the
sampler, the first step where it broke and the path (one host sync per run).

Fewer steps for the same sample (each hands over to any sampler by name): analytical
teleportation (:mod:`~polyfold.core.samplers.teleport`), Denoising Langevin Gibbs
(:mod:`~polyfold.core.samplers.dmcmc`), DC-Solver's compensation ratios for UniPC
(:mod:`~polyfold.core.samplers.compensation`) and USF's searched solver schedules
(:mod:`~polyfold.core.samplers.usf`).
"""

from polyfold.core.samplers.compensation import RatioRegression, fit_ratios
from polyfold.core.samplers.deis import deis
from polyfold.core.samplers.dmcmc import denoising_langevin_gibbs
from polyfold.core.samplers.dpm_solver import (
    dpm_solver,
    dpm_solver_pp,
    sde_dpm_solver_pp_2m,
    singlestep_orders,
)
from polyfold.core.samplers.edm import edm_heun
from polyfold.core.samplers.grids import (
    TimeShift,
    check_grid,
    karras_grid,
    log_snr_grid,
    quadratic_grid,
    uniform_t_grid,
    zero_time,
)
from polyfold.core.samplers.ode import euler, heun, midpoint, rk4
from polyfold.core.samplers.pndm import pndm
from polyfold.core.samplers.registry import (
    SamplerSpec,
    available_samplers,
    get_sampler,
    register_sampler,
)
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.samplers.reverse_diffusion import reverse_diffusion, reverse_diffusion_pc, s4
from polyfold.core.samplers.stochastic import ddim, ddpm, euler_maruyama, predictor_corrector
from polyfold.core.samplers.teleport import GaussianScore, MixtureScore, choose_skip, teleport
from polyfold.core.samplers.unipc import unipc
from polyfold.core.samplers.usf import SolverSchedule, load_schedule, search_schedule, usf

__all__ = [
    "GaussianScore",
    "MixtureScore",
    "RatioRegression",
    "SampleResult",
    "SamplerSpec",
    "SolverSchedule",
    "StepCallback",
    "TimeShift",
    "available_samplers",
    "check_grid",
    "choose_skip",
    "ddim",
    "ddpm",
    "deis",
    "denoising_langevin_gibbs",
    "dpm_solver",
    "dpm_solver_pp",
    "edm_heun",
    "euler",
    "euler_maruyama",
    "fit_ratios",
    "get_sampler",
    "heun",
    "karras_grid",
    "load_schedule",
    "log_snr_grid",
    "midpoint",
    "pndm",
    "predictor_corrector",
    "quadratic_grid",
    "register_sampler",
    "reverse_diffusion",
    "reverse_diffusion_pc",
    "rk4",
    "s4",
    "sde_dpm_solver_pp_2m",
    "search_schedule",
    "singlestep_orders",
    "teleport",
    "uniform_t_grid",
    "unipc",
    "usf",
    "zero_time",
]
