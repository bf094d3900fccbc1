"""Multi-scale spectral loss and A-weighted loudness against auraloss and hand values."""

import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.ddsp.loudness import RANGE_DB, a_weighted_loudness
from polyfold.ddsp.spectral import multiscale_spectral_loss


def test_mss_equals_auraloss_multiresolution_with_ddsp_weights():
    auraloss = pytest.importorskip("auraloss")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 4000, generator=g), torch.randn(2, 4000, generator=g) * 0.5
    sizes = [512, 256, 64]
    ours = multiscale_spectral_loss(x, y, sizes)
    theirs = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes], win_lengths=sizes,
        w_sc=0.0, w_log_mag=1.0, w_lin_mag=1.0,
    )(x[:, None], y[:, None])  # fmt: skip
    torch.testing.assert_close(ours, theirs * len(sizes), rtol=1e-5, atol=1e-6)


def test_mss_hand_values():
    x = torch.randn(1, 2048)
    assert multiscale_spectral_loss(x, x).item() == 0
    # doubling the signal: log term is exactly log 2 per bin (magnitudes far above eps)
    loss = multiscale_spectral_loss(2 * x, x, [256], log_weight=1.0)
    lin = multiscale_spectral_loss(2 * x, x, [256], log_weight=0.0)
    assert loss.item() - lin.item() == pytest.approx(math.log(2), rel=1e-4)
    with pytest.raises(InputError, match="output: expected target's shape"):
        multiscale_spectral_loss(x, x[:, :100])


def test_loudness_of_silence_is_the_floor_and_doubling_adds_6db():
    hop = 64
    silent = a_weighted_loudness(torch.zeros(1, 6400), 16000, hop)
    assert silent.shape == (1, 100)
    torch.testing.assert_close(silent, torch.full((1, 100), -RANGE_DB))
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 16000, generator=g, dtype=torch.float64) * 0.5
    l1 = a_weighted_loudness(noise, 16000, hop)[:, 20:-20]
    l2 = a_weighted_loudness(2 * noise, 16000, hop)[:, 20:-20]
    # +6.02 dB in every bin above the floor; a bin near DC (A-weight -80 dB) may sit on the floor
    diff = l2 - l1
    assert diff.median().item() == pytest.approx(20 * math.log10(2), abs=1e-9)
    assert (diff - 20 * math.log10(2)).abs().max().item() < 2 * 6.03 / 1025


def test_loudness_of_a_sine_matches_the_hand_formula():
    import librosa
    import numpy as np

    sr, n_fft, f = 16000, 2048, 1000.0  # 1 kHz: bin 128 exactly, A-weighting ~0 dB
    t = torch.arange(16000, dtype=torch.float64) / sr
    loud = a_weighted_loudness(torch.sin(2 * math.pi * f * t), sr, 64, ref_db=0.0)
    # Hann-windowed full-scale sine: |X| = n_fft / 4 at its bin, n_fft / 8 at the two neighbours.
    with np.errstate(divide="ignore"):  # 0 Hz
        w = librosa.A_weighting(librosa.fft_frequencies(sr=sr, n_fft=n_fft))
    db = np.full(n_fft // 2 + 1, -RANGE_DB)
    for b, mag in ((127, n_fft / 8), (128, n_fft / 4), (129, n_fft / 8)):
        db[b] = 20 * np.log10(mag) + w[b]
    expected = np.maximum(db, -RANGE_DB).mean()
    # every other bin holds only the window's leakage, below the -120 dB floor
    assert loud[100].item() == pytest.approx(expected, abs=1.0)
