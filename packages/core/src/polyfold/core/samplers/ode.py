r"""Runge-Kutta solvers of the probability-flow ODE: Euler, Heun, midpoint and RK4.

Two integration variables (``variable``):

- ``"t"``: ``dx/dt = d_alpha(t) x0 + d_sigma(t) eps``, the probability-flow ODE written as the
  flow velocity (any Gaussian path, including interpolants started at ``alpha = 0``);
- ``"sigma"``: ``y = x/alpha`` in ``s = sigma/alpha = exp(-ell)``, where ``dy/ds = eps`` (EDM's
  ODE; its Euler step is DDIM). Needs ``alpha > 0`` and one log-SNR schedule for all keys.

An explicit tableau ``(c, A, b)`` with step ``du``: ``k_j = F(y + du sum_m A_jm k_m, u + c_j du)``,
``y_next = y + du sum_j b_j k_j``. In ``x`` this is ``x_j = a_j x + scale_j sum_m A_jm k_m``, with
``(a_j, scale_j) = (1, dt)`` for ``t`` and ``(alpha_j/alpha_s, alpha_j ds)`` for ``sigma``.
A step to the data point (``sigma = 0``, a grid ending at ``zero_time(path)``):

- with ``"sigma"`` it is the final denoising step, ``x = alpha x0`` (Euler in ``sigma``; Heun
  makes ``2N - 1`` model calls, as EDM and k-diffusion);
- with ``"t"`` it is the same final denoising step where the ODE cannot be stepped to the data
  point: a data point at ``t = -inf`` (VE) or infinite ``d_alpha, d_sigma`` there (VP);
- otherwise (flows, EDM) it is a full step, which keeps the method's order for a model that
  predicts its slope there (a velocity model of an interpolant). A data or noise prediction
  gives that slope as ``0 x inf`` (the noise prediction at ``sigma = 0``); when the full step is
  not finite the step falls back to the final denoising step (its extra model call is counted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.samplers._core import Level, Paths, Run, all_finite, lincomb, smap
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = ["EULER", "HEUN", "MIDPOINT", "RK4", "Tableau", "euler", "heun", "midpoint", "rk4"]

Variable = Literal["t", "sigma"]


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge-Kutta method: nodes ``c``, stage matrix ``a`` (rows), weights ``b``."""

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    @property
    def inner(self) -> tuple[float, ...]:
        """The distinct nodes strictly inside a step."""
        return tuple(sorted({c for c in self.c if 0.0 < c < 1.0}))


EULER = Tableau("euler", (0.0,), ((),), (1.0,))
HEUN = Tableau("heun", (0.0, 1.0), ((), (1.0,)), (0.5, 0.5))
MIDPOINT = Tableau("midpoint", (0.0, 0.5), ((), (0.5,)), (0.0, 1.0))
RK4 = Tableau(
    "rk4",
    (0.0, 0.5, 0.5, 1.0),
    ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    (1 / 6, 1 / 3, 1 / 3, 1 / 6),
)


def _slope(var: Variable, d: Denoised, lv: Any) -> State:
    """``F``: the velocity ``d_alpha x0 + d_sigma eps`` (``t``) or ``eps`` (``sigma``)."""
    if var == "sigma":
        return d.eps
    return smap(lambda x0, e, v: lincomb(x0, v.d_alpha, [v.d_sigma], [e]), d.x0, d.eps, lv)


def _combine(
    var: Variable, weights: Sequence[float], x: Tensor, s: Level, u: Level, e: Level, *ks: Tensor
) -> Tensor:
    """``x`` at level ``u`` of the step ``s -> e``: ``a x + scale sum_m weights_m k_m``."""
    if var == "t":
        a, scale = 1.0, e.t - s.t
    else:
        a, scale = u.alpha / s.alpha, u.alpha * (math.exp(-e.ell) - math.exp(-s.ell))
    return lincomb(x, a, [scale * w for w in weights], ks[: len(weights)])


def stage_levels(
    run: Run, tab: Tableau, var: Variable, steps: Sequence[tuple[Any, Any]]
) -> list[list[tuple[float, Any]]]:
    """For each step ``(s, e)`` (level trees), the ``(t, level tree)`` of its inner stages: at
    ``t_s + c dt`` (``"t"``) or where ``sigma/alpha = s_s + c ds`` (``"sigma"``), all evaluated
    at once."""
    inner = tab.inner
    if not inner or not steps:
        return [[] for _ in steps]
    ends = [(run.ref(s), run.ref(e)) for s, e in steps]
    if var == "t":
        ts = [rs.t + c * (re_.t - rs.t) for rs, re_ in ends for c in inner]
    else:
        ells = []
        for rs, re_ in ends:
            s0, s1 = math.exp(-rs.ell), math.exp(-re_.ell)
            ells += [-math.log(s0 + c * (s1 - s0)) for c in inner]
        ts = run.t_of_ells(ells)
    lvs = run.at_many(ts)
    k = len(inner)
    return [
        list(zip(ts[i * k : (i + 1) * k], lvs[i * k : (i + 1) * k], strict=True))
        for i in range(len(steps))
    ]


def rk_step(
    run: Run,
    tab: Tableau,
    var: Variable,
    x: State,
    s: Any,
    e: Any,
    d0: Denoised,
    inner: list[tuple[float, Any]] | None = None,
) -> State:
    """One step of ``tab`` from level tree ``s`` to ``e``; ``d0`` the denoiser at ``(x, s)``;
    ``inner`` the stages of :func:`stage_levels` (computed here if not given)."""
    inner = stage_levels(run, tab, var, [(s, e)])[0] if inner is None else inner
    points = dict(zip(tab.inner, inner, strict=True)) if inner else {}
    points[1.0] = (run.ref(e).t, e)
    ks = [_slope(var, d0, s)]
    for c, row in zip(tab.c[1:], tab.a[1:], strict=True):
        t_j, lv = points[c]
        x_j = run.keep(smap(partial(_combine, var, row), x, s, lv, e, *ks), x)
        d_j = run.denoise(x_j, t_j, lv)
        ks.append(_slope(var, d_j, lv))
    return run.keep(smap(partial(_combine, var, tab.b), x, s, e, e, *ks), x)


def solve_ode(
    tab: Tableau,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variable: Variable = "t",
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Integrate the probability-flow ODE along ``grid`` with the Runge-Kutta method ``tab``."""
    if variable not in ("t", "sigma"):
        raise InputError(f"variable: expected 't' or 'sigma', got {variable!r}")
    run = Run(
        tab.name,
        denoiser,
        paths,
        x,
        grid,
        mask=mask,
        one_log_snr=variable == "sigma",
        derivs=variable == "t",
        callback=callback,
    )
    if variable == "sigma" and run.ref(run.lv(0)).alpha <= 0:
        raise InputError(
            f"{tab.name}: variable='sigma' needs alpha > 0 at the grid's start; start below "
            "t = 1 or use variable='t'"
        )
    denoise_last = run.ends_at_zero and (variable == "sigma" or not _steppable_to_zero(run))
    body = run.steps - 1 if denoise_last else run.steps
    inner = stage_levels(run, tab, variable, [(run.lv(i), run.lv(i + 1)) for i in range(body)])
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if denoise_last and run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        new = rk_step(run, tab, variable, x, run.lv(i), run.lv(i + 1), d, inner[i])
        if run.final(i) and not bool(all_finite(new)):
            return run.result(run.denoise_to_zero(d, x))  # no slope at sigma = 0 (see above)
        x = run.report(i, new, d.x0)
    return run.result(x)


def _steppable_to_zero(run: Run) -> bool:
    """Whether the ``"t"`` ODE can be integrated to the grid's last time: finite, with finite
    ``d_alpha``, ``d_sigma`` there for every path."""
    if not math.isfinite(run.t[-1]):
        return False
    t0 = torch.tensor([run.t[-1]], dtype=F64)
    return all(
        bool(torch.isfinite(p.d_alpha(t0)).all() and torch.isfinite(p.d_sigma(t0)).all())
        for p in run.level_paths()
    )


def _doc(tab: Tableau, calls: str) -> str:
    return (
        f"{tab.name.capitalize()} on the probability-flow ODE ({calls} model calls per step; "
        "for a last step to the data point see :mod:`~polyfold.core.samplers.ode`).\n\n"
        "    Args:\n"
        "        denoiser: the :class:`~polyfold.core.denoiser.Denoiser`.\n"
        "        paths: the path (a dict of paths for dict states).\n"
        "        x: the initial state at ``grid[0]``.\n"
        "        grid: decreasing times (:mod:`~polyfold.core.samplers.grids`).\n"
        '        variable: ``"t"`` (flow velocity) or ``"sigma"`` (EDM\'s ``dy/ds = eps``).\n'
        "        mask: validity mask; padded entries stay untouched.\n"
        "        callback: ``callback(step, t, x, x0)`` after every step.\n"
    )


def euler(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variable: Variable = "t",
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    return solve_ode(
        EULER, denoiser, paths, x, grid, variable=variable, mask=mask, callback=callback
    )


def heun(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variable: Variable = "t",
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    return solve_ode(
        HEUN, denoiser, paths, x, grid, variable=variable, mask=mask, callback=callback
    )


def midpoint(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variable: Variable = "t",
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    return solve_ode(
        MIDPOINT, denoiser, paths, x, grid, variable=variable, mask=mask, callback=callback
    )


def rk4(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variable: Variable = "t",
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    return solve_ode(RK4, denoiser, paths, x, grid, variable=variable, mask=mask, callback=callback)


euler.__doc__ = _doc(EULER, "1")
heun.__doc__ = _doc(HEUN, "2")
midpoint.__doc__ = _doc(MIDPOINT, "2")
rk4.__doc__ = _doc(RK4, "4")
