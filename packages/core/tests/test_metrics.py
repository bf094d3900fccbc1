import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.metrics import frechet_distance, mmd, sliced_wasserstein

F64 = torch.float64


def _normal(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_sliced_wasserstein_of_a_shift_is_its_mean_projection():
    # Every 1-D projection of a + c is shifted by theta.c: SW2^2 = mean_theta (theta.c)^2,
    # which tends to |c|^2 / d for uniform directions.
    a = _normal(4000, 3, 0)
    c = torch.tensor([3.0, -1.0, 2.0], dtype=F64)
    value = sliced_wasserstein(a, a + c, n_proj=4000)
    assert value == pytest.approx(math.sqrt(c.pow(2).sum() / 3), rel=0.03)
    assert sliced_wasserstein(a, a.clone()) == 0.0


def test_sliced_wasserstein_tells_close_from_far_and_accepts_unequal_sizes():
    a, same, far = _normal(3000, 2, 0), _normal(2000, 2, 1), 2.0 * _normal(2500, 2, 2)
    assert sliced_wasserstein(a, same) < 0.08 < sliced_wasserstein(a, far)


def test_frechet_distance_matches_the_gaussian_closed_form():
    # N(0, I) vs N(m, s^2 I) in d dims: |m|^2 + d (1 - s)^2.
    d, s = 4, 2.0
    m = torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=F64)
    value = frechet_distance(_normal(20000, d, 0), m + s * _normal(20000, d, 1))
    assert value == pytest.approx(float(m.pow(2).sum()) + d * (1 - s) ** 2, rel=0.03)


def test_frechet_distance_handles_correlated_covariances():
    # For commuting covariances the formula reduces to sum (sqrt(l_a) - sqrt(l_b))^2.
    a = _normal(20000, 2, 0) * torch.tensor([1.0, 3.0], dtype=F64)
    b = _normal(20000, 2, 1) * torch.tensor([2.0, 1.0], dtype=F64)
    assert frechet_distance(a, b) == pytest.approx((1 - 2) ** 2 + (3 - 1) ** 2, rel=0.03)


def test_mmd_is_near_zero_for_one_distribution_and_positive_for_two():
    a, b = _normal(500, 2, 0), _normal(500, 2, 1)
    same = mmd(a, b)
    shifted = mmd(a, b + 1.0)
    assert abs(same) < 0.01
    assert shifted > 0.1
    # with a fixed kernel: MMD^2 between N(0, I) and N(mu, I) in closed form
    h, mu = 1.0, torch.tensor([1.0, 0.0], dtype=F64)
    expected = 2 * (h**2 / (h**2 + 2)) * (1 - math.exp(-mu.pow(2).sum() / (2 * (h**2 + 2))))
    big = mmd(_normal(3000, 2, 2), _normal(3000, 2, 3) + mu, bandwidth=h)
    assert big == pytest.approx(float(expected), abs=0.01)


def test_bad_samples_are_refused():
    with pytest.raises(InputError, match="feature sizes differ"):
        sliced_wasserstein(_normal(5, 2, 0), _normal(5, 3, 0))
    with pytest.raises(InputError, match="NaN"):
        frechet_distance(torch.full((4, 2), float("nan")), _normal(4, 2, 0))
    with pytest.raises(InputError, match="at least 2 rows"):
        mmd(_normal(1, 2, 0), _normal(4, 2, 0))
