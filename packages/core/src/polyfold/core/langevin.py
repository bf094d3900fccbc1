"""Langevin samplers for energy-based and score models: ULA/SGLD, MALA, annealed Langevin.

A sampler draws from ``p(x) ∝ exp(-E(x))`` given an energy ``energy(x) -> (B,)`` (its gradient
by autograd) or a score ``score(x) = -∇E(x)`` of ``x``'s shape. ``x`` is batch-first: B chains
of any event shape. Every random draw comes from the caller's ``torch.Generator`` (on ``x``'s
device), so the same seed gives the same samples. The unadjusted updates use the fused
:func:`polyfold.core.ops.sgld.sgld_step` (a Triton kernel on CUDA).

* :func:`langevin`: ``x <- x - step_size * ∇E(x) + noise_scale * z``. The textbook unadjusted
  Langevin algorithm (ULA) takes ``noise_scale = sqrt(2 * step_size)`` (the default) and targets
  ``p`` up to an O(step_size) bias; any other pair targets ``exp(-E / T)`` (up to the same
  bias) with temperature ``T = noise_scale**2 / (2 * step_size)``.
* :func:`mala`: Metropolis-adjusted Langevin, unbiased for any step size; reports acceptance.
* :func:`annealed_langevin`: NCSN's annealed Langevin dynamics over decreasing noise levels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from polyfold.core.errors import InputError
from polyfold.core.ops.sgld import _check_clamp, sgld_step

__all__ = [
    "EnergyFn",
    "LangevinResult",
    "NoisyEnergyFn",
    "NoisyScoreFn",
    "ScoreFn",
    "annealed_langevin",
    "langevin",
    "mala",
]

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
"""``energy(x) -> (B,)``, differentiable in ``x``."""
ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""``score(x)``: ``∇ log p(x) = -∇E(x)``, of ``x``'s shape."""
NoisyEnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``energy(x, sigma) -> (B,)`` at noise level ``sigma`` (a (B,) tensor)."""
NoisyScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score(x, sigma)`` at noise level ``sigma`` (a (B,) tensor), of ``x``'s shape."""


@dataclass(frozen=True)
class LangevinResult:
    """Samples of a Langevin sampler and its diagnostics."""

    samples: torch.Tensor
    """(B, ...) final states of the B chains."""
    n_evals: int
    """Number of energy or score evaluations (each on the whole batch)."""
    acceptance: torch.Tensor | None = None
    """MALA only: (B,) fraction of proposals each chain accepted."""

    @property
    def acceptance_rate(self) -> float | None:
        """MALA only: the fraction of all proposals accepted."""
        return None if self.acceptance is None else float(self.acceptance.mean())


# --------------------------------------------------------------------------------------------
# Argument checks and the gradient of the energy
# --------------------------------------------------------------------------------------------


def _check_start(op: str, x0: torch.Tensor, generator: torch.Generator) -> None:
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 1:
        got: object = (
            f"{x0.dtype} of shape {tuple(x0.shape)}" if isinstance(x0, torch.Tensor) else type(x0)
        )
        raise InputError(f"{op}: x0 must be a floating-point (B, ...) tensor, got {got}")
    if x0.shape[0] == 0:
        raise InputError(f"{op}: x0 must hold at least one chain, got shape {tuple(x0.shape)}")
    if not isinstance(generator, torch.Generator) or generator.device != x0.device:
        got = generator.device if isinstance(generator, torch.Generator) else type(generator)
        raise InputError(f"{op}: generator must be a torch.Generator on {x0.device}, got {got}")


def _check_count(op: str, name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(op: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = (
        isinstance(value, int | float)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise InputError(
            f"{op}: {name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}"
        )


def _one_of(op: str, energy: object, score: object) -> None:
    if (energy is None) == (score is None):
        raise InputError(f"{op}: pass exactly one of energy= and score=")
    if not callable(energy if energy is not None else score):
        raise InputError(f"{op}: energy / score must be callable, got {energy or score!r:.80}")


def _energy_and_grad(
    op: str, energy: EnergyFn, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E(x) (B,), ∇E(x))``, both detached."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        e = energy(xr)
        if not isinstance(e, torch.Tensor) or e.shape != (x.shape[0],):
            got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
            raise InputError(f"{op}: energy(x) must return a ({x.shape[0]},) tensor, got {got}")
        if not e.requires_grad:
            raise InputError(f"{op}: energy(x) must be differentiable in x (it has no grad_fn)")
        (grad,) = torch.autograd.grad(e.sum(), xr)
    return e.detach(), grad


def _score_out(op: str, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise InputError(
            f"{op}: score(x) must return a tensor of x's shape {tuple(x.shape)}, got {got}"
        )
    return s.detach()


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------


def langevin(
    x0: torch.Tensor,
    *,
    generator: torch.Generator,
    steps: int,
    step_size: float,
    energy: EnergyFn | None = None,
    score: ScoreFn | None = None,
    noise_scale: float | None = None,
    clamp: tuple[float, float] | None = None,
) -> LangevinResult:
    """Unadjusted Langevin / SGLD: ``x <- clamp(x - step_size * ∇E(x) + noise_scale * z)``.

    Pass ``energy`` (gradient by autograd) or ``score`` (``-∇E``). ``noise_scale`` defaults to
    ``sqrt(2 * step_size)`` (ULA, biased by O(step_size)); ``clamp=(lo, hi)`` keeps every
    coordinate in a box after each step. ``x0`` is not modified.
    """
    op = "langevin"
    _check_start(op, x0, generator)
    _check_count(op, "steps", steps, 0)
    _check_positive(op, "step_size", step_size)
    if noise_scale is None:
        noise_scale = math.sqrt(2 * step_size)
    _check_positive(op, "noise_scale", noise_scale, allow_zero=True)
    _check_clamp(op, clamp)
    _one_of(op, energy, score)
    x = x0.detach().clone()
    for _ in range(steps):
        if energy is not None:
            grad = _energy_and_grad(op, energy, x)[1]
        else:
            assert score is not None
            grad = -_score_out(op, score(x), x)
        sgld_step(x, grad, step_size, noise_scale, generator, clamp)
    return LangevinResult(samples=x, n_evals=steps)


def mala(
    x0: torch.Tensor,
    *,
    energy: EnergyFn,
    generator: torch.Generator,
    steps: int,
    step_size: float,
) -> LangevinResult:
    """Metropolis-adjusted Langevin: ULA proposals, each accepted or rejected per chain.

    Proposal ``y = x - step_size * ∇E(x) + sqrt(2 * step_size) * z``, accepted with probability
    ``min(1, exp(E(x) - E(y)) q(x | y) / q(y | x))``. The chain targets ``exp(-E)`` exactly for
    any step size; ``LangevinResult.acceptance`` holds each chain's acceptance fraction.
    """
    op = "mala"
    _check_start(op, x0, generator)
    _check_count(op, "steps", steps, 1)
    _check_positive(op, "step_size", step_size)
    if not callable(energy):
        raise InputError(f"mala: energy must be a callable energy(x) -> (B,), got {energy!r:.80}")
    noise = math.sqrt(2 * step_size)
    wide = torch.promote_types(x0.dtype, torch.float32)  # the accept test, even for bf16 chains
    x = x0.detach().clone()
    e_x, g_x = _energy_and_grad(op, energy, x)
    accepted = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)

    def log_q(to: torch.Tensor, frm: torch.Tensor, grad_frm: torch.Tensor) -> torch.Tensor:
        """log q(to | frm) up to a constant, summed over each chain's coordinates."""
        diff = to.to(wide) - frm.to(wide) + step_size * grad_frm.to(wide)
        return -diff.flatten(1).pow(2).sum(1) / (4 * step_size)

    for _ in range(steps):
        y = sgld_step(x.clone(), g_x, step_size, noise, generator)
        e_y, g_y = _energy_and_grad(op, energy, y)
        log_ratio = (e_x.to(wide) - e_y.to(wide)) + log_q(x, y, g_y) - log_q(y, x, g_x)
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=log_ratio.dtype)
        accept = torch.log(u) < log_ratio  # NaN ratios (a diverged proposal) reject
        keep = accept.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(keep, y, x)
        g_x = torch.where(keep, g_y, g_x)
        e_x = torch.where(accept, e_y, e_x)
        accepted += accept
    acceptance = accepted / steps
    return LangevinResult(samples=x, n_evals=steps + 1, acceptance=acceptance.to(x.dtype))


def annealed_langevin(
    x0: torch.Tensor,
    *,
    sigmas: Sequence[float] | torch.Tensor,
    generator: torch.Generator,
    steps_per_level: int,
    eps: float,
    score: NoisyScoreFn | None = None,
    energy: NoisyEnergyFn | None = None,
    clamp: tuple[float, float] | None = None,
    final_denoise: bool = False,
) -> LangevinResult:
    """NCSN's annealed Langevin dynamics over decreasing noise levels ``sigmas``.

    At level ``sigma_i`` it runs ``steps_per_level`` steps
    ``x <- x + (alpha_i / 2) * score(x, sigma_i) + sqrt(alpha_i) * z`` with
    ``alpha_i = eps * sigma_i**2 / sigma_L**2`` (``sigma_L`` the last, smallest level), i.e.
    Langevin at the level's perturbed distribution with a step that shrinks with the noise.
    ``score(x, sigma)`` or ``energy(x, sigma) -> (B,)`` takes ``sigma`` as a (B,) tensor; a
    sequence of temperatures fits the same way through the energy. ``final_denoise`` adds
    Tweedie's step ``x + sigma_L**2 * score(x, sigma_L)`` at the end (clamped too, if asked).
    """
    op = "annealed_langevin"
    _check_start(op, x0, generator)
    _check_count(op, "steps_per_level", steps_per_level, 1)
    _check_positive(op, "eps", eps)
    _check_clamp(op, clamp)
    _one_of(op, energy, score)
    levels = [float(s) for s in (sigmas.flatten() if isinstance(sigmas, torch.Tensor) else sigmas)]
    if not levels or not all(math.isfinite(s) and s > 0 for s in levels):
        raise InputError(
            f"{op}: sigmas must be a non-empty sequence of positive numbers, got {levels}"
        )
    if any(b > a for a, b in itertools.pairwise(levels)):
        raise InputError(f"{op}: sigmas must be non-increasing (largest noise first), got {levels}")

    def grad_energy(x: torch.Tensor, sigma: float) -> torch.Tensor:
        level = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        if energy is not None:
            return _energy_and_grad(op, lambda v: energy(v, level), x)[1]
        assert score is not None
        return -_score_out(op, score(x, level), x)

    x = x0.detach().clone()
    for sigma in levels:
        alpha = eps * sigma**2 / levels[-1] ** 2
        for _ in range(steps_per_level):
            sgld_step(x, grad_energy(x, sigma), alpha / 2, math.sqrt(alpha), generator, clamp)
    n_evals = len(levels) * steps_per_level
    if final_denoise:
        x = x - levels[-1] ** 2 * grad_energy(x, levels[-1])
        if clamp is not None:
            x = x.clamp(clamp[0], clamp[1])
        n_evals += 1
    return LangevinResult(samples=x, n_evals=n_evals)
