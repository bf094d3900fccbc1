"""A loaded BiPO model: text to motion with or without a length, and body-part / frame edits.

    from polyfold.motion.bipo_generate import load_bipo
    m = load_bipo(shipped_path("bipo"))
    feats = m.sample(text, 48)                  # (N, 48, D) raw features
    feats, frames = m.generate_free(text)       # lengths from the model's end token
    edited = m.edit_parts(features, text, ["left_arm", "right_arm"])

:meth:`BiPOModel.edit_parts` regenerates the chosen parts' tokens with every other part's
tokens fixed; the output keeps the given feature columns of the parts that were not edited
exactly (each part has its own decoder, so nothing couples them), and takes the edited parts'
columns from their decoded tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import load_model, read_card
from polyfold.motion.bipo import (
    BiPOTransformer,
    PartTokenizer,
    bipo_part_columns,
    edit_part_tokens,
    part_mask,
    sample_part_tokens,
)

__all__ = ["BiPOModel", "is_bipo_file", "load_bipo"]


@dataclass
class BiPOModel:
    """The BiPO transformer with the part tokenizer whose codes it models."""

    net: BiPOTransformer
    tokenizer: PartTokenizer
    mean: np.ndarray
    std: np.ndarray
    card: dict[str, Any]
    kind: str = "bipo"

    def _decode(self, codes: torch.Tensor) -> np.ndarray:
        x = self.tokenizer.decode(codes).numpy().astype(np.float64)
        out: np.ndarray = (x * self.std + self.mean).astype(np.float32)
        return out

    @property
    def candidates(self) -> int:
        """Forward samples per caption ranked by the backward direction (card, default 1)."""
        return int(self.card.get("candidates", 1))

    def _text(self, text: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(text, dtype=np.float32))  # a copy: any strides

    def sample(
        self, text: np.ndarray, length: int, *, steps: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """Raw feature windows ``(N, length, D)`` (``length`` frames up to the context;
        ``steps`` is unused: one network call per token)."""
        del steps
        check_int("length", length, 1)
        tokens = math.ceil(length / self.tokenizer.factor)
        most = self.net.config.max_tokens * self.tokenizer.factor
        if tokens > self.net.config.max_tokens:
            raise InputError(f"length: BiPO generates at most {most} frames, got {length}")
        temp = self.card.get("temperature", 1.0)
        codes, _ = sample_part_tokens(self.net, self._text(text), tokens, seed=seed,
                                      temperature=temp, candidates=self.candidates)  # fmt: skip
        return self._decode(codes)[:, :length]

    def generate_free(self, text: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(features (N, max frames, D), frames (N,))``: each sequence's length comes from
        the model's end token (rows past it repeat the last token's decoding)."""
        temp = self.card.get("temperature", 1.0)
        codes, lengths = sample_part_tokens(
            self.net, self._text(text), seed=seed, temperature=temp, candidates=self.candidates
        )
        return self._decode(codes), lengths.numpy() * self.tokenizer.factor

    def edit_parts(
        self,
        features: np.ndarray,
        text: np.ndarray,
        parts: Sequence[str],
        *,
        frames: tuple[int, int] | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Raw windows ``features (N, L, D)`` with ``parts`` (names of
        :data:`~polyfold.motion.bipo.BIPO_PARTS`) regenerated under caption vectors ``text``,
        within ``frames = (start, end)`` only if given; every other column and frame is kept."""
        mask = torch.from_numpy(part_mask(parts))
        f = np.asarray(features, dtype=np.float32)
        factor = self.tokenizer.factor
        if f.ndim != 3 or f.shape[-1] != self.mean.shape[0] or f.shape[1] % factor:
            raise InputError(
                f"features: expected (N, L, {self.mean.shape[0]}) with L a multiple of {factor}, "
                f"got {f.shape}"
            )
        n = f.shape[1] // factor
        lo, hi = (0, f.shape[1]) if frames is None else frames
        if not 0 <= lo < hi <= f.shape[1]:
            raise InputError(f"frames: expected 0 <= start < end <= {f.shape[1]}, got {frames}")
        x = torch.from_numpy(((f - self.mean) / self.std).astype(np.float32))
        codes = self.tokenizer.encode(x)
        steps = torch.zeros(n, dtype=torch.bool)
        steps[lo // factor : math.ceil(hi / factor)] = True
        fixed = ~(steps[:, None] & mask[None]).expand(f.shape[0], -1, -1)
        new = edit_part_tokens(self.net, self._text(text), codes, fixed, seed=seed,
                               temperature=self.card.get("temperature", 1.0))  # fmt: skip
        decoded = self._decode(new)
        out = f.copy()
        cols = np.concatenate([c for c, m in zip(bipo_part_columns(), mask, strict=True) if m])
        out[:, lo:hi, cols] = decoded[:, lo:hi, cols]
        return out

    def edit_span(
        self,
        features: np.ndarray,
        text: np.ndarray,
        parts: Sequence[str],
        start: int,
        end: int,
        *,
        seed: int = 0,
    ) -> np.ndarray:
        """One motion's raw rows ``features (L, D)`` of any length with ``parts`` regenerated
        under the caption vector ``text (1, text_dim)`` in frames ``[start, end)``, which may
        span at most the model's window; the edit runs on the token-aligned window around the
        range (the last row repeated past the motion's end), and every other frame and column
        is kept."""
        f, length = self.tokenizer.factor, len(features)
        longest = self.net.config.max_tokens * f
        if not 0 <= start < end <= length:
            raise InputError(f"--start/--end: expected 0 <= start < end <= {length}, got "
                             f"{start}, {end}")  # fmt: skip
        a = start - start % f
        width = math.ceil((end - a) / f) * f
        if width > longest:
            raise InputError(
                f"--start/--end: BiPO edits a window of at most {longest} frames aligned to "
                f"{f}-frame steps; frames {start}-{end} need {width}"
            )
        out = np.array(features, dtype=np.float32)
        pad = np.repeat(out[-1:], max(0, a + width - length), axis=0)  # past the end: hold still
        window = np.concatenate([out, pad])[None, a : a + width]
        edited = self.edit_parts(window, text, parts, frames=(start - a, end - a), seed=seed)
        out[a : a + width] = edited[0, : min(width, length - a)]
        return out


def is_bipo_file(path: str | Path) -> bool:
    """Whether ``path`` (a model file pair) holds a BiPO model."""
    try:
        return bool(read_card(path).get("card", {}).get("kind") == "bipo")
    except (InputError, OSError, ValueError):
        return False


def load_bipo(path: str | Path) -> BiPOModel:
    """A file written by :func:`polyfold.motion.bipo_train.train_bipo`, with the part tokenizer
    its card names (a file pair in the same folder)."""
    from polyfold.motion.train_tokenizer import load_tokenizer

    loaded = load_model(path)
    card = dict(loaded.card)
    if card.get("kind") != "bipo":
        raise InputError(f"{path}: not a BiPO model file (kind {card.get('kind')!r})")
    tok_path = Path(path).parent / str(card.get("tokenizer", "part_tokenizer"))
    tok, mean, std, _ = load_tokenizer(tok_path)
    if card.get("tokenizer_sha256") not in (None, read_card(tok_path).get("weights_sha256")):
        raise InputError(f"{path}: trained on another part tokenizer than {tok_path}")
    if not isinstance(tok, PartTokenizer):
        raise InputError(f"{tok_path}: expected a BiPO part tokenizer")
    tok.eval()
    return BiPOModel(loaded.model.eval(), tok, mean, std, card)
