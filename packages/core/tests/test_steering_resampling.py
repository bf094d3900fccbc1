"""Resampling schemes: unbiased counts, the low-variance schemes' floor/ceil property, ESS."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.steering import RESAMPLING_SCHEMES, effective_sample_size, resample

F64 = torch.float64
W = torch.tensor([0.05, 0.3, 0.15, 0.4, 0.1], dtype=F64)


@pytest.mark.parametrize("scheme", RESAMPLING_SCHEMES)
def test_expected_counts_are_n_times_the_weights(scheme: str) -> None:
    gen = torch.Generator().manual_seed(0)
    reps, n = 4000, W.numel()
    counts = torch.zeros(n, dtype=F64)
    for _ in range(reps):
        counts += torch.bincount(resample(W.log(), scheme, generator=gen), minlength=n)
    mean = counts / reps
    # a count has variance <= n w (1 - w): 5 standard errors of the mean
    tol = 5 * torch.sqrt(n * W * (1 - W) / reps)
    assert bool(((mean - n * W).abs() <= tol).all()), (scheme, mean)


@pytest.mark.parametrize("scheme", ["systematic", "residual"])
def test_low_variance_schemes_keep_every_count_within_floor_and_ceil(scheme: str) -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.softmax(torch.randn(50, generator=gen, dtype=F64), 0)
    for _ in range(50):
        c = torch.bincount(resample(w.log(), scheme, generator=gen), minlength=50).to(F64)
        if scheme == "systematic":
            assert bool((c >= torch.floor(50 * w)).all() and (c <= torch.ceil(50 * w)).all())
        else:
            assert bool((c >= torch.floor(50 * w)).all())


def test_effective_sample_size() -> None:
    assert effective_sample_size(torch.zeros(10)) == pytest.approx(10.0)
    assert effective_sample_size(torch.tensor([0.0, -math.inf, -math.inf])) == pytest.approx(1.0)
    assert effective_sample_size(W.log()) == pytest.approx(1 / float((W * W).sum()))


def test_bad_input() -> None:
    with pytest.raises(InputError, match="resampling: expected one of multinomial"):
        resample(W.log(), "bogus")
    with pytest.raises(InputError, match="every weight is zero"):
        resample(torch.full((3,), -math.inf), "systematic")
    with pytest.raises(InputError, match="log_weights"):
        resample(torch.tensor([0.0, math.nan]), "systematic")
