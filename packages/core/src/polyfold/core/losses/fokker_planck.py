"""The score Fokker-Planck residual as a training term, and the ODE-versus-SDE gap it controls.

For the forward SDE ``dx = f(t) x dt + g(t) dW`` of a Gaussian path (``path.sde``), the
marginal density obeys the Fokker-Planck equation, so its score ``s = grad log p_t`` obeys

    ``d_t s = grad_x [ (g^2 / 2) (div s + ||s||^2) - f x . s ]``

(the constant ``-f d`` of ``d_t log p`` drops under ``grad_x``). A learned score need not, and
the mismatch bounds the 2-Wasserstein distance between the distributions its probability-flow
ODE and its reverse SDE sample. :func:`fokker_planck_residual` evaluates

    ``R(x, t) = d_t s - grad_x [ (g^2 / 2) (div s + ||s||^2) - f x . s ]``

for a network of any prediction type (``s = -eps / sigma``): ``d_t s`` by a central difference
in ``t``, ``div s`` exactly (one backward pass per feature) or by Hutchinson's estimator
``v^T J v`` with Rademacher ``v`` (unbiased, so ``R`` is too), ``grad_x`` by autograd with the
graph kept for training. The exact score of any Gaussian mixture has ``R = 0``.
:func:`fokker_planck_loss` is the regulariser ``E_t w(t) ||R(x_t, t)||^2 / d`` at points of
the forward process, added to the DSM loss with a weight. :func:`ode_sde_gap` measures the gap
itself: the exact empirical W2 between samples of an ODE sampler and an SDE sampler (by name,
:func:`~polyfold.core.samplers.get_sampler`) of the same model from the same start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int
from polyfold.core.losses.ot import linear_assignment, pairwise_sq_cost
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction
from polyfold.core.samplers.registry import get_sampler
from polyfold.core.state import expand_to

__all__ = [
    "Divergence",
    "GapResult",
    "empirical_w2",
    "fokker_planck_loss",
    "fokker_planck_residual",
    "ode_sde_gap",
]

Divergence = Literal["exact", "hutchinson"]
FPWeighting = Literal["normalized", "sigma4", "uniform"] | Callable[[Tensor, Tensor], Tensor]


def _check_path(path: object) -> GaussianPath:
    if not isinstance(path, GaussianPath) or not path.gaussian:
        raise InputError(f"path: expected a GaussianPath, got {path!r}")
    return path


def _divergence(
    s: Tensor, x: Tensor, how: str, probes: int, generator: torch.Generator | None
) -> Tensor:
    """``div_x s`` per example ``(B,)``, with the graph kept."""
    flat = s.reshape(s.shape[0], -1)
    if how == "exact":
        cols = []
        for j in range(flat.shape[1]):
            (g,) = torch.autograd.grad(flat[:, j].sum(), x, create_graph=True)
            cols.append(g.reshape(g.shape[0], -1)[:, j])
        return torch.stack(cols, 1).sum(1)
    if how != "hutchinson":
        raise InputError(f"divergence: expected 'exact' or 'hutchinson', got {how!r}")
    total = s.new_zeros(s.shape[0])
    for _ in range(probes):
        v = torch.randint(0, 2, s.shape, generator=generator, device=s.device).to(s.dtype) * 2 - 1
        (jv,) = torch.autograd.grad((s * v).sum(), x, create_graph=True)
        total = total + (v * jv).reshape(s.shape[0], -1).sum(1)
    return total / probes


def fokker_planck_residual(
    model: Callable[..., Any],
    x: Tensor,
    t: Tensor | float,
    *,
    path: GaussianPath,
    prediction: Prediction = "eps",
    cond: Any = None,
    divergence: Divergence = "exact",
    probes: int = 1,
    dt: float = 1e-3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The score Fokker-Planck residual ``R(x, t)`` (shape of ``x``), differentiable in the
    model's parameters.

    Args:
        model: ``model(x_t, t, cond)`` predicting ``prediction``; differentiable in ``x_t`` and
            ``t``.
        x: states ``(B, ...)`` at times ``t`` (a number or ``(B,)``, inside ``(t_min, t_max]``).
        divergence: ``"exact"`` (one backward pass per feature) or ``"hutchinson"`` (``probes``
            Rademacher probes, unbiased).
        dt: the step of the central difference in ``t`` (one-sided at ``t_max``).
    """
    _check_path(path)
    if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise InputError("x: expected a batch-first floating tensor")
    check_int("probes", probes)
    if not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise InputError(f"dt: expected a number > 0, got {dt!r}")
    tt = torch.as_tensor(t, dtype=F64, device=x.device).reshape(-1).expand(x.shape[0])
    if bool(((tt <= path.t_min) | (tt > path.t_max)).any()):
        raise InputError(f"t: expected times in ({path.t_min}, {path.t_max}]")
    den = as_denoiser(model, path, prediction=prediction, cond=cond)

    def score(xx: Tensor, time: Tensor) -> Tensor:
        eps = den(xx, time.to(xx.dtype)).eps
        assert isinstance(eps, Tensor)
        return -eps / expand_to(path.sigma(time).to(xx.dtype), xx)

    lo = (tt - dt).clamp_min(path.t_min + 0.5 * (tt - path.t_min))
    hi = (tt + dt).clamp_max(path.t_max)
    ds_dt = (score(x, hi) - score(x, lo)) / expand_to((hi - lo).to(x.dtype), x)
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        s = score(xr, tt)
        div = _divergence(s, xr, divergence, probes, generator)
        f, g = (c.to(x.dtype) for c in path.sde(tt))
        flat_s, flat_x = s.reshape(s.shape[0], -1), xr.reshape(s.shape[0], -1)
        phi = 0.5 * g * g * (div + flat_s.pow(2).sum(1)) - f * (flat_x * flat_s).sum(1)
        (grad_phi,) = torch.autograd.grad(phi.sum(), xr, create_graph=True)
    return ds_dt - grad_phi


def fokker_planck_loss(
    model: Callable[..., Any],
    x0: Tensor,
    *,
    path: GaussianPath,
    prediction: Prediction = "eps",
    cond: Any = None,
    weighting: FPWeighting = "normalized",
    t_range: tuple[float, float] | None = None,
    divergence: Divergence = "exact",
    probes: int = 1,
    dt: float = 1e-3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``mean_B w(t) ||R(x_t, t)||^2 / d`` at ``x_t = alpha x0 + sigma eps``, ``t`` uniform on
    ``t_range`` (default: the path's upper 90%, away from the data end where the score is
    singular). ``weighting``: ``"normalized"`` (``sigma^4 / g^4``: ``R`` in noise units per unit
    of diffusion, so no time range dominates; default), ``"sigma4"``, ``"uniform"`` or a
    callable of ``(alpha, sigma)``."""
    _check_path(path)
    if not isinstance(x0, Tensor) or x0.ndim < 1 or not x0.is_floating_point():
        raise InputError("x0: expected a batch-first floating tensor")
    span = path.t_max - path.t_min
    lo, hi = t_range or (path.t_min + 0.1 * span, path.t_max)
    if not (path.t_min < lo < hi <= path.t_max):
        raise InputError(
            f"t_range: expected t_min={path.t_min} < lo < hi <= t_max={path.t_max}, got "
            f"{(lo, hi)!r}"
        )
    b = x0.shape[0]
    t = lo + (hi - lo) * torch.rand(b, generator=generator, dtype=F64, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    x_t = path.perturb(x0, t, eps)
    r = fokker_planck_residual(
        model,
        x_t,
        t,
        path=path,
        prediction=prediction,
        cond=cond,
        divergence=divergence,
        probes=probes,
        dt=dt,
        generator=generator,
    )
    alpha, sigma = path.alpha(t), path.sigma(t)
    if callable(weighting):
        w = weighting(alpha, sigma)
    elif weighting == "normalized":
        w = (sigma**2 / path.sde(t)[1].pow(2).clamp_min(1e-12)) ** 2
    elif weighting == "sigma4":
        w = sigma**4
    elif weighting == "uniform":
        w = torch.ones_like(t)
    else:
        raise InputError(
            f"weighting: expected 'normalized', 'sigma4', 'uniform' or a callable, got "
            f"{weighting!r}"
        )
    per = r.reshape(b, -1).pow(2).mean(1)
    return (w.to(per.dtype) * per).mean()


def empirical_w2(a: Tensor, b: Tensor) -> float:
    """The exact 2-Wasserstein distance between two equal-size samples (optimal assignment,
    ``O(n^3)``: a few thousand points)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape != b.shape:
        raise InputError("samples: expected two tensors of the same shape")
    cost = pairwise_sq_cost(a, b)
    perm = linear_assignment(cost)
    return math.sqrt(float(cost[torch.arange(a.shape[0]), perm].clamp_min(0).mean()))


@dataclass(frozen=True)
class GapResult:
    """:func:`ode_sde_gap`'s output: the W2 distance and both sample sets."""

    w2: float
    ode: Tensor
    sde: Tensor


def ode_sde_gap(
    denoiser: Denoiser,
    path: GaussianPath,
    x: Tensor,
    grid: Tensor | Sequence[float],
    *,
    ode: str = "heun",
    sde: str = "euler_maruyama",
    generator: torch.Generator | None = None,
    ode_options: dict[str, Any] | None = None,
    sde_options: dict[str, Any] | None = None,
) -> GapResult:
    """Sample the same model from the same start ``x`` with the ODE sampler ``ode`` and the SDE
    sampler ``sde`` (registered names) on ``grid``, and return the exact empirical W2 between
    the two sample sets."""
    _check_path(path)
    with torch.no_grad():
        xo = get_sampler(ode, "gaussian")(denoiser, path, x, grid, **(ode_options or {})).x
        xs = get_sampler(sde, "gaussian")(
            denoiser, path, x, grid, generator=generator, **(sde_options or {})
        ).x
    if not isinstance(xo, Tensor) or not isinstance(xs, Tensor):
        raise InputError("x: the gap is measured on tensor states")
    return GapResult(empirical_w2(xo, xs), xo, xs)
