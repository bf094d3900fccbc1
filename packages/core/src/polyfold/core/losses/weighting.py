"""Loss weightings, all expressed as the weight on the x0-MSE.

Convention: a weighting ``w(lambda)`` is the weight on ``||x0_hat - x0||^2`` at log-SNR
``lambda``. A model predicting another target is trained on that target's MSE with the weight
``w / c^2``, where ``||p_hat - p||^2 = c^2 ||x0_hat - x0||^2`` at fixed ``x_t``
(:func:`target_scale2`), so a weighting means the same objective whatever the prediction type:

============  =======================================  ========================================
name          weight on x0-MSE                         note
============  =======================================  ========================================
uniform       ``1``                                    plain x0-MSE
snr           ``SNR = e^lambda``                       plain eps-MSE (DDPM's "simple" loss)
min_snr       ``min(SNR, gamma)``                      Hang et al.; ``gamma = inf`` is ``snr``
max_snr       ``max(SNR, 1)``                          Salimans & Ho's truncated SNR
edm           ``(s^2 + sd^2)/(s sd)^2 = SNR + 1/sd^2``  Karras et al., ``s = sigma/alpha``
sigmoid       ``SNR sigmoid(b - lambda)``              Kingma & Gao's sigmoid weighting
target        ``c^2``                                  plain MSE on the chosen target
============  =======================================  ========================================

A callable ``w(lambda) -> Tensor`` is also accepted (weight on the x0-MSE).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.core.predictions import Prediction, check_prediction

__all__ = ["WEIGHTINGS", "Weighting", "target_scale2", "target_weight", "x0_weight"]

WeightingName = Literal["uniform", "snr", "min_snr", "max_snr", "edm", "sigmoid", "target"]
Weighting = WeightingName | Callable[[Tensor], Tensor]
WEIGHTINGS: tuple[str, ...] = get_args(WeightingName)


def target_scale2(
    prediction: Prediction, alpha: Tensor, sigma: Tensor, d_alpha: Tensor, d_sigma: Tensor
) -> Tensor:
    """``c^2`` with ``||p_hat - p||^2 = c^2 ||x0_hat - x0||^2`` at fixed ``x_t``.

    ``x0``: 1; ``eps``: ``alpha^2/sigma^2``; ``score``: ``alpha^2/sigma^4``;
    ``v``: ``((alpha^2 + sigma^2)/sigma)^2``; ``velocity``:
    ``((sigma d_alpha - alpha d_sigma)/sigma)^2``.
    """
    check_prediction(prediction)
    if prediction == "x0":
        return torch.ones_like(alpha)
    if prediction == "eps":
        return (alpha / sigma) ** 2
    if prediction == "score":
        return (alpha / sigma**2) ** 2
    if prediction == "v":
        return ((alpha**2 + sigma**2) / sigma) ** 2
    return ((sigma * d_alpha - alpha * d_sigma) / sigma) ** 2


def x0_weight(
    log_snr: Tensor,
    weighting: Weighting,
    *,
    min_snr_gamma: float = 5.0,
    sigma_data: float = 0.5,
    sigmoid_bias: float = 0.0,
) -> Tensor:
    """The weight on the x0-MSE at ``log_snr`` (see the module table; not for ``target``)."""
    if callable(weighting):
        return weighting(log_snr)
    lam = log_snr
    if weighting == "uniform":
        return torch.ones_like(lam)
    if weighting == "snr":
        return lam.exp()
    if weighting == "min_snr":
        if not min_snr_gamma > 0:
            raise InputError(f"min_snr_gamma: expected a number > 0, got {min_snr_gamma!r}")
        return lam.clamp(max=math.log(min_snr_gamma)).exp()
    if weighting == "max_snr":
        return lam.clamp(min=0.0).exp()
    if weighting == "edm":
        if not sigma_data > 0:
            raise InputError(f"sigma_data: expected a number > 0, got {sigma_data!r}")
        return lam.exp() + 1.0 / sigma_data**2
    if weighting == "sigmoid":
        return torch.exp(lam + torch.nn.functional.logsigmoid(sigmoid_bias - lam))
    raise InputError(
        f"weighting: expected one of {', '.join(WEIGHTINGS)} or a callable, got {weighting!r}"
    )


def target_weight(
    prediction: Prediction,
    weighting: Weighting,
    *,
    alpha: Tensor,
    sigma: Tensor,
    d_alpha: Tensor,
    d_sigma: Tensor,
    log_snr: Tensor,
    min_snr_gamma: float = 5.0,
    sigma_data: float = 0.5,
    sigmoid_bias: float = 0.0,
) -> Tensor:
    """The weight on the MSE of ``prediction``: ``x0_weight / target_scale2`` (1 for
    ``target``)."""
    if isinstance(weighting, str) and weighting == "target":
        check_prediction(prediction)
        return torch.ones_like(log_snr)
    w = x0_weight(
        log_snr,
        weighting,
        min_snr_gamma=min_snr_gamma,
        sigma_data=sigma_data,
        sigmoid_bias=sigmoid_bias,
    )
    return w / target_scale2(prediction, alpha, sigma, d_alpha, d_sigma)
