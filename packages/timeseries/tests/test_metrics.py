"""VDS, FDDS, the cross-correlation MMD, and the TimeGAN / Diffusion-TS scores."""

import itertools

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.timeseries.metrics import (
    cc_mmd,
    correlational_score,
    cross_correlation_coefficients,
    discriminative_score,
    fdds,
    multiscale_mmd,
    predictive_score,
    vds,
)
from polyfold.timeseries.sines import sines


@pytest.fixture
def real() -> np.ndarray:
    return sines(200, 16, 4, generator=1)


def test_cross_correlation_matches_numpy_and_zero_for_constant_channel() -> None:
    x = torch.randn(3, 20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[2, :, 1] = 5.0  # constant channel
    x.requires_grad_(True)
    cc = cross_correlation_coefficients(x)
    assert cc.shape == (3, 6)
    rows, cols = np.tril_indices(4, -1)
    for b in range(2):
        want = np.corrcoef(x[b].detach().numpy().T)[rows, cols]
        np.testing.assert_allclose(cc[b].detach().numpy(), want, atol=1e-12)
    pairs_with_1 = [k for k, (i, j) in enumerate(zip(rows, cols, strict=True)) if 1 in (i, j)]
    assert torch.all(cc[2, pairs_with_1] == 0)
    cc.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_multiscale_mmd_zero_for_identical_and_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 30, 1, generator=g), torch.randn(2, 40, 1, generator=g) + 1.0
    assert torch.allclose(multiscale_mmd(a, a), torch.zeros(2), atol=1e-6)
    assert torch.allclose(multiscale_mmd(a, b), multiscale_mmd(b, a), atol=1e-6)
    assert bool((multiscale_mmd(a, b) > 0.05).all())


def test_cc_mmd_zero_for_identical_batches_and_grows_with_a_shift(real: np.ndarray) -> None:
    x = torch.from_numpy(real).double()
    assert float(cc_mmd(x, x)) == pytest.approx(0.0, abs=1e-12)
    values = []
    for s in (0.0, 0.2, 0.5, 0.9):
        fake = x.clone()  # channel 1 drifts towards channel 0: its CC distribution shifts
        fake[..., 1] = (1 - s) * x[..., 1] + s * x[..., 0]
        values.append(float(cc_mmd(x, fake)))
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in itertools.pairwise(values))
    assert fdds(real, real) == pytest.approx(0.0, abs=1e-12)
    assert fdds(real, fake.numpy()) == pytest.approx(values[-1])


def test_cc_mmd_is_differentiable_in_the_fake_batch(real: np.ndarray) -> None:
    x = torch.from_numpy(real[:32])
    fake = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    fake.requires_grad_(True)
    cc_mmd(x, fake).backward()
    assert fake.grad is not None
    assert float(fake.grad.abs().sum()) > 0


def test_vds_zero_for_identical_and_grows_with_a_value_shift(real: np.ndarray) -> None:
    assert vds(real, real, max_values=500) == pytest.approx(0.0, abs=1e-9)
    small = vds(real, real + 0.05, max_values=500)
    large = vds(real, real + 0.3, max_values=500)
    assert 0 < small < large
    # deterministic with the same seed
    assert vds(real, real + 0.05, max_values=500, generator=4) == vds(
        real, real + 0.05, max_values=500, generator=4
    )


def test_correlational_score() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(100, 12, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(100, 12, 2, generator=g, dtype=torch.float64)
    coupled = torch.cat([base, base + 0.3 * noise[..., :1], noise[..., 1:]], dim=-1)
    independent = torch.randn(100, 12, 3, generator=g, dtype=torch.float64)
    assert correlational_score(coupled, coupled) == pytest.approx(0.0, abs=1e-12)
    # one pair has correlation ~0.96 in one set and ~0 in the other: score ~0.096
    assert correlational_score(coupled, independent) == pytest.approx(0.096, abs=0.02)


def test_discriminative_score_separates_shifted_windows(real: np.ndarray) -> None:
    shifted = real + 0.25
    kw = {"iterations": 60, "batch_size": 64, "hidden": 8, "lr": 1e-2}
    easy = discriminative_score(real, shifted, generator=0, **kw)
    same = discriminative_score(real, real.copy(), generator=0, **kw)
    assert easy > 0.4
    assert same < 0.15
    assert discriminative_score(real, shifted, generator=3, **kw) == discriminative_score(
        real, shifted, generator=3, **kw
    )


def test_predictive_score_prefers_real_training_data(real: np.ndarray) -> None:
    noise = np.random.default_rng(0).uniform(0.5, 1.0, real.shape).astype(np.float32)
    kw = {"iterations": 80, "batch_size": 64, "hidden": 8, "lr": 1e-2}
    on_real = predictive_score(real, real, generator=0, **kw)
    on_noise = predictive_score(real, noise, generator=0, **kw)
    assert 0 <= on_real < on_noise


@pytest.mark.parametrize(
    ("fn", "fake", "match"),
    [
        (fdds, np.zeros((5, 15, 4)), "length and channels"),
        (vds, np.full((5, 16, 4), np.nan), "NaN"),
        (correlational_score, np.zeros((5, 16)), r"\(N, L, C\)"),
        (fdds, "not windows", "array or tensor"),
    ],
)
def test_bad_inputs_raise(real: np.ndarray, fn, fake, match: str) -> None:
    with pytest.raises(InputError, match=match):
        fn(real, fake)


def test_fdds_needs_two_channels() -> None:
    one = np.random.default_rng(0).normal(size=(10, 8, 1))
    with pytest.raises(InputError, match="2 channels"):
        fdds(one, one)
