r"""UniPC (Zhao et al. 2023): the multistep predictor UniP-p and the corrector UniC.

For a step ``s -> t`` in the half log-SNR (``h = ell_t - ell_s``), with ``hh = -h`` and
``c_t = alpha_t``, ``a = sigma_t/sigma_s`` for the data prediction ``m = x0`` (``hh = h``,
``c_t = sigma_t``, ``a = alpha_t/alpha_s`` for ``m = eps``):

    x_t = a x_s - c_t (e^{hh} - 1) m_s - c_t B(h) sum_k rho_k D_k,   D_k = (m_k - m_s) / r_k,

``r_k = (ell_k - ell_s)/h`` for the previous outputs ``m_k`` (UniP-p uses ``p - 1`` of them) and
``r = 1``, ``m_k = m(x_t^pred, t)`` for the new point (UniC). ``B(h) = hh`` (bh1) or
``e^{hh} - 1`` (bh2); ``rho`` solves ``R rho = g`` with ``R_ik = r_k^(i-1)`` and
``g_i = i! hh phi_{i+1}(hh) / B(h)``, ``i = 1..p`` (UniP: the first ``p - 1`` rows and columns,
``rho = 1/2`` for ``p = 2``; UniC: all ``p``, ``rho = 1/2`` for ``p = 1``). UniC reuses the model
output at the predicted point, so a step costs one model call; the corrected state replaces the
prediction and raises the order from ``p`` to ``p + 1``. The last step is not corrected. Orders
ramp up from 1 and, with ``lower_order_final``, ramp down over the last steps (order at most the
number of steps left), as UniPC's reference implementation; a step to the data point is the final
denoising step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Literal

from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers._compensate import compensate
from polyfold.core.samplers._core import Level, Paths, Run, lincomb, smap
from polyfold.core.samplers._expint import phi
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = ["unipc"]


def _solve(mat: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting for the small systems of UniPC."""
    n = len(rhs)
    aug = [[*row, b] for row, b in zip(mat, rhs, strict=True)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(aug[r][col]))
        aug[col], aug[piv] = aug[piv], aug[col]
        for r in range(col + 1, n):
            f = aug[r][col] / aug[col][col]
            aug[r] = [v - f * p for v, p in zip(aug[r], aug[col], strict=True)]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (aug[r][n] - sum(aug[r][k] * out[k] for k in range(r + 1, n))) / aug[r][r]
    return out


def _weights(
    kind: str, variant: str, s: Level, t: Level, nodes: Sequence[Level], corrector: bool
) -> tuple[float, list[float]]:
    """``(a, w)``: ``x_t = a x_s + w_0 m_s + sum_k w_k m_k`` (``m_k`` the nodes' outputs, then,
    for the corrector, the new point's)."""
    h = t.ell - s.ell
    hh = -h if kind == "x0" else h
    a = t.sigma / s.sigma if kind == "x0" else t.alpha / s.alpha
    c_t = t.alpha if kind == "x0" else t.sigma
    w = [-c_t * math.expm1(hh)]
    rks = [(lv.ell - s.ell) / h for lv in nodes] + ([1.0] if corrector else [])
    p = len(rks) + (0 if corrector else 1)  # the order: number of points used, s included
    if not rks:
        return a, w
    big_b = hh if variant == "bh1" else math.expm1(hh)
    g = [math.factorial(i) * hh * phi(i + 1, hh) / big_b for i in range(1, p + 1)]
    if corrector:
        rho = [0.5] if p == 1 else _solve([[r**i for r in rks] for i in range(p)], g)
    else:
        rho = [0.5] if p == 2 else _solve([[r**i for r in rks] for i in range(p - 1)], g[:-1])
    for r, rho_k in zip(rks, rho, strict=True):
        coef = -c_t * big_b * rho_k / r
        w.append(coef)
        w[0] -= coef
    return a, w


def _key(
    kind: str,
    variant: str,
    corrector: bool,
    idx: list[int],
    ti: int,
    x: Tensor,
    lvs: list[Level],
    *ms: Tensor,
) -> Tensor:
    a, w = _weights(kind, variant, lvs[idx[0]], lvs[ti], [lvs[j] for j in idx[1:]], corrector)
    return lincomb(x, a, w, ms[: len(w)])


def _finite_prefix(run: Run, idx: list[int], extra: int | None = None) -> int:
    """How many leading history points have finite log-SNR on every key (the usable order)."""
    ok = 0
    for j in [*idx, *([] if extra is None else [extra])]:
        if not all(math.isfinite(lv.ell) for lv in run.level_list(j)):
            break
        ok += 1
    return ok


def unipc(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    order: int = 2,
    variant: Literal["bh1", "bh2"] = "bh2",
    prediction: Literal["x0", "eps"] = "x0",
    corrector: bool = True,
    lower_order_final: bool = True,
    ratios: Sequence[float] | None = None,
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """UniPC: UniP-``order`` with the UniC corrector (order ``order + 1``), one call per step.

    Args:
        denoiser, paths, x, grid, mask: as every sampler (see :func:`dpm_solver`).
        order: the predictor order, 1 to 3.
        variant: ``B(h)``: ``"bh1"`` (``hh``) or ``"bh2"`` (``e^{hh} - 1``).
        prediction: ``"x0"`` (data prediction, default) or ``"eps"`` (noise prediction).
        corrector: apply UniC (False gives UniP alone).
        lower_order_final: orders at most the number of steps left (the last step first order).
        ratios: DC-Solver's compensation ratio of each step (see
            :mod:`~polyfold.core.samplers.compensation`); ``None`` or ones: plain UniPC.
    """
    if order not in (1, 2, 3):
        raise InputError(f"order: expected 1, 2 or 3, got {order!r}")
    if variant not in ("bh1", "bh2"):
        raise InputError(f"variant: expected 'bh1' or 'bh2', got {variant!r}")
    if prediction not in ("x0", "eps"):
        raise InputError(f"prediction: expected 'x0' or 'eps', got {prediction!r}")
    run = Run("unipc", denoiser, paths, x, grid, mask=mask, callback=callback)
    if prediction == "eps" and any(lv.alpha <= 0 for lv in run.level_list(0)):
        raise InputError("unipc: prediction='eps' needs alpha > 0 at the grid's start")
    history: list[tuple[int, State]] = []  # (grid index, model output), newest first
    last: tuple[State, list[int]] | None = None  # previous step's start state and history used
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        m = d.x0 if prediction == "x0" else d.eps
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        if corrector and last is not None:
            x_prev, idx = last
            if _finite_prefix(run, idx, i) == len(idx) + 1:
                outs = [h for _, h in history[: len(idx)]] + [m]
                fn = partial(_key, prediction, variant, True, idx, i)
                x = run.keep(smap(fn, x_prev, run.levels, *outs), x)
        history = [(i, m), *history][:order]
        if ratios is not None:
            history[0] = (i, compensate(run, history, ratios, i))
        p = len(history)
        if lower_order_final:
            p = min(p, run.steps - i)
        idx = [j for j, _ in history[:p]]
        idx = idx[: max(1, _finite_prefix(run, idx))]
        fn = partial(_key, prediction, variant, False, idx, i + 1)
        last = (x, idx)
        x = run.keep(smap(fn, x, run.levels, *[h for _, h in history[: len(idx)]]), x)
        run.report(i, x, d.x0)
    return run.result(x)
