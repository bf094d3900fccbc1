"""ArtifactGen's class-conditional WGAN-GP: a 1-D transposed-convolution generator and a strided
1-D convolutional critic with a projection head (Miyato & Koyama 2018).

The generator maps ``z ~ N(0, I)`` concatenated with the one-hot class (as the paper) through a
linear layer to a short sequence, then doubles its length ``n_up`` times with transposed
convolutions; each block is also modulated by a class embedding (a per-channel scale and shift),
which the paper's one-hot-at-the-input generator lacks and which its weak class recovery calls
for, and (``noise=True``, the default) adds per-sample Gaussian noise with a learned per-channel
gain after each upsampling (StyleGAN's noise inputs), plus independent output noise with a
learned per-class, per-channel gain (the whitened windows are close to white noise): EEG is
mostly stochastic, and a 64-number latent alone cannot supply the entropy of an 8 x 250 window
of (whitened) noise, so without it the generator's windows are too smooth and too alike. The
critic scores ``w^T phi(x) + <phi(x), e_y>`` with ``phi`` the globally average-pooled
features. Losses and the gradient penalty are core's (:mod:`polyfold.core.losses.gan`); the
training loop is in :mod:`polyfold.eeg.train`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import register_model

__all__ = ["Critic", "WGANConfig", "WGANGenerator"]


@dataclass
class WGANConfig:
    """Sizes of the WGAN-GP pair and its training settings (the public config's values where it
    gives them: ``n_critic`` 5, Adam ``lr`` 1e-4 with betas (0, 0.9), ``gp_weight`` 10)."""

    channels: int = 8
    n_times: int = 500
    n_classes: int = 5
    z_dim: int = 64
    width: int = 48
    n_up: int = 4
    critic_width: int = 16
    critic_layers: int = 6
    noise: bool = True
    n_critic: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    batch_size: int = 32
    steps: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        names = ("channels", "n_times", "n_classes", "z_dim", "width", "critic_width")
        for name in (*names, "critic_layers"):
            check_int(name, getattr(self, name), 1)
        for name in ("n_critic", "batch_size", "steps"):
            check_int(name, getattr(self, name), 1)
        check_int("n_up", self.n_up, 1)
        if not (isinstance(self.gp_weight, int | float) and self.gp_weight >= 0):
            raise InputError(f"gp_weight: expected a number >= 0, got {self.gp_weight!r}")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise InputError(f"lr: expected a number > 0, got {self.lr!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, n_classes: int, noise: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(c_in, c_out, kernel_size=4, stride=2, padding=1)
        self.conv = nn.Conv1d(c_out, c_out, kernel_size=5, padding=2)
        self.film = nn.Embedding(n_classes, 2 * c_out)
        nn.init.zeros_(self.film.weight)
        self.noise_gain = nn.Parameter(torch.full((1, c_out, 1), 0.1)) if noise else None

    def forward(self, h: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        h = self.up(h)
        if self.noise_gain is not None:
            noise = torch.randn(h.shape[0], 1, h.shape[2], generator=generator, device=h.device)
            h = h + self.noise_gain * noise
        h = F.leaky_relu(h, 0.2)
        scale, shift = self.film(y).unsqueeze(-1).chunk(2, dim=1)
        return F.leaky_relu(self.conv(h) * (1 + scale) + shift, 0.2)


@register_model("eeg.WGANGenerator")
class WGANGenerator(nn.Module):
    """``G(z, y) -> (B, channels, n_times)`` in the model's (normalised) units."""

    def __init__(self, config: WGANConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else WGANConfig(**kwargs)
        self.config = cfg
        self.start = math.ceil(cfg.n_times / 2**cfg.n_up)
        self.fc = nn.Linear(cfg.z_dim + cfg.n_classes, cfg.width * self.start)
        widths = [max(cfg.width // 2**i, 16) for i in range(cfg.n_up + 1)]
        self.blocks = nn.ModuleList(
            _UpBlock(widths[i], widths[i + 1], cfg.n_classes, cfg.noise) for i in range(cfg.n_up)
        )
        self.out = nn.Conv1d(widths[-1], cfg.channels, kernel_size=7, padding=3)
        # whitened windows are close to white noise: independent output noise with a learned
        # per-class, per-channel gain starts the generator at that and lets the convolutions
        # model the departures (without it, 400 steps left 30-45 Hz at 1-3 % of real power)
        self.out_noise = nn.Embedding(cfg.n_classes, cfg.channels) if cfg.noise else None
        if self.out_noise is not None:
            nn.init.ones_(self.out_noise.weight)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WGANGenerator:
        try:
            return cls(WGANConfig(**config))
        except TypeError as err:
            raise InputError(f"config: {err}") from None

    def forward(self, z: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Windows for latents ``z`` and classes ``y``; ``generator`` draws the injected
        noise."""
        cfg = self.config
        onehot = F.one_hot(y.long(), cfg.n_classes).to(z.dtype)
        h = self.fc(torch.cat([z, onehot], dim=1)).view(z.shape[0], cfg.width, self.start)
        h = F.leaky_relu(h, 0.2)
        for block in self.blocks:
            h = block(h, y, generator)
        out: Tensor = self.out(h)[..., : cfg.n_times]
        if self.out_noise is not None:
            noise = torch.randn(out.shape, generator=generator, device=out.device)
            out = out + self.out_noise(y).unsqueeze(-1) * noise
        return out

    def sample(self, y: Tensor, *, generator: torch.Generator | None = None, **_: Any) -> Tensor:
        """Windows of the classes ``y`` (``(B,)`` indices), in the model's units."""
        z = torch.randn(len(y), self.config.z_dim, generator=generator)
        with torch.no_grad():
            out: Tensor = self(z, y, generator)
        return out


class Critic(nn.Module):
    """``D(x, y)``: ``critic_layers`` strided convolutions, global average pooling and a
    projection head. Six layers (the default) give a receptive field of 253 samples, a whole 1 s
    window: with the paper-sized four (61 samples, a quarter second) the critic cannot see
    0.5-4 Hz power at all, and on whitened windows the generator then fills the delta band
    freely (measured: delta power up to 190x real after 400 steps)."""

    def __init__(self, config: WGANConfig) -> None:
        super().__init__()
        w = config.critic_width
        widths = [config.channels, *(w * min(2**i, 4) for i in range(config.critic_layers))]
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel_size=5, stride=2, padding=2)
            for i in range(len(widths) - 1)
        )
        self.head = nn.Linear(widths[-1], 1)
        self.embed = nn.Embedding(config.n_classes, widths[-1])
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = x
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        phi = h.mean(dim=-1)
        out: Tensor = self.head(phi).squeeze(1) + (phi * self.embed(y)).sum(dim=1)
        return out
