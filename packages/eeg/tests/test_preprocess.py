"""Preprocessing: per-channel spectral whitening (or standardisation) fitted on train, exactly
invertible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.eeg.data import Windows
from polyfold.eeg.preprocess import Preprocessing


def make(offset: float = 0.0) -> Windows:
    rng = np.random.default_rng(0)
    scale = np.arange(1, 9)[None, :, None] * 10.0
    x = rng.normal(size=(30, 8, 100)) * scale + offset
    return Windows(x, np.zeros(30), np.arange(30) % 3)


def brown(n: int = 200, t: int = 128) -> Windows:
    """Random walks: power falling as 1/f^2, over 30 dB across the band."""
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(n, 8, t)), axis=-1) * 5.0
    return Windows(x, np.zeros(n), np.arange(n) % 4)


def test_standardise_scales_each_channel() -> None:
    w = make(offset=5.0)
    pre = Preprocessing(kind="standardise").fit(w)
    z = pre.to_model(w)
    assert z.dtype == torch.float32
    assert z.shape == (30, 8, 100)
    np.testing.assert_allclose(z.mean(dim=(0, 2)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(dim=(0, 2), unbiased=False).numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(pre.scale, np.arange(1, 9) * 10.0, rtol=0.05)


def test_whitening_flattens_a_steep_spectrum() -> None:
    w = brown()
    pre = Preprocessing().fit(w)
    assert pre.kind == "whiten"
    raw = (np.abs(np.fft.rfft(w.x - w.x.mean(), axis=-1)) ** 2).mean(axis=(0, 1))
    assert raw[1] / raw[-1] > 1000  # the input is far from white
    z = pre.to_model(w).numpy()
    power = (np.abs(np.fft.rfft(z, axis=-1)) ** 2).mean(axis=0) / z.shape[-1]
    # every bin of every channel near unit power (a geometric mean over 200 windows)
    inner = power[:, 1:-1]  # (DC and Nyquist bins are real: chi-square with 1 degree)
    assert inner.min() > 0.5
    assert inner.max() < 2.0
    assert abs(float(np.median(inner)) - 1.0) < 0.1
    np.testing.assert_allclose(z.var(axis=(0, 2)), 1.0, rtol=0.2)


@pytest.mark.parametrize("kind", ["whiten", "standardise"])
def test_round_trip_and_state_dict(kind: str) -> None:
    w = brown() if kind == "whiten" else make()
    pre = Preprocessing(kind=kind).fit(w)
    back = pre.from_model(pre.to_model(w))
    np.testing.assert_allclose(back, w.x, atol=1e-3)
    state = json.loads(json.dumps(pre.state_dict()))
    again = Preprocessing.from_state_dict(state)
    assert again.kind == kind
    np.testing.assert_allclose(again.from_model(pre.to_model(w).numpy()), w.x, atol=1e-3)


def test_errors() -> None:
    w = make()
    with pytest.raises(InputError, match="not fitted"):
        Preprocessing().to_model(w)
    with pytest.raises(InputError, match="kind: expected one of whiten, standardise"):
        Preprocessing(kind="minmax")
    pre = Preprocessing().fit(w)
    other = Windows(w.x, w.y, w.subject, channels=("a", "b", "c", "d", "e", "f", "g", "h"))
    with pytest.raises(InputError, match="channels"):
        pre.to_model(other)
    with pytest.raises(InputError, match="expected shape"):
        pre.from_model(torch.zeros(2, 3, 10))
    with pytest.raises(InputError, match=r"expected shape \(N, 8, 100\)"):
        pre.to_model(w.x[..., :50])  # whitening is fitted to one window length
    with pytest.raises(InputError, match="malformed"):
        Preprocessing.from_state_dict({"mean": [0.0]})
    with pytest.raises(InputError, match="one scale > 0 per channel"):
        Preprocessing.from_state_dict(
            {"mean": [0.0], "scale": [-1.0], "channels": ["Fp1"], "sfreq": 250.0}
        )
    state = pre.state_dict() | {"scale": [[1.0]] * 8}
    with pytest.raises(InputError, match="per channel and rfft bin"):
        Preprocessing.from_state_dict(state)
    with pytest.raises(InputError, match="unknown kind 'pca'"):
        Preprocessing.from_state_dict(state | {"kind": "pca"})
