"""The shared acoustic model of ProDiff and CoMoSpeech, and its presets.

:class:`AcousticModel` holds a phone encoder (transformer), a duration predictor, a prior
projection (a coarse mel per phone, Grad-TTS's ``mu``, also the score matrix of monotonic
alignment search) and the raw WaveNet denoiser ``F(x_in, c_noise, cond)``. Its one network
forward ``model(x_t, t, cond) -> x0`` wraps ``F`` with core's preconditioning for the model's
``kind``:

* ``"teacher"`` and ``"prodiff"``: :class:`polyfold.core.predictions.EDMPrecond` on the model's
  path (``"vp"``, cosine VP for ProDiff's x0-prediction DDIM teacher; ``"edm"``, the EDM path with
  sigma_min 0.002, sigma_max 80, rho 7, sigma_data 0.5 for CoMoSpeech's teacher);
* ``"comospeech"``: :class:`polyfold.core.distill.ConsistencyModel` on the EDM path.

Mels are normalised per bin with the training set's mean and standard deviation (stored in the
weights) and scaled to a standard deviation of ``sigma_data``. States are ``(B, T, n_mels)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polyfold.core.distill import ConsistencyModel
from polyfold.core.errors import InputError
from polyfold.core.export import register_model
from polyfold.core.paths import EDM, GaussianPath, VPCosine
from polyfold.core.predictions import EDMPrecond
from polyfold.core.samplers.grids import zero_time
from polyfold.speech.layers import DurationPredictor, PhoneEncoder, WaveNetDenoiser, length_regulate
from polyfold.speech.phones import PHONES

__all__ = ["PRESETS", "AcousticConfig", "AcousticModel", "make_path", "step_grid"]

Kind = Literal["teacher", "prodiff", "comospeech"]
PathName = Literal["vp", "edm"]
SIGMA_DATA = 0.5
EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO = 0.002, 80.0, 7.0


@dataclass(frozen=True)
class AcousticConfig:
    """Hyperparameters of :class:`AcousticModel` (``kind``, ``path`` and ``steps`` say how it
    samples: the teacher's default steps, a student's fixed ones)."""

    n_mels: int = 80
    hidden: int = 192
    encoder_layers: int = 4
    heads: int = 2
    ff: int = 768
    dropout: float = 0.1
    duration_channels: int = 192
    channels: int = 160
    layers: int = 10
    dilation_cycle: int = 4
    kind: Kind = "teacher"
    path: PathName = "vp"
    steps: int = 50

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("kind", "path", "dropout"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"AcousticConfig.{f.name}: expected an integer >= 1, got {v!r}")
        if self.kind not in ("teacher", "prodiff", "comospeech"):
            raise InputError(f"kind: expected teacher, prodiff or comospeech, got {self.kind!r}")
        if self.path not in ("vp", "edm"):
            raise InputError(f"path: expected 'vp' or 'edm', got {self.path!r}")
        if self.kind == "comospeech" and self.path != "edm":
            raise InputError("kind 'comospeech' needs path 'edm' (CoMoSpeech's EDM teacher)")
        if self.hidden % self.heads or self.channels % 2:
            raise InputError("hidden must be a multiple of heads and channels even")
        if not 0 <= self.dropout < 1:
            raise InputError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")


PRESETS: dict[str, AcousticConfig] = {
    # ~5M parameters: the CPU-sized default
    "default": AcousticConfig(),
    # ~1M parameters: what the shipped checkpoints are, trained minutes on a CPU
    "cpu": AcousticConfig(
        hidden=128, encoder_layers=2, ff=512, duration_channels=128, channels=80, layers=8
    ),
    # ~0.4M parameters: the shipped checkpoints (minutes of training on a shared CPU)
    "tiny": AcousticConfig(
        hidden=96, encoder_layers=2, ff=256, duration_channels=96, channels=64, layers=6
    ),
    # the papers' denoiser (ProDiff / DiffSpeech: 20 residual layers of 256 channels)
    "paper": AcousticConfig(
        hidden=256, encoder_layers=4, ff=1024, duration_channels=256, channels=256, layers=20
    ),
}


def step_grid(path: GaussianPath, steps: int) -> Tensor:
    """The decreasing time grid of an ``steps``-step sampler: ``steps`` points uniform in ``t``
    from ``t_max`` down to (but excluding) ``t_min``, then the data point. On the EDM path this
    is Karras' rho-7 grid whose last level ``sigma_min`` is replaced by zero, so every step
    counts (a 2-step grid is 80 -> 2.5 -> 0)."""
    body = torch.linspace(path.t_max, path.t_min, steps + 1, dtype=torch.float64)[:-1]
    return torch.cat([body, torch.tensor([zero_time(path)], dtype=torch.float64)])


def make_path(name: PathName) -> GaussianPath:
    """The Gaussian path of a model: cosine VP (``"vp"``) or CoMoSpeech's EDM (``"edm"``)."""
    if name == "vp":
        return VPCosine()
    return EDM(EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO)


@register_model("speech.AcousticModel")
class AcousticModel(nn.Module):
    """Phones to mel: encoder, duration predictor, length regulator and WaveNet denoiser."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = AcousticConfig(**config)
        self.config = asdict(cfg)
        self.cfg = cfg
        self.encoder = PhoneEncoder(
            len(PHONES) + 1, cfg.hidden, cfg.encoder_layers, cfg.heads, cfg.ff, cfg.dropout
        )
        self.duration = DurationPredictor(cfg.hidden, cfg.duration_channels, dropout=cfg.dropout)
        self.prior = nn.Linear(cfg.hidden, cfg.n_mels)
        self.net = WaveNetDenoiser(
            cfg.n_mels, cfg.hidden, cfg.channels, cfg.layers, cfg.dilation_cycle
        )
        self.mel_mean: Tensor
        self.mel_std: Tensor
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels))
        self.path = make_path(cfg.path)

    # --- the network forward ------------------------------------------------------------------

    def wrapped(self) -> nn.Module:
        """The denoiser network with its preconditioning (predicts ``x0``)."""
        if self.cfg.kind == "comospeech":
            return ConsistencyModel(
                self.net, path=self.path, sigma_data=SIGMA_DATA, sigma_min=EDM_SIGMA_MIN
            )
        return EDMPrecond(self.net, path=self.path, sigma_data=SIGMA_DATA)

    def forward(self, x_t: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """``x0`` (normalised mel ``(B, T, n_mels)``) from the state ``x_t`` at times ``t``."""
        out: Tensor = self.wrapped()(x_t, t, cond)
        return out * cond["mask"].unsqueeze(-1)

    # --- mel normalisation --------------------------------------------------------------------

    def set_mel_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Per-bin mean and standard deviation of the training mels (log scale)."""
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp_min(1e-3))

    def normalize(self, mel: Tensor) -> Tensor:
        """Log-mel ``(B, T, n_mels)`` to the model's scale (std ``sigma_data`` per bin)."""
        return (mel - self.mel_mean) / self.mel_std * SIGMA_DATA

    def denormalize(self, x: Tensor) -> Tensor:
        """The inverse of :meth:`normalize`."""
        return x / SIGMA_DATA * self.mel_std + self.mel_mean

    # --- text side ----------------------------------------------------------------------------

    def encode(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Phone states ``(B, N, H)``, predicted ``log(1 + frames)`` ``(B, N)`` and the prior
        mel per phone ``(B, N, n_mels)`` (normalised scale)."""
        h = self.encoder(ids, mask)
        return h, self.duration(h.detach(), mask), self.prior(h)

    def condition(self, h: Tensor, durations: Tensor) -> dict[str, Tensor]:
        """The denoiser's condition: phone states repeated for their durations, and the mask."""
        frames, mask = length_regulate(h, durations)
        return {"h": frames, "mask": mask}

    def predict_durations(
        self, log_durations: Tensor, mask: Tensor, length_scale: float = 1.0
    ) -> Tensor:
        """Integer frames per phone from predicted ``log(1 + frames)`` (at least one frame per
        real phone; ``length_scale`` slows down (> 1) or speeds up speech)."""
        frames = torch.round((torch.exp(log_durations) - 1.0).clamp_min(0.0) * length_scale)
        return frames.clamp_min(1.0).long() * mask.long()
