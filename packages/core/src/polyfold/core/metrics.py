"""Distances between two samples, the generic layer under every domain metric.

Each takes two batch-first samples ``a`` (n, d) and ``b`` (m, d) (trailing dims are flattened)
and returns a Python float; the arithmetic runs in float64.

- :func:`sliced_wasserstein`: the sliced Wasserstein-2 distance, averaged over random unit
  directions, each 1-D distance from matched quantiles (so ``n != m`` is fine).
- :func:`mmd`: the unbiased squared maximum mean discrepancy with a Gaussian kernel.
- :func:`mmd_multiscale`: the same with a mixture of Gaussian kernels over several bandwidths
  (robust to one badly chosen bandwidth), unbiased by default.
- :func:`frechet_distance`: the Frechet (2-Wasserstein) distance between Gaussians fitted to the
  two samples, the formula behind FID, FAD and FCD.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError

__all__ = ["frechet_distance", "median_distance", "mmd", "mmd_multiscale", "sliced_wasserstein"]


def _pair(a: Tensor, b: Tensor, min_rows: int = 1) -> tuple[Tensor, Tensor]:
    a, b = a.reshape(a.shape[0], -1).to(F64), b.reshape(b.shape[0], -1).to(F64)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"samples: feature sizes differ, {a.shape[1]} and {b.shape[1]}")
    if min(a.shape[0], b.shape[0]) < min_rows:
        raise InputError(f"samples: expected at least {min_rows} rows each")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise InputError("samples: contain NaN or infinite values")
    return a, b


def sliced_wasserstein(
    a: Tensor,
    b: Tensor,
    *,
    n_proj: int = 64,
    n_quantiles: int = 99,
    generator: torch.Generator | None = None,
) -> float:
    """``sqrt(mean_theta W2(theta.a, theta.b)^2)`` over ``n_proj`` uniform unit directions.

    Each 1-D W2 compares ``n_quantiles`` matched quantiles at levels ``(k - 1/2)/n_quantiles``.
    The directions come from ``generator`` (seed 0 by default, so repeated calls agree).
    """
    a, b = _pair(a, b)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    theta = torch.randn(a.shape[1], n_proj, generator=gen, dtype=F64)
    theta = theta / theta.norm(dim=0)
    levels = (torch.arange(n_quantiles, dtype=F64) + 0.5) / n_quantiles
    qa = torch.quantile(a @ theta, levels, dim=0)
    qb = torch.quantile(b @ theta, levels, dim=0)
    return float((qa - qb).pow(2).mean().sqrt())


def mmd(a: Tensor, b: Tensor, *, bandwidth: float | None = None) -> float:
    """Unbiased ``MMD^2`` with ``k(x, y) = exp(-|x - y|^2 / (2 h^2))``.

    ``bandwidth`` ``h`` defaults to the median pairwise distance of the pooled sample.
    """
    a, b = _pair(a, b, min_rows=2)
    if bandwidth is None:
        bandwidth = median_distance(a, b)
    if not bandwidth > 0:
        raise InputError(f"bandwidth: expected a number > 0, got {bandwidth!r}")

    def k(x: Tensor, y: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(x, y).pow(2) / (2.0 * bandwidth**2))

    n, m = len(a), len(b)
    kaa, kbb = k(a, a), k(b, b)
    within_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    within_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(within_a + within_b - 2.0 * k(a, b).mean())


def median_distance(a: Tensor, b: Tensor) -> float:
    """Median Euclidean distance over distinct pairs of the pooled sample (the median heuristic
    for a Gaussian kernel's bandwidth)."""
    pooled = torch.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)]).to(F64)
    dist = torch.cdist(pooled, pooled)
    return float(dist[torch.triu_indices(len(pooled), len(pooled), 1).unbind()].median())


def mmd_multiscale(
    a: Tensor,
    b: Tensor,
    *,
    bandwidths: Sequence[float] | None = None,
    scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    unbiased: bool = True,
) -> float:
    """``MMD^2`` with the kernel ``k(x, y) = mean_h exp(-|x - y|^2 / (2 h^2))``.

    ``bandwidths`` default to the pooled median distance (:func:`median_distance`) times each of
    ``scales``. ``unbiased`` (default) drops the diagonal of the within-sample kernel sums (the
    U-statistic: mean 0 when both samples come from one distribution, so it can be negative);
    ``unbiased=False`` gives the biased V-statistic (always >= 0, positive even for two samples of
    one distribution) that ArtifactGen's notebook reported.
    """
    a, b = _pair(a, b, min_rows=2)
    if bandwidths is None:
        med = median_distance(a, b)
        bandwidths = [med * s for s in scales]
    hs = [float(h) for h in bandwidths]
    if not hs or not all(h > 0 for h in hs):
        raise InputError(f"bandwidths: expected numbers > 0, got {hs!r}")

    def k(x: Tensor, y: Tensor) -> Tensor:
        d2 = torch.cdist(x, y).pow(2)
        return torch.stack([torch.exp(-d2 / (2.0 * h**2)) for h in hs]).mean(0)

    n, m = len(a), len(b)
    kaa, kbb = k(a, a), k(b, b)
    if unbiased:
        within_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
        within_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    else:
        within_a, within_b = kaa.mean(), kbb.mean()
    return float(within_a + within_b - 2.0 * k(a, b).mean())


def _sqrtm_psd(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(m)
    root: Tensor = (vecs * vals.clamp_min(0.0).sqrt()) @ vecs.mT
    return root


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, Gaussians fitted by
    sample mean and unbiased covariance (the symmetric form of the matrix square root)."""
    a, b = _pair(a, b, min_rows=2)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    value = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a + cov_b - 2.0 * cross)
    return float(value.clamp_min(0.0))
