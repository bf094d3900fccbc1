"""The TimeGAN sines generator: shapes, range, determinism and the sine recurrence."""

import math

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.timeseries.sines import sines


def test_shape_dtype_and_range() -> None:
    x = sines(50, 24, 5, generator=3)
    assert x.shape == (50, 24, 5)
    assert x.dtype == np.float32
    assert x.min() >= 0.0
    assert x.max() <= 1.0


def test_same_seed_same_windows_and_generator_argument() -> None:
    a = sines(20, 10, 3, generator=7)
    b = sines(20, 10, 3, generator=torch.Generator().manual_seed(7))
    c = sines(20, 10, 3, generator=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_each_channel_is_a_sine_with_frequency_and_phase_in_range() -> None:
    x = sines(200, 24, 4, generator=0).astype(np.float64)
    s = 2.0 * x - 1.0  # sin(f j + p)
    # sin(a + f) + sin(a - f) = 2 cos(f) sin(a): the same ratio cos(f) at every inner step
    inner = s[:, 1:-1]
    ok = np.abs(inner) > 0.1  # away from zero crossings (values are float32)
    ratio = (s[:, 2:] + s[:, :-2]) / (2.0 * np.where(ok, inner, 1.0))
    count = ok.sum(axis=1)
    cos_f = np.where(ok, ratio, 0.0).sum(axis=1) / np.maximum(count, 1)
    err = np.abs(ratio - cos_f[:, None, :])[ok]
    assert err.max() < 1e-4
    cos_f = cos_f[count > 0]
    assert cos_f.size > 0.9 * count.size
    assert cos_f.min() >= math.cos(0.1) - 1e-4
    assert cos_f.max() <= 1.0 + 1e-4
    phase = np.arcsin(s[:, 0])  # sin(p), p in [0, 0.1)
    assert phase.min() >= -1e-6
    assert phase.max() < 0.1 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": 0}, "n"),
        ({"seq_len": 2.5}, "seq_len"),
        ({"n_features": True}, "n_features"),
        ({"max_freq": -1.0}, "max_freq"),
        ({"generator": "seed"}, "generator"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(InputError, match=name):
        sines(**{"n": 4, **kwargs})
