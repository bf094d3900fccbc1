"""mmd_multiscale: the multi-bandwidth Gaussian-kernel MMD, unbiased and biased."""

from __future__ import annotations

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.metrics import median_distance, mmd, mmd_multiscale


def test_one_bandwidth_matches_mmd() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 3, generator=g), torch.randn(25, 3, generator=g) + 0.5
    assert mmd_multiscale(a, b, bandwidths=[1.3]) == pytest.approx(mmd(a, b, bandwidth=1.3))
    h = median_distance(a, b)
    assert mmd_multiscale(a, b, scales=(1.0,)) == pytest.approx(mmd(a, b, bandwidth=h))


def test_unbiased_mean_zero_biased_positive() -> None:
    g = torch.Generator().manual_seed(1)
    unbiased, biased = [], []
    for _ in range(60):
        a, b = torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g)
        unbiased.append(mmd_multiscale(a, b))
        biased.append(mmd_multiscale(a, b, unbiased=False))
    u = torch.tensor(unbiased)
    assert abs(float(u.mean())) < 3 * float(u.std()) / 60**0.5
    assert min(biased) > 0
    assert float(u.mean()) < min(biased)


def test_detects_a_shift_and_rejects_bad_bandwidths() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(40, 2, generator=g), torch.randn(40, 2, generator=g) + 2.0
    assert mmd_multiscale(a, b) > 0.3
    with pytest.raises(InputError, match="bandwidths"):
        mmd_multiscale(a, b, bandwidths=[1.0, 0.0])
    with pytest.raises(InputError, match="feature sizes"):
        mmd_multiscale(a, torch.randn(5, 3))
