"""simtuar: each class has the spatial and spectral signature its docstring promises."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from polyfold.core.errors import InputError
from polyfold.eeg.data import CHANNELS, CLASSES, SFREQ, Windows
from polyfold.eeg.simtuar import CARD, forward_gain, simulate


@pytest.fixture(scope="module")
def sim() -> Windows:
    return simulate(n_subjects=3, windows_per_class=12, seed=0)


@pytest.fixture(scope="module")
def clean() -> Windows:
    return simulate(n_subjects=3, windows_per_class=12, seed=0, artifacts=False)


def _psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, p = signal.welch(x, fs=SFREQ, nperseg=250, axis=-1)
    return f, p.mean(0)  # (C, F)


def _share(f: np.ndarray, p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    keep = (f >= 0.5) & (f <= 100)
    band = (f >= lo) & (f < hi)
    return np.asarray(p[:, band].sum(-1) / p[:, keep].sum(-1))


def ch(name: str) -> int:
    return CHANNELS.index(name)


def test_layout_counts_and_card(sim: Windows) -> None:
    assert sim.x.shape == (3 * 12 * len(CLASSES), 8, 500)
    assert sim.x.dtype == np.float32
    assert sim.counts() == dict.fromkeys(CLASSES, 36)
    assert sorted(set(sim.subject.tolist())) == [0, 1, 2]
    assert sim.card["simulated"] is True
    assert "SIMULATED" in CARD["statement"]


def test_seeded(sim: Windows) -> None:
    again = simulate(n_subjects=3, windows_per_class=12, seed=0)
    np.testing.assert_array_equal(again.x, sim.x)
    other = simulate(n_subjects=1, windows_per_class=2, seed=1)
    assert not np.allclose(other.x[:2], sim.x[:2])


def test_background_alpha_peaks_near_10_hz_at_occipital_sites(clean: Windows) -> None:
    f, p = _psd(clean.x)
    for name in ("O1", "O2"):
        band = (f >= 3) & (f <= 40)
        peak = f[band][p[ch(name), band].argmax()]
        assert 8.5 <= peak <= 12.0
        # the alpha band holds more power at the back of the head than at the front
    alpha = _share(f, p, 8, 13)
    assert alpha[ch("O1")] > alpha[ch("Fp1")]
    assert alpha[ch("O2")] > alpha[ch("Fp2")]


def test_background_is_roughly_one_over_f(clean: Windows) -> None:
    f, p = _psd(clean.x)
    lo = p[:, (f >= 2) & (f < 4)].mean(-1)
    hi = p[:, (f >= 30) & (f < 45)].mean(-1)
    assert (lo > 10 * hi).all()
    rms = clean.x.std(-1).mean()
    assert 5.0 < rms < 40.0  # microvolts, a scalp EEG's range


def test_eye_movement_is_slow_large_and_frontal(sim: Windows, clean: Windows) -> None:
    f, p = _psd(sim.of_class("eyem").x)
    below4 = _share(f, p, 0.5, 4)
    assert below4[ch("Fp1")] > 0.8
    assert below4[ch("Fp2")] > 0.8
    power = p.sum(-1)
    _, pb = _psd(clean.of_class("eyem").x)
    gain = power / pb.sum(-1)
    assert gain[ch("Fp1")] > 5
    assert gain[ch("Fp2")] > 5  # large deflections: 5x the background power
    assert gain[ch("O1")] < gain[ch("Fp1")] / 5
    assert gain[ch("O2")] < gain[ch("Fp2")] / 5


def test_muscle_is_high_frequency_at_temporal_sites(sim: Windows, clean: Windows) -> None:
    f, p = _psd(sim.of_class("musc").x)
    _, pb = _psd(clean.of_class("musc").x)
    above20 = _share(f, p, 20, 100)
    for name in ("T3", "T4"):
        assert above20[ch(name)] > 0.3
        assert above20[ch(name)] > 3 * _share(f, pb, 20, 100)[ch(name)]
    emg = p[:, (f >= 20) & (f < 100)].sum(-1)
    assert min(emg[ch("T3")], emg[ch("T4")]) > 5 * max(emg[ch("O1")], emg[ch("O2")])


def _emg_envelope_spectrum(x: np.ndarray, site: int) -> tuple[np.ndarray, np.ndarray]:
    sos = signal.butter(4, 20, btype="highpass", fs=SFREQ, output="sos")
    env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x[:, site], axis=-1), axis=-1))
    env = env - env.mean(-1, keepdims=True)
    f, p = signal.periodogram(env, fs=SFREQ, nfft=2000, axis=-1)
    return f, p.mean(0)


def test_chewing_bursts_repeat_at_1_to_2_hz(sim: Windows) -> None:
    f, p = _emg_envelope_spectrum(sim.of_class("chew").x, ch("T3"))
    band = (f >= 0.5) & (f <= 10)
    assert 0.9 <= f[band][p[band].argmax()] <= 2.2


def test_shivering_is_sustained_emg_modulated_at_4_to_8_hz(sim: Windows) -> None:
    x = sim.of_class("shiv").x
    f, p = _emg_envelope_spectrum(x, ch("T4"))
    band = (f >= 2) & (f <= 15)
    assert 4.0 <= f[band][p[band].argmax()] <= 8.0
    sos = signal.butter(4, 20, btype="highpass", fs=SFREQ, output="sos")
    hf = signal.sosfiltfilt(sos, x[:, ch("T4")], axis=-1)
    quarters = (hf.reshape(len(hf), 4, -1) ** 2).mean(-1)
    assert (quarters.min(1) > 0.3 * quarters.max(1)).mean() > 0.9  # present all window long


def test_electrode_pop_hits_one_channel(sim: Windows, clean: Windows) -> None:
    # same seed, same background: the difference is the artifact alone
    art = sim.of_class("elec").x - clean.of_class("elec").x
    power = (art**2).mean(-1)
    top2 = np.sort(power, axis=1)[:, -2:]
    assert (top2[:, 1] > 20 * top2[:, 0]).mean() > 0.9
    # a step then a decay: the largest excursion comes first, the end is back near zero
    one = art[np.arange(len(art)), power.argmax(1)]
    peak = np.abs(one).argmax(1)
    assert (np.abs(one[np.arange(len(one)), peak]) > 5 * np.abs(one[:, -5:]).mean(1)).mean() > 0.8


def test_subjects_have_their_own_forward_solution() -> None:
    g0, dirs = forward_gain(1.0, (0.0, 0.0, 0.0))
    g1, _ = forward_gain(1.04, (0.0, 0.001, 0.0))
    assert g0.shape == (8, len(dirs))
    assert np.isfinite(g0).all()
    assert not np.allclose(g0, g1)


def test_any_window_length() -> None:
    assert simulate(n_subjects=1, windows_per_class=1, seconds=1.1).x.shape == (5, 8, 275)


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="n_subjects"):
        simulate(n_subjects=0)
    with pytest.raises(InputError, match="seconds"):
        simulate(seconds=0.01)
