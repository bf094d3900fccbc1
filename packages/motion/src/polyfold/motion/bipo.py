"""BiPO: part tokenizers and a bidirectional, part-occluded autoregressive transformer.

- :class:`PartTokenizer`: five VQ-VAEs (:class:`~polyfold.motion.tokenizer.MotionTokenizer`
  with one codebook each), one per body part of :data:`BIPO_PARTS`, on that part's feature
  columns (:func:`bipo_part_columns`: the four limbs' joint columns, and the rest -- root track,
  root, chest and neck -- for ``torso``; the five sets partition the feature vector). A time
  step is five codes; decoding stitches the parts back into whole feature rows.
- :class:`BiPOTransformer`: ``[text + direction, x_0, ..., x_{n-1}]`` through a causal
  transformer, ``x_i`` the sum of the part embeddings of step ``i``. Position ``i`` predicts
  the five codes of step ``i`` (one head per part) and whether the sequence ends there (so no
  ground-truth length is needed). The same network runs forward in time and backward (the
  time-reversed sequence, a learned direction vector telling which); training sums both
  directions' losses. Partial occlusion: during training each part's tokens are hidden from
  the context (a learned per-part "occluded" embedding) with probability ``p``, so a part is
  predicted without leaning on the others.
- :func:`sample_part_tokens` generates until the end token (or a given length), optionally
  keeping the best of several forward samples by the backward direction's likelihood;
  :func:`edit_part_tokens` regenerates only the unfixed (step, part) tokens, copying the fixed
  ones, forward in time or -- when the fixed frames are a suffix -- backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.export import register_model
from polyfold.motion.edit import part_columns
from polyfold.motion.features import LAYOUT
from polyfold.motion.mogo import CausalBlock
from polyfold.motion.tokenizer import MotionTokenizer, tokenizer_loss

__all__ = [
    "BIPO_PARTS",
    "BiPOConfig",
    "BiPOTransformer",
    "PartTokenizer",
    "backward_log_likelihood",
    "bipo_loss",
    "bipo_part_columns",
    "edit_part_tokens",
    "part_mask",
    "part_tokenizer_loss",
    "sample_part_tokens",
]

BIPO_PARTS = ("torso", "left_arm", "right_arm", "left_leg", "right_leg")
"""BiPO's body parts; ``torso`` carries the root track, the root joint, chest and neck."""


@cache
def bipo_part_columns() -> tuple[np.ndarray, ...]:
    """Sorted feature columns of each part of :data:`BIPO_PARTS` (a partition of the
    ``LAYOUT.dim`` columns)."""
    limbs = [part_columns([p]) for p in BIPO_PARTS[1:]]
    torso = np.setdiff1d(np.arange(LAYOUT.dim), np.concatenate(limbs))
    return (torso, *limbs)


def part_mask(parts: Sequence[str]) -> np.ndarray:
    """Boolean ``(5,)`` mask of ``parts`` (names of :data:`BIPO_PARTS`)."""
    if isinstance(parts, str) or not parts:
        raise InputError(f"parts: expected a non-empty list of part names, got {parts!r}")
    bad = [p for p in parts if p not in BIPO_PARTS]
    if bad:
        raise InputError(f"part {bad[0]!r}: expected one of {', '.join(BIPO_PARTS)}")
    return np.array([p in parts for p in BIPO_PARTS])


@register_model("motion.PartTokenizer")
class PartTokenizer(nn.Module):
    """One single-codebook VQ-VAE per part; ``encode (B, L, D) -> (B, L / factor, 5)`` and
    ``decode`` back (normalised features)."""

    def __init__(
        self,
        feature_dim: int = 155,
        width: int = 32,
        code_dim: int = 32,
        num_codes: int = 128,
        downsample: int = 2,
        blocks: int = 1,
        commitment: float = 0.02,
    ) -> None:
        super().__init__()
        if feature_dim != LAYOUT.dim:
            raise InputError(
                f"part tokenizer feature_dim: expected {LAYOUT.dim}, got {feature_dim}"
            )
        self.config = {"feature_dim": feature_dim, "width": width, "code_dim": code_dim,
                       "num_codes": num_codes, "downsample": downsample, "blocks": blocks,
                       "commitment": commitment}  # fmt: skip
        self.columns = [torch.from_numpy(c) for c in bipo_part_columns()]
        shared = {"width": width, "code_dim": code_dim, "num_codes": num_codes,
                  "num_quantizers": 1, "downsample": downsample, "blocks": blocks,
                  "quantizer_dropout": 0.0, "commitment": commitment}  # fmt: skip
        self.parts = nn.ModuleList(
            MotionTokenizer(feature_dim=len(c), root_dims=4 if i == 0 else 0, **shared)
            for i, c in enumerate(self.columns)
        )

    def model_config(self) -> dict[str, object]:
        return dict(self.config)

    @property
    def num_codes(self) -> int:
        return int(self.config["num_codes"])

    @property
    def factor(self) -> int:
        return int(2 ** int(self.config["downsample"]))

    def _pairs(self) -> list[tuple[MotionTokenizer, Tensor]]:
        """Each part's tokenizer with its feature columns."""
        return list(zip(self.parts, self.columns, strict=True))  # type: ignore[arg-type]

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != LAYOUT.dim or x.shape[1] % self.factor:
            raise InputError(
                f"part tokenizer input: expected (B, L, {LAYOUT.dim}) with L a multiple of "
                f"{self.factor}, got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Part codes ``(B, L / factor, 5)`` of normalised features ``x (B, L, D)``."""
        self._check(x)
        return torch.cat([t.encode(x[..., c]) for t, c in self._pairs()], dim=-1)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Normalised features ``(B, n * factor, D)`` of part codes ``(B, n, 5)``, each part's
        decoder writing its own columns."""
        if codes.ndim != 3 or codes.shape[-1] != len(BIPO_PARTS):
            raise InputError(f"codes: expected (B, n, {len(BIPO_PARTS)}), got {tuple(codes.shape)}")
        b, n, _ = codes.shape
        out = torch.zeros(b, n * self.factor, LAYOUT.dim)
        for i, (t, c) in enumerate(self._pairs()):
            out[..., c] = t.decode(codes[..., i : i + 1].long())
        return out


def part_tokenizer_loss(model: PartTokenizer, x: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Sum over parts of :func:`~polyfold.motion.tokenizer.tokenizer_loss` on each part's
    columns, with the parts' mean statistics."""
    total = x.new_zeros(())
    stats: dict[str, float] = {}
    for t, c in model._pairs():
        loss, parts = tokenizer_loss(t, x[..., c])
        total = total + loss
        for k, v in parts.items():
            stats[k] = stats.get(k, 0.0) + v / len(model.parts)
    return total, stats


@dataclass(frozen=True)
class BiPOConfig:
    """``max_tokens`` the longest sequence (the training window's steps)."""

    num_codes: int = 128
    text_dim: int = 384
    width: int = 64
    heads: int = 4
    layers: int = 2
    max_tokens: int = 12
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("num_codes", "text_dim", "width", "heads", "layers", "max_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"bipo {name}: expected >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise InputError(f"bipo width {self.width}: expected a multiple of heads {self.heads}")


@register_model("motion.BiPOTransformer")
class BiPOTransformer(nn.Module):
    """``forward(text (B, text_dim), codes (B, n, 5), backward, occluded (B, 5)) ->
    (logits (B, n + 1, 5, K), end logits (B, n + 1))``: position ``i`` sees the caption, the
    direction and steps ``< i`` (in the direction's order) and predicts step ``i``'s codes and
    whether the sequence ends before step ``i``."""

    def __init__(self, **config: object) -> None:
        super().__init__()
        cfg = BiPOConfig(**config)  # type: ignore[arg-type]
        self.config = cfg
        w, k, p = cfg.width, cfg.num_codes, len(BIPO_PARTS)
        self.text = nn.Linear(cfg.text_dim, w)
        self.direction = nn.Parameter(torch.randn(2, w) * 0.02)
        self.codes = nn.Embedding(p * k, w)
        self.occluded = nn.Parameter(torch.randn(p, w) * 0.02)
        self.position = nn.Parameter(torch.randn(cfg.max_tokens + 1, w) * 0.02)
        self.blocks = nn.ModuleList(
            CausalBlock(i, w, cfg.heads, cfg.dropout) for i in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(w)
        self.heads = nn.Linear(w, p * k)
        self.end = nn.Linear(w, 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.register_buffer("offsets", torch.arange(p) * k, persistent=False)

    offsets: Tensor

    def model_config(self) -> dict[str, object]:
        return asdict(self.config)

    def _check_codes(self, codes: Tensor) -> Tensor:
        cfg = self.config
        if codes.ndim != 3 or codes.shape[-1] != len(BIPO_PARTS) or codes.shape[1] > cfg.max_tokens:
            raise InputError(
                f"codes: expected (B, n <= {cfg.max_tokens}, {len(BIPO_PARTS)}) part codes, got "
                f"{tuple(codes.shape)}"
            )
        codes = codes.long()
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= cfg.num_codes):
            raise InputError(f"codes: expected integers in [0, {cfg.num_codes})")
        return codes

    def forward(
        self,
        text: Tensor,
        codes: Tensor,
        backward: bool | Tensor = False,
        occluded: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        cfg = self.config
        codes = self._check_codes(codes)
        if text.ndim != 2 or text.shape[1] != cfg.text_dim:
            raise InputError(
                f"text: expected (B, {cfg.text_dim}) caption vectors, got {tuple(text.shape)}"
            )
        b, n, p = codes.shape
        emb = self.codes(codes + self.offsets)  # (B, n, 5, w)
        if occluded is not None:
            hide = occluded.bool()[:, None, :, None]
            emb = torch.where(hide, self.occluded[None, None].expand_as(emb), emb)
        back = torch.as_tensor(backward, dtype=torch.long).expand(b)
        prefix = self.text(text.float()) + self.direction[back]
        h = torch.cat([prefix[:, None], emb.sum(2)], dim=1)
        h = self.drop(h + self.position[: n + 1])
        for block in self.blocks:
            h = block(h, None)
        h = self.norm(h)
        return self.heads(h).view(b, n + 1, p, cfg.num_codes), self.end(h)[..., 0]


def _crop(codes: Tensor, start: Tensor, length: Tensor, backward: bool) -> Tensor:
    """Steps ``start .. start + length`` of ``codes (B, n, 5)`` (reversed if ``backward``),
    left-aligned; positions past ``length`` repeat the last step (never seen by valid ones)."""
    j = torch.arange(codes.shape[1])[None]
    last = (length - 1)[:, None]
    j = torch.minimum(j, last)
    idx = start[:, None] + (last - j if backward else j)
    return codes.gather(1, idx[..., None].expand(-1, -1, codes.shape[2]))


def bipo_loss(
    model: BiPOTransformer,
    text: Tensor,
    codes: Tensor,
    g: torch.Generator | None = None,
    p_occlude: float = 0.0,
    min_tokens: int = 4,
) -> Tensor:
    """Cross-entropy of every part's code plus the end-token BCE, both directions, on random
    crops (``min_tokens`` .. ``n`` steps) with each part occluded with probability
    ``p_occlude``."""
    b, n, p = codes.shape
    min_tokens = min(min_tokens, n)
    length = torch.randint(min_tokens, n + 1, (b,), generator=g)
    start = (torch.rand(b, generator=g) * (n - length + 1)).long()
    pos = torch.arange(n + 1)[None]
    valid = pos < length[:, None]  # positions predicting a step
    seen = pos <= length[:, None]  # positions predicting "end" or "not yet"
    end_target = (pos == length[:, None]).float()
    total = codes.new_zeros((), dtype=torch.float32)
    for backward in (False, True):
        crop = _crop(codes.long(), start, length, backward)
        occluded = torch.rand(b, p, generator=g) < p_occlude
        logits, end = model(text, crop, backward, occluded)
        ce = F.cross_entropy(logits[:, :n].reshape(-1, logits.shape[-1]), crop.reshape(-1),
                             reduction="none").view(b, n, p).mean(-1)  # fmt: skip
        total = total + (ce * valid[:, :n]).sum() / valid.sum()
        bce = F.binary_cross_entropy_with_logits(end, end_target, reduction="none")
        total = total + (bce * seen).sum() / seen.sum()
    return total / 2


def _pick(logits: Tensor, g: torch.Generator, temperature: float) -> Tensor:
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits.float() / temperature).softmax(-1)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=g).view(
        probs.shape[:-1]
    )


@torch.no_grad()
def _generate(
    net: BiPOTransformer,
    text: Tensor,
    given: Tensor | None,
    fixed: Tensor | None,
    length: int | None,
    backward: bool,
    seed: int,
    temperature: float,
) -> tuple[Tensor, Tensor]:
    """Codes ``(B, max_tokens, 5)`` and lengths ``(B,)``; fixed tokens copied from ``given``."""
    cfg = net.config
    b = text.shape[0]
    g = torch.Generator().manual_seed(seed)
    codes = torch.zeros(b, 0, len(BIPO_PARTS), dtype=torch.long)
    lengths = torch.full((b,), length or cfg.max_tokens, dtype=torch.long)
    stopped = torch.zeros(b, dtype=torch.bool)
    for i in range(length or cfg.max_tokens):
        logits, end = net(text, codes, backward)
        step = _pick(logits[:, -1], g, temperature)
        if given is not None and fixed is not None:
            step = torch.where(fixed[:, i], given[:, i], step)
        if length is None and i > 0:
            ends = (torch.rand(b, generator=g) < end[:, -1].sigmoid()) & ~stopped
            lengths[ends] = i
            stopped |= ends
            if bool(stopped.all()):
                break
        codes = torch.cat([codes, step[:, None]], dim=1)
    pad = cfg.max_tokens - codes.shape[1]
    if length is None and pad:
        codes = torch.cat([codes, codes[:, -1:].expand(-1, pad, -1)], dim=1)
    return codes, lengths


@torch.no_grad()
def backward_log_likelihood(
    net: BiPOTransformer, text: Tensor, codes: Tensor, lengths: Tensor
) -> Tensor:
    """Log-probability ``(B,)`` of each sequence (its first ``lengths`` steps and its end)
    under the backward direction: every step scored given the steps after it."""
    b, n, _ = codes.shape
    rev = _crop(net._check_codes(codes), torch.zeros(b, dtype=torch.long), lengths, True)
    logits, end = net(text, rev, True)
    pos = torch.arange(n + 1)[None]
    codes_lp = logits[:, :n].log_softmax(-1).gather(-1, rev[..., None])[..., 0].sum(-1)
    end_lp = torch.where(pos == lengths[:, None], F.logsigmoid(end), F.logsigmoid(-end))
    total: Tensor = (codes_lp * (pos[:, :n] < lengths[:, None])).sum(1)
    return total + (end_lp * (pos <= lengths[:, None])).sum(1)


def sample_part_tokens(
    net: BiPOTransformer,
    text: Tensor,
    length: int | None = None,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    candidates: int = 1,
) -> tuple[Tensor, Tensor]:
    """Part codes and lengths for caption vectors ``text (B, text_dim)``, sampled forward in
    time. Without ``length`` each sequence stops where the model samples its end token (at
    most ``max_tokens``; codes past a sequence's length repeat its last step). With
    ``candidates > 1`` that many sequences are sampled per caption and the one the backward
    direction finds likeliest per step (:func:`backward_log_likelihood`, each step against
    its future, over the length + 1 terms: a plain sum would favour short sequences) is kept,
    so both directions shape the result."""
    if length is not None and not 1 <= length <= net.config.max_tokens:
        raise InputError(f"length: expected 1..{net.config.max_tokens} tokens, got {length}")
    if candidates < 1:
        raise InputError(f"candidates: expected >= 1, got {candidates}")
    net.eval()
    b = text.shape[0]
    many = text.repeat_interleave(candidates, dim=0)
    codes, lengths = _generate(net, many, None, None, length, False, seed, temperature)
    if candidates == 1:
        return codes, lengths
    per_step = backward_log_likelihood(net, many, codes, lengths) / (lengths + 1)
    score = per_step.view(b, candidates)
    best = torch.arange(b) * candidates + score.argmax(1)
    return codes[best], lengths[best]


def edit_part_tokens(
    net: BiPOTransformer,
    text: Tensor,
    codes: Tensor,
    fixed: Tensor,
    *,
    seed: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """``codes (B, n, 5)`` with the tokens where ``fixed (B, n, 5)`` is false regenerated under
    ``text`` and the fixed ones kept exactly. If every fixed step lies after every free one
    (a fixed suffix) the backward direction generates towards it; otherwise forward."""
    codes = net._check_codes(codes)
    if fixed.shape != codes.shape:
        raise InputError(f"fixed: expected shape {tuple(codes.shape)}, got {tuple(fixed.shape)}")
    fixed = fixed.bool()
    n = codes.shape[1]
    steps_fixed = fixed.all(-1).all(0)
    free = ~steps_fixed
    backward = bool(free.any() and steps_fixed.any()) and int(free.nonzero().max()) < int(
        steps_fixed.nonzero().min()
    )
    net.eval()
    if backward:
        out, _ = _generate(net, text, codes.flip(1), fixed.flip(1), n, True, seed, temperature)
        return out.flip(1)
    return _generate(net, text, codes, fixed, n, False, seed, temperature)[0]
