"""The sinusoidal embedding of times that networks condition on."""

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.timesteps import sinusoidal_embedding


def test_sinusoidal_embedding_closed_form():
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    emb = sinusoidal_embedding(t, 6, scale=1000.0, max_period=100.0)
    assert emb.shape == (3, 6)
    assert emb.dtype == torch.float32
    freqs = torch.tensor([1.0, 100.0 ** (-1 / 3), 100.0 ** (-2 / 3)], dtype=torch.float64)
    args = 1000.0 * t[:, None] * freqs
    expected = torch.cat([args.cos(), args.sin()], dim=-1)
    torch.testing.assert_close(emb.double(), expected, atol=2e-4, rtol=0)
    assert torch.equal(emb[0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))


def test_sinusoidal_embedding_refuses_odd_sizes():
    with pytest.raises(InputError, match="even"):
        sinusoidal_embedding(torch.zeros(2), 5)
