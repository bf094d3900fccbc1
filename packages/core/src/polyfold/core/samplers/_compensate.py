"""DC-Solver's compensated model output, the one piece UniPC itself calls (fitting lives in
:mod:`polyfold.core.samplers.compensation`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from polyfold.core.errors import InputError
from polyfold.core.samplers._core import Run, lincomb, smap
from polyfold.core.state import State

__all__ = ["compensate"]


def _lagrange_at(nodes: Sequence[float], tau: float) -> list[float]:
    """The Lagrange basis through ``nodes`` evaluated at ``tau`` (exactly one-hot at a node)."""
    out = []
    for j, uj in enumerate(nodes):
        w = 1.0
        for k, uk in enumerate(nodes):
            if k != j:
                w *= (tau - uk) / (uj - uk)
        out.append(w)
    return out


def compensate(
    run: Run, history: list[tuple[int, State]], ratios: Sequence[float], i: int
) -> State:
    """The compensated output at grid point ``i`` from ``history`` (newest first, up to three
    points used), with ``ratios[i]``; ``m_i`` itself where there is nothing to interpolate."""
    if i == 0 and len(ratios) != run.steps:
        raise InputError(f"ratios: expected {run.steps} numbers (one per step), got {len(ratios)}")
    rho = float(ratios[i])
    if not math.isfinite(rho):
        raise InputError(f"ratios: expected finite numbers, got {rho!r} at step {i}")
    m = history[0][1]
    if rho == 1.0 or len(history) < 2:
        return m
    pts = history[:3]
    ells = [run.ref(run.lv(j)).ell for j, _ in pts]
    if not all(math.isfinite(e) for e in ells):
        return m
    w = _lagrange_at(ells, ells[1] + rho * (ells[0] - ells[1]))
    return smap(lambda m0, *rest: lincomb(m0, w[0], w[1:], rest), m, *[h for _, h in pts[1:]])
