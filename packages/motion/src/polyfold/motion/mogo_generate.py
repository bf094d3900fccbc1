"""Generation with Mogo / T2M-GPT token models: KV-cached sampling, streaming, long sequences.

    from polyfold.motion.mogo_generate import load_token_model
    m = load_token_model(shipped_path("mogo"))
    feats = m.sample(text, 48)                          # (N, 48, D) raw features
    for chunk in m.stream([(text, 24)]):                # (N, k, D) frames while sampling runs
        ...

Sequences longer than the model's context (``max_positions``, the training window) slide it:
when it is full, the cache restarts from the caption and the last ``keep`` tokens (at positions
from 0 again, as in training). A list of ``(caption vectors, tokens)`` segments chains captions
the same way: each new caption restarts the context with the previous segment's last tokens,
so transitions continue the motion. Streaming decodes a token's frames as soon as the
tokenizer decoder's receptive field (:func:`decoder_reach`) to its right has been generated, on
a window wide enough that the frames equal those of decoding the whole sequence at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import load_model, read_card
from polyfold.motion.mogo import KVCache, MogoTransformer
from polyfold.motion.tokenizer import MotionTokenizer

__all__ = [
    "TOKEN_KINDS",
    "TokenMotionModel",
    "decoder_reach",
    "generate_tokens",
    "is_token_model_file",
    "load_token_model",
    "stream_joints",
]

TOKEN_KINDS = ("mogo", "t2m-gpt")
Segment = tuple[Tensor, int]  # caption vectors (B, text_dim), number of tokens


def _picker(g: torch.Generator, temperature: float, top_k: int):  # type: ignore[no-untyped-def]
    def pick(logits: Tensor, q: int) -> Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        z = logits.float() / temperature
        if 0 < top_k < z.shape[-1]:
            kth = z.topk(top_k, dim=-1).values[:, -1:]
            z = z.masked_fill(z < kth, float("-inf"))
        return torch.multinomial(z.softmax(-1), 1, generator=g)[:, 0]

    return pick


@torch.no_grad()
def generate_tokens(
    net: MogoTransformer,
    segments: Sequence[Segment],
    *,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    keep: int | None = None,
    use_cache: bool = True,
) -> Iterator[Tensor]:
    """Yield the codes ``(B, Q)`` of each new token, segment after segment. ``keep`` context
    tokens (default half the context) survive a slide or a caption change. ``use_cache=False``
    recomputes the whole context every step (the reference the cache must match)."""
    cfg = net.config
    keep = cfg.max_positions // 2 if keep is None else keep
    check_int("keep", keep, 0)
    if keep > cfg.max_positions - 2:
        raise InputError(f"keep: expected at most {cfg.max_positions - 2}, got {keep}")
    if not segments:
        raise InputError("segments: expected at least one (caption vectors, tokens) pair")
    pick = _picker(torch.Generator().manual_seed(seed), temperature, top_k)
    b, nq = segments[0][0].shape[0], cfg.num_quantizers
    history = torch.zeros(b, 0, nq, dtype=torch.long)
    for text, count in segments:
        check_int("tokens", count, 1)
        prefix = net.embed_text(text)
        cache: KVCache | None = None
        start = max(0, history.shape[1] - keep)  # the window: history[start:]
        for _ in range(count):
            window = history[:, start:]
            if window.shape[1] + 1 > cfg.max_positions:  # slide: restart from the last tokens
                start = history.shape[1] - keep
                window, cache = history[:, start:], None
            blank = torch.zeros(b, 1, nq, dtype=torch.long)
            if cache is None or not use_cache:
                cache = KVCache() if use_cache else None
                inputs = torch.cat([prefix, net.embed_tokens(window)], dim=1)
                codes = torch.cat([window, blank], dim=1)
            else:
                inputs, codes = net.embed_tokens(window[:, -1:]), blank
            _, codes = net.run(inputs, codes, cache, pick)
            history = torch.cat([history, codes[:, -1:]], dim=1)
            yield codes[:, -1]


def decoder_reach(tokenizer: MotionTokenizer) -> int:
    """Tokens on either side of a token that its decoded frames can depend on (an upper
    bound from the decoder's convolution sizes, dilations and upsampling)."""
    reach, per_token = 0.0, 1.0
    for m in tokenizer.decoder.modules():
        if isinstance(m, nn.Conv1d):
            reach += m.dilation[0] * (m.kernel_size[0] - 1) // 2 / per_token
        elif isinstance(m, nn.Upsample):
            per_token *= float(m.scale_factor)  # type: ignore[arg-type]
    return math.ceil(reach) + 1  # + 1: where a frame sits inside its token


@dataclass
class TokenMotionModel:
    """A Mogo or T2M-GPT transformer with the tokenizer whose codes it models."""

    net: MogoTransformer
    tokenizer: MotionTokenizer
    mean: np.ndarray
    std: np.ndarray
    kind: str
    card: dict[str, Any]

    def _decode(self, codes: Tensor) -> np.ndarray:
        x = self.tokenizer.decode(codes).numpy().astype(np.float64)
        return (x * self.std + self.mean).astype(np.float32)

    def _segments(self, text: np.ndarray | Tensor, length: int) -> list[Segment]:
        check_int("length", length, 1)
        c = torch.as_tensor(np.asarray(text, dtype=np.float32))
        return [(c, math.ceil(length / self.tokenizer.factor))]

    @torch.no_grad()
    def sample_tokens(self, segments: Sequence[Segment], seed: int = 0, **kw: Any) -> Tensor:
        """All codes ``(B, n, Q)`` of :func:`generate_tokens` (sampling settings from the card
        unless given)."""
        kw = {"temperature": self.card.get("temperature", 1.0),
              "top_k": self.card.get("top_k", 0), **kw}  # fmt: skip
        return torch.stack(list(generate_tokens(self.net, segments, seed=seed, **kw)), dim=1)

    def sample(
        self, text: np.ndarray, length: int, *, steps: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """Raw feature windows ``(N, length, D)`` for caption vectors ``text (N, text_dim)``
        (``steps`` is unused: one step per token)."""
        del steps
        return self.sample_segments(self._segments(text, length), seed=seed)[:, :length]

    def sample_segments(self, segments: Sequence[Segment], seed: int = 0) -> np.ndarray:
        """Raw features of chained segments, decoded in one piece."""
        return self._decode(self.sample_tokens(segments, seed))

    @torch.no_grad()
    def stream(self, segments: Sequence[Segment], seed: int = 0) -> Iterator[np.ndarray]:
        """Yield raw feature frames ``(B, k, D)`` while the tokens are being generated; their
        concatenation equals :meth:`sample_segments` with the same seed."""
        reach, f = decoder_reach(self.tokenizer), self.tokenizer.factor
        tokens: list[Tensor] = []
        done = 0

        def emit(end: int) -> np.ndarray:
            lo = max(0, done - reach)
            window = torch.stack(tokens[lo : min(len(tokens), end + reach)], dim=1)
            return self._decode(window)[:, (done - lo) * f : (end - lo) * f]

        kw = {"temperature": self.card.get("temperature", 1.0), "top_k": self.card.get("top_k", 0)}
        for codes in generate_tokens(self.net, segments, seed=seed, **kw):
            tokens.append(codes)
            if len(tokens) - reach > done:
                yield emit(len(tokens) - reach)
                done = len(tokens) - reach
        if done < len(tokens):
            yield emit(len(tokens))


def is_token_model_file(path: str | Path) -> bool:
    """Whether ``path`` (a model file pair) holds a Mogo / T2M-GPT model."""
    try:
        return read_card(path).get("card", {}).get("kind") in TOKEN_KINDS
    except (InputError, OSError, ValueError):
        return False


def load_token_model(path: str | Path) -> TokenMotionModel:
    """A file written by :func:`polyfold.motion.mogo_train.train_token_model`, with the
    tokenizer its card names (``"shipped"`` or a model file)."""
    from polyfold.motion.shipped import shipped_path
    from polyfold.motion.train_tokenizer import load_tokenizer

    loaded = load_model(path)
    card = dict(loaded.card)
    if card.get("kind") not in TOKEN_KINDS:
        raise InputError(f"{path}: not a Mogo / T2M-GPT model file (kind {card.get('kind')!r})")
    source = card.get("tokenizer", "shipped")
    tok_path = shipped_path("tokenizer") if source == "shipped" else Path(source)
    tok, mean, std, _ = load_tokenizer(tok_path)
    sha = read_card(tok_path).get("weights_sha256")
    if card.get("tokenizer_sha256") not in (None, sha):
        raise InputError(f"{path}: trained on another tokenizer than {tok_path} (sha256 differs)")
    tok.eval()
    return TokenMotionModel(loaded.model, tok, mean, std, card["kind"], card)


def stream_joints(
    model: TokenMotionModel, captions: Sequence[str], frames: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """World joint positions ``(k, J, 3)`` of one motion, ``frames`` per caption (chained),
    yielded as the frames are decoded (the root track integrates across chunks exactly)."""
    from polyfold.motion.features import joints_from_features
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    if isinstance(captions, str) or not captions:
        raise InputError("captions: expected a non-empty list of captions")
    check_int("frames", frames, 1)
    tokens = math.ceil(frames / model.tokenizer.factor)
    vectors = torch.from_numpy(encode_captions(load_text_encoder(), list(captions)))
    segments = [(vectors[i : i + 1], tokens) for i in range(len(captions))]
    features = np.zeros((0, model.mean.shape[0]))
    for chunk in model.stream(segments, seed=seed):
        features = np.concatenate([features, chunk[0]])
        yield joints_from_features(features)[-chunk.shape[1] :]
