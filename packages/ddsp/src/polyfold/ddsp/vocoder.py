"""A DDSP vocoder for speech: log-mel -> convolutions + bidirectional GRU -> f0, voicing,
harmonic amplitudes and noise filter magnitudes per frame -> harmonic-plus-noise synthesis.

The mel is core's HiFi-GAN front end (:class:`polyfold.core.audio.MelSettings`: 22,050 Hz, hop
256, 80 mels, :func:`polyfold.core.audio.log_mel`), so one mel frame gives ``hop`` samples and
the frame centres line up with the synthesiser's control interpolation. f0 lies between
``f0_min`` and ``f0_max`` on a log scale; the voicing probability gates the harmonic part (the
filtered noise plays in every frame, carrying the unvoiced sounds).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from polyfold.core.audio import MelSettings, log_mel, read_audio
from polyfold.core.errors import InputError, reading
from polyfold.core.export import register_model
from polyfold.ddsp.checks import check_tensor
from polyfold.ddsp.processors import (
    filtered_noise,
    harmonic_controls,
    harmonic_synth,
    noise_controls,
)

__all__ = ["DDSPVocoder", "VocoderConfig", "mel_of_file", "vocode", "vocode_file"]

MEL_OFFSET, MEL_SCALE = 5.0, 2.5  # natural-log mels (about -11.5..2) to about -3..3


@dataclass(frozen=True)
class VocoderConfig:
    """Sizes of the network and synthesiser; the mel settings are core's defaults."""

    hidden: int = 128
    n_harmonics: int = 32
    n_noise_bands: int = 65
    n_mels: int = 80
    sample_rate: int = 22050
    hop: int = 256
    f0_min: float = 50.0
    f0_max: float = 600.0

    def __post_init__(self) -> None:
        for name in ("hidden", "n_harmonics", "n_mels", "sample_rate", "hop"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 2:
                raise InputError(f"{name}: expected an integer >= 2, got {v!r}")
        if not isinstance(self.n_noise_bands, int) or self.n_noise_bands < 3:
            raise InputError(f"n_noise_bands: expected an integer >= 3, got {self.n_noise_bands!r}")
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 2:
            raise InputError(
                f"f0_min, f0_max: expected 0 < f0_min < f0_max < {self.sample_rate / 2}, got "
                f"{self.f0_min}, {self.f0_max}"
            )

    def mel_settings(self) -> MelSettings:
        """The mel front end this vocoder inverts (core's defaults at this rate, hop and size)."""
        return MelSettings(sample_rate=self.sample_rate, hop_length=self.hop, n_mels=self.n_mels)


@register_model("ddsp.DDSPVocoder")
class DDSPVocoder(nn.Module):
    """Natural-log mel (B, n_mels, F) to audio (B, F * hop)."""

    def __init__(self, config: VocoderConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else VocoderConfig(**kwargs)
        self.config = cfg
        h = cfg.hidden
        self.convs = nn.Sequential(
            nn.Conv1d(cfg.n_mels, h, 5, padding=2),
            nn.LeakyReLU(0.1),
            nn.Conv1d(h, h, 5, padding=2),
            nn.LeakyReLU(0.1),
        )
        self.gru = nn.GRU(h, h // 2, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.Linear(2 * h, h),
            nn.LeakyReLU(0.1),
            nn.Linear(h, 3 + cfg.n_harmonics + cfg.n_noise_bands),
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DDSPVocoder:
        try:
            return cls(VocoderConfig(**config))
        except TypeError as err:
            raise InputError(f"config: {err}") from None

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def check_mel(self, mel: object) -> torch.Tensor:
        """``mel`` as a (B, n_mels, F) float tensor, or an InputError naming it."""
        x = check_tensor("mel", mel, (2, 3))
        x = x[None] if x.dim() == 2 else x
        if x.shape[1] != self.config.n_mels:
            raise InputError(
                f"mel: expected {self.config.n_mels} mel bins (shape (B, {self.config.n_mels}, "
                f"frames)), got shape {tuple(x.shape)}"
            )
        return x

    def controls(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per frame: ``f0`` (B, F) Hz, ``voicing`` (B, F) in (0, 1), ``harmonics`` (B, F, K)
        amplitudes (voicing applied) and ``noise`` (B, F, M) filter magnitudes."""
        cfg = self.config
        x = self.convs((self.check_mel(mel) + MEL_OFFSET) / MEL_SCALE).transpose(1, 2)
        y, _ = self.gru(x)
        out = self.head(torch.cat([y, x], -1))
        octaves = math.log2(cfg.f0_max / cfg.f0_min)
        f0 = cfg.f0_min * torch.exp2(octaves * torch.sigmoid(out[..., 0]))
        voicing = torch.sigmoid(out[..., 1])
        k = cfg.n_harmonics
        harmonics = harmonic_controls(out[..., 2:3], out[..., 3 : 3 + k], f0, cfg.sample_rate)
        return {
            "f0": f0,
            "voicing": voicing,
            "harmonics": harmonics * voicing[..., None],
            "noise": noise_controls(out[..., 3 + k :]),
        }

    def synthesize(
        self, controls: dict[str, torch.Tensor], *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Audio (B, F * hop) from :meth:`controls`: harmonics plus filtered noise."""
        cfg = self.config
        audio = harmonic_synth(controls["f0"], controls["harmonics"], cfg.sample_rate, cfg.hop)
        taps = 2 * (cfg.n_noise_bands - 1)
        noise = filtered_noise(controls["noise"], cfg.hop, generator=generator, window_size=taps)
        return audio + noise

    def forward(
        self, mel: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.synthesize(self.controls(mel), generator=generator)


@torch.no_grad()
def vocode(model: DDSPVocoder, mel: np.ndarray | torch.Tensor, *, seed: int = 0) -> np.ndarray:
    """Waveform (F * hop,) of one mel (n_mels, F), or (B, F * hop) of a batch (B, n_mels, F);
    the same seed gives the same noise."""
    x = torch.as_tensor(mel)
    if not x.is_floating_point():
        raise InputError(f"mel: expected floating-point values, got {x.dtype}")
    g = torch.Generator().manual_seed(seed)
    out: np.ndarray = model(x.float(), generator=g).clamp(-1.0, 1.0).numpy()
    return out[0] if x.dim() == 2 else out


def mel_of_file(path: str | Path, config: VocoderConfig) -> np.ndarray:
    """The vocoder's input (n_mels, F) for ``path``: a ``.npy`` mel, or a mono wav (resampled to
    the vocoder's rate) run through :func:`polyfold.core.audio.log_mel`."""
    p = Path(path)
    if p.suffix == ".npy":
        if not p.is_file():
            raise InputError(f"{p}: no such mel file")
        with reading(p, "mel file"):
            mel = np.load(p, allow_pickle=False)
        if mel.ndim != 2 or mel.shape[0] != config.n_mels:
            raise InputError(
                f"{p}: expected a mel of shape ({config.n_mels}, frames), got {mel.shape}"
            )
        return np.asarray(mel, dtype=np.float32)
    audio, _ = read_audio(p, sample_rate=config.sample_rate)
    settings = config.mel_settings()
    if len(audio) < settings.n_fft:
        raise InputError(f"{p}: expected at least {settings.n_fft} samples, got {len(audio)}")
    return log_mel(torch.from_numpy(audio), settings).numpy()


def vocode_file(source: str | Path, out: str | Path, model: DDSPVocoder, *, seed: int = 0) -> Path:
    """Vocode a ``.npy`` mel or a wav (its own mel: analysis-synthesis) to the wav ``out``."""
    from polyfold.core.audio import write_audio

    mel = mel_of_file(source, model.config)
    return write_audio(out, vocode(model, mel, seed=seed), model.config.sample_rate)
