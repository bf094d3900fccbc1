r"""Denoising MCMC (Kim & Ye, "Denoising MCMC for Accelerating Diffusion-Based Generative
Models"): Denoising Langevin Gibbs (DLG) in the product space of data and noise level, then any
integrator by name to denoise.

The chain targets ``pi(x, t) = p(t) p_t(x)`` with ``p(t)`` uniform on ``[t_low, t_high]``.
Each DLG iteration costs one model call at the chain's time ``t``:

- Langevin on ``x`` given ``t``: ``x <- x + delta sigma_t^2 score + sqrt(2 delta) sigma_t z
  = x - delta sigma_t eps + sqrt(2 delta) sigma_t z`` (``delta`` the step relative to the
  noise variance; ``p_t`` is its stationary law up to an ``O(delta)`` bias);
- Gibbs on ``t`` given ``x``: ``p(t | x) ∝ p(t) p_t(x)`` with ``p_t`` replaced by its Gaussian
  approximation (:class:`~polyfold.core.samplers.teleport.GaussianScore`, accurate at the
  moderate and high noise levels the chain visits; the paper trains a noise-level classifier
  instead), at its mode. The batch shares one time (the mode of the pooled log-density), so that
  any integrator can follow; no model call.

The integrator then runs the grid compressed onto ``[t_last, t_chain]``
(:func:`~polyfold.core.samplers.teleport.handover_grid`) with its own model calls. With
``steps=0`` this is the integrator alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers._core import Run
from polyfold.core.samplers.grids import check_grid, zero_time
from polyfold.core.samplers.registry import get_sampler
from polyfold.core.samplers.result import SampleResult
from polyfold.core.samplers.teleport import GaussianScore, handover_grid
from polyfold.core.state import Mask

__all__ = ["DLGResult", "denoising_langevin_gibbs", "estimate_time"]


def estimate_time(
    path: GaussianPath,
    x: Tensor,
    approx: GaussianScore,
    t_low: float,
    t_high: float,
    points: int = 128,
) -> float:
    """The batch's noise level: the time in ``[t_low, t_high]`` (``points`` candidates) that
    maximises the summed log-density of ``x`` under the Gaussian approximation of ``p_t``."""
    ts = torch.linspace(t_low, t_high, points, dtype=F64)
    logp = approx.log_marginal(x, path.alpha(ts), path.sigma(ts)).sum(0)
    return float(ts[logp.argmax()])


@dataclass(frozen=True)
class DLGResult(SampleResult):
    """A :class:`SampleResult` (``nfe`` counts chain and integrator calls) with the chain's
    times ``chain_times`` (its start, then after each iteration) and its final state
    ``chain_x`` (where the integrator started)."""

    chain_times: tuple[float, ...] = ()
    chain_x: Tensor | None = None


def denoising_langevin_gibbs(
    denoiser: Denoiser,
    paths: GaussianPath,
    x: Tensor,
    grid: Tensor | Sequence[float],
    *,
    approx: GaussianScore | None = None,
    steps: int = 2,
    delta: float = 0.1,
    t_low: float | None = None,
    t_high: float | None = None,
    sampler: str = "unipc",
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: Any = None,
    callback: Any = None,
    **options: Any,
) -> DLGResult:
    """``steps`` DLG iterations from ``x`` at ``grid[0]``, then ``sampler`` (by name, with its
    ``options``) on the grid handed over to the chain's final time.

    Args:
        denoiser, paths, x, grid, generator, mask, noise, callback: as every sampler; ``x`` is
            the chain's start at ``grid[0]`` (e.g. teleported there, see
            :func:`~polyfold.core.samplers.teleport.teleport`).
        approx: the data's Gaussian approximation, for the Gibbs step on ``t`` (needed when
            ``steps > 0``).
        steps: DLG iterations (one model call each); 0 runs the integrator alone.
        delta: the Langevin step relative to ``sigma_t^2``, in ``(0, 1]``.
        t_low, t_high: the noise-level prior's support (default ``[grid[0] / 2, grid[0]]``).
        sampler: the integrator, by name.
    """
    if not isinstance(paths, GaussianPath):
        raise InputError(f"paths: expected one GaussianPath (a tensor state), got {paths!r}")
    if not (isinstance(steps, int) and steps >= 0):
        raise InputError(f"steps: expected a number of DLG iterations >= 0, got {steps!r}")
    if not (isinstance(delta, int | float) and 0 < delta <= 1):
        raise InputError(f"delta: expected a Langevin step in (0, 1], got {delta!r}")
    if steps > 0 and not isinstance(approx, GaussianScore):
        raise InputError("approx: DLG's Gibbs step needs the data's GaussianScore (see .fit)")
    spec = get_sampler(sampler, "gaussian")
    g = check_grid(grid, paths)
    t0 = float(g[0])
    hi = t0 if t_high is None else float(t_high)
    lo = 0.5 * t0 if t_low is None else float(t_low)
    if not (max(zero_time(paths), paths.t_min) <= lo < hi <= paths.t_max and lo > float(g[-1])):
        raise InputError(
            f"t_low, t_high: expected t_min <= t_low < t_high <= t_max with t_low above the "
            f"grid's last time {float(g[-1])}, got {lo}, {hi}"
        )
    run = Run(
        "denoising_langevin_gibbs",
        denoiser,
        paths,
        x,
        g,
        mask=mask,
        generator=generator,
        noise=noise,
    )
    t, times = min(max(t0, lo), hi), [t0]
    for _ in range(steps):
        sig = float(paths.sigma(torch.tensor([t], dtype=F64)))
        d = run.denoise(x, t, run.at(t))
        eps = d.eps
        assert isinstance(eps, Tensor)
        z = run.noise(x)
        assert isinstance(z, Tensor)
        moved = x - (delta * sig) * eps + (math.sqrt(2 * delta) * sig) * z
        kept = run.keep(moved, x)
        assert isinstance(kept, Tensor)
        assert approx is not None
        x, t = kept, estimate_time(paths, kept, approx, lo, hi)
        times.append(t)
    hand = handover_grid(g, min(t, t0))
    common = {"generator": generator, "mask": mask, "noise": noise, "callback": callback}
    out = spec(
        denoiser, paths, x, hand, **{k: v for k, v in common.items() if v is not None}, **options
    )
    return DLGResult(out.x, out.nfe + run.nfe, out.grid, out.times, tuple(times), x)
