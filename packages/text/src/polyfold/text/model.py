"""Transformers for text: the bidirectional DiT-style denoiser of masked diffusion and a causal LM.

Signatures (the contract with :mod:`polyfold.core.discrete` and the EDLM / S^3 modules)::

    model = DiffusionTransformer(TransformerConfig(vocab_size=V, ...))
    logits = model(tokens, t, mask=None)     # tokens LongTensor (B, L), t float (B,) in [0, 1],
                                             # mask bool (B, L) True = valid -> logits (B, L, V)
    ar = CausalTransformer(TransformerConfig(vocab_size=V, ...))
    logits = ar(tokens, mask=None)           # logits[:, i] predicts tokens[:, i + 1]

The third positional argument of :class:`DiffusionTransformer` is the padding mask, so the model
*is* a core :data:`~polyfold.core.discrete.LogitsModel` ``model(x_t, t, cond)`` with ``cond`` the
``(B, L)`` validity mask (or ``None``): pass ``cond=mask`` to the core loss and samplers.

Both share one block: pre-norm attention and MLP sublayers, each with DiT's adaptive LayerNorm
(``polyfold.core.ops.adaln_modulate``) and gated residual (``gated_residual``), rotary position
embeddings on queries and keys, and a key-padding mask (a padded key is never attended to, so
outputs at valid positions do not depend on what padded positions hold). The diffusion model
regresses its shift/scale/gate from a sinusoidal embedding of ``t``; the causal model has no time
and learns one constant modulation per block instead (a learned LayerNorm affine and gate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.export import register_model
from polyfold.core.ops import adaln_modulate, gated_residual
from polyfold.core.timesteps import sinusoidal_embedding

__all__ = [
    "MODEL_CLASSES",
    "CausalTransformer",
    "DiffusionTransformer",
    "TransformerConfig",
    "build_model",
]


@dataclass
class TransformerConfig:
    """Hyperparameters shared by both models (saved as JSON next to the weights)."""

    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    max_length: int = 256
    dropout: float = 0.0
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name}: expected an int >= 1, got {v!r}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise InputError(
                f"d_model: expected a multiple of n_heads={self.n_heads} with an even head size, "
                f"got {self.d_model}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout: expected a value in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _rotary_tables(
    length: int, dim: int, base: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    inv = 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * inv[None, :]
    return angles.cos(), angles.sin()  # (L, dim / 2)


def _apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[..., :h], x[..., h:]) of ``x (B, H, L, dim)`` by the position angles."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)


class Block(nn.Module):
    """Pre-norm transformer block with adaLN modulation and gated residuals."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        hidden = int(cfg.mlp_ratio * d)
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d)
        )
        self.dropout = cfg.dropout

    def forward(
        self, x: Tensor, mod: Tensor, attn_mask: Tensor, rope: tuple[Tensor, Tensor]
    ) -> Tensor:
        """``x (B, L, D)``, ``mod (B, 6D)``: shift/scale/gate of attention, then of the MLP."""
        b, length, d = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)
        h = adaln_modulate(x, shift_a, scale_a)
        q, k, v = self.qkv(h).view(b, length, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, L, dh)
        q, k = _apply_rotary(q, *rope), _apply_rotary(k, *rope)
        drop = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        att = att.transpose(1, 2).reshape(b, length, d)
        x = gated_residual(x, gate_a, F.dropout(self.proj(att), drop, self.training))
        h = adaln_modulate(x, shift_m, scale_m)
        return gated_residual(x, gate_m, F.dropout(self.mlp(h), drop, self.training))


class _Backbone(nn.Module):
    """Embedding, blocks and the modulated output layer; subclasses supply the conditioning."""

    causal: bool = False

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = TransformerConfig(**config)
        self.cfg = config
        d = config.d_model
        self.embed = nn.Embedding(config.vocab_size, d)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.out = nn.Linear(d, config.vocab_size)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def config(self) -> dict[str, Any]:
        """The JSON hyperparameters (the trainer saves them with each checkpoint)."""
        return self.cfg.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _Backbone:
        """Build from :attr:`config` (how :func:`polyfold.core.export.load_model` rebuilds it)."""
        return cls(TransformerConfig(**config))

    def _check(self, tokens: Tensor, mask: Tensor | None) -> Tensor:
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise InputError(f"tokens: expected a LongTensor (B, L), got {got}")
        if tokens.shape[1] > self.cfg.max_length:
            raise InputError(
                f"tokens: sequence length {tokens.shape[1]} exceeds the model's context "
                f"max_length={self.cfg.max_length}"
            )
        if mask is None:
            return torch.ones_like(tokens, dtype=torch.bool)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != tokens.shape:
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else mask
            raise InputError(
                f"mask: expected a bool tensor of shape {tuple(tokens.shape)}, got {got}"
            )
        return mask

    def _attn_mask(self, valid: Tensor) -> Tensor:
        """``(B, 1, L, L)`` bool, True = may attend: valid keys (plus itself, so no row is empty),
        and for the causal model only keys at or before the query."""
        length = valid.shape[1]
        eye = torch.eye(length, dtype=torch.bool, device=valid.device)
        allowed = valid[:, None, None, :] | eye
        if self.causal:
            allowed = allowed & torch.ones_like(eye).tril()
        return allowed

    def _run(self, tokens: Tensor, cond: Tensor, valid: Tensor) -> Tensor:
        """``cond (B, 8D)``: 6D per block (through ``block_mod``) and 2D for the output layer."""
        x = self.embed(tokens)
        rope = _rotary_tables(
            tokens.shape[1], self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base, x.device
        )
        attn_mask = self._attn_mask(valid)
        for i, block in enumerate(self.blocks):
            x = block(x, self.block_mod(cond, i, x.shape[0]), attn_mask, rope)
        shift, scale = self.final_mod(cond, x.shape[0]).chunk(2, dim=-1)
        return self.out(adaln_modulate(x, shift, scale))

    def block_mod(self, cond: Tensor, i: int, batch: int) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def final_mod(self, cond: Tensor, batch: int) -> Tensor:  # pragma: no cover
        raise NotImplementedError


@register_model("text.DiffusionTransformer")
class DiffusionTransformer(_Backbone):
    """Bidirectional DiT: ``model(tokens, t, mask=None) -> logits (B, L, V)``.

    A core masked-diffusion denoiser with ``cond`` the padding mask. Each block's adaLN
    shift/scale/gate is a zero-initialised linear map of the time embedding (adaLN-Zero).
    """

    causal = False

    def __init__(self, config: TransformerConfig | dict[str, Any]) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        d = self.cfg.d_model
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d), nn.SiLU())
        self.mods = nn.ModuleList(nn.Linear(d, 6 * d) for _ in range(self.cfg.n_layers))
        self.final = nn.Linear(d, 2 * d)
        for lin in [*self.mods, self.final]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def block_mod(self, cond: Tensor, i: int, batch: int) -> Tensor:
        return self.mods[i](cond)

    def final_mod(self, cond: Tensor, batch: int) -> Tensor:
        return self.final(cond)

    def forward(self, tokens: Tensor, t: Tensor, mask: Tensor | None = None) -> Tensor:
        valid = self._check(tokens, mask)
        if not isinstance(t, Tensor) or t.shape != (tokens.shape[0],):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise InputError(f"t: expected a float tensor of shape ({tokens.shape[0]},), got {got}")
        cond = self.time_mlp(sinusoidal_embedding(t, self.cfg.d_model, scale=1000.0))
        return self._run(tokens, cond, valid)


@register_model("text.CausalTransformer")
class CausalTransformer(_Backbone):
    """Causal LM on the same blocks: ``model(tokens, mask=None) -> logits (B, L, V)`` where
    ``logits[:, i]`` is the distribution of ``tokens[:, i + 1]``. No time conditioning: one
    learned constant modulation per block (initialised to the identity LayerNorm and gate 1).
    """

    causal = True

    def __init__(self, config: TransformerConfig | dict[str, Any]) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        d = self.cfg.d_model
        # (shift, scale, gate) x 2: zeros with gates 1 -> a plain pre-norm transformer at init
        init = torch.zeros(self.cfg.n_layers, 6 * d)
        init[:, 2 * d : 3 * d] = 1.0
        init[:, 5 * d :] = 1.0
        self.mods = nn.Parameter(init)
        self.final = nn.Parameter(torch.zeros(2 * d))
        nn.init.normal_(self.out.weight, std=0.02)

    def block_mod(self, cond: Tensor, i: int, batch: int) -> Tensor:
        return self.mods[i].expand(batch, -1)

    def final_mod(self, cond: Tensor, batch: int) -> Tensor:
        return self.final.expand(batch, -1)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        valid = self._check(tokens, mask)
        return self._run(tokens, self.final, valid)

    def sequence_log_prob(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B,)`` sum of ``log p(tokens[i + 1] | tokens[:i + 1])`` over valid targets."""
        valid = self._check(tokens, mask)
        logp = self(tokens, valid)[:, :-1].float().log_softmax(-1)
        target = logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
        return (target * valid[:, 1:]).sum(dim=1)


MODEL_CLASSES: dict[str, type[_Backbone]] = {
    "DiffusionTransformer": DiffusionTransformer,
    "CausalTransformer": CausalTransformer,
}


def build_model(model_class: str, config: dict[str, Any]) -> _Backbone:
    """Rebuild a model from its class name and JSON hyperparameters."""
    name = model_class.rsplit(".", 1)[-1]
    if name not in MODEL_CLASSES:
        raise InputError(
            f"model_class: expected one of {', '.join(MODEL_CLASSES)}, got {model_class!r}"
        )
    try:
        return MODEL_CLASSES[name](TransformerConfig(**config))
    except TypeError as err:
        raise InputError(f"model_config: {err}") from None
