"""Gradient guidance: a classifier's log-likelihood or an energy of the predicted data."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import (
    EnergyFn,
    GradFn,
    Wrapper,
    check_denoiser,
    check_paths,
    check_scale,
    denoise,
    leaves,
    rebuild,
    shift_score,
)
from polyfold.core.paths import Paths
from polyfold.core.state import State, tree_map

__all__ = [
    "ClassifierGuidance",
    "ObservationGuidance",
    "classifier_guidance",
    "observation_guidance",
]


class ClassifierGuidance(Wrapper):
    """``eps' = eps - scale sigma grad_log_prob(x, t)``; built by :func:`classifier_guidance`."""

    def __init__(self, denoiser: Denoiser, grad_log_prob: GradFn, scale: float, *, paths: Paths):
        check_denoiser(denoiser, "denoiser")
        if not callable(grad_log_prob):
            raise InputError(
                f"grad_log_prob: expected a callable (x, t) -> grad, got {grad_log_prob!r}"
            )
        check_paths(paths)
        self.denoiser, self.grad_log_prob, self.paths = denoiser, grad_log_prob, paths
        self.scale = check_scale(scale, "scale")

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        d = denoise(self.denoiser, x, t, levels)
        if self.scale == 0.0:
            return d
        g = self.grad_log_prob(x, t)
        return shift_score(d, x, t, self.paths, g, self.scale, 1, levels)


def classifier_guidance(
    denoiser: Denoiser, grad_log_prob: GradFn, scale: float, *, paths: Paths
) -> ClassifierGuidance:
    """Classifier guidance: ``score' = score + scale grad_x log p(y | x_t, t)``.

    Args:
        denoiser: the (unconditional) denoiser.
        grad_log_prob: ``(x, t) -> grad_x log p(y | x, t)``, a state like ``x`` (e.g. the
            autograd gradient of a noisy classifier's log-probability of the target class).
        scale: the guidance scale (1 with the exact classifier: the exact conditional score).
        paths: the path (a dict per key for dict states), for ``alpha(t)`` and ``sigma(t)``.
    """
    return ClassifierGuidance(denoiser, grad_log_prob, scale, paths=paths)


class ObservationGuidance(Wrapper):
    """Energy guidance through the denoiser; built by :func:`observation_guidance`."""

    def __init__(
        self,
        denoiser: Denoiser,
        energy: EnergyFn,
        scale: float,
        *,
        paths: Paths,
        sigma_scaling: bool = True,
    ) -> None:
        check_denoiser(denoiser, "denoiser")
        if not callable(energy):
            raise InputError(f"energy: expected a callable (x0_hat, t) -> energy, got {energy!r}")
        check_paths(paths)
        self.denoiser, self.energy, self.paths = denoiser, energy, paths
        self.scale = check_scale(scale, "scale")
        self.sigma_scaling = bool(sigma_scaling)

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        if self.scale == 0.0:
            return denoise(self.denoiser, x, t, levels)
        with torch.enable_grad():
            xs = [xi.detach().requires_grad_(True) for xi in leaves(x)]
            xg = rebuild(x, xs)
            d = denoise(self.denoiser, xg, t, levels)
            det = Denoised(tree_map(Tensor.detach, d.x0), tree_map(Tensor.detach, d.eps))
            e = self.energy(d.x0, t)
            if not isinstance(e, Tensor) or e.numel() not in (1, xs[0].shape[0]):
                raise InputError(
                    "energy: expected a scalar or one energy per example (B,), got "
                    f"{tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__}"
                )
            grads = torch.autograd.grad(e.sum(), xs, allow_unused=True)
        g = rebuild(
            x,
            [
                -gi if gi is not None else torch.zeros_like(xi)
                for gi, xi in zip(grads, xs, strict=True)
            ],
        )
        return shift_score(
            det, x, t, self.paths, g, self.scale, 1 if self.sigma_scaling else 0, levels
        )


def observation_guidance(
    denoiser: Denoiser,
    energy: EnergyFn,
    scale: float,
    *,
    paths: Paths,
    sigma_scaling: bool = True,
) -> ObservationGuidance:
    """Guidance by an energy of the predicted data, ``E(x0_hat(x_t), t)``.

    ``g = grad_{x_t} E`` by back-propagation through the denoiser (one network call with
    autograd per step), then ``eps' = eps + scale sigma g`` (``sigma_scaling``, TSDiff and
    classifier guidance with ``log p(y | x_t) = -E``) or ``eps' = eps + scale g``; ``x0``
    moves to keep the pair consistent.

    Args:
        denoiser: the denoiser (differentiable in ``x``).
        energy: ``(x0_hat, t) -> (B,)`` energies (or their sum), low where ``x0_hat`` agrees
            with the observation; e.g. ``((x0 - y) ** 2 * known).sum(dims)``.
        scale: the guidance strength.
        paths: the path (a dict per key for dict states).
        sigma_scaling: multiply the ``eps`` shift by ``sigma(t)`` (TSDiff, DPS-like in score).
    """
    return ObservationGuidance(denoiser, energy, scale, paths=paths, sigma_scaling=sigma_scaling)
