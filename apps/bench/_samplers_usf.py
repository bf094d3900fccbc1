"""Samplers benchmark section: USF schedules searched per target and NFE, alone and combined with
analytical teleportation.

Per target and NFE <= ``MAX_NFE``: :func:`~polyfold.core.samplers.usf.search_schedule`
(``ROUNDS`` rounds of coordinate descent over per-step order, prediction, corrector and time
points; a change is kept only if ``CALIB`` other calibration noises agree, against overfitting)
on ``CALIB`` calibration noises (not the benchmark's), twice: from UniPCMultistep's grid
(``usf+dc``), and teleporting from that grid's start with the teleport section's Gaussian, the
hand-over time searched as well, starting from its chosen skip (``teleport+usf+dc``; the
teleport makes no model call, so every call goes to the rest of the trajectory). With ``DC``
(on) each search also tunes DC-Solver's per-step compensation ratio (from one: ratios of one
are the plain schedule, so a ratio is only kept where it lowers the calibration and gate
errors); at scaled_linear dim 64 NFE 6 this took the evaluation error from 0.091 (searched
without ratios) to 0.079, below diffusers' best NFE-10 error (0.085). Of the two, the one with
the lower error on ``HOLD`` other calibration noises is marked ``selected``
(:func:`~polyfold.core.samplers.usf.schedule_error`, both against one reference solve of
``HOLD_SUB`` fine steps per interval); the evaluation noise never chooses. The batches are
large because at dimensions 16 and 64 a few noises in a hundred, those whose trajectory
switches mixture component at a coarse step, carry most of the squared error: a small batch
holds too few of them to rank schedules.
Each schedule then runs from the benchmark's start. ``search_seconds`` is one search's CPU wall
time (reference solve included), ``select_seconds`` the held-out ranking's.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from _samplers_teleport import fit_skip  # type: ignore[import-not-found]
from torch import Tensor

from polyfold.core.denoiser import as_denoiser
from polyfold.core.samplers.teleport import handover_grid
from polyfold.core.samplers.usf import reference_end, schedule_error, search_schedule, usf

ROUNDS = 3
DC = True  # DC-Solver's per-step compensation ratios searched with the schedule
CALIB = 1024
HOLD = 1024
MAX_NFE = 10
HOLD_SUB = 32
QUICK_SEARCH = (1, 1024, 2048)


def configure(quick: bool) -> None:
    """``--quick``: ``QUICK_SEARCH`` (rounds, calibration and held-out noises); a full run: three
    rounds, 2048 calibration (and as many gate) noises, 4096 held-out ones."""
    global ROUNDS, CALIB, HOLD
    ROUNDS, CALIB, HOLD = QUICK_SEARCH if quick else (3, 2048, 4096)


def usf_rows(
    case: Any, target: Any, x_start: Tensor, grid: Tensor, ref: Tensor, budget: int, row: Any
) -> list[dict[str, Any]]:
    """The ``usf+dc`` and ``teleport+usf+dc`` rows of one target and budget (without ``DC``:
    ``usf`` and ``teleport+usf``)."""
    n = len(grid) - 1
    if n < 2 or budget > MAX_NFE:
        return []
    den = as_denoiser(case.model, case.path, prediction="eps")
    t0 = float(grid[0])
    scale = float(case.path.sigma(grid[:1]))
    calib, gate, hold = (
        torch.randn(size, case.dim, generator=torch.Generator().manual_seed(seed)) * scale
        for size, seed in ((CALIB, 13), (CALIB, 15), (HOLD, 14))
    )
    approx, choice = fit_skip(case, target, t0)
    opts = {"rounds": ROUNDS, "holdout": gate, "compensation": DC}
    tag = "+dc" if DC else ""
    tries: list[tuple[str, Any, Any]] = [
        (f"usf{tag}", None, search_schedule(den, case.path, calib, n, grid=grid, **opts))
    ]
    if choice.t_skip < t0:
        hand = handover_grid(grid, choice.t_skip)
        found = search_schedule(
            den, case.path, calib, n, grid=hand, approx=approx, t_start=t0, **opts
        )
        tries.append((f"teleport+usf{tag}", approx, found))
    started = time.perf_counter()
    fine = reference_end(den, case.path, hold, grid, HOLD_SUB)  # every try's start and end
    held = [
        schedule_error(den, case.path, hold, f.schedule, approx=a, reference=fine)
        for _, a, f in tries
    ]
    select_seconds = time.perf_counter() - started
    rows = []
    for (name, a, found), err in zip(tries, held, strict=True):
        sched = found.schedule
        res = usf(den, case.path, x_start, sched.grid, schedule=sched, approx=a)
        out = row(case, "polyfold", name, res.x, res.nfe, budget, ref, float("nan"))
        out.update(
            search_seconds=found.seconds,
            select_seconds=select_seconds,
            heldout_error=err,
            selected=err == min(held),
            handover=sched.times[0],
            orders=sched.orders,
            ratios=sched.ratios,
        )
        rows.append(out)
    return rows


def summarize_usf(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``usf_nfe_for_peer_nfe10_error``: per target the smallest budget where the selected USF
    row reaches the best diffusers ``ode_error`` at NFE 10, worst over targets (``None``: not
    reached in the budgets run); ``usf_selected_worst_error_ratio_nfe_le_10``: the selected
    row's ``ode_error`` over the best diffusers one, worst over (path, dim, NFE <= 10);
    ``search_seconds``: the longest search."""
    peer: dict[tuple[str, int, int], float] = {}
    for r in rows:
        if r["library"] == "diffusers":
            key = (r["path"], r["dim"], r["budget"])
            peer[key] = min(peer.get(key, float("inf")), r["ode_error"])
    chosen = [r for r in rows if r.get("selected")]
    worst: int | None = 0
    for target in sorted({(r["path"], r["dim"]) for r in chosen}):
        goal = peer.get((*target, 10))
        if goal is None:
            continue
        hits = [
            r["budget"]
            for r in chosen
            if (r["path"], r["dim"]) == target and r["ode_error"] <= goal
        ]
        if not hits:
            worst = None
            break
        assert worst is not None
        worst = max(worst, min(hits))
    ratios = [
        (r["ode_error"] / peer[(r["path"], r["dim"], r["budget"])], r)
        for r in chosen
        if r["budget"] <= 10 and (r["path"], r["dim"], r["budget"]) in peer
    ]
    top = max(ratios, key=lambda p: p[0]) if ratios else None
    seconds = [r["search_seconds"] for r in rows if "search_seconds" in r]
    return {
        "usf_nfe_for_peer_nfe10_error": worst if chosen else None,
        "usf_selected_worst_error_ratio_nfe_le_10": top[0] if top else None,
        "usf_selected_worst_at": [top[1][k] for k in ("path", "dim", "budget")] if top else None,
        "usf_selected_per_nfe": {
            f"{r['path']}/{r['dim']}/{r['budget']}": r["sampler"] for r in chosen
        },
        "search_seconds": max(seconds) if seconds else None,
        "usf_search_rounds": ROUNDS,
        "usf_calibration_noises": CALIB,
        "usf_heldout_noises": HOLD,
    }


def best_per_nfe(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Per ``path/dim/NFE`` (NFE <= 10) the deterministic polyfold row with the lowest
    ``ode_error``: which method (or combination) is polyfold's best there."""
    best: dict[str, tuple[float, str]] = {}
    for r in rows:
        if r["library"] != "polyfold" or r.get("stochastic") or r["budget"] > 10:
            continue
        key = f"{r['path']}/{r['dim']}/{r['budget']}"
        if key not in best or r["ode_error"] < best[key][0]:
            best[key] = (r["ode_error"], r["sampler"])
    return {k: v[1] for k, v in sorted(best.items())}
