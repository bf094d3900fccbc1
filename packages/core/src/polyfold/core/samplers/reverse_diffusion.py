r"""score_sde's reverse-diffusion predictor, its Langevin corrector and GDSS's S4 solver.

For a step from grid time ``s`` to ``t < s`` let ``a = alpha_s / alpha_t`` and
``v = sigma_s^2 - a^2 sigma_t^2 = sigma_s^2 (1 - e^{-2h})`` (``h = ell_t - ell_s``): the forward
transition ``x_s = a x_t + sqrt(v) z`` of any Gaussian path. With ``score = -eps / sigma_s``:

- reverse diffusion (Song et al. 2021, the ``ReverseDiffusionPredictor`` of score_sde on the
  one-step discretisation ``x_s = a x_t + sqrt(v) z``):
  ``x_t = (2 - a) x_s + v score + sqrt(v) z``. On a VP path ``v = 1 - a^2 = beta`` (DDPM's
  chain), on a VE path ``a = 1`` and ``v = sigma_s^2 - sigma_t^2`` (SMLD's chain).
- Langevin corrector (score_sde, GDSS's ``scale_eps``): before each predictor step,
  ``n_corrector`` steps ``x <- x + e score + sqrt(2 e) scale_eps z``,
  ``e = 2 a^2 (snr ||z|| / ||score||)^2`` (norms per example averaged over the batch; ``a^2`` is
  score_sde's ``alpha = 1 - beta`` on VP paths and 1 on VE paths).
- S4 (Jo et al. 2022, GDSS's "S4" solver; one model call per step): with the step's score, a
  Langevin correction, then the linear part of the reverse SDE over half a step (the exact
  Gaussian transition ``x <- x / a_1 + sqrt(v_1) z_1`` from ``s`` to the midpoint ``m``), the
  score drift ``- g(s)^2 score dt`` over the whole step ``dt = t - s``, and the linear part over
  the second half (``m`` to ``t``).

The last step adds no noise: the result is its mean (score_sde's ``noise_removal``). A grid that
ends at the data point (``append_zero``) makes that step a denoising step to ``sigma = 0``.
Noise comes from ``noise`` (a :data:`~polyfold.core.samplers._core.NoiseFn`, e.g. symmetric
adjacency noise for graphs) and ``generator``; padded entries of ``mask`` stay untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers._core import Level, NoiseFn, Paths, lincomb, smap
from polyfold.core.samplers.result import SampleResult, StepCallback
from polyfold.core.samplers.stochastic import _langevin_key, _sde_run
from polyfold.core.state import Mask, State

__all__ = ["reverse_diffusion", "reverse_diffusion_pc", "s4"]


def _transition(s: Level, t: Level) -> tuple[float, float]:
    """``(a, v)`` of the forward transition ``x_s = a x_t + sqrt(v) z`` from ``t`` to ``s``."""
    a = s.alpha / t.alpha
    return a, s.sigma**2 * -math.expm1(-2.0 * (t.ell - s.ell))


def _check_langevin(snr: float, scale_eps: float, n_corrector: int) -> None:
    if not (isinstance(snr, int | float) and snr > 0):
        raise InputError(f"snr: expected a number > 0, got {snr!r}")
    if not (isinstance(scale_eps, int | float) and scale_eps >= 0):
        raise InputError(f"scale_eps: expected a number >= 0, got {scale_eps!r}")
    if not (isinstance(n_corrector, int) and n_corrector >= 0):
        raise InputError(f"n_corrector: expected an integer >= 0, got {n_corrector!r}")


def _reverse_key(last: bool, x: Tensor, eps: Tensor, z: Tensor, s: Level, t: Level) -> Tensor:
    """One key's reverse-diffusion step from ``s`` to ``t`` (its mean on the ``last`` step)."""
    a, v = _transition(s, t)
    if last:
        return lincomb(x, 2.0 - a, [-v / s.sigma], [eps])
    return lincomb(x, 2.0 - a, [-v / s.sigma, math.sqrt(v)], [eps, z])


def reverse_diffusion(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    n_corrector: int = 0,
    snr: float = 0.16,
    scale_eps: float = 1.0,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """score_sde's reverse-diffusion predictor, optionally with ``n_corrector`` Langevin steps.

    Args:
        denoiser, paths, x, grid, mask: as every sampler (see :func:`~polyfold.core.samplers.ddim`).
        n_corrector: Langevin corrector steps before each predictor step (0: predictor only;
            ``1 + n_corrector`` model calls per step).
        snr: the corrector's signal-to-noise ratio.
        scale_eps: scales the corrector's noise (1 is score_sde's Langevin step, GDSS uses < 1).
        generator: for every noise draw.
        noise: a :data:`~polyfold.core.samplers._core.NoiseFn` for that noise (default i.i.d.).
        callback: ``callback(step, t, x, x0)`` after every step.
    """
    _check_langevin(snr, scale_eps, n_corrector)
    name = "reverse_diffusion_pc" if n_corrector else "reverse_diffusion"
    run, _ = _sde_run(name, denoiser, paths, x, grid, mask, generator, noise, callback)
    langevin = partial(_langevin_key, float(snr), float(scale_eps))
    for i in range(run.steps):
        s, t = run.lv(i), run.lv(i + 1)
        for _ in range(n_corrector):
            d = run.denoise(x, run.t[i])
            x = run.keep(smap(langevin, x, d.eps, run.noise(x), mask, s, t), x)
        d = run.denoise(x, run.t[i])
        last = i == run.steps - 1
        z = run.noise(x)  # drawn on the last step too: the same draws as GDSS's loop
        x = run.report(i, run.keep(smap(partial(_reverse_key, last), x, d.eps, z, s, t), x), d.x0)
    return run.result(x)


def reverse_diffusion_pc(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    snr: float = 0.16,
    scale_eps: float = 1.0,
    n_corrector: int = 1,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Reverse-diffusion predictor with a Langevin corrector (score_sde's and GDSS's PC sampler).

    :func:`reverse_diffusion` with ``n_corrector = 1`` by default; arguments as there.
    """
    return reverse_diffusion(
        denoiser,
        paths,
        x,
        grid,
        n_corrector=n_corrector,
        snr=snr,
        scale_eps=scale_eps,
        generator=generator,
        mask=mask,
        noise=noise,
        callback=callback,
    )


def _s4_half(x: Tensor, z: Tensor, s: Level, t: Level) -> Tensor:
    """The linear part of the reverse SDE from ``s`` to ``t``: ``x / a + sqrt(v) z``."""
    a, v = _transition(s, t)
    return lincomb(x, 1.0 / a, [math.sqrt(v)], [z])


def _s4_first(
    i: int,
    dt: float,
    x: Tensor,
    eps: Tensor,
    z: Tensor,
    s: Level,
    m: Level,
    fg: list[tuple[float, float]],
) -> Tensor:
    """The linear part from ``s`` to the midpoint ``m``, plus the score drift
    ``-g(s)^2 score dt = g(s)^2 dt eps / sigma_s`` over the whole step."""
    return _s4_half(x, z, s, m).add_(eps, alpha=fg[i][1] ** 2 * dt / s.sigma)


def _add_noise(mean: Tensor, z: Tensor, m: Level, t: Level) -> Tensor:
    """``mean + sqrt(v) z`` with ``v`` the transition variance from ``m`` to ``t``."""
    return mean.add_(z, alpha=math.sqrt(_transition(m, t)[1]))


def s4(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    snr: float = 0.16,
    scale_eps: float = 1.0,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> SampleResult:
    """GDSS's S4 solver: Langevin correction and a split reverse step on one model call a step.

    Args:
        snr, scale_eps: the Langevin correction's (see :func:`reverse_diffusion`).
        Others as :func:`reverse_diffusion`. The grid must not end at the data point (the
        half-step transitions need a finite midpoint); end it at ``t_min``.
    """
    _check_langevin(snr, scale_eps, 1)
    run, fg = _sde_run("s4", denoiser, paths, x, grid, mask, generator, noise, callback)
    if not math.isfinite(run.t[-1]) or run.ends_at_zero:
        raise InputError("s4: the grid must end before the data point (e.g. at t_min)")
    mids = run.at_many([0.5 * (run.t[i] + run.t[i + 1]) for i in range(run.steps)])
    langevin = partial(_langevin_key, float(snr), float(scale_eps))
    for i in range(run.steps):
        s, t, m = run.lv(i), run.lv(i + 1), mids[i]
        dt = run.t[i + 1] - run.t[i]
        d = run.denoise(x, run.t[i])
        corrected = smap(langevin, x, d.eps, run.noise(x), mask, s, t)
        z1, z2 = run.noise(x), run.noise(x)
        half = smap(partial(_s4_first, i, dt), corrected, d.eps, z1, s, m, fg)
        last = i == run.steps - 1
        mean = smap(lambda h, mi, ti: lincomb(h, ti.alpha / mi.alpha, [], []), half, m, t)
        new = mean if last else smap(_add_noise, mean, z2, m, t)
        x = run.report(i, run.keep(new, x), d.x0)
    return run.result(x)
