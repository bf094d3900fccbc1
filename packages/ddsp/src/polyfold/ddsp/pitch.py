"""f0 of a recording: librosa's YIN at the package's frame rate.

torchcrepe and pesto-pitch are not installed on the machines this package is built on, and pYIN
takes about 4 s per second of audio at 250 frames/s on one CPU thread, so YIN (a few
milliseconds per second of audio) is the tracker. Frames count as voiced where the signal is
within ``floor_db`` of its loudest frame; quieter frames take the nearest voiced frame's f0.
"""

from __future__ import annotations

import numpy as np

from polyfold.core.errors import InputError

__all__ = ["track_f0", "yin_frame_length"]


def yin_frame_length(sample_rate: int, fmin: float) -> int:
    """YIN's analysis window (samples): a power of two >= 1024 holding two periods of ``fmin``."""
    frame = 1024
    while sample_rate / fmin >= frame / 2:
        frame *= 2
    return frame


def track_f0(
    audio: np.ndarray,
    sample_rate: int,
    hop: int,
    *,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    floor_db: float = 40.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(f0 Hz, voiced) per frame, ``len(audio) // hop`` frames, frame ``i`` centred on sample
    ``i * hop``."""
    import librosa

    n = len(audio) // hop
    if n < 1:
        raise InputError(f"audio: expected at least {hop} samples, got {len(audio)}")
    x = np.asarray(audio, dtype=np.float64)
    frame = yin_frame_length(sample_rate, fmin)
    f0 = librosa.yin(x, fmin=fmin, fmax=min(fmax, sample_rate / 4), sr=sample_rate,
                     frame_length=frame, hop_length=hop, center=True)[:n]  # fmt: skip
    rms = librosa.feature.rms(y=x, frame_length=frame, hop_length=hop, center=True)[0, :n]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    voiced = db > db.max() - floor_db
    good = np.flatnonzero(voiced)
    if good.size == 0:
        return f0, voiced
    idx = np.clip(np.searchsorted(good, np.arange(n)), 0, good.size - 1)
    before = good[np.clip(idx - 1, 0, good.size - 1)]
    after = good[idx]
    pick = np.where(np.abs(before - np.arange(n)) < np.abs(after - np.arange(n)), before, after)
    return f0[pick], voiced
