"""PaD-TS's population-aware training objective and its same-step batch sampling.

``loss = MSE(x0_hat, x0) + alpha * CC-MMD(x0, x0_hat)``: core's denoising score-matching loss
with an ``x0`` target (:func:`polyfold.core.losses.dsm_loss`, the plain MSE), plus ``alpha`` times
the MMD between the distribution of pairwise cross-correlation coefficients in the real batch
and in the predicted batch (:func:`polyfold.timeseries.metrics.cc_mmd`). The MMD compares two
*populations*, so the whole batch must share one diffusion step (PaD-TS's "same diffusion step
sampling"): otherwise the predictions mix noise levels and their distribution is no estimate of
the model's distribution at any one step. :func:`same_step_times` draws that step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.losses import dsm_loss
from polyfold.core.paths import DiscreteDDPM
from polyfold.timeseries.metrics import cc_mmd

__all__ = ["population_loss", "same_step_times"]


def same_step_times(
    batch: int, path: DiscreteDDPM, *, generator: torch.Generator | None = None
) -> Tensor:
    """One step ``k ~ U{0, ..., n-1}`` of the discrete schedule for the whole batch: ``(batch,)``
    float64 times, all equal to ``t_k = (k + 1) / n``."""
    if not isinstance(path, DiscreteDDPM):
        raise InputError(f"path: expected a DiscreteDDPM schedule, got {path!r}")
    dev = generator.device if generator is not None else None
    k = torch.randint(0, path.n, (1,), generator=generator, device=dev)
    return ((k.to(F64) + 1.0) / path.n).expand(batch)


def population_loss(
    model: nn.Module,
    x0: Tensor,
    *,
    path: DiscreteDDPM,
    alpha: float,
    generator: torch.Generator | None = None,
    parts: dict[str, float] | None = None,
) -> Tensor:
    """PaD-TS's loss on a batch of clean windows ``x0`` ``(B, L, C)`` (``B >= 2``).

    ``model(x_t, t, cond)`` predicts ``x0``; all windows share one step (:func:`same_step_times`),
    the noise and the step come from ``generator``. ``alpha = 0`` is the plain x0-MSE (the
    ablation without the population term). ``parts``, when given, receives the two terms.
    """
    if not isinstance(x0, Tensor) or x0.ndim != 3 or x0.shape[0] < 2:
        raise InputError("x0: expected a batch of at least 2 windows (B, L, C)")
    captured: dict[str, Tensor] = {}

    def run(x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        captured["x0_hat"] = out = model(x_t, t, cond)
        return out  # type: ignore[no-any-return]

    noise = path.sample_noise(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = same_step_times(x0.shape[0], path, generator=generator).to(x0.device)
    mse = dsm_loss(run, x0, path=path, prediction="x0", t=t, noise=noise)
    if alpha == 0:
        mmd = torch.zeros((), device=x0.device)
        loss = mse
    else:
        mmd = cc_mmd(x0, captured["x0_hat"])
        loss = mse + alpha * mmd
    if parts is not None:
        parts["mse"], parts["mmd"] = float(mse.detach()), float(mmd.detach())
    return loss
