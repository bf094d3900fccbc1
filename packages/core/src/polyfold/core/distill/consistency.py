"""Consistency distillation and consistency training (Song et al. 2023; Song & Dhariwal 2023).

Everything works in EDM noise levels ``s = sigma / alpha`` (on EDM paths ``s = sigma``): a state
``x_t = alpha (x0 + s z)`` of any Gaussian path is an EDM input ``y = x_t / alpha`` at level
``s``, and a level maps to the path's time through its exact inverse log-SNR.

- :class:`ConsistencyModel`: ``f(y, s) = c_skip(s) y + c_out(s) F(c_in y, log(s)/4)`` with the
  boundary-condition coefficients ``c_skip = sd^2 / ((s - s_min)^2 + sd^2)``,
  ``c_out = sd (s - s_min) / sqrt(sd^2 + s^2)``, so ``f(y, s_min) = y`` exactly.
- :func:`consistency_distillation_loss` (CD): a teacher denoiser makes one Heun or Euler step of
  the probability-flow ODE ``dy/ds = eps_hat`` between adjacent levels; the online model at the
  noisier level matches the EMA target model (:func:`ema_update`) at the teacher's point.
- :func:`consistency_training_loss` (improved CT): no teacher; both points share the noise
  ``z``; the pseudo-Huber metric with ``c = 0.00054 sqrt(d)``; the level index drawn from the
  discretised lognormal (:func:`ict_level_probs`); the discretisation curriculum
  (:func:`ict_num_levels`); the stop-gradient of the online model as target (no EMA);
  weighting ``1 / (s_{i+1} - s_i)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import Denoiser
from polyfold.core.distill._util import (
    check_finite_positive,
    check_path,
    check_reduction,
    check_tensor,
    flat_sq,
    reduce,
    t_of_sigma,
)
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int
from polyfold.core.paths import EDM, GaussianPath
from polyfold.core.samplers.grids import karras_grid
from polyfold.core.samplers.steps import denoise_at, path_coef
from polyfold.core.state import expand_to

__all__ = [
    "ConsistencyModel",
    "Metric",
    "boundary_coefficients",
    "consistency_distillation_loss",
    "consistency_metric",
    "consistency_sample",
    "consistency_training_loss",
    "ema_update",
    "ict_huber_c",
    "ict_level_probs",
    "ict_num_levels",
    "karras_sigmas",
    "pseudo_huber",
    "teacher_ode_step",
]

Metric = Literal["l2", "pseudo_huber"]


def karras_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> Tensor:
    """``n`` increasing float64 levels ``(s_min^(1/rho) + i/(n-1) (s_max^(1/rho) -
    s_min^(1/rho)))^rho``, ``i = 0 .. n-1`` (the consistency-models discretisation): the
    samplers' :func:`~polyfold.core.samplers.grids.karras_grid` of ``n - 1`` steps on the
    matching :class:`~polyfold.core.paths.EDM` path, as EDM levels, in increasing order."""
    check_int("n", n, 2)
    lo, hi = (
        check_finite_positive(sigma_min, "sigma_min"),
        check_finite_positive(sigma_max, "sigma_max"),
    )
    check_finite_positive(rho, "rho")
    if hi <= lo:
        raise InputError(f"sigma_max: expected > sigma_min={lo}, got {hi!r}")
    path = EDM(lo, hi, rho)
    return path.sigma(karras_grid(path, n - 1, rho=rho).flip(0))


def boundary_coefficients(
    sigma: Tensor, *, sigma_data: float = 0.5, sigma_min: float = 0.002
) -> tuple[Tensor, Tensor]:
    """``(c_skip, c_out)`` at EDM levels ``sigma``: ``c_skip(s_min) = 1``, ``c_out(s_min) = 0``."""
    sd2 = sigma_data**2
    c_skip = sd2 / ((sigma - sigma_min) ** 2 + sd2)
    c_out = sigma_data * (sigma - sigma_min) / torch.sqrt(sd2 + sigma**2)
    return c_skip, c_out


class ConsistencyModel(nn.Module):
    """A consistency function ``f(x_t, t, cond) -> x0`` around a raw network
    ``net(y_in, c_noise, cond)`` (``c_noise = log(s)/4`` of shape ``(B,)``).

    Args:
        net: the raw network.
        path: the Gaussian path of the states it receives.
        sigma_data: EDM's data standard deviation.
        sigma_min: the level where ``f`` is the identity (the discretisation's smallest).
    """

    prediction = "x0"

    def __init__(
        self,
        net: nn.Module,
        *,
        path: GaussianPath,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
    ) -> None:
        super().__init__()
        self.net, self.path = net, check_path(path)
        self.sigma_data = check_finite_positive(sigma_data, "sigma_data")
        self.sigma_min = check_finite_positive(sigma_min, "sigma_min")

    def denoise(self, y: Tensor, sigma: Tensor | float, cond: Any = None) -> Tensor:
        """``f`` in EDM form: ``y = x / alpha`` at level ``sigma`` (a number or ``(B,)``)."""
        s = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1).expand(y.shape[0])
        c_skip, c_out = boundary_coefficients(
            s, sigma_data=self.sigma_data, sigma_min=self.sigma_min
        )
        c_in = 1.0 / torch.sqrt(s**2 + self.sigma_data**2)
        out: Tensor = self.net(expand_to(c_in, y) * y, torch.log(s) / 4.0, cond)
        return expand_to(c_skip, y) * y + expand_to(c_out, y) * out

    def forward(self, x_t: Tensor, t: Tensor | float, cond: Any = None) -> Tensor:
        """``x0`` from the state ``x_t`` at path time ``t`` (a number or ``(B,)``)."""
        t64 = torch.as_tensor(t, device=x_t.device).to(F64).reshape(-1).expand(x_t.shape[0])
        alpha = self.path.alpha(t64)
        s = (self.path.sigma(t64) / alpha).to(x_t.dtype)
        return self.denoise(x_t / expand_to(alpha.to(x_t.dtype), x_t), s, cond)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    """``target <- decay * target + (1 - decay) * online`` for parameters and float buffers."""
    if not 0.0 <= decay <= 1.0:
        raise InputError(f"decay: expected a number in [0, 1], got {decay!r}")
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.lerp_(po.detach(), 1.0 - decay)
    for bt, bo in zip(target.buffers(), online.buffers(), strict=True):
        if bt.is_floating_point():
            bt.lerp_(bo.detach(), 1.0 - decay)
        else:
            bt.copy_(bo)


def pseudo_huber(a: Tensor, b: Tensor, c: float) -> Tensor:
    """``sqrt(||a - b||^2 + c^2) - c`` per example ``(B,)``: ``~ ||a-b||^2 / (2c)`` near 0,
    ``~ ||a - b||`` far away."""
    check_finite_positive(c, "huber_c")
    return torch.sqrt(flat_sq(a - b) + c * c) - c


def ict_huber_c(dim: int) -> float:
    """Improved CT's pseudo-Huber constant ``0.00054 sqrt(d)`` for ``d`` features."""
    check_int("dim", dim)
    return 0.00054 * math.sqrt(dim)


def consistency_metric(a: Tensor, b: Tensor, metric: Metric, huber_c: float | None) -> Tensor:
    """Per-example distance: ``"l2"`` the squared L2 norm, ``"pseudo_huber"`` with ``huber_c``
    (default :func:`ict_huber_c` of the feature count)."""
    if metric == "l2":
        return flat_sq(a - b)
    if metric == "pseudo_huber":
        c = ict_huber_c(a[0].numel()) if huber_c is None else huber_c
        return pseudo_huber(a, b, c)
    raise InputError(f"metric: expected 'l2' or 'pseudo_huber', got {metric!r}")


def teacher_ode_step(
    teacher: Denoiser,
    x: Tensor,
    t: Tensor,
    t_next: Tensor,
    *,
    path: GaussianPath,
    solver: Literal["heun", "euler"] = "heun",
) -> Tensor:
    """One step of the probability-flow ODE ``dy/ds = eps_hat`` (``y = x/alpha``,
    ``s = sigma/alpha``) from ``(B,)`` times ``t`` to ``t_next``: Euler (DDIM) or Heun (EDM's
    2nd order), computed without gradient. Returns the state at ``t_next``."""
    if solver not in ("heun", "euler"):
        raise InputError(f"solver: expected 'heun' or 'euler', got {solver!r}")
    with torch.no_grad():
        a0, a1 = path_coef(path.alpha, t, x), path_coef(path.alpha, t_next, x)
        s0 = path_coef(path.sigma, t, x) / a0
        s1 = path_coef(path.sigma, t_next, x) / a1
        y = x / a0
        e0 = denoise_at(teacher, x, t).eps
        assert isinstance(e0, Tensor)
        y1 = y + (s1 - s0) * e0
        if solver == "heun":
            e1 = denoise_at(teacher, a1 * y1, t_next).eps
            assert isinstance(e1, Tensor)
            y1 = y + (s1 - s0) * 0.5 * (e0 + e1)
        return a1 * y1


def _levels(sigmas: Tensor) -> Tensor:
    s = torch.as_tensor(sigmas, dtype=F64)
    if s.ndim != 1 or s.numel() < 2 or not bool((s[1:] > s[:-1]).all()) or bool((s <= 0).any()):
        raise InputError("sigmas: expected at least 2 strictly increasing levels > 0")
    return s


def _draw_noise(x0: Tensor, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
    if noise is None:
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    if not isinstance(noise, Tensor) or noise.shape != x0.shape:
        raise InputError(f"noise: expected a tensor of shape {tuple(x0.shape)}")
    return noise


def consistency_distillation_loss(
    model: Callable[..., Tensor],
    target_model: Callable[..., Tensor],
    teacher: Denoiser,
    x0: Tensor,
    *,
    path: GaussianPath,
    sigmas: Tensor,
    solver: Literal["heun", "euler"] = "heun",
    metric: Metric = "l2",
    huber_c: float | None = None,
    cond: Any = None,
    index: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """Consistency distillation: ``d(f(x_{n+1}, s_{n+1}), f^-(x_hat_n, s_n))``.

    ``n`` uniform on ``0 .. N-2`` (``index`` fixes it), ``x_{n+1} = alpha (x0 + s_{n+1} z)``,
    ``x_hat_n`` one teacher ODE step (:func:`teacher_ode_step`) from ``x_{n+1}`` to ``s_n``.

    Args:
        model: the online consistency function ``model(x_t, t, cond) -> x0``
            (e.g. :class:`ConsistencyModel`); gradients flow through it.
        target_model: the EMA target ``f^-`` (evaluated without gradient).
        teacher: the diffusion teacher (any denoiser on ``path``).
        x0: data ``(B, ...)``.
        path: the Gaussian path of all three.
        sigmas: the ``N`` increasing EDM levels (:func:`karras_sigmas`).
        solver: ``"heun"`` or ``"euler"``.
        metric: ``"l2"`` (squared L2) or ``"pseudo_huber"`` (constant ``huber_c``).
        reduction: ``"mean"`` or ``"none"``.
    """
    check_tensor(x0, "x0")
    check_path(path)
    check_reduction(reduction)
    s = _levels(sigmas).to(x0.device)
    b = x0.shape[0]
    if index is None:
        n = torch.randint(0, s.numel() - 1, (b,), generator=generator, device=x0.device)
    else:
        n = torch.as_tensor(index, device=x0.device).long().reshape(-1).expand(b)
        if bool((n < 0).any()) or bool((n > s.numel() - 2).any()):
            raise InputError(f"index: expected integers in [0, {s.numel() - 2}]")
    z = _draw_noise(x0, noise, generator)
    t_next, t_cur = t_of_sigma(path, s[n + 1]), t_of_sigma(path, s[n])
    a = path_coef(path.alpha, t_next, x0)
    x_next = a * (x0 + expand_to(s[n + 1].to(x0.dtype), x0) * z)
    x_hat = teacher_ode_step(teacher, x_next, t_next, t_cur, path=path, solver=solver)
    with torch.no_grad():
        tgt = target_model(x_hat, t_cur.to(x0.dtype), cond)
    out = model(x_next, t_next.to(x0.dtype), cond)
    return reduce(consistency_metric(out, tgt, metric, huber_c), reduction)


def ict_num_levels(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """Improved CT's curriculum ``N(k) = min(s0 2^floor(k / K'), s1) + 1`` with
    ``K' = floor(K / (log2(floor(s1 / s0)) + 1))``."""
    check_int("step", step, 0)
    check_int("total_steps", total_steps)
    check_int("s0", s0)
    check_int("s1", s1, s0)
    k_prime = max(1, math.floor(total_steps / (math.log2(s1 // s0) + 1)))
    return int(min(s0 * 2 ** (step // k_prime), s1)) + 1


def ict_level_probs(sigmas: Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> Tensor:
    """Probabilities of the ``N-1`` level pairs ``(s_i, s_{i+1})`` under improved CT's
    discretised lognormal: ``p_i ~ erf((ln s_{i+1} - P_mean)/(sqrt2 P_std)) -
    erf((ln s_i - P_mean)/(sqrt2 P_std))``, normalised."""
    s = _levels(sigmas)
    check_finite_positive(p_std, "p_std")
    e = torch.erf((torch.log(s) - p_mean) / (math.sqrt(2.0) * p_std))
    p: Tensor = e[1:] - e[:-1]
    return p / p.sum()


def consistency_training_loss(
    model: Callable[..., Tensor],
    x0: Tensor,
    *,
    path: GaussianPath,
    step: int,
    total_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    s0: int = 10,
    s1: int = 1280,
    p_mean: float = -1.1,
    p_std: float = 2.0,
    metric: Metric = "pseudo_huber",
    huber_c: float | None = None,
    cond: Any = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """Improved consistency training at training step ``step`` of ``total_steps``.

    ``N = ict_num_levels(step, total_steps, s0, s1)`` Karras levels on
    ``[sigma_min, sigma_max]``; per example ``i ~ ict_level_probs``; with one ``z``,
    ``x_i = alpha (x0 + s_i z)``, ``x_{i+1} = alpha (x0 + s_{i+1} z)``; the loss is
    ``d(f(x_{i+1}), stopgrad f(x_i)) / (s_{i+1} - s_i)`` with ``d`` pseudo-Huber
    (``c = 0.00054 sqrt(d)`` by default) or squared L2.
    """
    check_tensor(x0, "x0")
    check_path(path)
    check_reduction(reduction)
    n_levels = ict_num_levels(step, total_steps, s0, s1)
    s = karras_sigmas(n_levels, sigma_min, sigma_max, rho).to(x0.device)
    probs = ict_level_probs(s, p_mean, p_std)
    b = x0.shape[0]
    i = torch.multinomial(probs, b, replacement=True, generator=generator)
    z = _draw_noise(x0, noise, generator)
    t_i, t_j = t_of_sigma(path, s[i]), t_of_sigma(path, s[i + 1])
    x_i = path_coef(path.alpha, t_i, x0) * (x0 + expand_to(s[i].to(x0.dtype), x0) * z)
    x_j = path_coef(path.alpha, t_j, x0) * (x0 + expand_to(s[i + 1].to(x0.dtype), x0) * z)
    with torch.no_grad():
        tgt = model(x_i, t_i.to(x0.dtype), cond)
    out = model(x_j, t_j.to(x0.dtype), cond)
    w = (1.0 / (s[i + 1] - s[i])).to(x0.dtype)
    return reduce(w * consistency_metric(out, tgt, metric, huber_c), reduction)


@torch.no_grad()
def consistency_sample(
    model: Callable[..., Tensor],
    noise: Tensor,
    *,
    path: GaussianPath,
    sigmas: Tensor,
    sigma_min: float = 0.002,
    cond: Any = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Multistep consistency sampling over decreasing EDM levels ``sigmas`` (one level: one
    step). Starts from ``y = s_0 noise`` at ``sigmas[0]``; before each later level ``s_k`` the
    estimate is re-noised, ``y = x0 + sqrt(s_k^2 - sigma_min^2) z`` with a fresh ``z`` drawn
    from ``generator``. The model receives ``alpha y`` at the level's path time."""
    check_tensor(noise, "noise")
    check_path(path)
    s = torch.as_tensor(sigmas, dtype=F64).reshape(-1).to(noise.device)
    if s.numel() < 1 or bool((s[1:] >= s[:-1]).any()) or bool((s <= sigma_min).any()):
        raise InputError(f"sigmas: expected decreasing levels > sigma_min={sigma_min}")
    b = noise.shape[0]
    x0 = noise
    for k in range(s.numel()):
        t = t_of_sigma(path, s[k].expand(b))
        if k == 0:
            y = noise * float(s[0])
        else:
            z = torch.randn(
                noise.shape, generator=generator, dtype=noise.dtype, device=noise.device
            )
            y = x0 + z * math.sqrt(float(s[k]) ** 2 - sigma_min**2)
        x0 = model(path_coef(path.alpha, t, noise) * y, t.to(noise.dtype), cond)
    return x0
