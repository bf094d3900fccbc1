"""One-step generator distillation with VSD (SwiftBrush), and its SDS baseline.

A student ``x = student(z)`` maps noise to data in one call. It is trained with no data: each
step draws ``z``, scores the student's samples with the frozen prior and an auxiliary denoiser
(:func:`~polyfold.core.distill.score_distillation.vsd_loss`), updates the student, then fits
the auxiliary network to the student's current samples with a DSM step
(:func:`~polyfold.core.distill.score_distillation.vsd_aux_loss`). Without an auxiliary network
the same step is SDS (:func:`~polyfold.core.distill.score_distillation.sds_loss`), which is
mode seeking: its samples collapse onto high-density points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.distill._util import check_path
from polyfold.core.distill.score_distillation import (
    SDWeighting,
    sds_loss,
    vsd_aux_loss,
    vsd_loss,
)
from polyfold.core.errors import InputError, check_int
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction

__all__ = ["one_step_distillation_step"]


def one_step_distillation_step(
    student: nn.Module,
    prior: Denoiser,
    student_opt: torch.optim.Optimizer,
    *,
    path: GaussianPath,
    batch_size: int,
    noise_shape: Sequence[int],
    aux_model: nn.Module | None = None,
    aux_opt: torch.optim.Optimizer | None = None,
    aux_prediction: Prediction = "eps",
    aux_steps: int = 1,
    weighting: SDWeighting = "sigma2",
    t_range: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    aux_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """One SwiftBrush (VSD, with ``aux_model``) or SDS (without) step of a one-step student.

    Args:
        student: ``student(z) -> x`` for ``z`` of shape ``(batch_size, *noise_shape)``.
        prior: the frozen teacher denoiser on ``path``.
        student_opt: the student's optimiser.
        aux_model: VSD's auxiliary network ``aux(x_t, t, cond)`` predicting
            ``aux_prediction`` (e.g. a small network, or a LoRA copy of the prior); ``None``
            for SDS.
        aux_opt: its optimiser (required with ``aux_model``).
        aux_steps: DSM steps of the auxiliary network per student step.
        aux_kwargs: more arguments of its :func:`~polyfold.core.losses.dsm_loss`.

    Returns ``{"student": surrogate loss, "aux": last auxiliary DSM loss (VSD only)}``.
    """
    check_path(path)
    check_int("batch_size", batch_size)
    check_int("aux_steps", aux_steps)
    if (aux_model is None) != (aux_opt is None):
        raise InputError("aux_opt: give it exactly when aux_model is given")
    x = student(student_noise(student, batch_size, noise_shape, generator))
    out: dict[str, float] = {}
    if aux_model is None:
        loss = sds_loss(
            x, prior, path=path, weighting=weighting, t_range=t_range, generator=generator
        )
    else:
        aux = as_denoiser(aux_model, path, prediction=aux_prediction)
        loss = vsd_loss(
            x, prior, aux, path=path, weighting=weighting, t_range=t_range, generator=generator
        )
    student_opt.zero_grad(set_to_none=True)
    loss.backward()
    student_opt.step()
    out["student"] = float(loss.detach())
    if aux_model is not None and aux_opt is not None:
        out["aux"] = fit_aux(
            aux_model,
            aux_opt,
            x,
            path=path,
            prediction=aux_prediction,
            steps=aux_steps,
            generator=generator,
            dsm_kwargs=aux_kwargs,
        )
    return out


def student_noise(
    student: nn.Module,
    batch_size: int,
    noise_shape: Sequence[int],
    generator: torch.Generator | None,
) -> Tensor:
    """A ``(batch_size, *noise_shape)`` standard normal draw on the student's device and dtype."""
    ref = next(iter(student.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    return torch.randn((batch_size, *noise_shape), generator=generator, device=device, dtype=dtype)


def fit_aux(
    aux_model: nn.Module,
    aux_opt: torch.optim.Optimizer,
    samples: Tensor,
    *,
    path: GaussianPath,
    prediction: Prediction,
    steps: int,
    generator: torch.Generator | None,
    dsm_kwargs: dict[str, Any] | None = None,
) -> float:
    """``steps`` DSM steps of the auxiliary (online score) network on ``stopgrad(samples)``;
    returns the last loss."""
    check_int("steps", steps)
    for _ in range(steps):
        loss = vsd_aux_loss(
            aux_model,
            samples.detach(),
            path=path,
            prediction=prediction,
            generator=generator,
            **(dsm_kwargs or {}),
        )
        aux_opt.zero_grad(set_to_none=True)
        loss.backward()
        aux_opt.step()
    return float(loss.detach())
