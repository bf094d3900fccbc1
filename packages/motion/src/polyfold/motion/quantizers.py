"""Vector quantisers with EMA codebooks and dead-code reset, single and residual.

A code whose EMA usage falls below ``reset_threshold`` (a dead code) is replaced by a random
encoder output of the current batch, so the codebook does not collapse onto a few entries (the
failure MMM's released training loop shows without it). Codebook usage and perplexity are
reported on every forward so that collapse is visible in the training log.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError

__all__ = ["EMAQuantizer", "QuantizerOutput", "ResidualQuantizer", "codebook_stats"]


@dataclass
class QuantizerOutput:
    """``quantized`` (straight-through), ``codes`` (``(N,)`` or ``(N, Q)``), the commitment
    loss ``||z - sg(q)||^2``, and ``usage`` (fraction of codes used in the batch) and
    ``perplexity`` (``exp`` of the code distribution's entropy) of the first codebook."""

    quantized: Tensor
    codes: Tensor
    commitment: Tensor
    usage: Tensor
    perplexity: Tensor


def codebook_stats(codes: Tensor, num_codes: int) -> tuple[Tensor, Tensor]:
    """``(usage, perplexity)`` of integer codes: the fraction of the ``num_codes`` entries that
    occur, and ``exp(entropy)`` of their empirical distribution."""
    counts = torch.bincount(codes.reshape(-1), minlength=num_codes).float()
    p = counts / counts.sum().clamp_min(1.0)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return (counts > 0).float().mean(), entropy.exp()


class EMAQuantizer(nn.Module):
    """Nearest-code quantiser of vectors ``(N, dim)``; the codebook is learned by EMA of the
    assigned vectors (k-means style, ``decay``), not by gradients."""

    def __init__(
        self, num_codes: int, dim: int, decay: float = 0.99, reset_threshold: float = 1.0
    ) -> None:
        super().__init__()
        if num_codes < 2 or dim < 1 or not 0.0 < decay < 1.0:
            raise InputError("quantizer: expected num_codes >= 2, dim >= 1, 0 < decay < 1")
        self.num_codes, self.dim, self.decay = num_codes, dim, decay
        self.reset_threshold = reset_threshold
        self.register_buffer("codebook", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("embed_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.resets = 0

    def nearest(self, z: Tensor) -> Tensor:
        d = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.T
             + self.codebook.pow(2).sum(1)[None])  # fmt: skip
        return d.argmin(1)

    def lookup(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.codebook)

    @torch.no_grad()
    def _update(self, z: Tensor, codes: Tensor) -> None:
        if not bool(self.initialised):
            idx = torch.randint(0, z.shape[0], (self.num_codes,), device=z.device)
            self.codebook.copy_(z[idx])
            self.embed_sum.copy_(z[idx])
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)
            return
        onehot = F.one_hot(codes, self.num_codes).to(z.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.T @ z, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.copy_(self.embed_sum / size[:, None])
        dead = self.cluster_size < self.reset_threshold
        if bool(dead.any()):
            k = int(dead.sum())
            idx = torch.randint(0, z.shape[0], (k,), device=z.device)
            self.codebook[dead] = z[idx]
            self.embed_sum[dead] = z[idx]
            self.cluster_size[dead] = 1.0
            self.resets += k

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise InputError(f"quantizer input: expected (N, {self.dim}), got {tuple(z.shape)}")
        codes = self.nearest(z.detach())
        if self.training:
            self._update(z.detach().float(), codes)
            codes = self.nearest(z.detach())
        q = self.lookup(codes)
        commitment = F.mse_loss(z, q.detach())
        usage, perplexity = codebook_stats(codes, self.num_codes)
        return QuantizerOutput(z + (q - z).detach(), codes, commitment, usage, perplexity)


class ResidualQuantizer(nn.Module):
    """``num_quantizers`` EMA quantisers, each coding the residual the previous ones left
    (RVQ); ``codes`` are ``(N, Q)``. With ``dropout_p`` > 0, training forwards use only the
    first ``1..Q`` layers (a random count) with that probability, as MoMask does."""

    def __init__(
        self,
        num_quantizers: int,
        num_codes: int,
        dim: int,
        decay: float = 0.99,
        reset_threshold: float = 1.0,
        dropout_p: float = 0.0,
    ) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise InputError(f"num_quantizers: expected >= 1, got {num_quantizers}")
        self.layers = nn.ModuleList(
            EMAQuantizer(num_codes, dim, decay, reset_threshold) for _ in range(num_quantizers)
        )
        self.num_codes = num_codes
        self.dropout_p = dropout_p

    def forward(self, z: Tensor) -> QuantizerOutput:
        active = len(self.layers)
        if self.training and self.dropout_p > 0 and float(torch.rand(())) < self.dropout_p:
            active = int(torch.randint(1, len(self.layers) + 1, ()))
        residual = z
        total = torch.zeros_like(z)
        codes, commitment = [], z.new_zeros(())
        first = None
        for layer in list(self.layers)[:active]:
            out = layer(residual)
            first = out if first is None else first
            total = total + out.quantized
            residual = residual - out.quantized.detach()
            codes.append(out.codes)
            commitment = commitment + out.commitment
        assert first is not None
        code_t = torch.stack(codes, 1)
        return QuantizerOutput(total, code_t, commitment, first.usage, first.perplexity)

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Sum of the code vectors of ``codes (N, q)`` for the first ``q`` layers."""
        return sum(
            layer.lookup(codes[:, i]) for i, layer in enumerate(self.layers) if i < codes.shape[1]
        )  # type: ignore[return-value]
