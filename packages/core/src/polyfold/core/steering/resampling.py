"""Resampling schemes for sequential Monte Carlo, and the effective sample size.

Given normalised weights ``w`` (``N`` of them) each scheme returns ``N`` ancestor indices whose
expected count of index ``i`` is ``N w_i`` (unbiased):

- ``"multinomial"``: ``N`` independent draws from ``w``;
- ``"stratified"``: one uniform draw in each stratum ``[(j + u_j)/N]``, inverted through the
  cumulative weights;
- ``"systematic"``: the same with one shared ``u`` (lowest variance in practice);
- ``"residual"``: ``floor(N w_i)`` copies of each index, the remainder drawn multinomially from
  the residual weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError

__all__ = ["RESAMPLING_SCHEMES", "effective_sample_size", "resample"]

RESAMPLING_SCHEMES = ("multinomial", "systematic", "stratified", "residual")


def effective_sample_size(log_weights: Tensor) -> float:
    """``1 / sum w_i^2`` of the normalised weights ``w = softmax(log_weights)`` (in [1, N])."""
    w = torch.softmax(log_weights.to(F64), 0)
    return float(1.0 / (w * w).sum())


def _invert(cdf: Tensor, u: Tensor) -> Tensor:
    n = cdf.numel()
    return torch.searchsorted(cdf, u, right=True).clamp_max(n - 1)


def resample(
    log_weights: Tensor,
    scheme: str = "systematic",
    *,
    n: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` (default ``N``) ancestor indices ``(n,)`` drawn from ``softmax(log_weights)``."""
    if scheme not in RESAMPLING_SCHEMES:
        raise InputError(
            f"resampling: expected one of {', '.join(RESAMPLING_SCHEMES)}, got {scheme!r}"
        )
    lw = log_weights.detach().to(device="cpu", dtype=F64).reshape(-1)
    if lw.numel() == 0 or not bool((lw < math.inf).all()) or bool(torch.isnan(lw).any()):
        raise InputError("log_weights: expected a non-empty vector of numbers < inf")
    if not bool(torch.isfinite(lw).any()):
        raise InputError("log_weights: every weight is zero")
    w = torch.softmax(lw, 0)
    m = lw.numel() if n is None else n
    if scheme == "multinomial":
        return torch.multinomial(w, m, replacement=True, generator=generator)
    cdf = torch.cumsum(w, 0)
    cdf = cdf / cdf[-1]
    if scheme in ("stratified", "systematic"):
        shape = (m,) if scheme == "stratified" else (1,)
        u = torch.rand(shape, generator=generator, dtype=F64)
        return _invert(cdf, (torch.arange(m, dtype=F64) + u) / m)
    copies = torch.floor(m * w).long()
    idx = torch.repeat_interleave(torch.arange(lw.numel()), copies)
    rest = m - int(copies.sum())
    if rest > 0:
        resid = m * w - copies
        extra = torch.multinomial(resid / resid.sum(), rest, replacement=True, generator=generator)
        idx = torch.cat([idx, extra])
    return idx
