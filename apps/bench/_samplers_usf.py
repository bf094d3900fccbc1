"""Samplers benchmark section: USF schedules searched per target and NFE.

Per target and NFE: :func:`~polyfold.core.samplers.usf.search_schedule` (one round of
coordinate descent) on 32 calibration noises, starting from UniPCMultistep's grid (``usf``) or
from the teleport section's hand-over grid with the teleported calibration batch
(``teleport+usf``); the schedule then runs from the benchmark's start. ``search_seconds`` is the
search's CPU wall time (reference solve included).
"""

from __future__ import annotations

from typing import Any

import torch
from _samplers_teleport import fit_skip  # type: ignore[import-not-found]
from torch import Tensor

from polyfold.core.denoiser import as_denoiser
from polyfold.core.samplers.teleport import handover_grid
from polyfold.core.samplers.usf import search_schedule, usf

ROUNDS = 1


def usf_rows(
    case: Any, target: Any, x_start: Tensor, grid: Tensor, ref: Tensor, budget: int, row: Any
) -> list[dict[str, Any]]:
    """The ``usf`` and ``teleport+usf`` rows of one target and budget."""
    n = len(grid) - 1
    if n < 2:
        return []
    den = as_denoiser(case.model, case.path, prediction="eps")
    calib = torch.randn(32, case.dim, generator=torch.Generator().manual_seed(13))
    calib = calib * float(case.path.sigma(grid[:1]))
    found = search_schedule(den, case.path, calib, n, grid=grid, rounds=ROUNDS)
    res = usf(den, case.path, x_start, found.schedule.grid, schedule=found.schedule)
    out = row(case, "polyfold", "usf", res.x, res.nfe, budget, ref, float("nan"))
    out["search_seconds"] = found.seconds
    rows = [out]
    approx, choice = fit_skip(case, target, float(grid[0]))
    if choice.t_skip < float(grid[0]):
        hand = handover_grid(grid, choice.t_skip)
        moved = approx.flow(calib, case.path, float(grid[0]), choice.t_skip)
        found = search_schedule(den, case.path, moved, n, grid=hand, rounds=ROUNDS)
        start = approx.flow(x_start, case.path, float(grid[0]), choice.t_skip)
        res = usf(den, case.path, start, found.schedule.grid, schedule=found.schedule)
        out = row(case, "polyfold", "teleport+usf", res.x, res.nfe, budget, ref, float("nan"))
        out["search_seconds"] = found.seconds
        rows.append(out)
    return rows


def summarize_usf(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``usf_nfe_for_peer_nfe10_error``: per target the smallest budget where a USF row reaches
    the best diffusers ``ode_error`` at NFE 10, worst over targets (``None``: not reached in
    the budgets run); ``search_seconds``: the longest search."""
    worst: int | None = 0
    for key in sorted({(r["path"], r["dim"]) for r in rows}):
        peer = [
            r["ode_error"]
            for r in rows
            if (r["path"], r["dim"]) == key and r["library"] == "diffusers" and r["budget"] == 10
        ]
        hits = [
            r["budget"]
            for r in rows
            if (r["path"], r["dim"]) == key
            and "usf" in r["sampler"]
            and peer
            and r["ode_error"] <= min(peer)
        ]
        if not peer:
            continue
        if not hits:
            worst = None
            break
        assert worst is not None
        worst = max(worst, min(hits))
    seconds = [r["search_seconds"] for r in rows if "search_seconds" in r]
    return {
        "usf_nfe_for_peer_nfe10_error": worst,
        "search_seconds": max(seconds) if seconds else None,
        "usf_search_rounds": ROUNDS,
    }
