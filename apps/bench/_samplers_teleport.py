"""Samplers benchmark section: analytical teleportation and Denoising Langevin Gibbs.

Per target: a Gaussian fitted to 5000 draws of the mixture (not the 20000 reference samples),
the hand-over time chosen by :func:`~polyfold.core.samplers.teleport.choose_skip` (256
calibration noises, ``TOL``, 24 model calls, once per target), then, on each UniPC-scheduler
grid, the same number of sampler steps on that grid compressed affinely into
``[t_last, t_skip]`` (the schedule's spacing kept), from the same start state. Rows are named
``teleport+<sampler>``; their ``ode_error`` is still against the exact ODE endpoint from the
original start, so the teleport's own approximation error counts.

Denoising Langevin Gibbs (``dlg+unipc-bh2-3``): per target and NFE, the hand-over tolerance,
the number of Langevin-Gibbs iterations and their step (``DLG_SETTINGS``) are chosen on
``DLG_CALIB`` calibration noises against ``DLG_DATA`` other draws of the data (fewer draws
with ``--quick``, :func:`configure_dlg`), then run from the benchmark's start.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import as_denoiser
from polyfold.core.dtypes import F64
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.samplers.dmcmc import denoising_langevin_gibbs
from polyfold.core.samplers.teleport import (
    GaussianScore,
    SkipChoice,
    choose_skip,
    handover_grid,
    teleport,
)

TOL = 0.02
VARIANTS: dict[str, dict[str, Any]] = {
    "unipc-bh1-2": {"sampler": "unipc", "variant": "bh1"},
    "unipc-bh2-3": {"sampler": "unipc", "order": 3},
    "dpm_solver_pp-3": {"sampler": "dpm_solver_pp", "order": 3},
}


def fit_skip(case: Any, target: Any, t_start: float) -> tuple[GaussianScore, SkipChoice]:
    """The fitted Gaussian and the chosen hand-over of one target (cached on the case)."""
    cached = getattr(case, "_teleport", None)
    if cached is not None:
        out: tuple[GaussianScore, SkipChoice] = cached
        return out
    data = target.sample(5000, generator=torch.Generator().manual_seed(7), dtype=F64)
    approx = GaussianScore.fit(data)
    calib = torch.randn(256, case.dim, generator=torch.Generator().manual_seed(8))
    calib = calib * float(case.path.sigma(torch.tensor([t_start], dtype=F64)))
    den = as_denoiser(case.model, case.path, prediction="eps")
    choice = choose_skip(den, case.path, approx, calib, tol=TOL, t_start=t_start)
    case._teleport = (approx, choice)
    return approx, choice


def teleport_rows(
    case: Any, target: Any, x_start: Tensor, grid: Tensor, ref: Tensor, budget: int, row: Any
) -> list[dict[str, Any]]:
    """``teleport+<variant>`` rows on the compressed grid (``row`` builds a result row)."""
    approx, choice = fit_skip(case, target, float(grid[0]))
    g = handover_grid(grid, choice.t_skip)
    den = as_denoiser(case.model, case.path, prediction="eps")
    rows = []
    for name, opts in VARIANTS.items():
        res = teleport(den, case.path, x_start, g, approx=approx, t_start=float(grid[0]), **opts)
        out = row(case, "polyfold", f"teleport+{name}", res.x, res.nfe, budget, ref, float("nan"))
        out["skip_fraction"] = choice.fraction
        rows.append(out)
    return rows


def summarize_teleport(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``teleport_skip_fraction`` (median over targets) and the quality ratios: teleported
    ``ode_error``/``sw2`` over the same sampler without teleport, worst over NFE <= 10 rows."""
    fractions: dict[tuple[str, int], float] = {}
    worst_ode, worst_sw2 = 0.0, 0.0
    plain = {
        (r["path"], r["dim"], r["budget"], r["sampler"]): r
        for r in rows
        if r["library"] == "polyfold"
    }
    for r in rows:
        if "skip_fraction" not in r:
            continue
        fractions[(r["path"], r["dim"])] = r["skip_fraction"]
        base_name = r["sampler"].removeprefix("teleport+")
        base = plain.get((r["path"], r["dim"], r["budget"], base_name))
        if base is None and base_name == "dpm_solver_pp-3":
            base = plain.get((r["path"], r["dim"], r["budget"], "DPMSolverMultistep-3M"))
        if base is None or r["budget"] > 10:
            continue
        worst_ode = max(worst_ode, r["ode_error"] / base["ode_error"])
        worst_sw2 = max(worst_sw2, r["sw2"] / base["sw2"])
    vals = sorted(fractions.values())
    median = vals[len(vals) // 2] if len(vals) % 2 else sum(vals[len(vals) // 2 - 1 :][:2]) / 2
    return {
        "teleport_skip_fraction": median if vals else None,
        "teleport_skip_fractions": {f"{p}/{d}": f for (p, d), f in sorted(fractions.items())},
        "teleport_worst_ode_error_ratio_nfe_le_10": worst_ode or None,
        "teleport_worst_sw2_ratio_nfe_le_10": worst_sw2 or None,
        "teleport_tol": TOL,
    }


DLG_SETTINGS = [
    {"tol": tol, "steps": steps, "delta": delta}
    for tol in (0.02, 0.1)
    for steps in (1, 2)
    for delta in (0.1, 0.25)
]
DLG_CALIB, DLG_DATA = 512, 20000


def configure_dlg(quick: bool) -> None:
    """``--quick``: every setting chosen on the 512 calibration noises against 5000 draws of
    the data (a full run: against 20000; the data side's sliced W2 dominates the cost; fewer
    calibration noises flip the choice at dimension 64)."""
    global DLG_CALIB, DLG_DATA
    DLG_CALIB, DLG_DATA = (512, 5000) if quick else (512, 20000)


def _dlg(
    case: Any, approx: Any, choice: Any, x: Tensor, grid_of: Any, budget: int, seed: int, **kw: Any
) -> Any:
    """One DLG run: teleport to the hand-over of ``tol``, ``steps`` Langevin-Gibbs iterations
    there, then UniPC-3 on the scheduler's ``budget - steps``-step grid handed over to the
    chain's time."""
    grid = grid_of(budget - kw["steps"])
    t_skip = min(choice.at(kw["tol"]), float(grid[0]))
    start = approx.flow(x, case.path, float(grid[0]), t_skip)
    return denoising_langevin_gibbs(
        as_denoiser(case.model, case.path, prediction="eps"),
        case.path,
        start,
        handover_grid(grid, t_skip),
        approx=approx,
        steps=kw["steps"],
        delta=kw["delta"],
        generator=torch.Generator().manual_seed(seed),
        order=3,
    )


def dlg_rows(
    case: Any,
    target: Any,
    x_start: Tensor,
    grid_of: Any,
    ref: Tensor,
    budget: int,
    row: Any,
) -> list[dict[str, Any]]:
    """``dlg+unipc-bh2-3`` rows: the hand-over tolerance, Langevin iterations and step size
    chosen among ``DLG_SETTINGS`` by the sliced W2 of ``DLG_CALIB`` calibration noises to
    ``DLG_DATA`` other draws of the data (neither the benchmark's noise nor its reference
    samples), then run from the benchmark's start (``grid_of(n)``: the scheduler's grid of
    ``n`` steps)."""
    if budget <= 3:
        return []
    t0 = float(grid_of(budget)[0])
    approx, choice = fit_skip(case, target, t0)
    if choice.t_skip >= t0:
        return []
    data = target.sample(DLG_DATA, generator=torch.Generator().manual_seed(22), dtype=F64)
    calib = torch.randn(DLG_CALIB, case.dim, generator=torch.Generator().manual_seed(21))
    calib = calib * float(case.path.sigma(torch.tensor([t0], dtype=F64)))
    scores = [
        sliced_wasserstein(_dlg(case, approx, choice, calib, grid_of, budget, 23, **kw).x, data)
        for kw in DLG_SETTINGS
    ]
    best = DLG_SETTINGS[scores.index(min(scores))]
    res = _dlg(case, approx, choice, x_start, grid_of, budget, 11, **best)
    out = row(case, "polyfold", "dlg+unipc-bh2-3", res.x, res.nfe, budget, ref, float("nan"))
    out.update(chain_t=res.chain_times[-1], dlg_settings=best)
    out["stochastic"] = True  # not an ODE solution: left out of the ode_error comparison
    return [out]


def summarize_dlg(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``dmcmc_sw2_over_integrator_sw2``: at NFE 10, DLG's ``sw2`` over the same integrator's
    (UniPC bh2 order 3, all 10 calls from the start), worst and median over targets."""
    plain = {
        (r["path"], r["dim"]): r["sw2"]
        for r in rows
        if r["library"] == "polyfold" and r["sampler"] == "unipc-bh2-3" and r["budget"] == 10
    }
    ratios = sorted(
        r["sw2"] / plain[(r["path"], r["dim"])]
        for r in rows
        if r["sampler"].startswith("dlg+") and r["budget"] == 10 and (r["path"], r["dim"]) in plain
    )
    if not ratios:
        return {"dmcmc_sw2_over_integrator_sw2": None}
    return {
        "dmcmc_sw2_over_integrator_sw2": ratios[len(ratios) // 2],
        "dmcmc_sw2_over_integrator_sw2_worst": ratios[-1],
        "dmcmc_settings_tried": DLG_SETTINGS,
    }
