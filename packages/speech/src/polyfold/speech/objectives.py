"""Training objectives of the acoustic model, all built on core's losses and distillation:

* :func:`teacher_loss`: the denoiser's score-matching loss (:func:`polyfold.core.losses.dsm_loss`
  with x0 prediction; EDM weighting and log-normal times on the EDM path) on a random mel
  segment, plus the duration predictor's MSE on ``log(1 + frames)`` and the prior's MSE
  (Grad-TTS's encoder loss). Without gold durations they come from monotonic alignment search
  on the prior (:mod:`polyfold.speech.alignment`).
* :func:`prodiff_loss`: :func:`polyfold.core.distill.progressive_distillation_loss`, with the
  teacher's own generated mel as the data (ProDiff's knowledge distillation).
* :func:`comospeech_loss`: :func:`polyfold.core.distill.consistency_distillation_loss` against
  an EMA target model (updated by :func:`polyfold.core.distill.ema_update`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import (
    consistency_distillation_loss,
    ema_update,
    karras_sigmas,
    progressive_distillation_loss,
)
from polyfold.core.losses import dsm_loss
from polyfold.core.samplers import get_sampler
from polyfold.speech.alignment import monotonic_alignment_batch
from polyfold.speech.layers import length_regulate
from polyfold.speech.model import (
    EDM_RHO,
    EDM_SIGMA_MAX,
    EDM_SIGMA_MIN,
    AcousticModel,
    step_grid,
)

__all__ = ["comospeech_loss", "prepare_batch", "prodiff_loss", "teacher_loss"]

SEGMENT_FRAMES = 128


def _masked_mse(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(a.dtype)
    while m.ndim < a.ndim:
        m = m.unsqueeze(-1)
    per = ((a - b) ** 2 * m).sum()
    return per / (m.sum() * (a.shape[-1] if a.ndim > mask.ndim else 1)).clamp_min(1.0)


def prepare_batch(
    model: AcousticModel, batch: dict[str, Any], generator: torch.Generator
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Encode a batch and cut a random segment: ``(x0 segment (B, L, n_mels), its condition,
    text-side loss)``. The text-side loss is the duration MSE plus the prior MSE."""
    ids, pmask = batch["ids"], batch["phone_mask"]
    mel = model.normalize(batch["mel"])
    fmask = batch["frame_mask"]
    h, log_dur, mu = model.encode(ids, pmask)
    durations = batch["durations"]
    if durations is None:  # no gold durations: monotonic alignment search on the prior
        score = -((mu.unsqueeze(2) - mel.unsqueeze(1)) ** 2).sum(-1)
        durations = monotonic_alignment_batch(score, pmask, fmask)
    dur_loss = _masked_mse(log_dur, torch.log1p(durations.float()), pmask)
    mu_frames, _ = length_regulate(mu, durations, mel.shape[1])
    prior_loss = _masked_mse(mu_frames, mel, fmask)
    cond = model.condition(h, durations)
    lengths = fmask.sum(1)
    seg = int(min(SEGMENT_FRAMES, int(lengths.min())))
    starts = (
        torch.rand(ids.shape[0], generator=generator, device=ids.device) * (lengths - seg + 1)
    ).long()
    index = starts.unsqueeze(1) + torch.arange(seg, device=ids.device)
    take = lambda x: torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # noqa: E731
    x0 = take(mel)
    seg_cond = {"h": take(cond["h"]), "mask": torch.gather(fmask, 1, index)}
    return x0, seg_cond, dur_loss + prior_loss


def teacher_loss(model: AcousticModel, batch: dict[str, Any], generator: torch.Generator) -> Tensor:
    """Score matching on a mel segment plus the text-side losses."""
    x0, cond, text_loss = prepare_batch(model, batch, generator)
    edm = model.cfg.path == "edm"
    diffusion = dsm_loss(
        model,
        x0,
        path=model.path,
        prediction="x0",
        weighting="edm" if edm else "target",
        time_sampler="edm" if edm else "uniform",
        mask=cond["mask"],
        cond=cond,
        generator=generator,
    )
    return diffusion + text_loss


@torch.no_grad()
def teacher_sample(
    teacher: AcousticModel,
    cond: dict[str, Tensor],
    shape: torch.Size,
    steps: int,
    generator: torch.Generator,
) -> Tensor:
    """The teacher's ``steps``-step DDIM sample (normalised mel) for a condition."""
    denoiser = as_denoiser(teacher, teacher.path, prediction="x0", cond=cond)
    x = teacher.path.prior_sample(shape, generator=generator, device=cond["h"].device)
    grid = step_grid(teacher.path, steps)
    mel: Tensor = get_sampler("ddim")(denoiser, teacher.path, x, grid, mask=cond["mask"]).x
    return mel


def prodiff_loss(
    student: AcousticModel,
    teacher: AcousticModel,
    batch: dict[str, Any],
    generator: torch.Generator,
    *,
    student_steps: int,
    data_steps: int,
) -> Tensor:
    """One progressive-distillation loss: the student's DDIM step matches two DDIM steps of the
    teacher, on the teacher's own ``data_steps``-step mel for a segment of the batch. The
    condition comes from the teacher's text side (the student's is a frozen copy of it)."""
    with torch.no_grad():
        _, cond, _ = prepare_batch(teacher, batch, generator)
        seg = cond["h"].shape[:2]
        x0 = teacher_sample(
            teacher, cond, torch.Size((*seg, teacher.cfg.n_mels)), data_steps, generator
        )
    return progressive_distillation_loss(
        as_denoiser(student, student.path, prediction="x0", cond=cond),
        as_denoiser(teacher, teacher.path, prediction="x0", cond=cond),
        x0,
        path=student.path,
        student_steps=student_steps,
        grid=step_grid(student.path, 2 * student_steps),
        generator=generator,
    )


def comospeech_loss(
    student: AcousticModel,
    target: AcousticModel,
    teacher: AcousticModel,
    batch: dict[str, Any],
    generator: torch.Generator,
    *,
    levels: int,
    ema_decay: float,
) -> Tensor:
    """One consistency-distillation loss on a ground-truth mel segment over ``levels`` Karras
    noise levels (teacher ODE step: Heun), after moving the target model towards the student
    with ``ema_decay``. The condition comes from the teacher's text side."""
    ema_update(target, student, ema_decay)
    with torch.no_grad():
        x0, cond, _ = prepare_batch(teacher, batch, generator)
    sigmas = karras_sigmas(levels, EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO)
    return consistency_distillation_loss(
        student,
        target,
        as_denoiser(teacher, teacher.path, prediction="x0", cond=cond),
        x0,
        path=student.path,
        sigmas=sigmas,
        cond=cond,
        generator=generator,
    )
