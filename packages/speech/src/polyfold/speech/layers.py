"""Building blocks of the acoustic model: the phone encoder (transformer), the duration
predictor, the length regulator and the 1-D WaveNet-style denoiser network."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.timesteps import sinusoidal_embedding

__all__ = [
    "DurationPredictor",
    "PhoneEncoder",
    "WaveNetDenoiser",
    "length_regulate",
]


class PhoneEncoder(nn.Module):
    """Phone ids ``(B, N)`` to hidden states ``(B, N, hidden)``: embedding, sinusoidal
    positions and a pre-norm transformer encoder that ignores padding."""

    def __init__(
        self, n_symbols: int, hidden: int, layers: int, heads: int, ff: int, dropout: float
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(n_symbols, hidden, padding_idx=0)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, ff, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        pos = sinusoidal_embedding(torch.arange(ids.shape[1], device=ids.device), self.hidden)
        x = self.embed(ids) * math.sqrt(self.hidden) + pos
        x = self.layers(x, src_key_padding_mask=~mask)
        out: Tensor = self.norm(x) * mask.unsqueeze(-1)
        return out


class DurationPredictor(nn.Module):
    """FastSpeech's duration predictor: two convolutions with layer norm, predicting
    ``log(1 + frames)`` per phone."""

    def __init__(self, hidden: int, channels: int, kernel: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(hidden, channels, kernel, padding=kernel // 2),
                nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
            ]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(channels), nn.LayerNorm(channels)])
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(channels, 1)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        x = h.transpose(1, 2)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = conv(x * mask.unsqueeze(1))
            x = self.dropout(norm(F.relu(x).transpose(1, 2)).transpose(1, 2))
        out: Tensor = self.out(x.transpose(1, 2)).squeeze(-1) * mask
        return out


def length_regulate(
    h: Tensor, durations: Tensor, max_frames: int | None = None
) -> tuple[Tensor, Tensor]:
    """Repeat each phone's state ``(B, N, H)`` for its duration ``(B, N)`` (integer frames);
    returns ``(B, T, H)`` and the frame mask ``(B, T)``, ``T`` the longest total (or
    ``max_frames``). Each item's frame count is the sum of its durations."""
    if durations.shape != h.shape[:2]:
        raise InputError(
            f"durations: expected shape {tuple(h.shape[:2])}, got {tuple(durations.shape)}"
        )
    d = durations.long().clamp_min(0)
    totals = d.sum(1)
    t_max = int(totals.max()) if max_frames is None else int(max_frames)
    t_max = max(t_max, 1)
    # frame f of item b belongs to the phone whose cumulative end first exceeds f
    ends = d.cumsum(1)
    frames = torch.arange(t_max, device=h.device)
    index = torch.searchsorted(
        ends, frames.unsqueeze(0).expand(h.shape[0], -1).contiguous(), right=True
    )
    mask = frames.unsqueeze(0) < totals.unsqueeze(1)
    index = index.clamp_max(h.shape[1] - 1)
    out = torch.gather(h, 1, index.unsqueeze(-1).expand(-1, -1, h.shape[2]))
    return out * mask.unsqueeze(-1), mask


class _ResidualLayer(nn.Module):
    def __init__(self, channels: int, cond: int, dilation: int) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.cond = nn.Conv1d(cond, 2 * channels, 1)
        self.step = nn.Linear(channels, channels)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: Tensor, cond: Tensor, step: Tensor) -> tuple[Tensor, Tensor]:
        y = self.dilated(x + self.step(step).unsqueeze(-1)) + self.cond(cond)
        gate, filt = y.chunk(2, dim=1)
        y = self.out(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class WaveNetDenoiser(nn.Module):
    """The raw denoiser network ``F(x_in, c_noise, cond)`` of DiffSpeech / ProDiff: a stack of
    gated, dilated 1-D convolutions over mel frames, conditioned on the length-regulated phone
    states and on the noise level. ``x_in`` is ``(B, T, n_mels)``, ``c_noise`` ``(B,)``,
    ``cond`` a dict with ``h`` ``(B, T, hidden)`` and ``mask`` ``(B, T)``."""

    def __init__(
        self, n_mels: int, hidden: int, channels: int, layers: int, dilation_cycle: int
    ) -> None:
        super().__init__()
        self.channels = channels
        self.inp = nn.Conv1d(n_mels, channels, 1)
        self.step_mlp = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, channels)
        )
        self.layers = nn.ModuleList(
            _ResidualLayer(channels, hidden, 2 ** (i % dilation_cycle)) for i in range(layers)
        )
        self.skip = nn.Conv1d(channels, channels, 1)
        self.outp = nn.Conv1d(channels, n_mels, 1)
        nn.init.zeros_(self.outp.weight)
        assert self.outp.bias is not None
        nn.init.zeros_(self.outp.bias)

    def forward(self, x_in: Tensor, c_noise: Tensor, cond: dict[str, Tensor]) -> Tensor:
        mask = cond["mask"].unsqueeze(1).to(x_in.dtype)
        h = cond["h"].transpose(1, 2)
        step = self.step_mlp(sinusoidal_embedding(c_noise, self.channels, scale=250.0))
        x = F.relu(self.inp(x_in.transpose(1, 2))) * mask
        skips = torch.zeros_like(x)
        for layer in self.layers:
            x, skip = layer(x, h, step)
            x = x * mask
            skips = skips + skip
        y = self.outp(F.relu(self.skip(skips / math.sqrt(len(self.layers)))))
        out: Tensor = (y * mask).transpose(1, 2)
        return out
