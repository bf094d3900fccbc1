"""TSDiff's inputs: windows of context + horizon with lag channels, and mean scaling.

A window is ``(L, 1 + K)``: channel 0 the target at positions ``0..L-1`` (context then
horizon), channel ``1 + k`` the target ``lags[k]`` steps earlier (the paper's lag features), so
the model needs ``max(lags)`` points of history before each window. Missing values are NaN and
become unobserved entries of the mask. Mean scaling divides everything by the mean absolute
observed target value of the context (``scale = mean |y_context|``, 1 where it is 0), as the
paper; ``scaling="standard"`` instead subtracts the context's mean and divides by its standard
deviation (an option for series whose relative variation is tiny, e.g. CO2 levels).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = [
    "context_affine",
    "default_lags",
    "lagged_window",
    "lagged_windows_from",
    "mean_scale",
    "training_windows",
]

SCALINGS = ("mean", "standard")

_LAGS = {
    "min": [48, 336],
    "h": [24, 168],
    "d": [7, 28],
    "b": [5, 20],
    "w": [52],
    "m": [12],
    "q": [4],
    "y": [],
    "a": [],
}


def default_lags(freq: str) -> list[int]:
    """Seasonal lags for a pandas frequency: a day and a week for sub-daily data (counted in
    steps of the frequency), a year for weeks/months/quarters, none for years."""
    import pandas as pd

    offset = pd.Period("2000-01-01", freq=freq).freq
    name = offset.name.lower().lstrip("0123456789")
    for key in ("min", "h", "d", "b", "w", "m", "q", "y", "a"):
        if name.startswith(key) or (key == "min" and name.startswith("t")):
            if key == "min":
                per_day = 1440 // max(offset.n, 1)
                return [per_day, 7 * per_day]
            if key == "h":
                per_day = 24 // max(offset.n, 1)
                return [per_day, 7 * per_day]
            return list(_LAGS[key])
    return []


def lagged_window(history: Tensor, lags: list[int], length: int) -> Tensor:
    """``(..., length, 1 + K)`` from ``history (..., max(lags) + length)``: the last ``length``
    points and, per lag, the points ``lag`` steps earlier (differentiable, by slicing)."""
    m = max(lags, default=0)
    if history.shape[-1] != m + length:
        raise InputError(
            f"history: expected {m + length} points (max lag {m} + window {length}), "
            f"got {history.shape[-1]}"
        )
    chans = [history[..., m:]] + [history[..., m - lag : m - lag + length] for lag in lags]
    return torch.stack(chans, dim=-1)


def mean_scale(context: Tensor, observed: Tensor | None = None, min_scale: float = 1e-5) -> Tensor:
    """``(B,)`` mean absolute observed value of ``context (B, T)`` (1 where nothing is)."""
    obs = torch.isfinite(context) if observed is None else observed & torch.isfinite(context)
    total = torch.where(obs, context.abs(), 0.0).sum(-1)
    count = obs.sum(-1)
    s = total / count.clamp(min=1)
    return torch.where((count > 0) & (s > min_scale), s, torch.ones_like(s))


def context_affine(context: Tensor, scaling: str = "mean") -> tuple[Tensor, Tensor]:
    """``(loc (B,), scale (B,))`` of contexts ``(B, T)`` (NaN = missing): scaled values are
    ``(y - loc) / scale``. ``mean``: ``loc = 0``, ``scale = mean |y|``; ``standard``: the
    observed mean and standard deviation (at least 1e-3 of the mean's magnitude, else 1)."""
    if scaling == "mean":
        s = mean_scale(context)
        return torch.zeros_like(s), s
    if scaling != "standard":
        raise InputError(f"scaling: expected one of {SCALINGS}, got {scaling!r}")
    obs = torch.isfinite(context)
    n = obs.sum(-1).clamp(min=1)
    loc = torch.where(obs, context, 0.0).sum(-1) / n
    var = torch.where(obs, (context - loc[:, None]) ** 2, 0.0).sum(-1) / n
    sd = var.sqrt()
    floor = 1e-3 * loc.abs()
    sd = torch.where(sd > torch.maximum(floor, torch.full_like(floor, 1e-8)), sd, floor)
    return loc, torch.where(sd > 1e-8, sd, torch.ones_like(sd))


def lagged_windows_from(
    series: np.ndarray,
    lags: list[int],
    context_length: int,
    prediction_length: int,
    scaling: str = "mean",
) -> tuple[Tensor, Tensor, Tensor]:
    """All windows of one NaN-free training series: ``(windows (N, L, 1 + K), loc (N,),
    scale (N,))``, each scaled by its context (:func:`context_affine`)."""
    m = max(lags, default=0)
    length = context_length + prediction_length
    y = torch.as_tensor(np.asarray(series, dtype=np.float32))
    if len(y) < m + length:
        raise InputError(
            f"series: {len(y)} points is too short for a window of {length} "
            f"(context {context_length} + horizon {prediction_length}) with lags up to {m}"
        )
    hist = y.unfold(0, m + length, 1)  # (N, m + L)
    w = lagged_window(hist, lags, length)
    loc, scale = context_affine(w[:, :context_length, 0], scaling)
    return (w - loc[:, None, None]) / scale[:, None, None], loc, scale


def training_windows(
    series: list[np.ndarray],
    lags: list[int],
    context_length: int,
    prediction_length: int,
    scaling: str = "mean",
) -> Tensor:
    """Scaled training windows from every series long enough, concatenated."""
    m = max(lags, default=0)
    need = m + context_length + prediction_length
    out = [
        lagged_windows_from(s, lags, context_length, prediction_length, scaling)[0]
        for s in series
        if len(s) >= need
    ]
    if not out:
        longest = max((len(s) for s in series), default=0)
        raise InputError(
            f"training data: no series has the {need} points a window needs (context "
            f"{context_length} + horizon {prediction_length} + max lag {m}); longest has {longest}"
        )
    return torch.cat(out)
