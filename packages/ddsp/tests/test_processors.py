"""Processors against closed forms: harmonic spectra, FIR responses, reverb, upsampling."""

import math

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.ddsp.processors import (
    Reverb,
    filtered_noise,
    frequency_impulse_response,
    harmonic_controls,
    harmonic_synth,
    reverb,
    upsample,
)

SR = 16000


def test_harmonic_tone_peaks_at_multiples_of_f0_and_nothing_aliases():
    f0 = torch.full((1, 250), 440.0, dtype=torch.float64)
    amps = torch.ones(1, 250, 40, dtype=torch.float64)  # harmonics 19..40 lie above Nyquist
    audio = harmonic_synth(f0, amps, SR, hop=64)[0].numpy()
    assert audio.shape == (16000,)
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    freqs = np.fft.rfftfreq(audio.size, 1 / SR)
    peaks = {k: spec[np.argmin(np.abs(freqs - k * 440))] for k in range(1, 19)}
    assert min(peaks.values()) > 0.9 * max(peaks.values())  # every audible harmonic, equal
    near = np.zeros_like(spec, dtype=bool)
    for k in range(1, 19):
        near |= np.abs(freqs - k * 440) < 8
    # aliases of harmonics 19.. would land at SR - k * 440 (e.g. 7640, 7200, ...): nothing there
    assert spec[~near].max() < 1e-3 * max(peaks.values())


def test_harmonic_controls_normalise_audible_harmonics_only():
    f0 = torch.tensor([[1000.0, 3000.0]])
    dist = torch.randn(1, 2, 6)
    amp = torch.zeros(1, 2, 1)
    out = harmonic_controls(amp, dist, f0, SR)
    assert torch.all(out[0, 0, 7:] == 0)
    assert torch.all(out[0, 1, 2:] == 0)
    total = 2 * torch.sigmoid(torch.tensor(0.0)) ** math.log(10) + 1e-7
    torch.testing.assert_close(out.sum(-1), total.expand(1, 2))


def test_fir_response_matches_its_magnitudes():
    mags = torch.rand(3, 65, dtype=torch.float64)
    ir = frequency_impulse_response(mags)
    torch.testing.assert_close(torch.fft.rfft(ir).abs(), mags)


def test_filtered_noise_power_follows_the_filter():
    m = 65
    freqs = torch.linspace(0, 1, m, dtype=torch.float64)
    mags = torch.exp(-((freqs - 0.3) ** 2) / 0.005)  # a smooth band-pass around 0.3 * Nyquist
    frames = 400
    g = torch.Generator().manual_seed(0)
    audio = filtered_noise(mags.expand(1, frames, m), 64, generator=g, window_size=None)[0]
    seg = audio[1024:].reshape(-1, 128)
    psd = (torch.fft.rfft(seg).abs() ** 2).mean(0)  # 65 bins, the filter's frequency grid
    expected = mags**2 / 3 * 128  # uniform[-1, 1) has variance 1/3
    band = mags > 0.3
    ratio = psd[band] / expected[band]
    assert 0.7 < ratio.mean() < 1.3
    assert psd[~band & (freqs > 0.6)].max() < 0.05 * psd[band].max()


def test_reverb_with_unit_impulse_is_identity():
    audio = torch.randn(2, 1000)
    ir = torch.zeros(300)
    ir[0] = 1
    torch.testing.assert_close(reverb(audio, ir), audio)
    delayed = torch.zeros(300)
    delayed[5] = 0.5
    torch.testing.assert_close(reverb(audio, delayed)[:, 5:], 0.5 * audio[:, :-5])


def test_learned_reverb_keeps_dry_path_and_trains():
    rv = Reverb(length=64)
    assert rv.impulse_response()[0] == 0
    audio = torch.randn(1, 500)
    out = rv(audio)
    out.pow(2).sum().backward()
    assert rv.ir.grad is not None
    assert rv.ir.grad[1:].abs().sum() > 0


def test_upsample_interpolates_between_frame_centres():
    frames = torch.tensor([[0.0, 4.0]])
    out = upsample(frames, 8)
    torch.testing.assert_close(out[0], torch.tensor([0, 0, 0.5, 1.5, 2.5, 3.5, 4, 4]))


def test_nan_controls_and_bad_shapes_raise():
    with pytest.raises(InputError, match="f0: contains NaN"):
        harmonic_synth(torch.tensor([[float("nan")]]), torch.ones(1, 1, 2), SR, 64)
    with pytest.raises(InputError, match="amplitudes: expected"):
        harmonic_synth(torch.ones(1, 3), torch.ones(1, 2, 2), SR, 64)
    with pytest.raises(InputError, match="sample_rate"):
        harmonic_synth(torch.ones(1, 3), torch.ones(1, 3, 2), 0, 64)
