"""A-weighted loudness as DDSP defines it: STFT power in dB plus the A-weighting curve,
referenced, floored at ``-range_db`` and averaged over frequency bins, one value per frame."""

from __future__ import annotations

import functools

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.ddsp.checks import check_rate, check_tensor

__all__ = ["RANGE_DB", "REF_DB", "a_weighted_loudness"]

REF_DB = 20.7  # the reference's offset, about the dB of a full-scale sine at n_fft 2048
RANGE_DB = 120.0


@functools.cache
def _a_weighting(sample_rate: float, n_fft: int) -> np.ndarray:
    import librosa

    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    with np.errstate(divide="ignore"):  # 0 Hz: librosa floors it at its min_db
        return np.asarray(librosa.A_weighting(freqs), dtype=np.float64)


def a_weighted_loudness(
    audio: torch.Tensor,
    sample_rate: float,
    hop: int,
    *,
    n_fft: int = 2048,
    ref_db: float = REF_DB,
    range_db: float = RANGE_DB,
) -> torch.Tensor:
    """Loudness in dB of audio (B, T) or (T,): (..., T // hop) frames, frame ``i`` centred on
    sample ``i * hop`` (Hann window, zero-padded at the ends)."""
    check_tensor("audio", audio, (1, 2))
    sr = check_rate("sample_rate", sample_rate)
    if not isinstance(hop, int) or hop < 1:
        raise InputError(f"hop: expected an integer >= 1, got {hop!r}")
    n_frames = audio.shape[-1] // hop
    if n_frames < 1:
        raise InputError(f"audio: expected at least {hop} samples (one hop), got {audio.shape[-1]}")
    x = audio.double()
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x, n_fft, hop, n_fft, window, center=True, pad_mode="constant", return_complex=True
    )
    power_db = 10 * torch.log10((spec.real**2 + spec.imag**2).clamp_min(1e-20))
    weight = torch.as_tensor(_a_weighting(sr, n_fft), device=x.device)
    loud = (power_db + weight[:, None] - ref_db).clamp_min(-range_db)
    return loud.mean(-2)[..., :n_frames].to(audio.dtype)
