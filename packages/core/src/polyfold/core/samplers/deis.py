r"""DEIS (Zhang & Chen 2023): exponential Adams-Bashforth on the noise prediction.

With ``rho = sigma/alpha`` the probability-flow ODE is ``d(x/alpha) = eps drho``, so a step
``t_i -> t_{i+1}`` is exactly ``x_{i+1} = (alpha_{i+1}/alpha_i) x_i +
alpha_{i+1} int_{rho_i}^{rho_{i+1}} eps drho``. DEIS replaces ``eps`` by the polynomial through
its last ``p`` values and integrates it exactly:

    x_{i+1} = (alpha_{i+1}/alpha_i) x_i + sum_j C_ij eps_{i-j},
    C_ij = alpha_{i+1} int_{rho_i}^{rho_{i+1}} L_j(tau) drho,

with ``L_j`` the Lagrange basis through the times ``t_i, t_{i-1}, ..`` (``basis="t"``: tAB-DEIS;
the integral is taken in ``ell = -log rho`` by 16-point Gauss-Legendre, ``tau(ell)`` through the
path's exact inverse log-SNR) or through ``log rho`` (``basis="log_rho"``: closed form, the
variant of diffusers' ``DEISMultistepScheduler``). ``p = 1`` is DDIM. Orders ramp up from 1; with
``lower_order_final`` grids of fewer than 15 steps end with lower orders. A step to the data point
is the final denoising step.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers._core import Level, Paths, Run, lincomb, smap, tmap
from polyfold.core.samplers._expint import frame, poly_weights
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = ["deis"]

_QUAD = 16
_LOWER_ORDER_FINAL_STEPS = 15


@cache
def _gauss_legendre(n: int) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.as_tensor(x, dtype=F64), torch.as_tensor(w, dtype=F64)


def _tab_coefficients(path: GaussianPath, lvs: list[Level], orders: list[int]) -> list[list[float]]:
    """``C_ij`` of tAB-DEIS for every step ``i`` (its ``orders[i]`` weights, newest first)."""
    xi, wq = _gauss_legendre(_QUAD)
    steps = len(orders)
    ell_s = torch.tensor([lvs[i].ell for i in range(steps)], dtype=F64)
    ell_t = torch.tensor([lvs[i + 1].ell for i in range(steps)], dtype=F64)
    half = 0.5 * (ell_t - ell_s)
    ell_q = ell_s[:, None] + half[:, None] * (1.0 + xi[None, :])  # (N, Q)
    tau = path.t_from_log_snr(2.0 * ell_q)
    base = torch.exp(-ell_q) * wq[None, :] * half[:, None]  # int f dell ~ sum base f
    times = torch.tensor([lv.t for lv in lvs], dtype=F64)
    out: list[list[float]] = [[] for _ in range(steps)]
    for p in set(orders):
        rows = [i for i in range(steps) if orders[i] == p]
        idx = torch.tensor(rows)
        nodes = torch.stack([times[(idx - j).clamp_min(0)] for j in range(p)], dim=1)  # (R, p)
        basis = torch.ones(len(rows), p, _QUAD, dtype=F64)
        for j in range(p):
            for m in range(p):
                if m != j:
                    num = tau[idx] - nodes[:, m, None]
                    basis[:, j] *= num / (nodes[:, j] - nodes[:, m])[:, None]
        alpha_t = torch.tensor([lvs[i + 1].alpha for i in rows], dtype=F64)
        coef = -alpha_t[:, None] * (basis * base[idx][:, None, :]).sum(-1)  # (R, p)
        for r, i in enumerate(rows):
            out[i] = coef[r].tolist()
    return out


def _key(x: Tensor, a: float, w: list[float], *eps: Tensor) -> Tensor:
    return lincomb(x, a, w, eps[: len(w)])


def deis(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    order: int = 3,
    basis: Literal["t", "log_rho"] = "t",
    lower_order_final: bool = True,
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """DEIS: ``order``-step exponential Adams-Bashforth on ``eps`` (tAB-DEIS by default).

    Args:
        denoiser, paths, x, grid, mask: as every sampler (see :func:`dpm_solver`).
        order: 1 (DDIM), 2 or 3.
        basis: polynomial in time ``"t"`` (tAB) or in ``"log_rho"``.
        lower_order_final: lower orders in the last steps of grids shorter than 15 steps.
    """
    if order not in (1, 2, 3):
        raise InputError(f"order: expected 1, 2 or 3, got {order!r}")
    if basis not in ("t", "log_rho"):
        raise InputError(f"basis: expected 't' or 'log_rho', got {basis!r}")
    run = Run("deis", denoiser, paths, x, grid, mask=mask, callback=callback)
    if any(lv.alpha <= 0 for i in range(run.steps) for lv in run.level_list(i)):
        raise InputError("deis: the noise-prediction solver needs alpha > 0 on the grid")
    body = run.steps - 1 if run.ends_at_zero else run.steps
    orders = [min(order, i + 1) for i in range(body)]
    if lower_order_final and run.steps < _LOWER_ORDER_FINAL_STEPS:
        orders = [min(p, body - i) for i, p in enumerate(orders)]
    coefs = None
    if basis == "t" and body:
        coefs = tmap(lambda p, lvs: _tab_coefficients(p, lvs, orders), run.paths, run.levels)
    history: list[State] = []
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        history = [d.eps, *history][: orders[i]]

        def weights(
            lvs: list[Level], c: list[list[float]] | None, i: int = i
        ) -> tuple[float, list[float]]:
            s, t = lvs[i], lvs[i + 1]
            if c is not None:
                return t.alpha / s.alpha, c[i]
            fr = frame("eps", s, t)
            nodes = [(lvs[i - j].ell - s.ell) / fr.h for j in range(orders[i])]
            return fr.a, poly_weights(fr, nodes)

        aw = tmap(weights, run.levels, coefs if basis == "t" else None)
        new = smap(lambda xi, aw_i, *e: _key(xi, aw_i[0], aw_i[1], *e), x, aw, *history)
        x = run.report(i, run.keep(new, x), d.x0)
    return run.result(x)
