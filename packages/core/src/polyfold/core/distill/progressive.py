"""Progressive distillation (Salimans & Ho 2022): a student with ``N/2`` DDIM steps learns to
match two DDIM steps of an ``N``-step teacher, then becomes the teacher of the next round.

For student step ``t -> s`` (teacher steps ``t -> t' -> s``), the teacher's two DDIM steps from
``x_t`` give ``x_s``. The student's single DDIM step lands on ``x_s`` exactly when its data
prediction is

    x0_target = (x_s - (sigma_s / sigma_t) x_t) / (alpha_s - (sigma_s / sigma_t) alpha_t),

the closed form used here (any Gaussian path; ``sigma_s = 0`` gives ``x0_target = x_s / alpha_s``).
The loss is the squared error on ``x0`` (default, weighted by the paper's truncated SNR
``max(SNR, 1)``), ``eps`` or ``v`` (``v = alpha eps - sigma x0``, with ``eps`` implied by
``x_t`` and ``x0``), times a weighting of the log-SNR.

:func:`progressive_schedule` runs the rounds ``N -> N/2 -> ... -> final`` over a training step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.distill._util import (
    check_path,
    check_reduction,
    check_tensor,
    flat_sq,
    reduce,
    times,
)
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int
from polyfold.core.paths import GaussianPath
from polyfold.core.samplers.grids import zero_time
from polyfold.core.samplers.steps import ddim_step, denoise_at, path_coef

__all__ = [
    "PDTarget",
    "PDWeighting",
    "StageLog",
    "pd_grid",
    "progressive_distillation_loss",
    "progressive_distillation_target",
    "progressive_schedule",
]

PDTarget = Literal["x0", "eps", "v"]
PDWeighting = Literal["truncated_snr", "snr_plus_one", "uniform"]


def _check_target(target: object) -> PDTarget:
    if target not in ("x0", "eps", "v"):
        raise InputError(f"target: expected 'x0', 'eps' or 'v', got {target!r}")
    return target


def pd_grid(path: GaussianPath, teacher_steps: int) -> Tensor:
    """The default teacher grid: ``teacher_steps + 1`` times uniform from ``t_max`` to the data
    point (``sigma = 0``); the student uses every other point."""
    check_int("teacher_steps", teacher_steps)
    return torch.linspace(path.t_max, zero_time(path), teacher_steps + 1, dtype=F64)


def progressive_distillation_target(
    teacher: Denoiser,
    x_t: Tensor,
    t: Tensor | float,
    t_mid: Tensor | float,
    s: Tensor | float,
    *,
    path: GaussianPath,
    target: PDTarget = "x0",
) -> Tensor:
    """The student's target at ``(x_t, t)``: the prediction whose DDIM step ``t -> s`` equals
    the teacher's two DDIM steps ``t -> t_mid -> s`` (computed without gradient).

    Args:
        teacher: the ``N``-step teacher (any :class:`~polyfold.core.denoiser.Denoiser`).
        x_t: the noisy state ``(B, ...)`` at ``t``.
        t, t_mid, s: decreasing times, each a number or ``(B,)``; ``sigma(t) > 0``.
        path: the Gaussian path.
        target: ``"x0"``, ``"eps"`` or ``"v"``.
    """
    check_tensor(x_t, "x_t")
    check_path(path)
    target = _check_target(target)
    tt, tm, ts = times(t, x_t), times(t_mid, x_t), times(s, x_t)
    if bool((tm >= tt).any()) or bool((ts >= tm).any()):
        raise InputError("t, t_mid, s: expected decreasing times t > t_mid > s")
    with torch.no_grad():
        x_mid, _ = ddim_step(teacher, path, x_t, tt, tm)
        x_s, _ = ddim_step(teacher, path, x_mid, tm, ts)
        a_t, s_t = path_coef(path.alpha, tt, x_t), path_coef(path.sigma, tt, x_t)
        a_s, s_s = path_coef(path.alpha, ts, x_t), path_coef(path.sigma, ts, x_t)
        ratio = s_s / s_t
        x0 = (x_s - ratio * x_t) / (a_s - ratio * a_t)
        if target == "x0":
            return x0
        eps = (x_t - a_t * x0) / s_t
        return eps if target == "eps" else a_t * eps - s_t * x0


def _weight(weighting: object, log_snr: Tensor) -> Tensor:
    if callable(weighting):
        out = weighting(log_snr)
        if not isinstance(out, Tensor):
            raise InputError("weighting: a callable must return a tensor of the log-SNR's shape")
        return out
    if weighting == "truncated_snr":
        return torch.exp(log_snr).clamp_min(1.0)
    if weighting == "snr_plus_one":
        return torch.exp(log_snr) + 1.0
    if weighting == "uniform":
        return torch.ones_like(log_snr)
    raise InputError(
        "weighting: expected 'truncated_snr', 'snr_plus_one', 'uniform' or a callable of the "
        f"log-SNR, got {weighting!r}"
    )


def progressive_distillation_loss(
    student: Denoiser,
    teacher: Denoiser,
    x0: Tensor,
    *,
    path: GaussianPath,
    student_steps: int,
    target: PDTarget = "x0",
    weighting: PDWeighting | Callable[[Tensor], Tensor] = "truncated_snr",
    grid: Tensor | Sequence[float] | None = None,
    index: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """One progressive-distillation loss on data ``x0``.

    Per example a student step ``i`` is drawn uniformly from ``0 .. student_steps - 1``
    (``index`` fixes it), ``x_t = alpha x0 + sigma eps`` at ``t = grid[2i]`` and the loss is
    ``w(lambda_t) ||student - target||^2`` (summed over features) with the target of
    :func:`progressive_distillation_target` over the teacher steps
    ``grid[2i] -> grid[2i+1] -> grid[2i+2]``.

    Args:
        student: the student as a denoiser (e.g. ``as_denoiser(net, path, prediction="v")``);
            gradients flow through it.
        teacher: the ``2 * student_steps``-step teacher.
        x0: a data batch ``(B, ...)``.
        path: the Gaussian path both use.
        student_steps: ``N/2``, the student's number of DDIM steps.
        target: the quantity compared: ``"x0"``, ``"eps"`` or ``"v"``.
        weighting: ``"truncated_snr"`` (``max(SNR, 1)``, the paper's), ``"snr_plus_one"``,
            ``"uniform"`` or a callable of the ``(B,)`` float64 log-SNR.
        grid: the teacher's decreasing grid of ``2 * student_steps + 1`` times (default
            :func:`pd_grid`).
        index: ``(B,)`` integer student steps (default drawn with ``generator``).
        noise: a pre-drawn ``eps`` (default drawn with ``generator``, after ``index``).
        reduction: ``"mean"`` (a scalar) or ``"none"`` (``(B,)``).
    """
    check_tensor(x0, "x0")
    check_path(path)
    check_int("student_steps", student_steps)
    target = _check_target(target)
    check_reduction(reduction)
    g = pd_grid(path, 2 * student_steps) if grid is None else torch.as_tensor(grid, dtype=F64)
    if g.shape != (2 * student_steps + 1,) or not bool((g[1:] < g[:-1]).all()):
        raise InputError(
            f"grid: expected {2 * student_steps + 1} strictly decreasing times, "
            f"got shape {tuple(g.shape)}"
        )
    g = g.to(x0.device)
    b = x0.shape[0]
    if index is None:
        idx = torch.randint(0, student_steps, (b,), generator=generator, device=x0.device)
    else:
        idx = torch.as_tensor(index, device=x0.device).long().reshape(-1).expand(b)
        if bool((idx < 0).any()) or bool((idx >= student_steps).any()):
            raise InputError(f"index: expected integers in [0, {student_steps})")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif not isinstance(noise, Tensor) or noise.shape != x0.shape:
        raise InputError(f"noise: expected a tensor of shape {tuple(x0.shape)}")
    t, t_mid, s = g[2 * idx], g[2 * idx + 1], g[2 * idx + 2]
    x_t = path_coef(path.alpha, t, x0) * x0 + path_coef(path.sigma, t, x0) * noise
    tgt = progressive_distillation_target(teacher, x_t, t, t_mid, s, path=path, target=target)
    d = denoise_at(student, x_t, t)
    if target == "x0":
        pred = d.x0
    elif target == "eps":
        pred = d.eps
    else:
        e, x0_hat = d.eps, d.x0
        assert isinstance(e, Tensor)
        assert isinstance(x0_hat, Tensor)
        pred = path_coef(path.alpha, t, x0) * e - path_coef(path.sigma, t, x0) * x0_hat
    assert isinstance(pred, Tensor)
    w = _weight(weighting, path.log_snr(t)).to(x0.dtype)
    return reduce(w * flat_sq(pred - tgt), reduction)


@dataclass
class StageLog:
    """One round of :func:`progressive_schedule`: teacher and student step counts, the values
    the training step returned."""

    teacher_steps: int
    student_steps: int
    values: list[float] = field(default_factory=list)


def progressive_schedule(
    train_step: Callable[[int, int], float],
    *,
    teacher_steps: int,
    final_steps: int = 1,
    iterations: int | Callable[[int], int],
    on_stage_end: Callable[[int], None] | None = None,
) -> list[StageLog]:
    """Run the rounds ``teacher_steps -> teacher_steps/2 -> ... -> final_steps``.

    For each round with a student of ``n`` steps, calls ``train_step(n, i)`` for
    ``i = 0 .. iterations - 1`` (``iterations`` may be a function of ``n``), then
    ``on_stage_end(n)``, where the caller makes the student the next round's teacher (copy
    weights, reset the optimiser). ``teacher_steps / final_steps`` must be a power of two.
    """
    check_int("teacher_steps", teacher_steps, 2)
    check_int("final_steps", final_steps)
    ratio, rem = divmod(teacher_steps, final_steps)
    if rem or ratio < 2 or ratio & (ratio - 1):
        raise InputError(
            f"teacher_steps: expected final_steps={final_steps} times a power of two >= 2, "
            f"got {teacher_steps}"
        )
    logs: list[StageLog] = []
    n_teacher = teacher_steps
    while n_teacher > final_steps:
        n = n_teacher // 2
        count = iterations(n) if callable(iterations) else iterations
        check_int("iterations", count)
        log = StageLog(n_teacher, n)
        for i in range(count):
            log.values.append(float(train_step(n, i)))
        if on_stage_end is not None:
            on_stage_end(n)
        logs.append(log)
        n_teacher = n
    return logs
