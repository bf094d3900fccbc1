"""polyfold.core.audio: file I/O errors and round trips, resampling, the mel front end."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from polyfold.core.audio import (
    MelSettings,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_frames,
    mel_to_hz,
    read_audio,
    resample,
    write_audio,
)
from polyfold.core.errors import InputError


def _tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_write_then_read_round_trips_pcm16(tmp_path):
    x = _tone(440.0, 16000)
    write_audio(tmp_path / "a.wav", x, 16000)
    y, rate = read_audio(tmp_path / "a.wav")
    assert rate == 16000
    assert y.dtype == np.float32
    assert y.shape == x.shape
    assert np.abs(y - x).max() <= 1 / 32768 + 1e-7
    assert sf.info(str(tmp_path / "a.wav")).subtype == "PCM_16"


def test_loud_audio_is_written_as_float_not_clipped(tmp_path):
    x = _tone(440.0, 8000, amp=1.5)
    write_audio(tmp_path / "loud.wav", torch.from_numpy(x), 8000)
    y, _ = read_audio(tmp_path / "loud.wav")
    assert sf.info(str(tmp_path / "loud.wav")).subtype == "FLOAT"
    np.testing.assert_allclose(y, x, atol=1e-7)


def test_read_resamples_to_the_requested_rate(tmp_path):
    write_audio(tmp_path / "a.wav", _tone(1000.0, 16000, seconds=1.0), 16000)
    y, rate = read_audio(tmp_path / "a.wav", sample_rate=22050)
    assert rate == 22050
    assert abs(len(y) - 22050) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 22050 / len(y) - 1000.0) < 2.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such audio file"),
        (lambda p: p.write_bytes(b"\x00\xffnot audio at all" * 10), "not a readable audio file"),
        (lambda p: sf.write(str(p), np.zeros((0,), np.float32), 8000), "contains no samples"),
        (lambda p: sf.write(str(p), np.zeros((100, 2), np.float32), 8000), "2 channels"),
    ],
)
def test_bad_audio_files_name_the_file_and_problem(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(InputError, match=message) as err:
        read_audio(path)
    assert str(path) in str(err.value)


def test_stereo_mixes_down_when_asked(tmp_path):
    stereo = np.stack([np.full(64, 0.2), np.full(64, 0.6)], axis=1).astype(np.float32)
    sf.write(str(tmp_path / "s.wav"), stereo, 8000, subtype="FLOAT")
    y, _ = read_audio(tmp_path / "s.wav", mix_down=True)
    np.testing.assert_allclose(y, 0.4, atol=1e-6)


def test_write_refuses_non_finite_and_non_1d(tmp_path):
    with pytest.raises(InputError, match="NaN"):
        write_audio(tmp_path / "n.wav", np.array([0.0, np.nan], np.float32), 8000)
    with pytest.raises(InputError, match="1-D"):
        write_audio(tmp_path / "m.wav", np.zeros((2, 8), np.float32), 8000)
    assert not (tmp_path / "n.wav").exists()


def test_resample_identity_and_bad_rates():
    x = _tone(100.0, 8000)
    np.testing.assert_array_equal(resample(x, 8000, 8000), x)
    with pytest.raises(InputError, match="positive"):
        resample(x, 0, 8000)


def test_mel_scale_hand_values():
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    assert hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)  # log step: 6.4x per 27 mels
    f = np.array([0.0, 300.0, 999.0, 1000.0, 4321.0, 11025.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    "settings",
    [
        MelSettings(),
        MelSettings(
            sample_rate=16000, n_fft=512, win_length=512, n_mels=40, fmin=40.0, fmax=7600.0
        ),
    ],
)
def test_filterbank_equals_librosa(settings):
    ours = mel_filterbank(settings).numpy()
    ref = librosa.filters.mel(
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        n_mels=settings.n_mels,
        fmin=settings.fmin,
        fmax=settings.fmax,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


def test_log_mel_matches_librosa_on_the_same_signal():
    s = MelSettings()
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(256 * 40) / s.sample_rate)).astype(np.float32)
    x += 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    ours = log_mel(torch.from_numpy(x)[None], s)[0].numpy()
    pad = (s.n_fft - s.hop_length) // 2
    mag = np.abs(
        librosa.stft(
            np.pad(x, pad, mode="reflect"),
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            center=False,
        )
    )
    ref = np.log(
        np.maximum(
            librosa.filters.mel(sr=s.sample_rate, n_fft=s.n_fft, n_mels=80, fmax=8000.0) @ mag, 1e-5
        )
    )
    assert ours.shape == ref.shape == (80, 40) == (80, mel_frames(len(x), s))
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_log_mel_peak_of_a_tone_is_in_its_band_and_batches():
    s = MelSettings()
    x = torch.from_numpy(np.stack([_tone(f, s.sample_rate) for f in (300.0, 3000.0)]))
    mel = log_mel(x, s)
    assert mel.shape == (2, 80, mel_frames(x.shape[-1], s))
    centres = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), 82))[1:-1]
    for row, freq in zip(mel, (300.0, 3000.0), strict=True):
        peak = int(row.mean(dim=-1).argmax())
        assert abs(np.log(centres[peak] / freq)) < 0.1


def test_bad_settings_and_short_audio():
    with pytest.raises(InputError, match="fmax"):
        MelSettings(fmax=20000.0)
    with pytest.raises(InputError, match="win_length"):
        MelSettings(win_length=2048)
    with pytest.raises(InputError, match="shorter than one analysis window"):
        log_mel(torch.zeros(100))
