"""The multi-scale spectral loss of DDSP: L1 distances of linear and log STFT magnitudes summed
over several FFT sizes (75 % overlap, Hann window, centred frames)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from polyfold.core.errors import InputError
from polyfold.ddsp.checks import check_tensor

__all__ = ["DEFAULT_FFT_SIZES", "magnitude", "multiscale_spectral_loss"]

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def magnitude(audio: torch.Tensor, n_fft: int, hop: int, eps: float = 1e-8) -> torch.Tensor:
    """STFT magnitude (B, n_fft // 2 + 1, frames) with a Hann window and centred frames."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop, n_fft, window, center=True, return_complex=True)
    return torch.sqrt((spec.real**2 + spec.imag**2).clamp_min(eps))


def multiscale_spectral_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
    *,
    log_weight: float = 1.0,
    overlap: float = 0.75,
) -> torch.Tensor:
    """``sum_n mean|S_n - Ŝ_n| + log_weight * mean|log S_n - log Ŝ_n|`` over FFT sizes ``n``,
    for audio (B, T) or (T,); a scalar."""
    check_tensor("output", output, (1, 2))
    check_tensor("target", target, (1, 2))
    if output.shape != target.shape:
        raise InputError(
            f"output: expected target's shape {tuple(target.shape)}, got {tuple(output.shape)}"
        )
    if not 0 <= overlap < 1:
        raise InputError(f"overlap: expected a number in [0, 1), got {overlap!r}")
    if not fft_sizes or any(not isinstance(n, int) or n < 4 for n in fft_sizes):
        raise InputError(f"fft_sizes: expected integers >= 4, got {list(fft_sizes)!r}")
    total = output.new_zeros(())
    for n in fft_sizes:
        hop = max(1, int(n * (1 - overlap)))
        s_out, s_tgt = magnitude(output, n, hop), magnitude(target, n, hop)
        total = total + (s_out - s_tgt).abs().mean()
        total = total + log_weight * (torch.log(s_out) - torch.log(s_tgt)).abs().mean()
    return total
