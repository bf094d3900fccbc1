r"""SlimFlow (Zhu, Liu & Liu 2024): small one-step flows by reflow and flow-guided distillation.

On the rectified-flow path ``x_t = (1 - t) x + t z`` (``t = 1`` noise,
:class:`~polyfold.core.paths.LinearInterpolant`) a flow is trained on pairs ``(z, x)``. The
recipe has three stages:

1. **Pairs** (:func:`reflow_pairs`): ``x = ODE_teacher(z)``, the teacher's probability-flow ODE
   integrated by one of core's samplers (by name) from ``z`` drawn at the start of its grid.
2. **Annealing Reflow** (:func:`reflow_loss`, :func:`annealing_reflow_trainer`): a small
   student, initialised from scratch, regresses the straight-line velocity ``z' - x`` at
   ``x_t = (1 - t) x + t z'``, where the noise end is annealed from a random pairing to the
   teacher's pairs: ``z' = sqrt(1 - r^2) z + r z_rand`` with ``z_rand ~ N(0, I)`` independent
   (so ``z'`` stays ``N(0, I)``) and the randomness ``r(k)`` going from 1 (plain flow matching,
   an independent coupling) to 0 (reflow on the teacher pairs) over ``K`` training steps
   (:func:`annealing_randomness`: the paper's linear schedule ``r = 1 - min(1, k / K)``, or
   cosine / exponential).
3. **Flow-Guided Distillation** (:func:`flow_guided_distillation_loss`,
   :func:`flow_guided_distillation_trainer`): the one-step student ``x_hat = f(z)`` (its data
   prediction at ``t_max``) is fitted to the pair, ``D(x_hat, x)``, plus ``lambda`` times the
   flow-guided term ``D(x_hat, x_g)``, where ``x_g`` ends a two-step trajectory of the guide (the
   2-rectified flow, by default the student's own starting weights): one DDIM step from
   ``t_max`` to ``tau ~ U(split)`` and one from ``tau`` to the data point (on the linear path a
   DDIM step is an Euler step of the velocity). ``D`` is the squared L2 or pseudo-Huber distance.

A straight, non-crossing coupling is a fixed point: its straight velocity makes the reflow loss
zero, and Euler with one step reproduces its pairs exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.distill._util import (
    check_path,
    check_reduction,
    check_tensor,
    reduce,
    split_pair,
    times,
)
from polyfold.core.distill.consistency import Metric, consistency_metric
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int
from polyfold.core.losses.dsm import Reduction, dsm_loss
from polyfold.core.losses.flow import cfm_loss
from polyfold.core.paths import GaussianPath, LinearInterpolant
from polyfold.core.predictions import Prediction, check_prediction
from polyfold.core.samplers.grids import uniform_t_grid, zero_time
from polyfold.core.samplers.registry import get_sampler
from polyfold.core.samplers.steps import ddim_step, denoise_at
from polyfold.core.train.trainer import Trainer

__all__ = [
    "AnnealSchedule",
    "ReflowPairs",
    "anneal_noise",
    "annealing_randomness",
    "annealing_reflow_trainer",
    "flow_guided_distillation_loss",
    "flow_guided_distillation_trainer",
    "one_step_sample",
    "reflow_loss",
    "reflow_pairs",
]

AnnealSchedule = Literal["linear", "cosine", "exp"]


class ReflowPairs(Dataset[tuple[Tensor, Tensor]]):
    """Noise/data pairs ``(z, x)`` of equal shape ``(N, ...)``: a map-style dataset whose items
    are ``(z_i, x_i)`` (batches of the :class:`~polyfold.core.train.Trainer` are ``[z, x]``)."""

    def __init__(self, z: Tensor, x: Tensor) -> None:
        check_tensor(z, "z")
        check_tensor(x, "x")
        if z.shape != x.shape:
            raise InputError(
                f"x: expected the shape of the noise z {tuple(z.shape)}, got {tuple(x.shape)}"
            )
        self.z, self.x = z, x

    def __len__(self) -> int:
        return self.z.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.z[i], self.x[i]


def _data_grid(path: GaussianPath, steps: int) -> Tensor:
    """``steps`` uniform-``t`` steps from ``t_max`` ending at the data point."""
    return uniform_t_grid(path, steps, append_zero=zero_time(path) < path.t_min)


@torch.no_grad()
def reflow_pairs(
    teacher: Denoiser,
    path: GaussianPath,
    noise: Tensor,
    *,
    sampler: str = "heun",
    steps: int = 16,
    grid: Tensor | Sequence[float] | None = None,
    batch_size: int = 4096,
    **options: Any,
) -> ReflowPairs:
    """The teacher's coupling ``(z, ODE(z))`` for every row ``z`` of ``noise``.

    Args:
        teacher: the teacher as a denoiser on ``path``.
        noise: ``(N, ...)`` starting states at ``grid[0]`` (e.g. ``path.prior_sample``).
        sampler: a deterministic sampler registered in :mod:`polyfold.core.samplers` (``heun``,
            ``rk4``, ``euler``, ``ddim``, ``dpm_solver_pp``, ...).
        steps: its steps on a uniform-``t`` grid down to the data point (ignored with ``grid``).
        batch_size: rows integrated at a time.
        options: the sampler's own options (e.g. ``variable="sigma"`` for Heun on VP paths).
    """
    check_tensor(noise, "noise")
    check_path(path)
    check_int("batch_size", batch_size)
    g = _data_grid(path, check_int("steps", steps)) if grid is None else grid
    run = get_sampler(sampler, kind="gaussian")
    out = []
    for start in range(0, noise.shape[0], batch_size):
        res = run(teacher, path, noise[start : start + batch_size], g, **options)
        assert isinstance(res.x, Tensor)
        out.append(res.x)
    return ReflowPairs(noise, torch.cat(out))


def annealing_randomness(
    step: int, anneal_steps: int, schedule: AnnealSchedule = "linear"
) -> float:
    """Annealing Reflow's randomness ``r(k)``: 1 at ``k = 0`` (random pairs), decaying to 0
    (teacher pairs) at ``k = K = anneal_steps`` for ``linear`` (``1 - k/K``, the paper's) and
    ``cosine`` (``(1 + cos(pi k/K)) / 2``); ``exp`` is ``exp(-k/K)``. ``K = 0``: always 0."""
    check_int("step", step, 0)
    check_int("anneal_steps", anneal_steps, 0)
    if schedule not in ("linear", "cosine", "exp"):
        raise InputError(f"schedule: expected 'linear', 'cosine' or 'exp', got {schedule!r}")
    if anneal_steps == 0:
        return 0.0
    u = min(1.0, step / anneal_steps)
    if schedule == "linear":
        return 1.0 - u
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * u))
    return math.exp(-step / anneal_steps)


def _check_randomness(r: object) -> float:
    if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r <= 1.0:
        raise InputError(f"randomness: expected a number in [0, 1], got {r!r}")
    return float(r)


def anneal_noise(z: Tensor, randomness: float, generator: torch.Generator | None = None) -> Tensor:
    """``sqrt(1 - r^2) z + r z_rand``, ``z_rand ~ N(0, I)`` drawn with ``generator``."""
    r = _check_randomness(randomness)
    if r == 0.0:
        return z
    fresh = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    return math.sqrt(1.0 - r * r) * z + r * fresh


def reflow_loss(
    model: Any,
    z: Tensor,
    x: Tensor,
    *,
    path: GaussianPath | None = None,
    randomness: float = 0.0,
    prediction: Prediction = "velocity",
    cond: Any = None,
    generator: torch.Generator | None = None,
    t: Tensor | float | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Rectified-flow loss on the coupling ``(z, x)``: flow matching (:func:`cfm_loss`) with the
    noise end fixed to ``z`` (annealed by ``randomness``, :func:`anneal_noise`).

    ``model(x_t, t, cond)`` predicts ``prediction`` on ``path`` (default the linear
    interpolant); a velocity model is trained on the plain velocity MSE, any other prediction
    type on the plain MSE of its own target (:func:`~polyfold.core.losses.dsm_loss`).
    ``t`` fixes the times (default uniform draws with ``generator``, after the annealing noise).
    """
    check_tensor(z, "z")
    check_tensor(x, "x")
    if z.shape != x.shape:
        raise InputError(f"x: expected the shape of z {tuple(z.shape)}, got {tuple(x.shape)}")
    check_prediction(prediction)
    p = LinearInterpolant() if path is None else check_path(path)
    noise = anneal_noise(z, randomness, generator)
    if prediction == "velocity":
        return cfm_loss(
            model, x, path=p, noise=noise, cond=cond, generator=generator, t=t, reduction=reduction
        )
    return dsm_loss(
        model,
        x,
        path=p,
        prediction=prediction,
        noise=noise,
        cond=cond,
        generator=generator,
        t=t,
        reduction=reduction,
    )


def one_step_sample(student: Denoiser, z: Tensor, path: GaussianPath | None = None) -> Tensor:
    """The one-step sample: the student's data prediction at ``t_max`` (on the linear path with a
    velocity model, ``z - v(z, 1)``, one Euler step)."""
    p = LinearInterpolant() if path is None else check_path(path)
    x0 = denoise_at(student, z, times(p.t_max, z)).x0
    assert isinstance(x0, Tensor)
    return x0


def _check_split(split: object) -> tuple[float, float]:
    if (
        not isinstance(split, tuple | list)
        or len(split) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in split)
    ):
        raise InputError(f"split: expected a pair (lo, hi) in (0, 1), got {split!r}")
    lo, hi = float(split[0]), float(split[1])
    if not 0.0 < lo <= hi < 1.0:
        raise InputError(f"split: expected 0 < lo <= hi < 1, got {split!r}")
    return lo, hi


def flow_guided_distillation_loss(
    student: Denoiser,
    guide: Denoiser | None,
    z: Tensor,
    x: Tensor | None = None,
    *,
    path: GaussianPath | None = None,
    guide_weight: float = 1.0,
    split: tuple[float, float] = (0.2, 0.8),
    metric: Metric = "l2",
    huber_c: float | None = None,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """SlimFlow's one-step distillation loss ``D(f(z), x) + guide_weight D(f(z), x_g)``.

    Args:
        student: the one-step student as a denoiser (its data prediction at ``t_max``).
        guide: the 2-rectified flow giving the two-step trajectory ``x_g`` (no gradient);
            ``None`` (or ``guide_weight = 0``) leaves the plain distillation term.
        z: ``(B, ...)`` noise; ``x``: its teacher pair (``None``: the flow-guided term alone).
        split: the intermediate time ``tau`` of the guide's trajectory is drawn uniformly in
            this fraction of ``[data point, t_max]``.
        metric: ``"l2"`` (squared L2) or ``"pseudo_huber"`` (with ``huber_c``).
    """
    check_tensor(z, "z")
    p = LinearInterpolant() if path is None else check_path(path)
    check_reduction(reduction)
    lo, hi = _check_split(split)
    if isinstance(guide_weight, bool) or not isinstance(guide_weight, int | float):
        raise InputError(f"guide_weight: expected a number >= 0, got {guide_weight!r}")
    if not guide_weight >= 0:
        raise InputError(f"guide_weight: expected a number >= 0, got {guide_weight!r}")
    use_guide = guide is not None and guide_weight > 0
    if x is None and not use_guide:
        raise InputError("x: give the teacher pairs, a guide with guide_weight > 0, or both")
    if x is not None and (not isinstance(x, Tensor) or x.shape != z.shape):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"x: expected the shape of z {tuple(z.shape)}, got {shape}")
    x_hat = one_step_sample(student, z, p)
    total = torch.zeros(z.shape[0], dtype=x_hat.dtype, device=z.device)
    if x is not None:
        total = total + consistency_metric(x_hat, x, metric, huber_c)
    if use_guide:
        assert guide is not None
        t0, t1 = zero_time(p), p.t_max
        u = lo + (hi - lo) * torch.rand(z.shape[0], generator=generator, dtype=F64, device=z.device)
        tau = t0 + u * (t1 - t0)
        with torch.no_grad():
            x_tau, _ = ddim_step(guide, p, z, times(t1, z), tau)
            x_g, _ = ddim_step(guide, p, x_tau, tau, times(t0, z))
        total = total + guide_weight * consistency_metric(x_hat, x_g, metric, huber_c)
    return reduce(total, reduction)


def annealing_reflow_trainer(
    student: nn.Module,
    pairs: ReflowPairs | Dataset[Any],
    *,
    out_dir: str | Path,
    anneal_steps: int,
    schedule: AnnealSchedule = "linear",
    path: GaussianPath | None = None,
    prediction: Prediction = "velocity",
    **options: Any,
) -> Trainer:
    """A :class:`~polyfold.core.train.Trainer` running Annealing Reflow on ``pairs``.

    The randomness at optimizer step ``k`` is :func:`annealing_randomness` ``(k, anneal_steps,
    schedule)``, read from the trainer's step (so a resumed run continues the schedule).
    ``options`` are the trainer's (``max_steps``, ``batch_size``, ``lr``, ...).
    """
    check_int("anneal_steps", anneal_steps, 0)
    annealing_randomness(0, anneal_steps, schedule)
    check_prediction(prediction)
    holder: list[Trainer] = []

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        z, x = split_pair(batch, "(z, x) pairs, e.g. a ReflowPairs dataset")
        r = annealing_randomness(holder[0].step, anneal_steps, schedule)
        return reflow_loss(m, z, x, path=path, randomness=r, prediction=prediction, generator=g)

    trainer = Trainer(student, loss_fn, pairs, out_dir=out_dir, **options)
    holder.append(trainer)
    return trainer


def flow_guided_distillation_trainer(
    student: nn.Module,
    pairs: ReflowPairs | Dataset[Any],
    *,
    out_dir: str | Path,
    guide: nn.Module | None = None,
    path: GaussianPath | None = None,
    prediction: Prediction = "velocity",
    guide_weight: float = 1.0,
    split: tuple[float, float] = (0.2, 0.8),
    metric: Metric = "l2",
    huber_c: float | None = None,
    **options: Any,
) -> Trainer:
    """A :class:`~polyfold.core.train.Trainer` running Flow-Guided Distillation on ``pairs``.

    ``student`` is a network ``net(x_t, t, cond)`` predicting ``prediction`` on ``path``,
    normally initialised from the small 2-rectified flow; ``guide`` (same convention, frozen)
    defaults to a copy of the student's starting weights, as in the paper.
    """
    p = LinearInterpolant() if path is None else check_path(path)
    check_prediction(prediction)
    _check_split(split)
    frozen = copy.deepcopy(student if guide is None else guide).requires_grad_(False).eval()

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        z, x = split_pair(batch, "(z, x) pairs, e.g. a ReflowPairs dataset")
        return flow_guided_distillation_loss(
            as_denoiser(m, p, prediction=prediction),
            as_denoiser(frozen, p, prediction=prediction),
            z,
            x,
            path=p,
            guide_weight=guide_weight,
            split=split,
            metric=metric,
            huber_c=huber_c,
            generator=g,
        )

    trainer = Trainer(student, loss_fn, pairs, out_dir=out_dir, **options)
    frozen.to(trainer.device)
    return trainer
