"""Tokenizer round trips, special tokens, save/load."""

from pathlib import Path

import pytest

from polyfold.core.errors import InputError
from polyfold.text.tokenizer import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
)

TEXTS = [
    "Now is the winter of our discontent\nMade glorious summer by this sun of York;",
    "To be, or not to be: that is the question:\n\tWhether 'tis nobler in the mind",
    'Caf\u00e9 \u2014 na\u00efve r\u00e9sum\u00e9 {"json": [1, 2.5, null]}',
]


def test_char_round_trip_and_specials(tmp_path: Path) -> None:
    tok = CharTokenizer.train(TEXTS)
    assert (tok.pad_id, tok.mask_id, tok.bos_id, tok.eos_id, tok.null_id) == (0, 1, 2, 3, 5)
    assert tok.vocab_size == len(SPECIAL_TOKENS) + len(set("".join(TEXTS)))
    for text in TEXTS:
        ids = tok.encode(text)
        assert len(ids) == len(text)
        assert min(ids) >= len(SPECIAL_TOKENS)
        assert tok.decode(ids) == text
    loaded = load_tokenizer(tok.save(tmp_path / "char.json"))
    assert isinstance(loaded, CharTokenizer)
    assert loaded.chars == tok.chars
    assert loaded.decode(loaded.encode(TEXTS[2])) == TEXTS[2]


def test_char_decode_specials_and_unknown() -> None:
    tok = CharTokenizer.train(["ab"])
    a, b = tok.encode("ab")
    assert tok.encode("z") == [tok.unk_id]
    ids = [tok.bos_id, a, tok.mask_id, b, tok.null_id, tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "a_b"
    assert tok.decode(ids, mask_char=None) == "ab"
    with pytest.raises(InputError, match="token ids"):
        tok.decode([tok.vocab_size])


def test_bpe_round_trip(tmp_path: Path) -> None:
    corpus = TEXTS * 20
    tok = BPETokenizer.train(corpus, vocab_size=320)
    assert tok.vocab_size <= 320
    assert (tok.pad_id, tok.mask_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    for text in [*TEXTS, "unseen words \u00fcber \U0001f600 zebra"]:  # byte level: no [UNK]
        ids = tok.encode(text)
        assert all(i >= len(SPECIAL_TOKENS) for i in ids)
        assert tok.decode(ids) == text
    # merges learned: the corpus compresses below one token per character
    assert len(tok.encode(TEXTS[0])) < len(TEXTS[0])
    loaded = load_tokenizer(tok.save(tmp_path / "bpe.json"))
    assert isinstance(loaded, BPETokenizer)
    assert loaded.encode(TEXTS[1]) == tok.encode(TEXTS[1])
    ids = tok.encode("to be")
    assert tok.decode([tok.bos_id, *ids, tok.mask_id, tok.eos_id]) == "to be_"


def test_load_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": 1}')
    with pytest.raises(InputError, match="neither a character nor a BPE"):
        load_tokenizer(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_tokenizer(tmp_path / "missing.json")
    with pytest.raises(InputError, match="distinct single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(InputError, match="vocab_size"):
        BPETokenizer.train(TEXTS, vocab_size=10)
