"""S4D: the diagonal structured state-space layer (Gu et al., "On the Parameterization and
Initialization of Diagonal State Space Models"), in pure PyTorch.

Each of ``H`` channels runs the continuous SSM ``x' = A x + B u``, ``y = Re(C x) + D u`` with a
diagonal complex ``A`` (S4D-Lin initialisation ``A_n = -1/2 + i pi n``), discretised with a
learned step ``dt`` (zero-order hold). The resulting length-``L`` convolution kernel
``K_l = 2 Re(sum_n C_n (exp(dt A_n) - 1)/A_n exp(dt A_n l))`` is applied with an FFT, so a
whole sequence costs ``O(H L log L)``. ``bidirectional`` adds a second kernel run on the
reversed sequence (TSDiff's backbone sees the whole window, context and horizon).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["S4D", "S4DKernel"]


class S4DKernel(nn.Module):
    """The S4D convolution kernel ``(channels, L)`` for ``channels`` independent SSMs."""

    def __init__(
        self, channels: int, state_size: int = 32, dt_min: float = 1e-3, dt_max: float = 1e-1
    ) -> None:
        super().__init__()
        n = state_size // 2
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        c = torch.randn(channels, n, 2) * (0.5**0.5)
        self.c = nn.Parameter(c)
        self.log_a_real = nn.Parameter(torch.log(0.5 * torch.ones(channels, n)))
        self.a_imag = nn.Parameter(
            math.pi * torch.arange(n, dtype=torch.float32).repeat(channels, 1)
        )

    def forward(self, length: int) -> Tensor:
        dt = torch.exp(self.log_dt)[:, None]  # (H, 1)
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag  # (H, N)
        c = torch.view_as_complex(self.c.contiguous())
        dta = a * dt
        c = c * (torch.exp(dta) - 1.0) / a
        powers = dta[..., None] * torch.arange(length, device=a.device)  # (H, N, L)
        return 2 * torch.einsum("hn,hnl->hl", c, torch.exp(powers)).real


class S4D(nn.Module):
    """An S4D layer on ``(B, L, H)``: SSM convolution (optionally bidirectional), skip ``D``,
    GELU, dropout and a GLU output projection."""

    def __init__(
        self,
        channels: int,
        state_size: int = 32,
        *,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.kernel = S4DKernel(channels * (2 if bidirectional else 1), state_size)
        self.d = nn.Parameter(torch.randn(channels))
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(channels, 2 * channels)

    def forward(self, u: Tensor) -> Tensor:
        _b, length, h = u.shape
        x = u.transpose(1, 2)  # (B, H, L)
        k = self.kernel(length)
        if self.bidirectional:
            kf, kb = k[:h], k[h:]
            # causal kernel plus an anti-causal one: a two-sided filter of length 2L
            k = torch.nn.functional.pad(kf, (0, length)) + torch.nn.functional.pad(
                kb.flip(-1), (length, 0)
            )
            n = 2 * length
            kf_ = torch.fft.rfft(k, n=n)
            xf = torch.fft.rfft(x, n=n)
            # circular convolution of length 2L: y_i = sum_{j<=i} kf_{i-j} x_j
            # + sum_{j>i} kb_{j-i-1} x_j
            y = torch.fft.irfft(xf * kf_, n=n)[..., :length]
        else:
            n = 2 * length
            y = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
        y = y + x * self.d[:, None]
        y = self.dropout(self.activation(y)).transpose(1, 2)
        return nn.functional.glu(self.out(y), dim=-1)
