"""TabEBM's SGLD parameterisation (Margeloiu et al.), on core's generic Langevin sampler.

TabEBM's reference implementation (github.com/andreimargeloiu/TabEBM) steps along the gradient
of the *mean* energy over the B chains with step size 0.1 (so 0.1 / B per chain) and adds noise
of std 0.01 (not sqrt(2 * step)), for 200 steps, from training rows jittered by 0.01. The
nominal temperature 0.01**2 / (2 * 0.1 / B) = 5e-4 * B is never reached in 200 steps: the chains
stay near their real starting rows, nudged down the energy. :func:`tabebm_sgld` is that update,
run by :func:`polyfold.core.langevin.langevin`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from polyfold.core.errors import InputError
from polyfold.core.langevin import EnergyFn, LangevinResult, langevin

__all__ = [
    "TABEBM_SGLD_NOISE_STD",
    "TABEBM_SGLD_STEPS",
    "TABEBM_SGLD_STEP_SIZE",
    "TABEBM_START_NOISE_STD",
    "tabebm_sgld",
]

TABEBM_SGLD_STEP_SIZE = 0.1
"""Step size on the gradient of the mean energy over the chains."""
TABEBM_SGLD_NOISE_STD = 0.01
"""Standard deviation of the Gaussian noise added each step (not sqrt(2 * step size))."""
TABEBM_SGLD_STEPS = 200
"""Number of SGLD steps."""
TABEBM_START_NOISE_STD = 0.01
"""Chains start at random training rows of the class plus this much Gaussian noise."""


def tabebm_sgld(
    x0: torch.Tensor,
    *,
    energy: EnergyFn,
    generator: torch.Generator,
    steps: int = TABEBM_SGLD_STEPS,
    step_size: float = TABEBM_SGLD_STEP_SIZE,
    noise_scale: float = TABEBM_SGLD_NOISE_STD,
    clamp: tuple[float, float] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> LangevinResult:
    """TabEBM's SGLD with its reference defaults (see the module docstring).

    The step follows the gradient of the mean energy over the B chains, so each chain moves by
    ``step_size / B`` times its own energy gradient, plus ``noise_scale * z``. ``on_step(k)`` is
    called after step k (1-based) for a progress display; the samples are the same with or
    without it.
    """
    if not (
        isinstance(step_size, int | float)
        and not isinstance(step_size, bool)
        and math.isfinite(step_size)
        and step_size > 0
    ):
        raise InputError(f"tabebm_sgld: step_size must be a finite number > 0, got {step_size!r}")
    # a malformed x0 is left to langevin, which names what it expected
    chains = x0.shape[0] if isinstance(x0, torch.Tensor) and x0.dim() >= 1 else 0

    def run(x: torch.Tensor, n: int) -> LangevinResult:
        return langevin(
            x,
            generator=generator,
            steps=n,
            step_size=step_size / max(chains, 1),
            energy=energy,
            noise_scale=noise_scale,
            clamp=clamp,
        )

    if on_step is None or isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        return run(x0, steps)
    # one step at a time: the same updates and random draws as one call of `steps` steps
    x = x0
    for k in range(1, steps + 1):
        x = run(x, 1).samples
        on_step(k)
    return LangevinResult(samples=x, n_evals=steps)
