"""Mel to waveform: HiFi-GAN V1 (:mod:`polyfold.speech.hifigan`, the ``hifigan`` extra), the
DDSP vocoder of polyfold-ddsp (``ddsp``: far faster than real time on one CPU thread) or the
dependency-free Griffin-Lim fallback.

Griffin-Lim inverts the log-mel of :func:`polyfold.core.audio.log_mel`: the magnitude spectrum is
the non-negative least-squares-like inverse of the mel filterbank (its pseudo-inverse, clamped at
zero), then the phase is found by alternating projections with the same STFT framing (reflect
padding of ``(n_fft - hop) / 2``, no centring), so the output has ``frames * hop`` samples.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import Tensor

from polyfold.core.audio import MelSettings, mel_filterbank
from polyfold.core.errors import InputError

__all__ = ["VOCODERS", "Vocoder", "griffin_lim", "load_vocoder"]

VOCODERS = ("hifigan", "griffin-lim", "ddsp")
VocoderName = Literal["hifigan", "griffin-lim", "ddsp"]
DEFAULT_MEL = MelSettings()


def _stft(x: Tensor, s: MelSettings, window: Tensor) -> Tensor:
    pad = (s.n_fft - s.hop_length) // 2
    x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    return torch.stft(
        x, s.n_fft, s.hop_length, s.win_length, window, center=False, return_complex=True
    )


def _istft(spec: Tensor, s: MelSettings, window: Tensor, length: int) -> Tensor:
    """Weighted overlap-add inverse of :func:`_stft` (the window's squared sum normalised where
    it is not tiny; torch.istft refuses the uncentred framing)."""
    frames = torch.fft.irfft(spec, n=s.n_fft, dim=-2)  # (B, n_fft, n)
    win = torch.zeros(s.n_fft, device=spec.device)
    offset = (s.n_fft - s.win_length) // 2
    win[offset : offset + s.win_length] = window
    n = spec.shape[-1]
    full = (n - 1) * s.hop_length + s.n_fft
    fold = functools.partial(
        torch.nn.functional.fold,
        output_size=(1, full),
        kernel_size=(1, s.n_fft),
        stride=(1, s.hop_length),
    )
    y = fold(frames * win[:, None]).reshape(spec.shape[0], full)
    norm = fold((win**2)[None, :, None].expand(1, -1, n)).reshape(full)
    y = y / norm.clamp_min(1e-3)
    pad = (s.n_fft - s.hop_length) // 2
    return y[:, pad : pad + length]


def griffin_lim(
    mel: Tensor, settings: MelSettings = DEFAULT_MEL, iterations: int = 60, momentum: float = 0.99
) -> Tensor:
    """Waveform ``(B, frames * hop)`` of a natural-log mel ``(B, n_mels, frames)`` by (fast)
    Griffin-Lim with ``iterations`` projections."""
    if mel.ndim != 3 or mel.shape[1] != settings.n_mels:
        raise InputError(f"mel: expected (B, {settings.n_mels}, frames), got {tuple(mel.shape)}")
    fb = mel_filterbank(settings).to(mel.device)
    magnitude = (torch.linalg.pinv(fb) @ torch.exp(mel.float())).clamp_min(0.0)
    window = torch.hann_window(settings.win_length, device=mel.device)
    length = mel.shape[-1] * settings.hop_length
    gen = torch.Generator(device="cpu").manual_seed(0)
    phase = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=gen)).to(mel.device)
    previous = torch.zeros_like(phase)
    wave = _istft(magnitude * phase, settings, window, length)
    for _ in range(iterations):
        rebuilt = _stft(wave, settings, window)
        rebuilt = rebuilt[..., : magnitude.shape[-1]]
        accelerated = rebuilt - momentum / (1 + momentum) * previous
        previous = rebuilt
        phase = accelerated / accelerated.abs().clamp_min(1e-8)
        wave = _istft(magnitude * phase, settings, window, length)
    return wave.clamp(-1.0, 1.0)


class Vocoder:
    """A named vocoder: ``vocoder(mel)`` maps ``(B, n_mels, frames)`` to ``(B, samples)``."""

    def __init__(self, name: VocoderName, path: str | None = None) -> None:
        if name not in VOCODERS:
            raise InputError(f"vocoder: expected one of {', '.join(VOCODERS)}, got {name!r}")
        self.name = name
        self._generator: torch.nn.Module | None = None
        if name == "hifigan":
            from polyfold.speech.hifigan import load_hifigan

            self._generator = load_hifigan(path)
        elif name == "ddsp":  # the fast CPU option: polyfold-ddsp's model file, not its code
            self._generator = _ddsp_vocoder(path)

    @torch.no_grad()
    def __call__(self, mel: Tensor) -> Tensor:
        if self._generator is not None:
            wave: Tensor = self._generator(mel)
            return wave
        return griffin_lim(mel)


def _ddsp_vocoder(path: str | None) -> torch.nn.Module:
    """polyfold-ddsp's DDSP vocoder (its shipped ``slt`` unless ``path``), built from the model
    file through the ``polyfold.models`` entry point, so speech never imports ddsp."""
    from importlib import resources

    from polyfold.core.export import load_model

    if path is None:
        try:
            path = str(resources.files("polyfold.ddsp").joinpath("weights", "slt_vocoder"))
        except ModuleNotFoundError:
            raise InputError(
                "vocoder ddsp: needs polyfold-ddsp (pip install polyfold-ddsp)"
            ) from None
    model: torch.nn.Module = load_model(path).model
    return model


@functools.cache
def load_vocoder(name: VocoderName = "hifigan") -> Vocoder:
    """The vocoder ``name`` (loaded once per process)."""
    return Vocoder(name)
