"""S4D, the backbone, lag features and mean scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.timeseries.tsdiff import S4D, TSDiffBackbone, default_lags, lagged_window, mean_scale
from polyfold.timeseries.tsdiff.features import lagged_windows_from, training_windows


def test_s4d_bidirectional_convolution_matches_direct_sum() -> None:
    layer = S4D(3, 8)
    length = 9
    k = layer.kernel(length)
    kf, kb = k[:3], k[3:]
    u = torch.randn(2, length, 3)
    x = u.transpose(1, 2)
    ref = torch.zeros_like(x)
    for i in range(length):
        for j in range(length):
            ref[..., i] += (kf[:, i - j] if j <= i else kb[:, j - i - 1]) * x[..., j]
    ref = ref + x * layer.d[:, None]
    expected = torch.nn.functional.glu(layer.out(layer.activation(ref).transpose(1, 2)), dim=-1)
    torch.testing.assert_close(layer(u), expected, atol=1e-5, rtol=1e-4)


def test_s4d_kernel_decays() -> None:
    """Stable SSM: Re(A) < 0, so the kernel's magnitude decays along the sequence."""
    k = S4D(4, 16, bidirectional=False).kernel(2000)
    assert k[:, -100:].abs().max() < k[:, :100].abs().max()


def test_backbone_shapes_and_zero_init() -> None:
    net = TSDiffBackbone(3, hidden=16, n_blocks=2, state_size=8)
    x = torch.randn(5, 40, 3)
    out = net(x, torch.tensor([0.0, 10.0, 20.0, 30.0, 99.0]))
    assert out.shape == (5, 40, 3)
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer


def test_default_lags() -> None:
    assert default_lags("30min") == [48, 336]
    assert default_lags("h") == [24, 168]
    assert default_lags("M") == [12]
    assert default_lags("Q") == [4]
    assert default_lags("Y") == []


def test_lagged_window_channels_are_shifted_target() -> None:
    hist = torch.arange(20.0)
    w = lagged_window(hist, [3, 5], 15)
    assert w.shape == (15, 3)
    torch.testing.assert_close(w[:, 0], torch.arange(5.0, 20.0))
    torch.testing.assert_close(w[:, 1], torch.arange(2.0, 17.0))
    torch.testing.assert_close(w[:, 2], torch.arange(0.0, 15.0))
    with pytest.raises(InputError, match="history"):
        lagged_window(hist, [3, 5], 16)


def test_mean_scale_ignores_missing_and_round_trips() -> None:
    ctx = torch.tensor([[2.0, -4.0, float("nan")], [0.0, 0.0, 0.0]])
    s = mean_scale(ctx)
    torch.testing.assert_close(s, torch.tensor([3.0, 1.0]))
    y = torch.randn(2, 3).abs() + 1
    s = mean_scale(y)
    torch.testing.assert_close((y / s[:, None]) * s[:, None], y)
    torch.testing.assert_close((y / s[:, None]).abs().mean(-1), torch.ones(2))


def test_training_windows_scaled_by_context() -> None:
    y = np.arange(1.0, 61.0, dtype=np.float32)
    w, loc, s = lagged_windows_from(y, [12], 24, 12)
    assert float(loc.abs().max()) == 0.0
    assert w.shape == (60 - 12 - 36 + 1, 36, 2)
    torch.testing.assert_close(w[:, :24, 0].abs().mean(-1), torch.ones(len(w)))
    torch.testing.assert_close(w[0, :, 0] * s[0], torch.arange(13.0, 49.0))
    with pytest.raises(InputError, match="too short"):
        lagged_windows_from(y[:40], [12], 24, 12)
    with pytest.raises(InputError, match="no series"):
        training_windows([y[:40]], [12], 24, 12)
