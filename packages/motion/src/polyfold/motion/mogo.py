"""Mogo's hierarchical causal transformer over RVQ motion tokens (and its T2M-GPT ablation).

The sequence is ``[text, x_0, ..., x_{n-2}]``: a prefix token carrying the caption's MiniLM
vector, then one input per motion token ``x_i`` (the sum of the embeddings of its ``Q``
residual codes), with learned positions. Position ``i`` predicts the codes of token ``i`` in
one pass through ``Q`` stacked causal transformers: the base stack gives the first-layer
logits; stack ``q`` takes the hidden states of stack ``q - 1`` plus the embedding of the code
chosen at layer ``q - 1`` of the same position (teacher-forced in training, sampled in
generation) and gives layer ``q``'s logits. So every time step yields all ``Q`` codes at once
(Mogo: the base layer autoregressive, the residual layers inferred in the same pass).
``num_quantizers = 1`` is the plain single-codebook GPT of T2M-GPT on the first codebook.

Attention keeps a key/value cache per block (:class:`KVCache`), so generation costs one
position per step; causal masking means a position never sees a later one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.export import register_model

__all__ = ["CausalBlock", "KVCache", "MogoConfig", "MogoTransformer", "Pick", "mogo_loss"]

Pick = Callable[[Tensor, int], Tensor]  # (logits (B, K), layer) -> codes (B,)


@dataclass(frozen=True)
class MogoConfig:
    """``num_quantizers`` RVQ layers modelled (1: T2M-GPT), ``max_positions`` the context
    (text prefix included) the model is trained on and never exceeds in generation."""

    num_codes: int = 256
    num_quantizers: int = 4
    text_dim: int = 384
    width: int = 128
    heads: int = 4
    base_layers: int = 3
    residual_layers: int = 1
    max_positions: int = 12
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("num_codes", "num_quantizers", "text_dim", "width", "heads", "base_layers",
                     "residual_layers"):  # fmt: skip
            if getattr(self, name) < 1:
                raise InputError(f"mogo {name}: expected >= 1, got {getattr(self, name)}")
        if self.max_positions < 2:
            raise InputError(f"mogo max_positions: expected >= 2, got {self.max_positions}")
        if self.width % self.heads:
            raise InputError(f"mogo width {self.width}: expected a multiple of heads {self.heads}")


@dataclass
class KVCache:
    """Keys and values of every attention block seen so far (``(B, H, n, d)`` each)."""

    keys: dict[int, Tensor] = field(default_factory=dict)
    values: dict[int, Tensor] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2]) if self.keys else 0


class CausalBlock(nn.Module):
    """Pre-norm causal self-attention + MLP block with an optional key/value cache."""

    def __init__(self, index: int, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.index, self.heads, self.dropout = index, heads, dropout
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, cache: KVCache | None) -> Tensor:
        b, n, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.heads, w // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if self.index in cache.keys:
                k = torch.cat([cache.keys[self.index], k], dim=2)
                v = torch.cat([cache.values[self.index], v], dim=2)
            cache.keys[self.index], cache.values[self.index] = k, v
        past = k.shape[2] - n
        allowed = torch.ones(n, k.shape[2], dtype=torch.bool, device=h.device).tril(past)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, w)))
        return h + self.drop(self.mlp(self.norm2(h)))


@register_model("motion.MogoTransformer")
class MogoTransformer(nn.Module):
    """``forward(text (B, text_dim), codes (B, n, Q)) -> logits (B, n, Q, num_codes)``,
    teacher-forced: position ``i`` sees the caption and tokens ``< i`` (and, at layer ``q``,
    the codes ``< q`` of token ``i``)."""

    offsets: Tensor

    def __init__(self, **config: object) -> None:
        super().__init__()
        cfg = MogoConfig(**config)  # type: ignore[arg-type]
        self.config = cfg
        w, nq, k = cfg.width, cfg.num_quantizers, cfg.num_codes
        self.text = nn.Linear(cfg.text_dim, w)
        self.codes = nn.Embedding(nq * k, w)  # the input embedding of each layer's codes
        self.position = nn.Parameter(torch.randn(cfg.max_positions, w) * 0.02)
        self.level = nn.Embedding(max(nq - 1, 1) * k, w)  # layer q-1's code into stack q
        depth = [cfg.base_layers] + [cfg.residual_layers] * (nq - 1)
        starts = [sum(depth[:i]) for i in range(nq)]
        self.stacks = nn.ModuleList(
            nn.ModuleList(CausalBlock(s + j, w, cfg.heads, cfg.dropout) for j in range(d))
            for s, d in zip(starts, depth, strict=True)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(w) for _ in range(nq))
        self.heads = nn.ModuleList(nn.Linear(w, k) for _ in range(nq))
        self.drop = nn.Dropout(cfg.dropout)
        self.register_buffer("offsets", torch.arange(nq) * k, persistent=False)

    def model_config(self) -> dict[str, object]:
        return asdict(self.config)

    def _check_codes(self, codes: Tensor) -> Tensor:
        cfg = self.config
        if codes.ndim != 3 or codes.shape[-1] < cfg.num_quantizers:
            raise InputError(
                f"codes: expected (B, n, >= {cfg.num_quantizers}) RVQ codes, got "
                f"{tuple(codes.shape)}"
            )
        codes = codes[..., : cfg.num_quantizers].long()
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= cfg.num_codes):
            raise InputError(f"codes: expected integers in [0, {cfg.num_codes})")
        return codes

    def embed_tokens(self, codes: Tensor) -> Tensor:
        """Input vectors ``(B, n, width)`` of tokens ``codes (B, n, Q)``: the sum over layers."""
        return self.codes(self._check_codes(codes) + self.offsets).sum(dim=2)

    def embed_text(self, text: Tensor) -> Tensor:
        """The prefix vector ``(B, 1, width)`` of caption vectors ``(B, text_dim)``."""
        if text.ndim != 2 or text.shape[1] != self.config.text_dim:
            raise InputError(
                f"text: expected (B, {self.config.text_dim}) caption vectors, got "
                f"{tuple(text.shape)}"
            )
        return self.text(text.float())[:, None]

    def run(
        self,
        inputs: Tensor,
        codes: Tensor,
        cache: KVCache | None = None,
        pick: Pick | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run the stacks over ``inputs (B, n, width)`` placed after the ``cache`` (positions
        ``cache.length ...``). ``codes (B, n, Q)`` feed the residual stacks; with ``pick``, the
        last position's codes are drawn layer by layer instead. Returns ``(logits (B, n, Q, K),
        codes)`` with the drawn codes filled in."""
        start = cache.length if cache is not None else 0
        n = inputs.shape[1]
        if start + n > self.config.max_positions:
            raise InputError(
                f"context: {start + n} positions, the model has {self.config.max_positions}"
            )
        codes = self._check_codes(codes).clone()
        h = self.drop(inputs + self.position[start : start + n])
        logits = []
        nq = self.config.num_quantizers
        for q, stack in enumerate(self.stacks):
            if q > 0:
                h = h + self.level(codes[..., q - 1] + (q - 1) * self.config.num_codes)
            for block in stack:  # type: ignore[attr-defined]
                h = block(h, cache)
            out = self.heads[q](self.norms[q](h))
            logits.append(out)
            if pick is not None:
                codes[:, -1, q] = pick(out[:, -1], q)
        return torch.stack(logits, dim=2)[..., :nq, :], codes

    def forward(self, text: Tensor, codes: Tensor) -> Tensor:
        codes = self._check_codes(codes)
        inputs = torch.cat([self.embed_text(text), self.embed_tokens(codes[:, :-1])], dim=1)
        return self.run(inputs, codes)[0]


def mogo_loss(model: MogoTransformer, text: Tensor, codes: Tensor) -> Tensor:
    """Mean cross-entropy of every token's codes over all modelled layers."""
    logits = model(text, codes)
    target = codes[..., : model.config.num_quantizers].long()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
