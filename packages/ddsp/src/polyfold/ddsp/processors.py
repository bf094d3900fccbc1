"""DDSP processors: controls (network outputs -> synthesiser parameters) apart from signal.

Shapes are batch-first: frame-rate controls ``(B, F, C)``, audio ``(B, T)``. Every function is
differentiable; :func:`harmonic_synth` runs on core's fused oscillator kernel on CUDA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from polyfold.core.errors import InputError
from polyfold.core.ops.oscillator import harmonic_oscillator
from polyfold.ddsp.checks import check_rate, check_tensor

__all__ = [
    "Reverb",
    "audible_harmonics",
    "exp_sigmoid",
    "fft_convolve",
    "filtered_noise",
    "frequency_impulse_response",
    "harmonic_controls",
    "harmonic_synth",
    "noise_controls",
    "reverb",
    "upsample",
]


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0) -> torch.Tensor:
    """DDSP's positive scaling of network outputs: ``max * sigmoid(x) ** log(exponent) + 1e-7``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + 1e-7


def upsample(frames: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Frame-rate controls ``(B, F)`` or ``(B, F, C)`` to ``n_samples`` by linear interpolation
    between frame centres (the first and last frames held at the ends)."""
    check_tensor("frames", frames, (2, 3))
    if not isinstance(n_samples, int) or n_samples < 1:
        raise InputError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
    x = frames[..., None] if frames.dim() == 2 else frames
    n_frames = x.shape[1]
    if n_frames == 1:
        out = x.expand(-1, n_samples, -1)
    else:
        pos = (torch.arange(n_samples, device=x.device, dtype=torch.float64) + 0.5) / n_samples
        pos = (pos * n_frames - 0.5).clamp(0, n_frames - 1)
        lo = pos.floor().long().clamp(max=n_frames - 2)
        w = (pos - lo).to(x.dtype)[None, :, None]
        out = x[:, lo] * (1 - w) + x[:, lo + 1] * w
    return out[..., 0] if frames.dim() == 2 else out


def harmonic_controls(
    amplitude: torch.Tensor,
    harmonic_distribution: torch.Tensor,
    f0: torch.Tensor,
    sample_rate: float,
) -> torch.Tensor:
    """Network outputs to harmonic amplitudes ``(B, F, K)``.

    ``amplitude`` (B, F, 1) and ``harmonic_distribution`` (B, F, K) are raw (pre-activation);
    ``f0`` (B, F) in Hz. Both go through :func:`exp_sigmoid`; harmonics at or above Nyquist are
    removed before the distribution is normalised to sum to 1 (anti-aliasing that keeps the
    loudness), then scaled by the overall amplitude.
    """
    check_tensor("amplitude", amplitude, 3)
    check_tensor("harmonic_distribution", harmonic_distribution, 3)
    check_tensor("f0", f0, 2)
    sr = check_rate("sample_rate", sample_rate)
    k = torch.arange(1, harmonic_distribution.shape[-1] + 1, device=f0.device, dtype=f0.dtype)
    audible = (f0[..., None] * k < sr / 2).to(harmonic_distribution.dtype)
    dist = exp_sigmoid(harmonic_distribution) * audible
    dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
    return exp_sigmoid(amplitude) * dist


def harmonic_synth(
    f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float, hop: int
) -> torch.Tensor:
    """Additive synthesis: frame-rate ``f0`` (B, F) Hz and ``amplitudes`` (B, F, K) to audio
    (B, F * hop). Controls are upsampled linearly; harmonics at or above Nyquist are silent at
    every sample (anti-aliasing in the oscillator, also where vibrato crosses Nyquist)."""
    check_tensor("f0", f0, 2)
    check_tensor("amplitudes", amplitudes, 3)
    sr = check_rate("sample_rate", sample_rate)
    if amplitudes.shape[:2] != f0.shape:
        raise InputError(
            f"amplitudes: expected (B, F, K) with f0's (B, F) = {tuple(f0.shape)}, "
            f"got {tuple(amplitudes.shape)}"
        )
    n = f0.shape[1] * hop
    amplitudes = amplitudes[..., : audible_harmonics(f0, amplitudes.shape[-1], sr)]
    return harmonic_oscillator(upsample(f0, n), upsample(amplitudes, n), sr)


def audible_harmonics(f0: torch.Tensor, n_harmonics: int, sample_rate: float) -> int:
    """How many of harmonics ``1..n_harmonics`` can sound below Nyquist somewhere in ``f0``
    (at least 1): those above are masked at every sample (upsampled f0 never goes below the
    lowest frame's), so :func:`harmonic_synth` leaves them out of the oscillator bank. For
    violin crops that is 20-37 of 60; the output and its gradients are unchanged."""
    lowest = float(f0.detach().min()) * (1 - 1e-6)  # margin for the upsampling's rounding
    return max(1, min(n_harmonics, math.ceil(sample_rate / 2 / max(lowest, 1e-9)) - 1))


def noise_controls(magnitudes: torch.Tensor) -> torch.Tensor:
    """Raw network outputs to the noise filter's magnitudes: ``exp_sigmoid(x - 5)`` (quiet at
    initialisation, as the reference does)."""
    return exp_sigmoid(check_tensor("magnitudes", magnitudes, 3) - 5.0)


def frequency_impulse_response(
    magnitudes: torch.Tensor, window_size: int | None = None
) -> torch.Tensor:
    """Frequency-sampling FIR design: zero-phase magnitudes (..., M) at M linearly spaced
    frequencies 0..Nyquist to causal impulse responses (..., L).

    Without ``window_size`` the response has ``L = 2 (M - 1)`` taps and its spectrum's
    magnitude is exactly ``magnitudes``. With it, the zero-phase response is cut to
    ``window_size`` taps under a Hann window (smoother response, shorter filter).
    """
    ir = torch.fft.irfft(magnitudes, dim=-1)
    n = ir.shape[-1]
    if window_size is None:
        return torch.roll(ir, n // 2, dims=-1)
    if not isinstance(window_size, int) or not 1 <= window_size <= n:
        raise InputError(f"window_size: expected an integer in [1, {n}], got {window_size!r}")
    centred = torch.roll(ir, window_size // 2, dims=-1)[..., :window_size]
    window = torch.hann_window(window_size, periodic=False, dtype=ir.dtype, device=ir.device)
    return centred * window


def fft_convolve(audio: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Causal linear convolution of ``audio`` (B, T) with ``ir`` (B, L) or (L,), cut to T."""
    t = audio.shape[-1]
    n = t + ir.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    spec = torch.fft.rfft(audio, size) * torch.fft.rfft(ir, size)
    out: torch.Tensor = torch.fft.irfft(spec, size)[..., :t]
    return out


def filtered_noise(
    magnitudes: torch.Tensor,
    hop: int,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    window_size: int | None = None,
) -> torch.Tensor:
    """Uniform noise in [-1, 1) shaped by a time-varying FIR filter: ``magnitudes`` (B, F, M) per
    frame, audio (B, F * hop). Each hop of noise is convolved with its frame's filter and the
    results are overlap-added; the filter's centre delay is removed."""
    check_tensor("magnitudes", magnitudes, 3)
    b, f, _ = magnitudes.shape
    if noise is None:
        noise = torch.rand(b, f * hop, generator=generator, device=magnitudes.device) * 2 - 1
    elif noise.shape != (b, f * hop):
        raise InputError(f"noise: expected shape {(b, f * hop)}, got {tuple(noise.shape)}")
    ir = frequency_impulse_response(magnitudes, window_size)  # (B, F, L)
    taps = ir.shape[-1]
    seg = hop + taps - 1
    size = 1 << (seg - 1).bit_length()
    frames = noise.to(ir.dtype).reshape(b, f, hop)
    out = torch.fft.irfft(torch.fft.rfft(frames, size) * torch.fft.rfft(ir, size), size)[..., :seg]
    total = (f - 1) * hop + seg
    audio = F.fold(
        out.transpose(1, 2), output_size=(1, total), kernel_size=(1, seg), stride=(1, hop)
    ).reshape(b, total)
    delay = (window_size if window_size is not None else 2 * (magnitudes.shape[-1] - 1)) // 2
    return audio[:, delay : delay + f * hop]


def reverb(audio: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Convolution reverb with a given impulse response ``ir`` (L,) or (B, L): the wet signal,
    same length as ``audio`` (B, T). A unit impulse returns ``audio`` unchanged."""
    check_tensor("audio", audio, 2)
    check_tensor("ir", ir, (1, 2))
    return fft_convolve(audio, ir.to(audio.dtype))


class Reverb(nn.Module):
    """Learnable reverb: one impulse response of ``length`` taps trained with the model.

    ``forward(audio)`` returns dry + wet, with the response's first tap held at zero so the dry
    path stays separate; dropping this module (blind dereverberation) leaves the dry signal.
    """

    def __init__(self, length: int = 16000, decay: float = 4.0) -> None:
        super().__init__()
        if not isinstance(length, int) or length < 2:
            raise InputError(f"length: expected an integer >= 2, got {length!r}")
        g = torch.Generator().manual_seed(0)
        t = torch.arange(length) / length
        self.ir = nn.Parameter(torch.randn(length, generator=g) * 1e-3 * torch.exp(-decay * t * 8))

    def impulse_response(self) -> torch.Tensor:
        """The wet impulse response, first tap zero."""
        return torch.cat([self.ir.new_zeros(1), self.ir[1:]])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return audio + fft_convolve(audio, self.impulse_response())
