r"""Distillation of classifier-free guided models (Meng et al. 2023), on any Gaussian path.

A CFG teacher needs two network passes per step, the conditional and the unconditional one,
combined at guidance weight ``w`` (core's convention, :func:`polyfold.core.guidance.cfg`:
``x0_w = x0_u + w (x0_c - x0_u)``, ``w = 1`` conditional, ``w = 0`` unconditional). Two stages
turn it into one fast network:

1. **Guided distillation** (:func:`guided_distillation_loss`, :func:`guided_distillation_trainer`):
   a student conditioned on ``w`` learns the teacher's combined output,

       ``E_{w ~ U[w_min, w_max], t, x_t} omega(lambda_t) ||student(x_t, t, c, w) - x0_w||^2``

   with ``x_t = alpha_t x + sigma_t eps`` at continuous times ``t`` (compared in ``x0``, ``eps``
   or ``v``; ``omega`` the truncated SNR by default). The teacher's pair is core's CFG wrapper,
   evaluated in one batched ``2B`` call for each of ``chunks`` weights drawn per batch.
2. **Progressive distillation** (:func:`guided_progressive_loss`,
   :func:`guided_progressive_distillation`): the ``w``-conditioned student then halves its DDIM
   steps round by round with core's :func:`~polyfold.core.distill.progressive_distillation_loss`
   (teacher and student both see the same ``w``, drawn per example).

The student network receives ``cond = {"cond": c, "w": w}`` (:func:`guided_cond`), ``w`` a
0-d or ``(B,)`` float tensor; :func:`guidance_embedding` gives Fourier features of ``w`` for its
embedding, and :func:`guided_denoiser` binds a weight for sampling with any core sampler.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polyfold.core.denoiser import Denoised, ModelDenoiser, as_denoiser
from polyfold.core.distill._util import (
    check_path,
    check_reduction,
    check_tensor,
    flat_sq,
    reduce,
    split_pair,
)
from polyfold.core.distill.progressive import (
    PDWeighting,
    StageLog,
    _check_target,
    _weight,
    progressive_distillation_loss,
    progressive_schedule,
)
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int
from polyfold.core.guidance import cfg
from polyfold.core.losses.dsm import Reduction, draw_times
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction, check_prediction
from polyfold.core.samplers.steps import denoise_at, path_coef
from polyfold.core.train.trainer import Trainer

__all__ = [
    "GuidedCond",
    "guidance_embedding",
    "guided_cond",
    "guided_denoiser",
    "guided_distillation_loss",
    "guided_distillation_trainer",
    "guided_progressive_distillation",
    "guided_progressive_loss",
]

GuidedCond = dict[str, Any]
Target = Literal["x0", "eps", "v"]


def _check_w(w: object, name: str = "w") -> Tensor:
    """``w`` as a float64 tensor of guidance weights ``>= 0``."""
    if isinstance(w, bool) or not isinstance(w, int | float | Tensor):
        raise InputError(f"{name}: expected a guidance weight >= 0 or a tensor of them, got {w!r}")
    wt = torch.as_tensor(w, dtype=F64)
    if wt.ndim > 1 or not bool(torch.isfinite(wt).all()) or bool((wt < 0).any()):
        raise InputError(f"{name}: expected finite guidance weights >= 0, got {w!r}")
    return wt


def _check_w_range(w_range: object) -> tuple[float, float]:
    if (
        not isinstance(w_range, tuple | list)
        or len(w_range) != 2
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in w_range
        )
    ):
        raise InputError(f"w_range: expected a pair (w_min, w_max) of numbers, got {w_range!r}")
    lo, hi = float(w_range[0]), float(w_range[1])
    if lo < 0:
        raise InputError(f"w_range: expected guidance weights >= 0, got w_min={lo}")
    if lo > hi:
        raise InputError(f"w_range: expected w_min <= w_max, got {w_range!r} (inverted)")
    return lo, hi


def guided_cond(cond: Any, w: Tensor | float) -> GuidedCond:
    """The student's condition ``{"cond": cond, "w": w}`` (``w`` a float tensor ``>= 0``)."""
    return {"cond": cond, "w": _check_w(w).to(torch.get_default_dtype())}


def guidance_embedding(w: Tensor | float, batch: int, dim: int = 16) -> Tensor:
    """``(batch, dim)`` Fourier features ``[sin(f_k w), cos(f_k w)]`` of the guidance weight,
    frequencies ``f_k`` geometric from 0.1 to 10 (``w`` a number, 0-d or ``(batch,)``)."""
    check_int("batch", batch)
    check_int("dim", dim, 2)
    if dim % 2:
        raise InputError(f"dim: expected an even number, got {dim}")
    wt = torch.as_tensor(w)
    wt = wt.to(wt.dtype if wt.is_floating_point() else torch.get_default_dtype())
    freqs = torch.logspace(-1.0, 1.0, dim // 2, dtype=wt.dtype, device=wt.device)
    arg = wt.reshape(-1, 1).expand(batch, 1) * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def guided_denoiser(
    student: Callable[..., Any],
    path: GaussianPath,
    *,
    prediction: Prediction,
    cond: Any,
    w: Tensor | float,
) -> ModelDenoiser:
    """The ``w``-conditioned student at weight ``w`` as a denoiser, for any sampler."""
    return as_denoiser(student, path, prediction=prediction, cond=guided_cond(cond, w))


def _rows(cond: Any, idx: Tensor, batch: int) -> Any:
    """The rows ``idx`` of a batch condition (tensors with ``batch`` rows; others unchanged)."""
    if isinstance(cond, Mapping):
        return {k: _rows(v, idx, batch) for k, v in cond.items()}
    if isinstance(cond, Tensor) and cond.ndim >= 1 and cond.shape[0] == batch:
        return cond[idx.to(cond.device)]
    return cond


def _draw_chunk_weights(
    batch: int, chunks: int, w_range: tuple[float, float], generator: torch.Generator | None
) -> Tensor:
    """``(B,)`` weights: ``chunks`` draws from ``U[w_min, w_max]``, each for a contiguous block."""
    k = min(chunks, batch)
    lo, hi = w_range
    vals = lo + (hi - lo) * torch.rand(k, generator=generator, dtype=F64)
    sizes = [batch // k + (i < batch % k) for i in range(k)]
    return vals.repeat_interleave(torch.tensor(sizes))


def _example_weights(
    w: Tensor | float | None,
    batch: int,
    w_range: tuple[float, float] | None,
    chunks: int,
    generator: torch.Generator | None,
) -> Tensor:
    if w is None:
        if w_range is None:
            raise InputError("w_range: give a range to draw the guidance weights from, or w")
        return _draw_chunk_weights(batch, chunks, _check_w_range(w_range), generator)
    wt = _check_w(w)
    if wt.ndim == 1 and wt.numel() != batch:
        raise InputError(f"w: expected a number or shape ({batch},), got {tuple(wt.shape)}")
    return wt.reshape(-1).expand(batch)


def _in_target(d: Denoised, target: Target, a: Tensor, s: Tensor) -> Tensor:
    x0, eps = d.x0, d.eps
    assert isinstance(x0, Tensor)
    assert isinstance(eps, Tensor)
    if target == "x0":
        return x0
    if target == "eps":
        return eps
    return a * eps - s * x0


def guided_distillation_loss(
    student: Callable[..., Any],
    teacher: Callable[..., Any],
    x0: Tensor,
    cond: Any,
    *,
    path: GaussianPath,
    prediction: Prediction,
    null_cond: Any,
    student_prediction: Prediction | None = None,
    w_range: tuple[float, float] | None = (0.0, 4.0),
    w: Tensor | float | None = None,
    chunks: int = 4,
    target: Target = "x0",
    weighting: PDWeighting | Callable[[Tensor], Tensor] = "truncated_snr",
    t: Tensor | float | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Stage one: the ``w``-conditioned student against the teacher's CFG output.

    Args:
        student: network ``student(x_t, t, {"cond": c, "w": w})`` predicting
            ``student_prediction`` (default ``prediction``).
        teacher: the conditional network ``teacher(x_t, t, cond)`` predicting ``prediction``,
            unconditional when given ``null_cond``.
        x0, cond: a data batch ``(B, ...)`` and its conditions (tensors with ``B`` rows, or
            dicts of them).
        w_range: draw ``chunks`` weights uniformly in ``[w_min, w_max]`` per batch (each for a
            contiguous block of examples); ``w`` (a number or ``(B,)``) fixes them instead.
        target: compare ``"x0"`` (default), ``"eps"`` or ``"v"``; ``weighting`` as
            progressive distillation's (a name or a callable of the float64 log-SNR).
        t, noise: fixed times and noise (default drawn with ``generator``, noise first).
    """
    check_tensor(x0, "x0")
    check_path(path)
    check_prediction(prediction)
    s_pred = prediction if student_prediction is None else check_prediction(student_prediction)
    target = _check_target(target)
    check_reduction(reduction)
    check_int("chunks", chunks)
    b = x0.shape[0]
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif not isinstance(noise, Tensor) or noise.shape != x0.shape:
        raise InputError(f"noise: expected a tensor of shape {tuple(x0.shape)}")
    t64 = draw_times(x0, path, t, "uniform", generator)
    w_ex = _example_weights(w, b, w_range, chunks, generator)
    a, s = path_coef(path.alpha, t64, x0), path_coef(path.sigma, t64, x0)
    x_t = a * x0 + s * noise
    tgt = torch.empty_like(x0)
    with torch.no_grad():
        for value in torch.unique(w_ex).tolist():
            idx = torch.nonzero(w_ex == value).reshape(-1).to(x0.device)
            teacher_den = as_denoiser(
                teacher, path, prediction=prediction, cond=_rows(cond, idx, b)
            )
            guided = cfg(teacher_den, null_cond, value)
            d = denoise_at(guided, x_t[idx], t64[idx])
            tgt[idx] = _in_target(d, target, a[idx], s[idx]).to(x0.dtype)
    w_dev = w_ex.to(device=x0.device, dtype=x0.dtype)
    sd = denoise_at(
        as_denoiser(student, path, prediction=s_pred, cond={"cond": cond, "w": w_dev}), x_t, t64
    )
    pred = _in_target(sd, target, a, s)
    weight = _weight(weighting, path.log_snr(t64)).to(x0.dtype)
    return reduce(weight * flat_sq(pred - tgt), reduction)


def guided_progressive_loss(
    student: Callable[..., Any],
    teacher: Callable[..., Any],
    x0: Tensor,
    cond: Any,
    *,
    path: GaussianPath,
    prediction: Prediction,
    student_steps: int,
    w_range: tuple[float, float] | None = (0.0, 4.0),
    w: Tensor | float | None = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """Stage two: :func:`~polyfold.core.distill.progressive_distillation_loss` between two
    ``w``-conditioned networks (the ``2 * student_steps``-step ``teacher`` and the student) at a
    weight drawn per example from ``w_range`` (before the loss's own draws), or fixed by ``w``.
    ``options`` go to the progressive loss (``target``, ``weighting``, ``grid``, ...)."""
    check_tensor(x0, "x0")
    b = x0.shape[0]
    if w is None:
        if w_range is None:
            raise InputError("w_range: give a range to draw the guidance weights from, or w")
        lo, hi = _check_w_range(w_range)
        w_ex = lo + (hi - lo) * torch.rand(b, generator=generator, dtype=F64)
    else:
        w_ex = _example_weights(w, b, None, 1, generator)
    gc = {"cond": cond, "w": w_ex.to(device=x0.device, dtype=x0.dtype)}
    return progressive_distillation_loss(
        as_denoiser(student, path, prediction=prediction, cond=gc),
        as_denoiser(teacher, path, prediction=prediction, cond=gc),
        x0,
        path=path,
        student_steps=student_steps,
        generator=generator,
        **options,
    )


def guided_distillation_trainer(
    student: nn.Module,
    teacher: Callable[..., Any],
    data: Any,
    *,
    out_dir: str | Path,
    path: GaussianPath,
    prediction: Prediction,
    null_cond: Any,
    student_prediction: Prediction | None = None,
    w_range: tuple[float, float] = (0.0, 4.0),
    chunks: int = 4,
    target: Target = "x0",
    weighting: PDWeighting | Callable[[Tensor], Tensor] = "truncated_snr",
    **options: Any,
) -> Trainer:
    """A :class:`~polyfold.core.train.Trainer` for stage one on ``data`` (a dataset of
    ``(x0, cond)`` pairs); the teacher is used frozen, on the trainer's device. ``options`` are
    the trainer's (``max_steps``, ``batch_size``, ``lr``, ...)."""
    check_path(path)
    check_prediction(prediction)
    _check_w_range(w_range)

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        x0, c = split_pair(batch, "(x0, cond) pairs")
        return guided_distillation_loss(
            m,
            teacher,
            x0,
            c,
            path=path,
            prediction=prediction,
            null_cond=null_cond,
            student_prediction=student_prediction,
            w_range=w_range,
            chunks=chunks,
            target=target,
            weighting=weighting,
            generator=g,
        )

    trainer = Trainer(student, loss_fn, data, out_dir=out_dir, **options)
    if isinstance(teacher, nn.Module):
        teacher.to(trainer.device)
    return trainer


def guided_progressive_distillation(
    student: nn.Module,
    data: Any,
    *,
    out_dir: str | Path,
    path: GaussianPath,
    prediction: Prediction,
    teacher_steps: int,
    steps_per_round: int | Callable[[int], int],
    final_steps: int = 1,
    w_range: tuple[float, float] = (0.0, 4.0),
    on_round_end: Callable[[int], None] | None = None,
    **options: Any,
) -> list[StageLog]:
    """Stage two as rounds ``teacher_steps -> teacher_steps/2 -> ... -> final_steps``
    (:func:`~polyfold.core.distill.progressive_schedule`), each a fresh
    :class:`~polyfold.core.train.Trainer` run of ``steps_per_round`` optimizer steps (a number, or
    a function of the round's student steps) in ``out_dir/steps_<n>``.

    The student, trained in place, starts as its own teacher (a frozen copy, refreshed after every
    round; its EMA weights are used when the trainer keeps an EMA). ``on_round_end(n)`` is called
    after the round with an ``n``-step student. Each log holds the round's last loss.
    """
    check_path(path)
    check_prediction(prediction)
    _check_w_range(w_range)
    teacher = copy.deepcopy(student).requires_grad_(False).eval()

    def loss_fn(n: int) -> Callable[[nn.Module, Any, torch.Generator], Tensor]:
        def fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
            x0, c = split_pair(batch, "(x0, cond) pairs")
            return guided_progressive_loss(
                m,
                teacher,
                x0,
                c,
                path=path,
                prediction=prediction,
                student_steps=n,
                w_range=w_range,
                generator=g,
            )

        return fn

    def run_round(n: int, _: int) -> float:
        count = steps_per_round(n) if callable(steps_per_round) else steps_per_round
        check_int("steps_per_round", count)
        trainer = Trainer(
            student,
            loss_fn(n),
            data,
            out_dir=Path(out_dir) / f"steps_{n}",
            max_steps=count,
            **options,
        )
        teacher.to(trainer.device)
        result = trainer.fit()
        if trainer.ema is not None:
            trainer.ema.copy_to(student)
        return math.nan if result.loss is None else result.loss

    def end(n: int) -> None:
        teacher.load_state_dict(student.state_dict())
        if on_round_end is not None:
            on_round_end(n)

    return progressive_schedule(
        run_round,
        teacher_steps=teacher_steps,
        final_steps=final_steps,
        iterations=1,
        on_stage_end=end,
    )
