"""Samplers benchmark section: DC-Solver's compensation ratios on UniPC, alone and after
analytical teleportation.

Per target and NFE: ratios fitted by :func:`~polyfold.core.samplers.compensation.fit_ratios` on
10 calibration trajectories (fresh noise, not the benchmark's) on the very grid that is then
sampled from the benchmark's start; ``fit_seconds`` is that calibration's wall time (reference
solve included). Rows ``dc+unipc-bh2-<order>`` (UniPCMultistep's grid) and
``teleport+dc+unipc-bh2-3`` (the teleport section's hand-over grid, ratios fitted from the
teleported calibration batch).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from _samplers_teleport import fit_skip  # type: ignore[import-not-found]
from torch import Tensor

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.samplers.compensation import fit_ratios
from polyfold.core.samplers.teleport import handover_grid


def dc_rows(
    case: Any, target: Any, x_start: Tensor, grid: Tensor, ref: Tensor, budget: int, row: Any
) -> list[dict[str, Any]]:
    """The DC rows of one target and budget (``row`` builds a result row)."""
    den = as_denoiser(case.model, case.path, prediction="eps")
    calib = torch.randn(10, case.dim, generator=torch.Generator().manual_seed(12))
    calib = calib * float(case.path.sigma(grid[:1]))
    rows = []
    for order in (2, 3):
        started = time.perf_counter()
        ratios = fit_ratios(den, case.path, calib, grid, order=order)
        seconds = time.perf_counter() - started
        res = S.unipc(den, case.path, x_start, grid, order=order, ratios=ratios)
        out = row(
            case, "polyfold", f"dc+unipc-bh2-{order}", res.x, res.nfe, budget, ref, float("nan")
        )
        out["fit_seconds"] = seconds
        rows.append(out)
    approx, choice = fit_skip(case, target, float(grid[0]))
    if choice.t_skip < float(grid[0]):
        hand = handover_grid(grid, choice.t_skip)
        start = approx.flow(x_start, case.path, float(grid[0]), choice.t_skip)
        moved = approx.flow(calib, case.path, float(grid[0]), choice.t_skip)
        ratios = fit_ratios(den, case.path, moved, hand, order=3)
        res = S.unipc(den, case.path, start, hand, order=3, ratios=ratios)
        name = "teleport+dc+unipc-bh2-3"
        rows.append(row(case, "polyfold", name, res.x, res.nfe, budget, ref, float("nan")))
    return rows


def summarize_dc(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """DC's ``ode_error`` over plain UniPC's (same order, same grid), worst over NFE <= 10, and
    the longest calibration."""
    plain = {
        (r["path"], r["dim"], r["budget"], r["sampler"]): r["ode_error"]
        for r in rows
        if r["library"] == "polyfold"
    }
    ratios, fit = [], 0.0
    for r in rows:
        if not r["sampler"].startswith("dc+") or r["budget"] > 10:
            continue
        fit = max(fit, r.get("fit_seconds", 0.0))
        order = r["sampler"][-1]
        base = "UniPCMultistep" if order == "2" else "unipc-bh2-3"
        key = (r["path"], r["dim"], r["budget"], base)
        if key in plain:
            ratios.append(r["ode_error"] / plain[key])
    return {
        "dc_worst_error_ratio_nfe_le_10": max(ratios) if ratios else None,
        "dc_median_error_ratio_nfe_le_10": sorted(ratios)[len(ratios) // 2] if ratios else None,
        "dc_fit_seconds_max": fit,
    }


def nfe_for_peer_nfe10_error(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per target, the smallest budget at which polyfold's best deterministic row reaches the
    best diffusers ``ode_error`` at NFE 10; the worst (largest) over targets."""
    worst: int | None = 0
    for key in sorted({(r["path"], r["dim"]) for r in rows}):
        mine = [r for r in rows if (r["path"], r["dim"]) == key and not r.get("stochastic")]
        peer = [r["ode_error"] for r in mine if r["library"] == "diffusers" and r["budget"] == 10]
        if not peer:
            continue
        hits = [
            r["budget"] for r in mine if r["library"] == "polyfold" and r["ode_error"] <= min(peer)
        ]
        if not hits:
            worst = None
            break
        assert worst is not None
        worst = max(worst, min(hits))
    return {"nfe_for_peer_nfe10_error": worst}
