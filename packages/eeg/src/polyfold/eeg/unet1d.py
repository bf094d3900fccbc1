"""A small 1-D U-Net for multichannel EEG windows, conditioned on time and class by FiLM.

``UNet1d(x_t, t, y) -> (B, C, T)``: ``t`` in [0, 1] (core's continuous time, sinusoidally
embedded), ``y`` class indices where index ``n_classes`` is the null label of classifier-free
guidance. Residual blocks (GroupNorm, SiLU, convolution) at each level, strided-convolution
downsampling and nearest-neighbour upsampling with skip connections; any window length works
(the input is padded to a multiple of the total downsampling and the output cropped back).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["UNet1d", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """Sinusoidal features ``(B, dim)`` of ``scale * t``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = scale * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv1d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv1d(c_out, c_out, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        if self.conv2.bias is not None:
            nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(e).unsqueeze(-1).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        out: Tensor = self.skip(x) + h
        return out


class UNet1d(nn.Module):
    """The denoiser network; ``mults`` are the channel multipliers of the levels."""

    def __init__(
        self,
        channels: int,
        n_classes: int,
        *,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        emb: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.emb = emb
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label = nn.Embedding(n_classes + 1, emb)  # last row: the null label
        widths = [base * m for m in mults]
        self.stem = nn.Conv1d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down.append(_ResBlock(c, w, emb, dropout))
            c = w
            if i < len(widths) - 1:
                self.pool.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
        self.mid = _ResBlock(c, c, emb, dropout)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(_ResBlock(c + w, w, emb, dropout))
            c = w
        self.head = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv1d(c, channels, 3, padding=1))
        self.factor = 2 ** (len(widths) - 1)

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        n = x.shape[-1]
        pad = (-n) % self.factor
        h = F.pad(x, (0, pad))
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        e = self.time(timestep_embedding(t, self.emb)) + self.label(y.long())
        h = self.stem(h)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, e)
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), e)
        out: Tensor = self.head(h)[..., :n]
        return out
