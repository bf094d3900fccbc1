"""Report pieces for audio: embedded players and spectrogram images (self-contained HTML)."""

from __future__ import annotations

import numpy as np

from polyfold.core.audio import wav_bytes
from polyfold.core.report import Report, png_bytes
from polyfold.ddsp.fluid import SAMPLE_RATE

__all__ = ["add_audio", "spectrogram_png"]


def spectrogram_png(
    audio: np.ndarray, n_fft: int = 512, hop: int = 128, range_db: float = 80.0
) -> bytes:
    """A log-magnitude spectrogram (low frequencies at the bottom) as PNG bytes."""
    x = np.asarray(audio, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, n_fft // 2), n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T[::-1]
    db = 20 * np.log10(np.maximum(mag, 1e-8))
    v = np.clip((db - db.max() + range_db) / range_db, 0, 1)
    rgb = np.stack([v**0.6, v**1.5, 0.35 * (1 - v) + v**4], -1)  # dark blue -> orange -> white
    return png_bytes((rgb * 255).astype(np.uint8))


def add_audio(
    report: Report, title: str, audio: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> None:
    """A labelled player and the spectrogram of ``audio``."""
    report.media(title, wav=wav_bytes(audio, sample_rate, what=title), png=spectrogram_png(audio))
