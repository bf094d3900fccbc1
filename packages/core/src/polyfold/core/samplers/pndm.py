r"""PNDM (Liu et al. 2022) and iPNDM (Zhang & Chen 2023): pseudo linear multistep methods.

Both move along the DDIM transfer ``phi(x, e, s -> t) = (alpha_t/alpha_s) x -
sigma_t (e^h - 1) e`` (``h = ell_t - ell_s``, the first-order exponential integrator) with a
combined noise prediction ``e'``:

- F-PNDM: the first three steps are pseudo Runge-Kutta (four model calls, midpoint
  ``t_mid = (t_i + t_{i+1})/2``): ``e_1 = eps(x, t_i)``, ``e_2 = eps(phi(x, e_1, t_i -> t_mid))``,
  ``e_3 = eps(phi(x, e_2, t_i -> t_mid))``, ``e_4 = eps(phi(x, e_3, t_i -> t_{i+1}))``,
  ``e' = (e_1 + 2 e_2 + 2 e_3 + e_4)/6``; then the pseudo linear multistep
  ``e' = (55 e_0 - 59 e_{-1} + 37 e_{-2} - 9 e_{-3})/24`` (one call per step; ``N + 9`` calls).
- iPNDM: Adams-Bashforth warm-up instead: ``e_0``, ``(3 e_0 - e_{-1})/2``,
  ``(23 e_0 - 16 e_{-1} + 5 e_{-2})/12``, then the fourth-order one (``N`` calls).

The coefficients are the constant-step ones of the papers, whatever the grid. A step to the data
point is the final denoising step.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers._core import Level, Paths, Run, lincomb, smap
from polyfold.core.samplers._expint import frame
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = ["pndm"]

_AB: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}
_RK: tuple[float, ...] = (1 / 6, 2 / 6, 2 / 6, 1 / 6)


def _transfer(weights: Sequence[float], x: Tensor, s: Level, t: Level, *es: Tensor) -> Tensor:
    """``phi(x, sum_j weights_j es_j, s -> t)``."""
    fr = frame("eps", s, t)
    c = fr.coef(0)
    return lincomb(x, fr.a, [c * w for w in weights], es)


def pndm(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    variant: Literal["pndm", "ipndm"] = "pndm",
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """F-PNDM (pseudo Runge-Kutta warm-up) or iPNDM (Adams-Bashforth warm-up).

    Args:
        denoiser, paths, x, grid, mask: as every sampler (see :func:`dpm_solver`).
        variant: ``"pndm"`` (F-PNDM) or ``"ipndm"``.
    """
    if variant not in ("pndm", "ipndm"):
        raise InputError(f"variant: expected 'pndm' or 'ipndm', got {variant!r}")
    run = Run(variant, denoiser, paths, x, grid, mask=mask, callback=callback)
    if any(lv.alpha <= 0 for i in range(run.steps) for lv in run.level_list(i)):
        raise InputError(f"{variant}: the noise-prediction solver needs alpha > 0 on the grid")
    history: list[State] = []
    for i in range(run.steps):
        d = run.denoise(x, run.t[i])
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        s, t = run.lv(i), run.lv(i + 1)
        if variant == "pndm" and len(history) < 3:
            t_mid = 0.5 * (run.t[i] + run.t[i + 1])
            mid = run.at(t_mid)
            es: list[Any] = [d.eps]
            for target, t_stage in ((mid, t_mid), (mid, t_mid), (t, run.t[i + 1])):
                stage = run.keep(smap(partial(_transfer, (1.0,)), x, s, target, es[-1]), x)
                es.append(run.denoise(stage, t_stage, target).eps)
            history = [d.eps, *history]
            weights, terms = _RK, es
        else:
            history = [d.eps, *history][:4]
            weights = _AB[len(history)] if variant == "ipndm" else _AB[4]
            terms = history
        x = run.keep(smap(partial(_transfer, weights), x, s, t, *terms), x)
        run.report(i, x, d.x0)
    return run.result(x)
