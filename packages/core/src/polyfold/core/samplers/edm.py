r"""EDM's stochastic Heun sampler (Karras et al. 2022, Algorithm 2) on any Gaussian path.

Works in EDM's variables ``y = x/alpha``, ``s = sigma/alpha`` (``dy/ds = eps``). At grid point
``i`` with ``s_i``: ``gamma = min(S_churn/N, sqrt(2) - 1)`` if ``S_tmin <= s_i <= S_tmax`` else 0,
``s_hat = s_i (1 + gamma)``, ``y_hat = y + sqrt(s_hat^2 - s_i^2) S_noise z`` (at the time
``t_hat`` with ``sigma/alpha = s_hat``), then a Heun step from ``s_hat`` to ``s_{i+1}``:
``y' = y_hat + (s_{i+1} - s_hat) eps(y_hat)``,
``y_{i+1} = y_hat + (s_{i+1} - s_hat) (eps(y_hat) + eps(y')) / 2``, the correction skipped on
the final step to ``s = 0`` (``2N - 1`` model calls). ``S_churn = 0`` is the deterministic
Heun of :func:`~polyfold.core.samplers.ode.heun` with ``variable="sigma"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers._core import Level, NoiseFn, Paths, Run, lincomb, smap
from polyfold.core.samplers.ode import HEUN, rk_step
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.state import Mask, State

__all__ = ["edm_heun"]


def _churn(scale: float, x: Tensor, z: Tensor, lv: Level, hat: Level) -> Tensor:
    """``x_hat = alpha_hat (x/alpha + scale z)``: noise raised from ``s_i`` to ``s_hat``."""
    return lincomb(x, hat.alpha / lv.alpha, [hat.alpha * scale], [z])


def edm_heun(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    noise: NoiseFn | None = None,
    mask: Mask = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """EDM Heun with stochastic churn; ``s_tmin``/``s_tmax`` are in ``sigma/alpha`` units.

    Args:
        denoiser, paths, x, grid, mask: as every sampler (see :func:`heun`).
        s_churn, s_tmin, s_tmax, s_noise: EDM's ``S_churn``, ``S_tmin``, ``S_tmax``, ``S_noise``.
        generator: for the churn noise.
        noise: a :data:`~polyfold.core.samplers._core.NoiseFn` for that noise (default i.i.d.).
    """
    for name, v in (
        ("s_churn", s_churn),
        ("s_tmin", s_tmin),
        ("s_tmax", s_tmax),
        ("s_noise", s_noise),
    ):
        if not (isinstance(v, int | float) and v >= 0):
            raise InputError(f"{name}: expected a number >= 0, got {v!r}")
    run = Run(
        "edm_heun",
        denoiser,
        paths,
        x,
        grid,
        mask=mask,
        generator=generator,
        noise=noise,
        stochastic=s_churn > 0,
        one_log_snr=True,
        callback=callback,
    )
    if run.ref(run.lv(0)).alpha <= 0:
        raise InputError("edm_heun: needs alpha > 0 at the grid's start (start below t = 1)")
    gamma_max = min(s_churn / run.steps, math.sqrt(2.0) - 1.0)
    for i in range(run.steps):
        lv = run.lv(i)
        s_i = math.exp(-run.ref(lv).ell)
        gamma = gamma_max if s_tmin <= s_i <= s_tmax else 0.0
        if gamma > 0:
            s_hat = s_i * (1.0 + gamma)
            t_hat = run.t_of_ell(-math.log(s_hat))
            hat = run.at(t_hat)
            scale = math.sqrt(s_hat**2 - s_i**2) * s_noise
            churned = smap(partial(_churn, scale), x, run.noise(x), lv, hat)
            x_hat: State = run.keep(churned, x)
            lv, t_cur = hat, t_hat
        else:
            x_hat, t_cur = x, run.t[i]
        d = run.denoise(x_hat, t_cur, lv)
        if run.final(i):
            return run.result(run.denoise_to_zero(d, x))
        x = run.keep(rk_step(run, HEUN, "sigma", x_hat, lv, run.lv(i + 1), d), x)
        run.report(i, x, d.x0)
    return run.result(x)
