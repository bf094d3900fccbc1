"""Denoising score matching: regress a prediction of ``x_t = alpha x0 + sigma eps`` on its target.

For each example a time ``t`` is drawn (or given), ``eps`` from the path (``N(0, I)``, or the
PFGM++ kernel), and the model ``model(x_t, t, cond)`` is trained on

    ``w_p(t) * mean over valid entries of (model(x_t, t, cond) - p(x0, eps))^2``

where ``p`` is the target of the prediction type (``eps``, ``x0``, ``v``, ``velocity``,
``score``) and ``w_p = w / c_p^2`` converts the weighting ``w`` (weight on the x0-MSE, see
:mod:`polyfold.core.losses.weighting`) to that target. Dict states: every key has its own path,
prediction type and mask, all keys share ``t``, and the per-example losses are summed over keys.
Padding (``mask`` False) is zero in ``x_t`` and excluded from the mean. The model gets ``t`` in
the state's dtype; a model that needs the mask receives it through ``cond``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.losses.weighting import Weighting, target_weight
from polyfold.core.paths import GaussianPath, Paths
from polyfold.core.predictions import Prediction, check_prediction, from_x0_eps
from polyfold.core.state import Mask, State, apply_mask, masked_mean, tree_map
from polyfold.core.timesteps import TimeSampler, get_time_sampler

__all__ = ["Reduction", "draw_noise", "draw_times", "dsm_loss"]

Reduction = Literal["mean", "none"]


def _leaves(state: State, name: str = "x0") -> list[Tensor]:
    leaves = list(state.values()) if isinstance(state, Mapping) else [state]
    if not leaves or not all(isinstance(x, Tensor) and x.ndim >= 1 for x in leaves):
        raise InputError(f"{name}: expected a batch-first tensor or a dict of them")
    if len({x.shape[0] for x in leaves}) != 1:
        raise InputError(f"{name}: every key must have the same batch size")
    return leaves


def draw_noise(x0: State, path: Paths, generator: torch.Generator | None = None) -> State:
    """``eps`` shaped like ``x0``, each key from its path's :meth:`~GaussianPath.sample_noise`."""
    return tree_map(  # type: ignore[no-any-return]
        lambda x, p: p.sample_noise(x.shape, generator=generator, device=x.device, dtype=x.dtype),
        x0,
        path,
    )


def draw_times(
    x0: State,
    path: Paths,
    t: Tensor | float | None = None,
    time_sampler: str | TimeSampler = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """``(B,)`` float64 times: ``t`` broadcast, or drawn with ``time_sampler`` on the path (the
    first key's for a dict of paths)."""
    first = _leaves(x0)[0]
    b = first.shape[0]
    if t is not None:
        tt = torch.as_tensor(t, dtype=F64, device=first.device)
        if tt.ndim > 1 or tt.numel() not in (1, b):
            raise InputError(f"t: expected a number or shape ({b},), got {tuple(tt.shape)}")
        return tt.reshape(-1).expand(b)
    p = next(iter(path.values())) if isinstance(path, Mapping) else path
    return get_time_sampler(time_sampler)(b, path=p, generator=generator, device=first.device)


def dsm_loss(
    model: Callable[..., Any],
    x0: State,
    *,
    path: Paths,
    prediction: Prediction | dict[str, Prediction] = "eps",
    weighting: Weighting = "target",
    min_snr_gamma: float = 5.0,
    sigma_data: float = 0.5,
    sigmoid_bias: float = 0.0,
    mask: Mask = None,
    cond: Any = None,
    generator: torch.Generator | None = None,
    t: Tensor | float | None = None,
    time_sampler: str | TimeSampler = "uniform",
    noise: State | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Denoising score-matching loss: a scalar (``reduction="mean"``) or ``(B,)`` (``"none"``).

    ``noise`` gives a pre-drawn ``eps`` (default: drawn from the path with ``generator``, before
    ``t``). ``weighting`` is a name (``uniform``, ``snr``, ``min_snr``, ``max_snr``, ``edm``,
    ``sigmoid``) or a callable of the log-SNR, always the weight on the x0-MSE; the default
    ``target`` is the plain MSE on the model's own prediction (DDPM's "simple" loss for eps).
    """
    if reduction not in ("mean", "none"):
        raise InputError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
    _leaves(x0)
    eps = draw_noise(x0, path, generator) if noise is None else noise
    t64 = draw_times(x0, path, t, time_sampler, generator)
    x_t = tree_map(lambda x, e, p: p.perturb(x, t64, e.to(x.dtype)), x0, eps, path)
    x_t = apply_mask(x_t, mask)
    dtype = _leaves(x0)[0].dtype
    out = model(x_t, t64.to(dtype), cond)
    if isinstance(out, Mapping) != isinstance(x0, Mapping):
        raise InputError("model output: expected the same structure as x0 (tensor or dict)")

    def per_key(
        y: Tensor, x: Tensor, e: Tensor, p: GaussianPath, pred: Prediction, m: Tensor | None
    ) -> Tensor:
        check_prediction(pred)
        if pred == "score" and not p.gaussian:
            raise InputError(f"prediction: 'score' needs a Gaussian path, got {p!r}")
        if not isinstance(y, Tensor) or y.shape != x.shape:
            raise InputError(
                f"model output: expected shape {tuple(x.shape)}, got "
                f"{tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}"
            )
        coefs = {
            "alpha": p.alpha(t64),
            "sigma": p.sigma(t64),
            "d_alpha": p.d_alpha(t64),
            "d_sigma": p.d_sigma(t64),
        }
        w = target_weight(
            pred,
            weighting,
            log_snr=p.log_snr(t64),
            min_snr_gamma=min_snr_gamma,
            sigma_data=sigma_data,
            sigmoid_bias=sigmoid_bias,
            **coefs,
        )
        c = {k: v.to(x.dtype) for k, v in coefs.items()}
        target = from_x0_eps(x, e.to(x.dtype), target=pred, **c)
        err = masked_mean((y - target) ** 2, m, per_example=True)
        return w.to(err.dtype) * err

    losses = tree_map(per_key, out, x0, eps, path, prediction, mask)
    total: Tensor = (
        torch.stack(list(losses.values())).sum(0) if isinstance(losses, dict) else losses
    )
    return total.mean() if reduction == "mean" else total
