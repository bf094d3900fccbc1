"""Score distillation: losses that optimise a differentiable sample ``x = g(theta)`` (a
generator's output, a rendered parameterisation) against a frozen diffusion prior.

Each method defines a gradient ``G`` with respect to ``x`` (computed without gradient through
the prior); ``*_gradient`` returns it and ``*_loss`` returns the stop-gradient surrogate
``0.5 ||x - stopgrad(x - G)||^2 / B``, whose gradient with respect to ``x`` is ``G / B``, so
``loss.backward()`` sends ``G`` (averaged over the batch) into ``theta``.

- SDS (DreamFusion): ``G = w(t) (eps_prior(x_t, t) - eps)`` with ``x_t = alpha x + sigma eps``.
- VSD (ProlificDreamer): ``G = w(t) (eps_prior(x_t, t) - eps_aux(x_t, t))`` where the auxiliary
  denoiser models the distribution of the current samples; train it on them with
  :func:`vsd_aux_loss` (plain DSM on ``stopgrad(x)``). For a large prior, make the auxiliary
  network a copy of it with :func:`add_lora` (LoRA starts as the identity, so aux = prior).
- ISM (LucidDreamer): DDIM inversion of ``x`` up to ``s = t - delta``, one DDIM-inversion step
  ``s -> t``, ``G = w(t) (eps_prior(x_t, t) - eps_prior(x_s, s))``.
- TSM (Dreamer XL): two DDIM-inversion trajectories from the same starting point, one to
  ``t1 = t - delta`` and one to ``t2 = t`` (each with its own steps), and
  ``G = w(t) (eps_prior(x_t2, t2) - eps_prior(x_t1, t1))``; ISM is the special case where the
  second trajectory is the first extended by one step.

Weightings ``w(t)``: ``"uniform"`` (1), ``"sigma2"`` (``sigma(t)^2``, DreamFusion's
``1 - abar``) or a callable of ``(alpha, sigma)`` (``(B,)`` tensors). Times are drawn uniformly
on ``t_range`` (a sub-interval of ``[t_min, t_max]`` of the path) unless ``t`` is given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, Literal, ParamSpec

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import Denoiser
from polyfold.core.distill._util import (
    check_path,
    check_tensor,
    times,
    uniform_times,
)
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int
from polyfold.core.losses.dsm import dsm_loss
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction
from polyfold.core.samplers.steps import ddim_step, denoise_at, path_coef
from polyfold.core.state import expand_to

__all__ = [
    "LoRALinear",
    "SDWeighting",
    "add_lora",
    "ddim_invert",
    "ism_gradient",
    "ism_loss",
    "lora_parameters",
    "sds_gradient",
    "sds_loss",
    "surrogate_loss",
    "tsm_gradient",
    "tsm_loss",
    "vsd_aux_loss",
    "vsd_gradient",
    "vsd_loss",
]

SDWeighting = Literal["uniform", "sigma2"] | Callable[[Tensor, Tensor], Tensor]


P = ParamSpec("P")


def _as_loss(
    gradient: Callable[Concatenate[Tensor, P], Tensor],
) -> Callable[Concatenate[Tensor, P], Tensor]:
    """The surrogate loss of a gradient function: same arguments, ``surrogate_loss(x, grad)``."""

    @functools.wraps(gradient)
    def loss(x: Tensor, *args: P.args, **kwargs: P.kwargs) -> Tensor:
        return surrogate_loss(x, gradient(x, *args, **kwargs))

    loss.__doc__ = f"The surrogate loss of :func:`{gradient.__name__}` (same arguments)."
    return loss


def surrogate_loss(x: Tensor, grad: Tensor) -> Tensor:
    """``0.5 ||x - stopgrad(x - grad)||^2 / B``: its gradient with respect to ``x`` is
    ``grad / B``."""
    if grad.shape != x.shape:
        raise InputError(f"grad: expected the shape of x {tuple(x.shape)}")
    return 0.5 * (x - (x - grad).detach()).pow(2).sum() / x.shape[0]


def _weight(weighting: object, path: GaussianPath, t: Tensor, x: Tensor) -> Tensor:
    alpha, sigma = path.alpha(t), path.sigma(t)
    if callable(weighting):
        w = weighting(alpha, sigma)
        if not isinstance(w, Tensor):
            raise InputError("weighting: a callable must return a (B,) tensor")
    elif weighting == "uniform":
        w = torch.ones_like(t)
    elif weighting == "sigma2":
        w = sigma**2
    else:
        raise InputError(
            f"weighting: expected 'uniform', 'sigma2' or a callable, got {weighting!r}"
        )
    return expand_to(w.to(x.dtype), x)


def _times(
    x: Tensor,
    path: GaussianPath,
    t: Tensor | float | None,
    t_range: tuple[float, float],
    generator: torch.Generator | None,
) -> Tensor:
    if t is not None:
        return times(t, x)
    lo, hi = t_range
    if not (path.t_min <= lo < hi <= path.t_max):
        raise InputError(
            f"t_range: expected t_min={path.t_min} <= lo < hi <= t_max={path.t_max}, "
            f"got {t_range!r}"
        )
    return uniform_times(x.shape[0], lo, hi, generator, x.device)


def _default_range(path: GaussianPath) -> tuple[float, float]:
    span = path.t_max - path.t_min
    return path.t_min + 0.02 * span, path.t_min + 0.98 * span


def _noise(x: Tensor, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
    if noise is None:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if not isinstance(noise, Tensor) or noise.shape != x.shape:
        raise InputError(f"noise: expected a tensor of shape {tuple(x.shape)}")
    return noise


def _eps(d: Denoiser, x: Tensor, t: Tensor) -> Tensor:
    e = denoise_at(d, x, t).eps
    assert isinstance(e, Tensor)
    return e


def sds_gradient(
    x: Tensor,
    prior: Denoiser,
    *,
    path: GaussianPath,
    weighting: SDWeighting = "sigma2",
    t: Tensor | float | None = None,
    t_range: tuple[float, float] | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SDS's ``w(t) (eps_prior(x_t, t) - eps)`` at ``x_t = alpha x + sigma eps`` (no gradient).

    ``t`` (number or ``(B,)``) and ``noise`` fix the draws (default: ``t`` uniform on
    ``t_range``, then ``eps``, from ``generator``).
    """
    check_tensor(x, "x")
    check_path(path)
    with torch.no_grad():
        xd = x.detach()
        tt = _times(xd, path, t, t_range or _default_range(path), generator)
        eps = _noise(xd, noise, generator)
        x_t = path_coef(path.alpha, tt, xd) * xd + path_coef(path.sigma, tt, xd) * eps
        return _weight(weighting, path, tt, xd) * (_eps(prior, x_t, tt) - eps)


def vsd_gradient(
    x: Tensor,
    prior: Denoiser,
    aux: Denoiser,
    *,
    path: GaussianPath,
    weighting: SDWeighting = "sigma2",
    t: Tensor | float | None = None,
    t_range: tuple[float, float] | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """VSD's ``w(t) (eps_prior(x_t, t) - eps_aux(x_t, t))`` (no gradient): zero when the
    auxiliary denoiser equals the prior, and in expectation when the samples' distribution is
    the prior's (then the ideal auxiliary denoiser is the prior)."""
    check_tensor(x, "x")
    check_path(path)
    with torch.no_grad():
        xd = x.detach()
        tt = _times(xd, path, t, t_range or _default_range(path), generator)
        eps = _noise(xd, noise, generator)
        x_t = path_coef(path.alpha, tt, xd) * xd + path_coef(path.sigma, tt, xd) * eps
        diff = _eps(prior, x_t, tt) - _eps(aux, x_t, tt)
        return _weight(weighting, path, tt, xd) * diff


def vsd_aux_loss(
    aux_model: Callable[..., Any],
    x: Tensor,
    *,
    path: GaussianPath,
    prediction: Prediction = "eps",
    generator: torch.Generator | None = None,
    **dsm_kwargs: Any,
) -> Tensor:
    """The auxiliary network's own step: :func:`~polyfold.core.losses.dsm_loss` on the current
    samples ``stopgrad(x)`` (``dsm_kwargs`` are passed on: ``cond``, ``weighting``, ...)."""
    check_tensor(x, "x")
    return dsm_loss(
        aux_model, x.detach(), path=path, prediction=prediction, generator=generator, **dsm_kwargs
    )


def ddim_invert(
    denoiser: Denoiser,
    x: Tensor,
    t_from: Tensor | float,
    t_to: Tensor | float,
    *,
    path: GaussianPath,
    steps: int,
) -> Tensor:
    """Deterministic DDIM inversion of the state ``x`` at ``t_from`` to ``t_to`` (numbers or
    ``(B,)``, ``t_to >= t_from``) in ``steps`` steps uniform in ``t``, without gradient."""
    check_tensor(x, "x")
    check_int("steps", steps)
    a, b = times(t_from, x), times(t_to, x)
    if bool((b < a).any()):
        raise InputError("t_to: expected times >= t_from")
    with torch.no_grad():
        for k in range(steps):
            t0 = a + (b - a) * (k / steps)
            t1 = a + (b - a) * ((k + 1) / steps)
            x, _ = ddim_step(denoiser, path, x, t0, t1)
    return x


def _start(path: GaussianPath, x: Tensor) -> tuple[Tensor, Tensor]:
    """The inversion's starting point: ``x`` scaled to ``t_min`` without noise."""
    t0 = times(path.t_min, x)
    return t0, path_coef(path.alpha, t0, x) * x


def _interval_times(
    x: Tensor,
    path: GaussianPath,
    t: Tensor | float | None,
    delta_t: float,
    t_range: tuple[float, float] | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    if not (isinstance(delta_t, int | float) and math.isfinite(delta_t) and delta_t > 0):
        raise InputError(f"delta_t: expected a number > 0, got {delta_t!r}")
    tt = _times(x, path, t, t_range or _default_range(path), generator)
    s = (tt - delta_t).clamp_min(path.t_min)
    if bool((s >= tt).any()):
        raise InputError(f"t: expected times > t_min={path.t_min}")
    return tt, s


def ism_gradient(
    x: Tensor,
    prior: Denoiser,
    *,
    path: GaussianPath,
    delta_t: float = 0.05,
    inversion_steps: int = 4,
    weighting: SDWeighting = "sigma2",
    t: Tensor | float | None = None,
    t_range: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ISM's ``w(t) (eps_prior(x_t, t) - eps_prior(x_s, s))``, ``s = t - delta_t``: ``x_s`` by
    ``inversion_steps`` DDIM-inversion steps from ``alpha(t_min) x``, ``x_t`` one further
    DDIM-inversion step (no gradient)."""
    check_tensor(x, "x")
    check_path(path)
    with torch.no_grad():
        xd = x.detach()
        tt, s = _interval_times(xd, path, t, delta_t, t_range, generator)
        t0, x0 = _start(path, xd)
        x_s = ddim_invert(prior, x0, t0, s, path=path, steps=inversion_steps)
        x_t, d_s = ddim_step(prior, path, x_s, s, tt)
        e_s = d_s.eps
        assert isinstance(e_s, Tensor)
        return _weight(weighting, path, tt, xd) * (_eps(prior, x_t, tt) - e_s)


def tsm_gradient(
    x: Tensor,
    prior: Denoiser,
    *,
    path: GaussianPath,
    delta_t: float = 0.05,
    inversion_steps: int = 4,
    weighting: SDWeighting = "sigma2",
    t: Tensor | float | None = None,
    t_range: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """TSM's ``w(t) (eps_prior(x_t2, t2) - eps_prior(x_t1, t1))``, ``t2 = t``,
    ``t1 = t - delta_t``: both points by ``inversion_steps`` DDIM-inversion steps from the same
    start ``alpha(t_min) x``, on two trajectories (no gradient)."""
    check_tensor(x, "x")
    check_path(path)
    with torch.no_grad():
        xd = x.detach()
        t2, t1 = _interval_times(xd, path, t, delta_t, t_range, generator)
        t0, x0 = _start(path, xd)
        x1 = ddim_invert(prior, x0, t0, t1, path=path, steps=inversion_steps)
        x2 = ddim_invert(prior, x0, t0, t2, path=path, steps=inversion_steps)
        return _weight(weighting, path, t2, xd) * (_eps(prior, x2, t2) - _eps(prior, x1, t1))


class LoRALinear(nn.Module):
    """``base(x) + scale * up(down(x))`` around a frozen ``nn.Linear``: ``down`` (rank x in)
    uniform in ``+-1/sqrt(in)``, ``up`` (out x rank) zero, so it starts as ``base`` exactly."""

    def __init__(
        self,
        base: nn.Linear,
        *,
        rank: int = 4,
        scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise InputError(f"base: expected an nn.Linear, got {type(base).__name__}")
        check_int("rank", rank)
        self.base, self.scale = base, float(scale)
        base.requires_grad_(False)
        w = base.weight
        bound = 1.0 / math.sqrt(base.in_features)
        down = torch.rand(rank, base.in_features, generator=generator, dtype=F64) * 2 - 1
        self.down = nn.Parameter((down * bound).to(device=w.device, dtype=w.dtype))
        self.up = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.base(x)
        return out + self.scale * (x @ self.down.T) @ self.up.T


def add_lora(
    module: nn.Module,
    *,
    rank: int = 4,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[LoRALinear]:
    """Freeze ``module`` and replace every ``nn.Linear`` inside it (in place) by a
    :class:`LoRALinear`; returns the adapters (their ``down``/``up`` are the only trainable
    parameters, :func:`lora_parameters`). Apply it to a copy of the prior to make VSD's
    auxiliary network."""
    if not isinstance(module, nn.Module):
        raise InputError(f"module: expected an nn.Module, got {type(module).__name__}")
    if isinstance(module, nn.Linear):
        raise InputError("module: wrap a bare nn.Linear with LoRALinear(module) instead")
    module.requires_grad_(False)
    made: list[LoRALinear] = []

    def visit(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                continue
            if isinstance(child, nn.Linear):
                lora = LoRALinear(child, rank=rank, scale=scale, generator=generator)
                setattr(parent, name, lora)
                made.append(lora)
            else:
                visit(child)

    visit(module)
    return made


def lora_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """The ``down`` and ``up`` parameters of every :class:`LoRALinear` in ``module``."""
    for m in module.modules():
        if isinstance(m, LoRALinear):
            yield m.down
            yield m.up


sds_loss = _as_loss(sds_gradient)
vsd_loss = _as_loss(vsd_gradient)
ism_loss = _as_loss(ism_gradient)
tsm_loss = _as_loss(tsm_gradient)
