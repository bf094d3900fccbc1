"""Training-time pieces: the oscillator bank cut to the audible harmonics, the loudness term."""

import math

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops.oscillator import harmonic_oscillator
from polyfold.ddsp.data import Clips
from polyfold.ddsp.loudness_loss import loudness_l1
from polyfold.ddsp.processors import audible_harmonics, harmonic_synth, upsample
from polyfold.ddsp.train import crop_loss, fit_autoencoder

SR = 16000


def test_audible_harmonics_counts_those_below_nyquist_at_the_lowest_f0():
    assert audible_harmonics(torch.tensor([[260.0, 900.0]]), 60, SR) == 30  # 31 * 260 > 8000
    # 40 * 200 = Nyquist: kept by the rounding margin (the oscillator silences it)
    assert audible_harmonics(torch.tensor([[200.0]]), 60, SR) == 40
    assert audible_harmonics(torch.tensor([[50.0]]), 60, SR) == 60
    assert audible_harmonics(torch.tensor([[9000.0]]), 60, SR) == 1


def test_harmonic_synth_equals_the_full_oscillator_bank():
    g = torch.Generator().manual_seed(0)
    f0 = (300 + 400 * torch.rand(2, 20, generator=g, dtype=torch.float64)).requires_grad_()
    amps = torch.rand(2, 20, 60, generator=g, dtype=torch.float64, requires_grad=True)
    fast = harmonic_synth(f0, amps, SR, 64)
    full = harmonic_oscillator(upsample(f0, 1280), upsample(amps, 1280), SR)
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(fast.square().sum(), (f0, amps))
    want = torch.autograd.grad(full.square().sum(), (f0, amps))
    for a, b in zip(grads, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_loudness_l1_is_the_gain_in_db_and_has_a_gradient():
    g = torch.Generator().manual_seed(0)
    target = 0.4 * (torch.rand(2, 4000, generator=g, dtype=torch.float64) * 2 - 1)
    out = (2 * target).requires_grad_()  # every bin above the floor: +6.02 dB in every frame
    loss = loudness_l1(out, target, SR)
    assert float(loss.detach()) == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert float(loudness_l1(target, target, SR)) == 0.0
    loss.backward()
    assert out.grad is not None
    assert float(out.grad.abs().sum()) > 0
    with pytest.raises(InputError, match="output"):
        loudness_l1(target[0], target, SR)


def test_crop_loss_adds_the_weighted_loudness_term():
    class Gain(torch.nn.Module):  # plays the target back 6 dB louder
        def __init__(self, audio: torch.Tensor) -> None:
            super().__init__()
            self.audio = audio

        def forward(self, f0, ld, generator=None):
            return 2 * self.audio[:, : f0.shape[1] * 64]

    g = torch.Generator().manual_seed(0)
    audio = 0.1 * (torch.rand(1, 6400, generator=g) * 2 - 1)
    batch = {"f0": torch.full((1, 100), 440.0), "loudness": torch.zeros(1, 100), "audio": audio}
    plain = crop_loss(100)(Gain(audio), batch, torch.Generator().manual_seed(1))
    weighted = crop_loss(100, 0.5)(Gain(audio), batch, torch.Generator().manual_seed(1))
    assert float(weighted - plain) == pytest.approx(0.5 * 20 * math.log10(2), abs=1e-4)


def test_fit_rejects_a_negative_loudness_weight(tmp_path):
    clips = Clips(
        np.zeros((1, 640), np.float32),
        np.full((1, 10), 440.0, np.float32),
        np.zeros((1, 10), np.float32),
    )
    with pytest.raises(InputError, match="loudness_weight: expected a number >= 0"):
        fit_autoencoder(clips, tmp_path, loudness_weight=-1.0)
