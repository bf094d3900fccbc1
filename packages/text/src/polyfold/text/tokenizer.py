"""Tokenizers: character level, and byte-level BPE trained locally with ``tokenizers``.

Both share one interface::

    tok.encode(text) -> list[int]         tok.decode(ids) -> str
    tok.vocab_size, tok.mask_id, tok.pad_id, tok.bos_id, tok.eos_id, tok.null_id
    tok.save(path)                        load_tokenizer(path) (either kind, from its JSON)

Special tokens (ids 0-5 in both): ``[PAD]`` padding, ``[MASK]`` the absorbing state of masked
diffusion, ``[BOS]``/``[EOS]`` sequence ends (the AR model reads ``[BOS]`` first), ``[UNK]``
characters outside a character vocabulary, ``[NULL]`` an "empty" filler (S^3 value slots).
``decode`` drops ``[PAD]``, ``[BOS]``, ``[EOS]`` and ``[NULL]`` and shows ``[MASK]`` as
``mask_char`` (``"_"`` by default; ``None`` drops it too). ``decode(encode(s)) == s`` for every
string whose characters are in the vocabulary (every string for BPE, which is byte level).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from polyfold.core.errors import InputError

__all__ = [
    "SPECIAL_TOKENS",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "tokenizer_from_json",
]

SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[BOS]", "[EOS]", "[UNK]", "[NULL]")
PAD, MASK, BOS, EOS, UNK, NULL = range(len(SPECIAL_TOKENS))
_DROPPED = frozenset({PAD, BOS, EOS, NULL})


class Tokenizer(Protocol):
    """What models, samplers and metrics need from a tokenizer."""

    vocab_size: int
    pad_id: int
    mask_id: int
    bos_id: int
    eos_id: int
    null_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int], *, mask_char: str | None = "_") -> str: ...

    def save(self, path: str | Path) -> Path: ...


class _Specials:
    pad_id, mask_id, bos_id, eos_id, unk_id, null_id = PAD, MASK, BOS, EOS, UNK, NULL
    special_tokens = SPECIAL_TOKENS


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InputError(f"text: expected a str, got {type(text).__name__}")
    return text


def _check_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise InputError(f"ids: expected token ids in [0, {vocab_size}), got {bad[0]}")
    return out


class CharTokenizer(_Specials):
    """One id per character: the six special tokens, then ``chars`` in the given order."""

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars) or len(set(chars)) != len(
            chars
        ):
            raise InputError("chars: expected distinct single characters")
        self.chars = chars
        self._index = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(chars)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        """The sorted set of characters of ``texts``."""
        seen: set[str] = set()
        for text in texts:
            seen.update(_check_text(text))
        if not seen:
            raise InputError("texts: expected at least one non-empty text")
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self._index.get(c, UNK) for c in _check_text(text)]

    def decode(self, ids: Sequence[int], *, mask_char: str | None = "_") -> str:
        parts = []
        n = len(SPECIAL_TOKENS)
        for i in _check_ids(ids, self.vocab_size):
            if i >= n:
                parts.append(self.chars[i - n])
            elif i == MASK and mask_char is not None:
                parts.append(mask_char)
            elif i == UNK:
                parts.append("\ufffd")
        return "".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "polyfold-char",
            "special_tokens": list(SPECIAL_TOKENS),
            "chars": self.chars,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return load_tokenizer(path)  # type: ignore[return-value]


class BPETokenizer(_Specials):
    """Byte-level BPE (GPT-2 style pre-tokenisation) from the ``tokenizers`` library."""

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        for i, tok in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(tok) != i:
                raise InputError(f"tokenizer: expected special token {tok} at id {i}")
        self._tok = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 512) -> BPETokenizer:
        """Train a byte-level BPE of ``vocab_size`` tokens (specials included) on ``texts``."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 300:
            raise InputError(
                f"vocab_size: expected an int >= 300 (256 bytes + merges), got {vocab_size!r}"
            )
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator((_check_text(t) for t in texts), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(_check_text(text), add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], *, mask_char: str | None = "_") -> str:
        out: list[str] = []
        run: list[int] = []
        for i in _check_ids(ids, self.vocab_size):
            if i < len(SPECIAL_TOKENS):
                if run:
                    out.append(self._tok.decode(run, skip_special_tokens=False))
                    run = []
                if i == MASK and mask_char is not None:
                    out.append(mask_char)
                elif i == UNK:
                    out.append("\ufffd")
            else:
                run.append(i)
        if run:
            out.append(self._tok.decode(run, skip_special_tokens=False))
        return "".join(out)

    def to_json(self) -> dict[str, Any]:
        """The ``tokenizers`` JSON of this tokenizer, as a dict."""
        data: dict[str, Any] = json.loads(self._tok.to_str())
        return data

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        self._tok.save(str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return load_tokenizer(path)  # type: ignore[return-value]


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Read a tokenizer saved by either class (JSON only)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"tokenizer: cannot read {path} as JSON: {err}") from None
    return tokenizer_from_json(data, source=str(path))


def tokenizer_from_json(data: object, *, source: str = "tokenizer") -> CharTokenizer | BPETokenizer:
    """A tokenizer from its ``to_json()`` dict (either kind); ``source`` names it in errors."""
    if isinstance(data, dict) and data.get("type") == "polyfold-char":
        if list(data.get("special_tokens", [])) != list(SPECIAL_TOKENS):
            raise InputError(f"tokenizer: {source} has special tokens {data.get('special_tokens')}")
        return CharTokenizer(data["chars"])
    if isinstance(data, dict) and "model" in data:
        from tokenizers import Tokenizer as HFTokenizer

        try:
            return BPETokenizer(HFTokenizer.from_str(json.dumps(data)))
        except Exception as err:  # tokenizers raises its own exception types
            raise InputError(f"tokenizer: {source} is not a tokenizers JSON file: {err}") from None
    raise InputError(f"tokenizer: {source} is neither a character nor a BPE tokenizer")
