"""Shared fixtures of the motion tests: a tiny untrained MMM on the shipped tokenizer with a
hash-based stand-in for MiniLM (no encoder load)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from polyfold.motion.mmm import MMM, MaskedMotionTransformer
from polyfold.motion.shipped import shipped_path
from polyfold.motion.train_tokenizer import load_tokenizer


class HashEncoder:
    """A deterministic stand-in for MiniLM: per-word vectors from a hash of the word."""

    dim = token_dim = 8

    def _word(self, w: str) -> torch.Tensor:
        seed = int(hashlib.sha256(w.encode()).hexdigest()[:8], 16)
        return torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))

    def encode_tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        words = [t.split() for t in texts]
        n = max(len(w) for w in words)
        out, mask = torch.zeros(len(texts), n, self.dim), torch.zeros(len(texts), n, dtype=bool)
        for i, ws in enumerate(words):
            for j, w in enumerate(ws):
                out[i, j], mask[i, j] = self._word(w), True
        return out, mask

    def encode(self, texts: list[str]) -> torch.Tensor:
        x, m = self.encode_tokens(texts)
        return torch.nn.functional.normalize(x.sum(1) / m.sum(1, keepdim=True), dim=-1)


def tiny_mmm() -> MMM:
    torch.manual_seed(0)
    tok, mean, std, _ = load_tokenizer(shipped_path("tokenizer"))
    tok.eval()
    net = MaskedMotionTransformer(num_codes=tok.config.num_codes, text_dim=8, token_dim=8,
                                  width=16, layers=1, heads=2).eval()  # fmt: skip
    return MMM(net, tok, torch.from_numpy(mean).float(), torch.from_numpy(std).float(),
               {"sample_steps": 4, "temperature": 1.0}, encoder=HashEncoder())  # fmt: skip


@pytest.fixture(scope="module")
def mmm() -> MMM:
    return tiny_mmm()


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder()
