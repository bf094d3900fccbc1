"""Preprocessing: per-channel standardisation fitted on train, exactly invertible."""

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


def test_fit_standardises_each_channel() -> None:
    w = make(offset=5.0)
    pre = Preprocessing().fit(w)
    z = pre.to_model(w)
    assert z.dtype == torch.float32
    assert z.shape == (30, 8, 100)
    np.testing.assert_allclose(z.mean(dim=(0, 2)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(dim=(0, 2), unbiased=False).numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(pre.scale, np.arange(1, 9) * 10.0, rtol=0.05)


def test_round_trip_and_state_dict() -> None:
    w = make()
    pre = Preprocessing().fit(w)
    back = pre.from_model(pre.to_model(w))
    np.testing.assert_allclose(back, w.x, atol=1e-3)
    state = json.loads(json.dumps(pre.state_dict()))
    again = Preprocessing.from_state_dict(state)
    np.testing.assert_allclose(again.from_model(pre.to_model(w).numpy()), w.x, atol=1e-3)


def test_errors() -> None:
    w = make()
    with pytest.raises(InputError, match="not fitted"):
        Preprocessing().to_model(w)
    pre = Preprocessing().fit(w)
    other = Windows(w.x, w.y, w.subject, channels=("a", "b", "c", "d", "e", "f", "g", "h"))
    with pytest.raises(InputError, match="channels"):
        pre.to_model(other)
    with pytest.raises(InputError, match="expected shape"):
        pre.from_model(torch.zeros(2, 3, 10))
    with pytest.raises(InputError, match="malformed"):
        Preprocessing.from_state_dict({"mean": [0.0]})
    with pytest.raises(InputError, match="one mean and one scale"):
        Preprocessing.from_state_dict(
            {"mean": [0.0], "scale": [-1.0], "channels": ["Fp1"], "sfreq": 250.0}
        )
