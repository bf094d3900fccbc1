"""Audio for the audio packages: mono file I/O with clear errors, resampling, and the log-mel
front end of the HiFi-GAN family of vocoders (``torch.stft`` and a Slaney mel filterbank, so no
torchaudio). File I/O and resampling need core's ``[audio]`` extra (soundfile, soxr)."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.core.extras import require_extra

__all__ = [
    "MelSettings",
    "hz_to_mel",
    "load_pyworld",
    "log_mel",
    "mel_filterbank",
    "mel_frames",
    "mel_to_hz",
    "read_audio",
    "resample",
    "wav_bytes",
    "write_audio",
]


def _module(name: str, needed_for: str) -> ModuleType:
    return require_extra(name, "core", "audio", needed_for=needed_for)


def read_audio(
    path: str | Path, *, sample_rate: int | None = None, mix_down: bool = False
) -> tuple[np.ndarray, int]:
    """A mono audio file as float32 samples in [-1, 1] and its sample rate, resampled to
    ``sample_rate`` when given. A missing, empty, unreadable or non-finite file, or one with
    several channels (unless ``mix_down``: their mean), is an :class:`InputError` naming it."""
    sf = _module("soundfile", "reading audio")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such audio file" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as err:  # LibsndfileError: newer soundfile
        raise InputError(f"{p}: not a readable audio file ({err})") from None
    if data.shape[0] == 0:
        raise InputError(f"{p}: the audio file contains no samples")
    if data.shape[1] > 1:
        if not mix_down:
            raise InputError(
                f"{p}: has {data.shape[1]} channels; expected mono audio (mix it down first, "
                "e.g. `ffmpeg -i in.wav -ac 1 out.wav`)"
            )
        data = data.mean(axis=1, keepdims=True)
    samples = np.ascontiguousarray(data[:, 0], dtype=np.float32)
    if not np.isfinite(samples).all():
        raise InputError(f"{p}: the audio contains NaN or infinite samples")
    if sample_rate is not None and sample_rate != rate:
        samples, rate = resample(samples, rate, sample_rate), sample_rate
    return samples, int(rate)


@functools.cache
def load_pyworld(package: str, extra: str) -> ModuleType:
    """The WORLD vocoder bindings (``pyworld``). Released pyworld wheels import
    ``pkg_resources`` (gone from setuptools 81) only to read their version; where that import
    fails, the compiled extension is loaded straight from the installed package folder. Not
    installed: an :class:`InputError` naming ``polyfold-<package>[<extra>]``."""
    try:
        return importlib.import_module("pyworld")
    except ImportError as err:
        spec = importlib.util.find_spec("pyworld")
        if spec is None or "pkg_resources" not in str(err):
            return require_extra("pyworld", package, extra, needed_for="WORLD analysis")
    for folder in spec.submodule_search_locations or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"pyworld{suffix}"
            ext = importlib.util.spec_from_file_location("pyworld.pyworld", path)
            if path.is_file() and ext is not None and ext.loader is not None:
                module = importlib.util.module_from_spec(ext)
                ext.loader.exec_module(module)
                return module
    return require_extra("pyworld", package, extra, needed_for="WORLD analysis")


def wav_bytes(
    samples: np.ndarray | torch.Tensor, sample_rate: int, *, what: str = "audio"
) -> bytes:
    """Mono ``samples`` as the bytes of a WAV file: 16-bit PCM when they lie in [-1, 1], 32-bit
    float otherwise (never clipped). Empty, multi-dimensional or non-finite signals are an
    :class:`InputError` naming ``what``."""
    sf = _module("soundfile", "writing audio")
    x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    x = x.astype(np.float32, copy=False)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"{what}: expected a non-empty 1-D signal to write, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{what}: refusing to write audio with NaN or infinite samples")
    subtype = "PCM_16" if float(np.abs(x).max()) <= 1.0 else "FLOAT"
    buffer = io.BytesIO()
    sf.write(buffer, x, int(sample_rate), format="WAV", subtype=subtype)
    return buffer.getvalue()


def write_audio(path: str | Path, samples: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write :func:`wav_bytes` of ``samples`` to ``path`` atomically. The caller checks
    ``path`` with :func:`polyfold.core.outputs.check_output_file` first."""
    from polyfold.core.outputs import write_bytes

    return write_bytes(path, wav_bytes(samples, sample_rate, what=str(path)))


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``samples`` (1-D) from ``orig_rate`` to ``target_rate`` Hz with soxr's high-quality
    band-limited resampler."""
    if orig_rate <= 0 or target_rate <= 0:
        raise InputError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    soxr = _module("soxr", "resampling audio")
    out = soxr.resample(np.asarray(samples, dtype=np.float32), orig_rate, target_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class MelSettings:
    """A log-mel front end. The defaults are HiFi-GAN V1's (and CoMoSpeech's, Grad-TTS's):
    22,050 Hz, n_fft 1024, hop 256, window 1024, 80 mels from 0 to 8,000 Hz."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"MelSettings.{name} must be a positive integer")
        if self.win_length > self.n_fft:
            raise InputError(f"MelSettings: win_length {self.win_length} > n_fft {self.n_fft}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise InputError(
                f"MelSettings: need 0 <= fmin < fmax <= sample_rate / 2, got fmin {self.fmin}, "
                f"fmax {self.fmax}, sample_rate {self.sample_rate}"
            )


# the Slaney mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequencies in Hz on the Slaney mel scale (1,000 Hz is 15 mel)."""
    f = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    m = np.asarray(mel, dtype=np.float64)
    return np.where(
        m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), m * _F_SP
    )


@lru_cache(maxsize=8)
def _filterbank(settings: MelSettings) -> np.ndarray:
    freqs = np.linspace(0.0, settings.sample_rate / 2, settings.n_fft // 2 + 1)
    edges = mel_to_hz(
        np.linspace(hz_to_mel(settings.fmin), hz_to_mel(settings.fmax), settings.n_mels + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    area: np.ndarray = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney: equal area
    return area


def mel_filterbank(settings: MelSettings = MelSettings()) -> torch.Tensor:
    """The ``(n_mels, n_fft // 2 + 1)`` triangular Slaney-normalised filterbank (the same matrix
    as ``librosa.filters.mel`` with its defaults)."""
    return torch.from_numpy(_filterbank(settings).astype(np.float32))


def mel_frames(num_samples: int, settings: MelSettings = MelSettings()) -> int:
    """How many frames :func:`log_mel` gives for ``num_samples`` samples (one per hop for a
    whole number of hops)."""
    pad = (settings.n_fft - settings.hop_length) // 2
    return (num_samples + 2 * pad - settings.n_fft) // settings.hop_length + 1


def log_mel(wave: torch.Tensor, settings: MelSettings = MelSettings()) -> torch.Tensor:
    """The natural-log mel magnitude spectrogram of ``wave`` (``(..., samples)``) as HiFi-GAN
    computes it: reflect padding of ``(n_fft - hop) / 2`` each side, no centring, a Hann window,
    magnitude ``sqrt(|X|^2 + 1e-9)``, ``log(max(mel, 1e-5))``. Returns ``(..., n_mels, frames)``
    with :func:`mel_frames` frames."""
    if wave.shape[-1] < settings.n_fft:
        raise InputError(
            f"audio of {wave.shape[-1]} samples is shorter than one analysis window "
            f"(n_fft {settings.n_fft})"
        )
    lead = wave.shape[:-1]
    x = wave.reshape(-1, 1, wave.shape[-1]).float()
    pad = (settings.n_fft - settings.hop_length) // 2
    x = torch.nn.functional.pad(x, (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(settings.win_length, device=x.device)
    spec = torch.stft(
        x,
        settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.win_length,
        window=window,
        center=False,
        return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
    mel = mel_filterbank(settings).to(magnitude.device) @ magnitude
    return torch.log(mel.clamp(min=1e-5)).reshape(*lead, settings.n_mels, -1)
