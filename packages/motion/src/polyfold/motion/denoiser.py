"""The text-conditioned motion denoising network (MDM-style) and EMDM's conditional critic.

:class:`MotionDenoiser` is a transformer over the frames of a normalised feature window
``x_t (B, L, D)``: one prefix token carries the diffusion time and the caption's sentence vector
(and, for EMDM's generator, a latent ``z``); sinusoidal frame positions let it run on windows of
other lengths than it was trained on. It predicts the clean window ``x0``. :class:`MotionCritic`
scores a pair ``(x_s, x_t)`` of a reverse step given the time and the caption (a projection
critic over patches of 4 frames), as the conditional GAN discriminator of EMDM.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.export import register_model

__all__ = ["CriticConfig", "DenoiserConfig", "MotionCritic", "MotionDenoiser", "time_embedding"]


def time_embedding(t: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """Sinusoidal features ``(B, dim)`` of times ``t (B,)`` in ``[0, 1]`` (times ``scale``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    arg = (t.float() * scale)[:, None] * freqs[None]
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


def _positions(length: int, dim: int, device: torch.device) -> Tensor:
    return time_embedding(torch.arange(length, device=device).float(), dim, scale=1.0)


@dataclass(frozen=True)
class DenoiserConfig:
    feature_dim: int = 155
    text_dim: int = 384
    width: int = 128
    layers: int = 3
    heads: int = 4
    z_dim: int = 0
    dropout: float = 0.0


def _check_input(x: Tensor, t: Tensor, cond: Tensor, feature_dim: int, text_dim: int) -> None:
    if x.ndim != 3 or x.shape[-1] != feature_dim:
        raise InputError(f"x_t: expected (B, L, {feature_dim}), got {tuple(x.shape)}")
    if t.shape != (x.shape[0],):
        raise InputError(f"t: expected ({x.shape[0]},), got {tuple(t.shape)}")
    if cond.shape != (x.shape[0], text_dim):
        raise InputError(f"cond: expected ({x.shape[0]}, {text_dim}), got {tuple(cond.shape)}")


@register_model("motion.MotionDenoiser")
class MotionDenoiser(nn.Module):
    """``forward(x_t, t, cond, z=None) -> x0``: a clean-window prediction ``(B, L, D)``."""

    def __init__(self, **config: object) -> None:
        super().__init__()
        cfg = DenoiserConfig(**config)  # type: ignore[arg-type]
        self.config = cfg
        w = cfg.width
        self.inp = nn.Linear(cfg.feature_dim, w)
        self.time = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.text = nn.Linear(cfg.text_dim, w)
        self.latent = nn.Linear(cfg.z_dim, w) if cfg.z_dim > 0 else None
        layer = nn.TransformerEncoderLayer(
            w, cfg.heads, 4 * w, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.feature_dim)

    def model_config(self) -> dict[str, object]:
        return asdict(self.config)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, z: Tensor | None = None) -> Tensor:
        cfg = self.config
        _check_input(x_t, t, cond, cfg.feature_dim, cfg.text_dim)
        w = cfg.width
        prefix = self.time(time_embedding(t, w)) + self.text(cond)
        if self.latent is not None:
            if z is None:
                z = torch.zeros(x_t.shape[0], cfg.z_dim, device=x_t.device, dtype=x_t.dtype)
            prefix = prefix + self.latent(z)
        h = self.inp(x_t) + _positions(x_t.shape[1], w, x_t.device)[None]
        h = self.body(torch.cat([prefix[:, None], h], dim=1))
        out: Tensor = self.out(self.norm(h[:, 1:]))
        return out


@dataclass(frozen=True)
class CriticConfig:
    feature_dim: int = 155
    text_dim: int = 384
    width: int = 64


class MotionCritic(nn.Module):
    """``forward(x_s, (x_t, t, cond)) -> (B,)`` scores of a reverse step ``x_t -> x_s``."""

    def __init__(self, **config: object) -> None:
        super().__init__()
        cfg = CriticConfig(**config)  # type: ignore[arg-type]
        self.config = cfg
        w = cfg.width
        self.patch = 4
        self.net = nn.Sequential(
            nn.Linear(2 * cfg.feature_dim * self.patch, w), nn.LeakyReLU(0.2),
            nn.Linear(w, w), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.embed = nn.Sequential(nn.Linear(w + cfg.text_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.score = nn.Linear(w, 1)

    def forward(self, x_s: Tensor, cond: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        x_t, t, text = cond
        pair = torch.cat([x_s, x_t], dim=-1)
        pad = -pair.shape[1] % self.patch
        if pad:
            pair = torch.cat([pair, pair[:, -1:].expand(-1, pad, -1)], dim=1)
        patches = pair.reshape(pair.shape[0], -1, self.patch * pair.shape[-1])
        h = self.net(patches).mean(dim=1)
        e = self.embed(torch.cat([time_embedding(t, self.config.width), text], dim=-1))
        out: Tensor = self.score(h).squeeze(-1) + (h * e).sum(-1)
        return out
