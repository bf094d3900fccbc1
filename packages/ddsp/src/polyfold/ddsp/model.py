"""The DDSP autoencoder: (f0, loudness) -> MLP + GRU decoder -> harmonic + noise synth -> reverb.

The paper's RnnFcDecoder in a CPU size: each input through an MLP, a GRU over frames, an MLP on
the GRU output concatenated with the inputs, then one dense layer giving the overall amplitude,
the harmonic distribution and the noise filter magnitudes (controls), which the processors turn
into audio (signal). f0 is given (exact or tracked); no latent z in this configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.core.export import register_model
from polyfold.ddsp.checks import check_tensor
from polyfold.ddsp.decay_reverb import DecayReverb
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE
from polyfold.ddsp.processors import (
    Reverb,
    filtered_noise,
    harmonic_controls,
    harmonic_synth,
    noise_controls,
)

__all__ = ["DDSPAutoencoder", "DDSPConfig"]


@dataclass(frozen=True)
class DDSPConfig:
    """Sizes of the decoder and synthesiser (the paper: hidden 512, 100 harmonics, 65 bands)."""

    hidden: int = 128
    n_harmonics: int = 60
    n_noise_bands: int = 65
    reverb_length: int = 8000
    sample_rate: int = SAMPLE_RATE
    hop: int = HOP
    #: "decay" (exponentially decaying noise: gain and decay learned) or "learned" (every tap)
    reverb: str = "decay"
    #: the decoder's loudness input is ``(loudness - mean) / std`` (dB; the training set's)
    loudness_mean: float = -60.0
    loudness_std: float = 20.0

    def __post_init__(self) -> None:
        for name in ("hidden", "n_harmonics", "reverb_length", "sample_rate", "hop"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 2:
                raise InputError(f"{name}: expected an integer >= 2, got {v!r}")
        if not isinstance(self.n_noise_bands, int) or self.n_noise_bands < 3:
            raise InputError(f"n_noise_bands: expected an integer >= 3, got {self.n_noise_bands!r}")
        if self.reverb not in ("decay", "learned"):
            raise InputError(f"reverb: expected 'decay' or 'learned', got {self.reverb!r}")
        if not self.loudness_std > 0:
            raise InputError(f"loudness_std: expected a number > 0, got {self.loudness_std!r}")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> DDSPConfig:
        """A config read from a model file or checkpoint; files written before the reverb and
        loudness fields existed get the settings they were trained with (:data:`LEGACY`)."""
        try:
            return cls(**{**LEGACY, **config})
        except TypeError as err:
            raise InputError(f"config: {err}") from None


#: what configs without these fields meant: a free impulse response and loudness / 120 + 1
LEGACY: dict[str, Any] = {"reverb": "learned", "loudness_mean": -120.0, "loudness_std": 120.0}


def _mlp(n_in: int, hidden: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(3):
        layers += [
            nn.Linear(n_in if i == 0 else hidden, hidden),
            nn.LayerNorm(hidden),
            nn.LeakyReLU(),
        ]
    return nn.Sequential(*layers)


def scale_f0(f0: torch.Tensor) -> torch.Tensor:
    """Hz to MIDI / 127 (the decoder's f0 input)."""
    return (69 + 12 * torch.log2(f0.clamp_min(1.0) / 440.0)) / 127


def scale_loudness(loudness: torch.Tensor, mean: float = -60.0, std: float = 20.0) -> torch.Tensor:
    """dB to the decoder's input: standardised by the training set's mean and deviation."""
    return (loudness - mean) / std


@register_model("ddsp.DDSPAutoencoder")
class DDSPAutoencoder(nn.Module):
    """f0 (B, F) Hz and loudness (B, F) dB to audio (B, F * hop)."""

    def __init__(self, config: DDSPConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else DDSPConfig(**kwargs)
        self.config = cfg
        h = cfg.hidden
        self.f0_mlp, self.ld_mlp = _mlp(1, h), _mlp(1, h)
        self.gru = nn.GRU(2 * h, h, batch_first=True)
        self.out_mlp = _mlp(h + 2 * h, h)
        self.dense = nn.Linear(h, 1 + cfg.n_harmonics + cfg.n_noise_bands)
        self.reverb: nn.Module = (
            DecayReverb(cfg.reverb_length, cfg.sample_rate)
            if cfg.reverb == "decay"
            else Reverb(cfg.reverb_length)
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DDSPAutoencoder:
        return cls(DDSPConfig.from_dict(config))

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def controls(self, f0: torch.Tensor, loudness: torch.Tensor) -> dict[str, torch.Tensor]:
        """Synthesiser parameters per frame: harmonic amplitudes (B, F, K), noise magnitudes
        (B, F, M) and the f0 they play at."""
        check_tensor("f0", f0, 2)
        check_tensor("loudness", loudness, 2)
        if f0.shape != loudness.shape:
            raise InputError(
                f"loudness: expected f0's shape {tuple(f0.shape)}, got {tuple(loudness.shape)}"
            )
        if bool((f0 <= 0).any()):
            raise InputError("f0: expected frequencies > 0 Hz")
        a = self.f0_mlp(scale_f0(f0)[..., None])
        cfg = self.config
        b = self.ld_mlp(scale_loudness(loudness, cfg.loudness_mean, cfg.loudness_std)[..., None])
        x = torch.cat([a, b], -1)
        y, _ = self.gru(x)
        out = self.dense(self.out_mlp(torch.cat([y, x], -1)))
        k = self.config.n_harmonics
        harmonics = harmonic_controls(
            out[..., :1], out[..., 1 : 1 + k], f0, self.config.sample_rate
        )
        return {"f0": f0, "harmonics": harmonics, "noise": noise_controls(out[..., 1 + k :])}

    def synthesize(
        self,
        controls: dict[str, torch.Tensor],
        *,
        generator: torch.Generator | None = None,
        reverb: bool = True,
    ) -> torch.Tensor:
        """Audio from :meth:`controls`; ``reverb=False`` gives the dry signal (dereverberation)."""
        cfg = self.config
        audio = harmonic_synth(controls["f0"], controls["harmonics"], cfg.sample_rate, cfg.hop)
        taps = 2 * (cfg.n_noise_bands - 1)  # the full response under a Hann window
        audio = audio + filtered_noise(
            controls["noise"], cfg.hop, generator=generator, window_size=taps
        )
        return self.reverb(audio) if reverb else audio

    def forward(
        self,
        f0: torch.Tensor,
        loudness: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        reverb: bool = True,
    ) -> torch.Tensor:
        return self.synthesize(self.controls(f0, loudness), generator=generator, reverb=reverb)
