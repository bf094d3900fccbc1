"""PaD-TS's dual-channel encoder: a time channel and a feature channel, each a transformer.

The time channel reads the window as ``L`` tokens (one per time step, all channels embedded
together, plus a learnable position embedding); the feature channel reads it as ``C`` tokens
(one per channel, its whole series embedded). Each channel runs ``n_encoder`` plain pre-norm
transformer blocks, then ``n_layers`` DiT blocks conditioned on the diffusion step through
adaptive LayerNorm with zero-initialised gates (adaLN-Zero, built on core's fused
:func:`~polyfold.core.ops.adaln_modulate` and :func:`~polyfold.core.ops.gated_residual`), and a
linear read-out back to ``(L, C)``; the two read-outs are summed into the prediction of the clean
window ``x0``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polyfold.core.ops import adaln_modulate, gated_residual
from polyfold.core.timesteps import sinusoidal_embedding

__all__ = ["AdaLNZeroBlock", "DualChannelEncoder", "EncoderBlock", "StepEmbedding"]


class StepEmbedding(nn.Module):
    """DiT's diffusion-step embedding: sinusoidal features of the (fractional) step index,
    then a two-layer SiLU MLP."""

    def __init__(self, d_model: int, n_freq: int = 256, max_period: float = 10_000.0) -> None:
        super().__init__()
        self.n_freq, self.max_period = n_freq, max_period
        self.fc1, self.fc2 = nn.Linear(n_freq, d_model), nn.Linear(d_model, d_model)

    def forward(self, k: Tensor) -> Tensor:
        emb = sinusoidal_embedding(k, self.n_freq, max_period=self.max_period)
        out: Tensor = self.fc2(nn.functional.silu(self.fc1(emb.to(self.fc1.weight.dtype))))
        return out


def _mlp(d_model: int, mlp_ratio: float) -> nn.Sequential:
    hidden = int(d_model * mlp_ratio)
    return nn.Sequential(
        nn.Linear(d_model, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_model)
    )


class EncoderBlock(nn.Module):
    """A pre-norm transformer block (LayerNorm without affine, multi-head attention, MLP)."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.mlp = _mlp(d_model, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        out: Tensor = x + self.mlp(self.norm2(x))
        return out


class AdaLNZeroBlock(nn.Module):
    """DiT block with adaLN-Zero conditioning on ``c`` ``(B, D)``.

    ``x <- x + g1 * attn(modulate(x, b1, s1))``, ``x <- x + g2 * mlp(modulate(x, b2, s2))`` with
    ``(b1, s1, g1, b2, s2, g2) = Linear(SiLU(c))``, that linear layer initialised to zero: every
    block is the identity at initialisation.
    """

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.mlp = _mlp(d_model, mlp_ratio)
        self.modulation = nn.Linear(d_model, 6 * d_model)  # applied to SiLU(c)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        b1, s1, g1, b2, s2, g2 = self.modulation(nn.functional.silu(c)).chunk(6, dim=-1)
        h = adaln_modulate(x, b1, s1)
        x = gated_residual(x, g1, self.attn(h, h, h, need_weights=False)[0])
        return gated_residual(x, g2, self.mlp(adaln_modulate(x, b2, s2)))


class _Channel(nn.Module):
    """One channel: token embedding, encoder blocks, adaLN-Zero blocks, read-out."""

    def __init__(
        self,
        n_tokens: int,
        token_dim: int,
        d_model: int,
        n_heads: int,
        n_encoder: int,
        n_layers: int,
        mlp_ratio: float,
        positional: bool,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(token_dim, d_model)
        self.pos = nn.Parameter(torch.empty(1, n_tokens, d_model)) if positional else None
        if self.pos is not None:
            nn.init.uniform_(self.pos, -0.02, 0.02)
        self.encoder = nn.ModuleList(
            EncoderBlock(d_model, n_heads, mlp_ratio) for _ in range(n_encoder)
        )
        self.blocks = nn.ModuleList(
            AdaLNZeroBlock(d_model, n_heads, mlp_ratio) for _ in range(n_layers)
        )
        self.readout = nn.Linear(d_model, token_dim)

    def forward(self, tokens: Tensor, c: Tensor) -> Tensor:
        h = self.embed(tokens)
        if self.pos is not None:
            h = h + self.pos
        for block in self.encoder:
            h = block(h)
        for block in self.blocks:
            h = block(h, c)
        out: Tensor = self.readout(h)
        return out


class DualChannelEncoder(nn.Module):
    """PaD-TS's network: ``(x_t (B, L, C), step (B,)) -> x0 prediction (B, L, C)``."""

    def __init__(
        self,
        seq_len: int,
        n_features: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_encoder: int = 1,
        n_layers: int = 2,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        args = (d_model, n_heads, n_encoder, n_layers, mlp_ratio)
        self.time_channel = _Channel(seq_len, n_features, *args, positional=True)
        self.feature_channel = _Channel(n_features, seq_len, *args, positional=False)
        self.time_step = StepEmbedding(d_model)
        self.feature_step = StepEmbedding(d_model)

    def forward(self, x: Tensor, step: Tensor) -> Tensor:
        by_time = self.time_channel(x, self.time_step(step))
        by_feature = self.feature_channel(x.mT, self.feature_step(step))
        out: Tensor = by_time + by_feature.mT
        return out
