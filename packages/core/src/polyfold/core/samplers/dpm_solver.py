r"""DPM-Solver (Lu et al. 2022), DPM-Solver++ (Lu et al. 2022b) and SDE-DPM-Solver++(2M).

All are exponential integrators in the half log-SNR ``ell = log(alpha/sigma)`` (see
:mod:`polyfold.core.samplers._expint`): with ``h = ell_t - ell_s``, a step is
``x_t = a x_s + sum_j w_j m_j`` where ``m`` is the model's noise prediction ``eps`` (DPM-Solver:
``a = alpha_t/alpha_s``, first-order weight ``-sigma_t (e^h - 1)``) or its data prediction ``x0``
(DPM-Solver++: ``a = sigma_t/sigma_s``, first-order weight ``alpha_t (1 - e^{-h})``). Writing
``c_0 = b H phi_1(z)`` and ``c_1 = b H phi_2(z)`` for the frame's weights:

- singlestep order 2 (DPM-Solver-2 / DPM-Solver++(2S), ``r_1 = 1/2``): ``u = `` first-order step
  to ``s_1`` (``ell_{s_1} = ell_s + r_1 h``), then
  ``x_t = a x_s + c_0 [m_s + (m(u, s_1) - m_s) / (2 r_1)]``;
- singlestep order 3 (DPM-Solver-3, ``r_1 = 1/3, r_2 = 2/3``):
  ``u_1`` as above, ``u_2 = a_2 x_s + c_0' m_s + (r_2/r_1) c_1' (m_1 - m_s)`` (frame ``s -> s_2``),
  ``x_t = a x_s + c_0 m_s + c_1 (m_2 - m_s) / r_2``;
- multistep order 2 (DPM-Solver-2M / DPM-Solver++(2M), ``r = h_{prev}/h``):
  ``x_t = a x_s + c_0 [(1 + 1/(2r)) m_0 - m_{-1}/(2r)]``;
- multistep order 3: ``x_t = a x_s + c_0 m_0 + c_1 D_1 + 2 c_2 D_2`` with ``D_1 = h m'``,
  ``D_2 = h^2 m''/2`` from the quadratic through the last three outputs, i.e. the exact integral
  of that quadratic (:func:`~polyfold.core.samplers._expint.poly_weights`). (The reference code
  of DPM-Solver, diffusers and k-diffusion weights ``D_2`` by ``c_2`` instead of ``2 c_2``,
  which is only second order; this one is third order.)
- SDE-DPM-Solver++(2M): frame ``a = (sigma_t/sigma_s) e^{-h}``, ``c_0 = alpha_t (1 - e^{-2h})``,
  the 2M combination, plus ``sigma_t sqrt(1 - e^{-2h}) z``.

Multistep solvers start with lower orders (order ``k`` from the ``k``-th step) and, with
``lower_order_final`` on grids of fewer than 15 steps, end with them (the last step first
order, the one before at most second), as the reference implementations. A step to the data
point is the final denoising step. Intermediate times of singlestep solvers are placed by the
reference path (the first key of a dict state); each key uses its own ``r`` there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers._compensate import compensate
from polyfold.core.samplers._core import Level, NoiseFn, Paths, Run, lincomb, smap
from polyfold.core.samplers._expint import Kind, frame, poly_weights
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = [
    "dpm_solver",
    "dpm_solver_pp",
    "sde_dpm_solver_pp_2m",
    "singlestep_orders",
]

Method = Literal["singlestep", "multistep"]
_LOWER_ORDER_FINAL_STEPS = 15


def singlestep_orders(nfe: int, order: int) -> list[int]:
    """DPM-Solver-fast's per-step orders for a budget of ``nfe`` model calls.

    Order 3: ``K = nfe//3 + 1`` steps, ``[3]*(K-2) + [2, 1]``, ``[3]*(K-1) + [1]`` or
    ``[3]*(K-1) + [2]`` for ``nfe % 3 = 0, 1, 2``; order 2: ``[2]*(nfe/2)`` or
    ``[2]*(nfe//2) + [1]``; order 1: ``[1]*nfe``. Build the grid with ``len(orders)`` steps.
    """
    if order not in (1, 2, 3):
        raise InputError(f"order: expected 1, 2 or 3, got {order!r}")
    if not (isinstance(nfe, int) and nfe >= order):
        raise InputError(f"nfe: expected an integer >= order = {order}, got {nfe!r}")
    if order == 1:
        return [1] * nfe
    if order == 2:
        return [2] * (nfe // 2) + [1] * (nfe % 2)
    k = nfe // 3 + 1
    tail = {0: [2, 1], 1: [1], 2: [2]}[nfe % 3]
    return [3] * (k - 1 - (nfe % 3 == 0)) + tail


def _check_order(order: int, allowed: Sequence[int]) -> None:
    if order not in allowed:
        raise InputError(f"order: expected one of {list(allowed)}, got {order!r}")


def _check_alpha(run: Run, kind: Kind) -> None:
    if kind == "eps" and any(lv.alpha <= 0 for i in range(run.steps) for lv in run.level_list(i)):
        raise InputError(
            f"{run.name}: the noise-prediction solver needs alpha > 0 on the grid (alpha = 0 "
            "at the start of an interpolant); start below t = 1 or use the x0 (++) variant"
        )


def _first(kind: Kind, s: Level, t: Level, x: Tensor, m: Tensor) -> Tensor:
    fr = frame(kind, s, t)
    return lincomb(x, fr.a, [fr.coef(0)], [m])


_FRACS = {2: (0.5,), 3: (1.0 / 3.0, 2.0 / 3.0)}


def _stages(run: Run, plan: Sequence[int]) -> list[list[tuple[float, Any]]]:
    """Per step, the intermediate points ``(t, level tree)`` of a DPM-Solver-``k`` step: where the
    reference path's half log-SNR is ``ell_s + r h`` (``r = 1/2``; ``1/3, 2/3``), evaluated at
    once. A step from ``alpha = 0`` (``ell = -inf``) or to the data point gets none (order 1)."""
    ells, owners = [], []
    for i, k in enumerate(plan):
        rs, rt = run.ref(run.lv(i)), run.ref(run.lv(i + 1))
        if k > 1 and not run.final(i) and math.isfinite(rs.ell):
            ells += [rs.ell + r * (rt.ell - rs.ell) for r in _FRACS[k]]
            owners += [i] * (k - 1)
    ts = run.t_of_ells(ells)
    out: list[list[tuple[float, Any]]] = [[] for _ in plan]
    for i, t, lv in zip(owners, ts, run.at_many(ts), strict=True):
        out[i].append((t, lv))
    return out


def _singlestep_update(
    run: Run, kind: Kind, x: State, ms: State, i: int, stages: list[tuple[float, Any]]
) -> State:
    """One DPM-Solver step from grid point ``i`` (``ms`` the model output there), of order
    ``len(stages) + 1``."""
    s, t = run.lv(i), run.lv(i + 1)
    if not stages:
        return smap(lambda xi, mi, si, ti: _first(kind, si, ti, xi, mi), x, ms, s, t)
    stage_t = [st for st, _ in stages]
    stage_lv = [lv for _, lv in stages]

    def r_of(si: Level, ti: Level, ui: Level) -> float:
        return (ui.ell - si.ell) / (ti.ell - si.ell)

    u1 = run.keep(
        smap(lambda xi, mi, si, ui: _first(kind, si, ui, xi, mi), x, ms, s, stage_lv[0]), x
    )
    m1 = _pred(kind, run.denoise(u1, stage_t[0], stage_lv[0]))
    if len(stages) == 1:

        def step2(xi: Tensor, m0: Tensor, m1i: Tensor, si: Level, ti: Level, ui: Level) -> Tensor:
            fr, r1 = frame(kind, si, ti), r_of(si, ti, ui)
            c0 = fr.coef(0)
            return lincomb(xi, fr.a, [c0 * (1 - 0.5 / r1), c0 * 0.5 / r1], [m0, m1i])

        return smap(step2, x, ms, m1, s, t, stage_lv[0])

    def stage2(
        xi: Tensor, m0: Tensor, m1i: Tensor, si: Level, ti: Level, u1i: Level, u2i: Level
    ) -> Tensor:
        fr, r1, r2 = frame(kind, si, u2i), r_of(si, ti, u1i), r_of(si, ti, u2i)
        c0, c1 = fr.coef(0), fr.coef(1) * r2 / r1
        return lincomb(xi, fr.a, [c0 - c1, c1], [m0, m1i])

    u2 = run.keep(smap(stage2, x, ms, m1, s, t, stage_lv[0], stage_lv[1]), x)
    m2 = _pred(kind, run.denoise(u2, stage_t[1], stage_lv[1]))

    def step3(xi: Tensor, m0: Tensor, m2i: Tensor, si: Level, ti: Level, u2i: Level) -> Tensor:
        fr, r2 = frame(kind, si, ti), r_of(si, ti, u2i)
        c0, c1 = fr.coef(0), fr.coef(1) / r2
        return lincomb(xi, fr.a, [c0 - c1, c1], [m0, m2i])

    return smap(step3, x, ms, m2, s, t, stage_lv[1])


def _pred(kind: Kind, d: Any) -> State:
    return d.eps if kind == "eps" else d.x0  # type: ignore[no-any-return]


def _singlestep(
    name: str,
    kind: Kind,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    order: int,
    orders: Sequence[int] | None,
    mask: Mask,
    callback: StepCallback | None = None,
) -> SampleResult:
    _check_order(order, (1, 2, 3))
    run = Run(name, denoiser, paths, x, grid, mask=mask, callback=callback)
    _check_alpha(run, kind)
    plan = [order] * run.steps if orders is None else list(orders)
    if len(plan) != run.steps or any(k not in (1, 2, 3) for k in plan):
        raise InputError(
            f"orders: expected {run.steps} orders in {{1, 2, 3}} (one per grid step), got {plan}"
        )
    stages = _stages(run, plan)
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        x = run.keep(_singlestep_update(run, kind, x, _pred(kind, d), i, stages[i]), x)
        run.report(i, x, d.x0)
    return run.result(x)


def _multistep_weights(
    kind: Kind, order: int, lvs: list[Level], t: Level
) -> tuple[float, list[float]]:
    """``(a, w)`` of a multistep step from ``lvs[0]`` (history newest first) to ``t``."""
    s = lvs[0]
    fr = frame(kind, s, t)
    finite = 1
    while finite < order and math.isfinite(lvs[finite].ell) and math.isfinite(s.ell):
        finite += 1
    order = min(order, finite)
    if order == 1:
        return fr.a, [fr.coef(0)]
    nodes = [(lv.ell - s.ell) / fr.h for lv in lvs[:order]]
    if order == 2:  # DPM-Solver(++)-2M: m_0 + (m_0 - m_1) / (2 r), r = h_prev / h = -u_1
        c0, r = fr.coef(0), -nodes[1]
        return fr.a, [c0 * (1 + 0.5 / r), -c0 * 0.5 / r]
    return fr.a, poly_weights(fr, nodes)


def _multistep_key(
    kind: Kind, order: int, idx: list[int], x: Tensor, lvs: list[Level], t: Level, *outs: Tensor
) -> Tensor:
    """One key's multistep update; ``outs`` the history (newest first), then the SDE noise."""
    a, w = _multistep_weights(kind, order, [lvs[j] for j in idx], t)
    terms = list(outs[: len(w)])
    if kind == "sde":
        w = [*w, t.sigma * math.sqrt(-math.expm1(-2.0 * (t.ell - lvs[idx[0]].ell)))]
        terms.append(outs[-1])
    return lincomb(x, a, w, terms)


def _multistep(
    name: str,
    kind: Kind,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    order: int,
    lower_order_final: bool,
    mask: Mask,
    generator: torch.Generator | None = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
    ratios: Sequence[float] | None = None,
) -> SampleResult:
    _check_order(order, (1, 2, 3))
    run = Run(
        name,
        denoiser,
        paths,
        x,
        grid,
        mask=mask,
        generator=generator,
        noise=noise,
        stochastic=kind == "sde",
        callback=callback,
    )
    _check_alpha(run, kind)
    history: list[tuple[int, State]] = []
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        history = [(i, _pred(kind, d)), *history][:order]
        if ratios is not None:  # DC-Solver's plug-in for a predictor-only sampler
            history[0] = (i, compensate(run, history, ratios, i))
        p = len(history)
        if lower_order_final and run.steps < _LOWER_ORDER_FINAL_STEPS:
            p = min(p, run.steps - i)
        idx = [j for j, _ in history[:p]]
        outs = [m for _, m in history[:p]]
        if kind == "sde":
            outs.append(run.noise(x))
        fn = partial(_multistep_key, kind, p, idx)
        x = run.keep(smap(fn, x, run.levels, run.lv(i + 1), *outs), x)
        run.report(i, x, d.x0)
    return run.result(x)


def _by_method(
    name: str,
    kind: Kind,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    order: int,
    method: Method,
    orders: Sequence[int] | None,
    lower_order_final: bool,
    mask: Mask,
    callback: StepCallback | None,
    ratios: Sequence[float] | None = None,
) -> SampleResult:
    """Run the singlestep or the multistep form of a DPM-Solver variant."""
    if method == "singlestep":
        if ratios is not None:
            raise InputError("ratios: compensation needs method='multistep'")
        return _singlestep(name, kind, denoiser, paths, x, grid, order, orders, mask, callback)
    if method != "multistep":
        raise InputError(f"method: expected 'singlestep' or 'multistep', got {method!r}")
    return _multistep(
        name,
        kind,
        denoiser,
        paths,
        x,
        grid,
        order,
        lower_order_final,
        mask,
        callback=callback,
        ratios=ratios,
    )


def dpm_solver(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    order: int = 3,
    method: Method = "singlestep",
    orders: Sequence[int] | None = None,
    lower_order_final: bool = True,
    mask: Mask = None,
    callback: StepCallback | None = None,
    ratios: Sequence[float] | None = None,
) -> SampleResult:
    """DPM-Solver with the noise prediction ``eps``: singlestep orders 1-3, multistep 2-3.

    Args:
        denoiser: the :class:`~polyfold.core.denoiser.Denoiser`.
        paths: the path (a dict of paths for dict states).
        x: the initial state at ``grid[0]``.
        grid: decreasing times (:mod:`~polyfold.core.samplers.grids`).
        order: the solver order.
        method: ``"singlestep"`` (``order`` model calls per step) or ``"multistep"`` (one).
        orders: singlestep only, one order per step (e.g. :func:`singlestep_orders`).
        lower_order_final: multistep only, lower orders in the last steps of short grids.
        mask: validity mask; padded entries stay untouched.
        callback: ``callback(step, t, x, x0)`` after every step.
        ratios: multistep only, DC-Solver's compensation ratio of each step (see
            :mod:`~polyfold.core.samplers.compensation`); ``None`` or ones: plain.
    """
    args = (denoiser, paths, x, grid, order, method, orders, lower_order_final, mask, callback)
    return _by_method("dpm_solver", "eps", *args, ratios=ratios)


def dpm_solver_pp(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    order: int = 2,
    method: Method = "multistep",
    orders: Sequence[int] | None = None,
    lower_order_final: bool = True,
    mask: Mask = None,
    callback: StepCallback | None = None,
    ratios: Sequence[float] | None = None,
) -> SampleResult:
    """DPM-Solver++ with the data prediction ``x0``: (2M), 3M, (2S) and singlestep 1-3.

    Arguments as :func:`dpm_solver`; the default is DPM-Solver++(2M).
    """
    args = (denoiser, paths, x, grid, order, method, orders, lower_order_final, mask, callback)
    return _by_method("dpm_solver_pp", "x0", *args, ratios=ratios)


def sde_dpm_solver_pp_2m(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    generator: torch.Generator | None = None,
    noise: NoiseFn | None = None,
    lower_order_final: bool = True,
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """SDE-DPM-Solver++(2M): the second-order multistep solver of the reverse SDE (x0).

    ``noise``: a :data:`~polyfold.core.samplers._core.NoiseFn` drawing its noise (default i.i.d.).
    """
    return _multistep(
        "sde_dpm_solver_pp_2m",
        "sde",
        denoiser,
        paths,
        x,
        grid,
        2,
        lower_order_final,
        mask,
        generator,
        noise,
        callback,
    )
