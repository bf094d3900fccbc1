"""TSDiff's denoising network: residual blocks on S4 layers with a diffusion-step embedding.

As in the paper's backbone: the input ``(B, L, C)`` (target plus lag channels) is projected to
``hidden`` channels; each residual block adds a projection of the step embedding, runs a
bidirectional S4 layer over time, then a pointwise layer split into a residual and a skip
output; the sum of the skips (scaled by ``1/sqrt(n_blocks)``) is projected back to ``C``
channels as the noise prediction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from polyfold.core.timesteps import sinusoidal_embedding
from polyfold.timeseries.tsdiff.s4 import S4D

__all__ = ["TSDiffBackbone"]


class _ResidualBlock(nn.Module):
    def __init__(self, hidden: int, state_size: int, dropout: float) -> None:
        super().__init__()
        self.step_proj = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.s4 = S4D(hidden, state_size, bidirectional=True, dropout=dropout)
        self.out = nn.Linear(hidden, 2 * hidden)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        y = self.norm(x + self.step_proj(emb)[:, None, :])
        y = self.s4(y)
        res, skip = self.out(y).chunk(2, dim=-1)
        return (x + res) / math.sqrt(2.0), skip


class TSDiffBackbone(nn.Module):
    """``(x_t (B, L, C), step (B,)) -> eps (B, L, C)``; ``step`` is the DDPM step index."""

    def __init__(
        self,
        in_channels: int,
        hidden: int = 64,
        n_blocks: int = 3,
        state_size: int = 32,
        step_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.step_dim = step_dim
        self.step_mlp = nn.Sequential(
            nn.Linear(step_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.inp = nn.Linear(in_channels, hidden)
        self.blocks = nn.ModuleList(
            _ResidualBlock(hidden, state_size, dropout) for _ in range(n_blocks)
        )
        self.skip_out = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
        self.final = nn.Linear(hidden, in_channels)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: Tensor, step: Tensor) -> Tensor:
        emb = self.step_mlp(sinusoidal_embedding(step, self.step_dim))
        h = self.inp(x)
        skips = torch.zeros_like(h)
        for block in self.blocks:
            h, s = block(h, emb)
            skips = skips + s
        return self.final(self.skip_out(skips / math.sqrt(len(self.blocks))))
