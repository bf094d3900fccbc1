"""Score Implicit Matching (SIM): data-free distillation of a diffusion prior into a one-step
generator ``x = g_theta(z)``.

SIM minimises a score divergence between the generator's diffused distribution ``q_t`` and the
prior's ``p_t``, sampled on the generator's own (stop-gradient) distribution:

    ``D(theta) = E_t w(t) E_{x_t ~ q_t} d(y_t(x_t))``,  ``y_t = sigma_t (s_q(x_t) - s_p(x_t))
    = eps_p(x_t) - eps_q(x_t)``

with a distance ``d``: ``"l2"`` (``||y||^2``) or ``"pseudo_huber"`` (``sqrt(||y||^2 + c^2) -
c``). The score ``s_q`` of the generator is unknown; an online score network ``eps_psi`` is
fitted to the generator's samples by DSM (as VSD's auxiliary network,
:func:`~polyfold.core.distill.one_step.fit_aux`). By the score-projection identity the gradient
of ``D`` with respect to ``theta`` is the gradient of the tractable

    ``L(theta) = E w(t) d'(y_t(x_t))^T (eps_psi(x_t) - eps)``,  ``x_t = alpha g_theta(z) + sigma
    eps``, ``y_t = eps_p - eps_psi``

taken through ``x_t`` only (into the prior and the online network as functions of their input,
never into their parameters). It is unbiased when ``eps_psi`` is the generator's exact noise
prediction, for any generator parameter (the tests check it against the exact gradient on
Gaussians). Per example the gradient with respect to the sample ``x`` is
``G = alpha grad_{x_t} L``; :func:`sim_gradient` returns it and :func:`sim_loss` is its
stop-gradient surrogate (as the other score-distillation losses), so the prior must be
differentiable in its input. When the generator matches the prior, ``y_t = 0`` and ``G = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.distill._util import check_finite_positive, check_path, check_tensor, flat_sq
from polyfold.core.distill.one_step import fit_aux, student_noise
from polyfold.core.distill.score_distillation import (
    SDWeighting,
    _default_range,
    _eps,
    _noise,
    _times,
    _weight,
    surrogate_loss,
    vsd_aux_loss,
)
from polyfold.core.errors import InputError, check_int
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction
from polyfold.core.samplers.steps import path_coef
from polyfold.core.state import expand_to

__all__ = [
    "SIMDistance",
    "SIMDistiller",
    "sim_distillation_step",
    "sim_gradient",
    "sim_loss",
    "sim_trainer_loss",
]

SIMDistance = Literal["l2", "pseudo_huber"]


def _huber_c(c: float | None, x: Tensor) -> float:
    """Default pseudo-Huber constant: ``0.1 sqrt(d)`` in noise units (``d`` features)."""
    return 0.1 * math.sqrt(x[0].numel()) if c is None else check_finite_positive(c, "huber_c")


def _distance(y: Tensor, distance: str, c: float) -> tuple[Tensor, Tensor]:
    """``(d(y) (B,), d'(y))`` of the per-example distance."""
    sq = flat_sq(y)
    if distance == "l2":
        return sq, 2.0 * y
    if distance == "pseudo_huber":
        root = torch.sqrt(sq + c * c)
        return root - c, y / expand_to(root, y)
    raise InputError(f"distance: expected 'l2' or 'pseudo_huber', got {distance!r}")


def _sim(
    x: Tensor,
    prior: Denoiser,
    score: Denoiser,
    *,
    path: GaussianPath,
    distance: SIMDistance,
    huber_c: float | None,
    weighting: SDWeighting,
    t: Tensor | float | None,
    t_range: tuple[float, float] | None,
    noise: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """``(G, divergence)``: SIM's gradient with respect to ``x`` and the batch's mean
    ``w(t) d(y_t)`` (both without graph)."""
    check_tensor(x, "x")
    check_path(path)
    c = _huber_c(huber_c, x)
    xd = x.detach()
    with torch.no_grad():
        tt = _times(xd, path, t, t_range or _default_range(path), generator)
        eps = _noise(xd, noise, generator)
        alpha = path_coef(path.alpha, tt, xd)
        x_t = alpha * xd + path_coef(path.sigma, tt, xd) * eps
        w = _weight(weighting, path, tt, xd)
    with torch.enable_grad():
        xt = x_t.clone().requires_grad_(True)
        e_q = _eps(score, xt, tt)
        div, u = _distance(_eps(prior, xt, tt) - e_q, distance, c)
        (g_t,) = torch.autograd.grad((w * u * (e_q - eps)).sum(), xt)
    return alpha * g_t, (w.reshape(w.shape[0], -1)[:, 0] * div.detach()).mean()


def sim_gradient(
    x: Tensor,
    prior: Denoiser,
    score: Denoiser,
    *,
    path: GaussianPath,
    distance: SIMDistance = "pseudo_huber",
    huber_c: float | None = None,
    weighting: SDWeighting = "uniform",
    t: Tensor | float | None = None,
    t_range: tuple[float, float] | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SIM's per-example gradient ``alpha grad_{x_t} [w(t) d'(eps_prior - eps_score)^T
    (eps_score - eps)]`` with respect to the samples ``x`` (no graph).

    Args:
        x: generator samples ``(B, ...)``.
        prior: the frozen teacher denoiser.
        score: the online score network of the generator's samples, as a denoiser. Both
            denoisers must be differentiable in their input (their parameters get no gradient).
        distance: ``"l2"`` or ``"pseudo_huber"`` (``huber_c`` default ``0.1 sqrt(d)``).
        weighting: ``w(t)`` (``"uniform"``, ``"sigma2"`` or a callable of ``(alpha, sigma)``);
            ``sigma^2 / alpha`` gives the gradient VSD's ``sigma^2`` scale across ``t`` (the
            gradient carries a factor ``alpha J_eps``, about ``alpha`` at high noise).
        t, t_range, noise, generator: the draws, as in
            :func:`~polyfold.core.distill.score_distillation.vsd_gradient`.
    """
    return _sim(
        x,
        prior,
        score,
        path=path,
        distance=distance,
        huber_c=huber_c,
        weighting=weighting,
        t=t,
        t_range=t_range,
        noise=noise,
        generator=generator,
    )[0]


def sim_loss(x: Tensor, prior: Denoiser, score: Denoiser, **kwargs: Any) -> Tensor:
    """The surrogate loss of :func:`sim_gradient` (same arguments): its gradient with respect to
    ``x`` is ``G / B``."""
    return surrogate_loss(x, sim_gradient(x, prior, score, **kwargs))


def sim_distillation_step(
    student: nn.Module,
    prior: Denoiser,
    student_opt: torch.optim.Optimizer,
    *,
    score_model: nn.Module,
    score_opt: torch.optim.Optimizer,
    path: GaussianPath,
    batch_size: int,
    noise_shape: Sequence[int],
    score_prediction: Prediction = "eps",
    score_steps: int = 1,
    distance: SIMDistance = "pseudo_huber",
    huber_c: float | None = None,
    weighting: SDWeighting = "uniform",
    t_range: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    score_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """One SIM step: ``score_steps`` DSM steps of the online score network on fresh generator
    samples, then one generator step on :func:`sim_loss`.

    Same arguments as :func:`~polyfold.core.distill.one_step_distillation_step` with the
    online score network ``score_model(x_t, t, cond)`` (predicting ``score_prediction``) in the
    auxiliary network's place. Returns ``{"score": last DSM loss, "divergence": the batch's
    estimate of D, "student": surrogate loss}``.
    """
    check_path(path)
    check_int("batch_size", batch_size)
    check_int("score_steps", score_steps)
    with torch.no_grad():
        fresh = student(student_noise(student, batch_size, noise_shape, generator))
    dsm = fit_aux(
        score_model,
        score_opt,
        fresh,
        path=path,
        prediction=score_prediction,
        steps=score_steps,
        generator=generator,
        dsm_kwargs=score_kwargs,
    )
    x = student(student_noise(student, batch_size, noise_shape, generator))
    score = as_denoiser(score_model, path, prediction=score_prediction)
    grad, div = _sim(
        x,
        prior,
        score,
        path=path,
        distance=distance,
        huber_c=huber_c,
        weighting=weighting,
        t=None,
        t_range=t_range,
        noise=None,
        generator=generator,
    )
    loss = surrogate_loss(x, grad)
    student_opt.zero_grad(set_to_none=True)
    loss.backward()
    student_opt.step()
    return {"score": dsm, "divergence": float(div), "student": float(loss.detach())}


class SIMDistiller(nn.Module):
    """The generator and its online score network as one module, for
    :class:`~polyfold.core.train.Trainer` with :func:`sim_trainer_loss`; ``forward(z)`` is the
    generator."""

    def __init__(self, generator: nn.Module, score_model: nn.Module) -> None:
        super().__init__()
        for name, m in (("generator", generator), ("score_model", score_model)):
            if not isinstance(m, nn.Module):
                raise InputError(f"{name}: expected an nn.Module, got {type(m).__name__}")
        self.generator, self.score_model = generator, score_model

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.generator(z)
        return out


def sim_trainer_loss(
    prior: Denoiser,
    *,
    path: GaussianPath,
    score_prediction: Prediction = "eps",
    distance: SIMDistance = "pseudo_huber",
    huber_c: float | None = None,
    weighting: SDWeighting = "uniform",
    t_range: tuple[float, float] | None = None,
) -> Callable[[nn.Module, Any, torch.Generator], Tensor]:
    """A Trainer ``loss_fn(model, batch, generator)`` for a :class:`SIMDistiller`: the batch is
    the generator's input noise ``z`` (a tensor, or a 1-tuple from a ``TensorDataset``); the
    loss is the SIM surrogate (gradient into the generator only) plus the online score
    network's DSM loss on the detached samples (gradient into it only), so one optimiser over
    both updates them simultaneously."""
    check_path(path)

    def loss_fn(model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        z = batch[0] if isinstance(batch, list | tuple) else batch
        inner = getattr(model, "module", model)
        if not isinstance(inner, SIMDistiller):
            raise InputError(f"model: expected a SIMDistiller, got {type(inner).__name__}")
        x = model(z)
        score = as_denoiser(inner.score_model, path, prediction=score_prediction)
        grad = _sim(
            x,
            prior,
            score,
            path=path,
            distance=distance,
            huber_c=huber_c,
            weighting=weighting,
            t=None,
            t_range=t_range,
            noise=None,
            generator=generator,
        )[0]
        dsm = vsd_aux_loss(
            inner.score_model, x, path=path, prediction=score_prediction, generator=generator
        )
        return surrogate_loss(x, grad) + dsm

    return loss_fn
