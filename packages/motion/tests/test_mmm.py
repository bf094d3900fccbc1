"""MMM: the masked motion transformer, decoding invariants and the retrieval baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.motion.baselines import retrieve
from polyfold.motion.mmm import MMM, mmm_process, text_condition


def test_text_condition_masks_padding_and_matches_rows(hash_encoder: object) -> None:
    words, mask, vec = text_condition(["a b c", "walk", "a b c"], hash_encoder)
    assert words.shape == (3, 3, 8)
    assert mask.tolist() == [[True] * 3, [True, False, False], [True] * 3]
    assert torch.equal(vec[0], vec[2])


def test_padding_words_do_not_change_the_logits(mmm: MMM) -> None:
    x = torch.randint(0, 257, (1, 6))
    words, mask, vec = mmm.condition(["walk forward"])
    a = mmm.net(x, torch.ones(1), (words, mask, vec))
    junk = torch.cat([words, torch.randn(1, 3, 8)], dim=1)
    b = mmm.net(x, torch.ones(1), (junk, torch.cat([mask, torch.zeros(1, 3, dtype=bool)], 1), vec))
    torch.testing.assert_close(a, b)
    assert a.shape == (1, 6, 257)


def test_fixed_tokens_never_change_and_a_full_sequence_comes_back(mmm: MMM) -> None:
    cond = mmm.condition(["a person walks", "a person jumps"])
    tokens = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    fixed = torch.zeros(2, 12, dtype=torch.bool)
    fixed[:, :4] = True
    fixed[1, 9:] = True
    res = mmm.generate_tokens(cond, tokens, fixed, steps=5, seed=3)
    assert torch.equal(res.tokens[fixed], tokens[fixed])
    assert bool((res.tokens < 256).all())  # no mask token left
    full = mmm.generate_tokens(cond, tokens, torch.ones_like(fixed), steps=5)
    assert torch.equal(full.tokens, tokens)
    assert full.nfe == 0


def test_decode_keeps_the_residual_codebooks_of_given_tokens(mmm: MMM) -> None:
    from polyfold.motion.dataset import MotionDataset  # noqa: F401  (types only)

    feats = mmm.decode(torch.randint(0, 256, (1, 12)))
    codes = mmm.encode(feats)
    keep = torch.ones(1, 12, dtype=torch.bool)
    all_books = mmm.decode(codes[..., 0], codes, keep)
    ref = mmm.tokenizer.decode(codes).numpy() * mmm.std.numpy() + mmm.mean.numpy()
    np.testing.assert_allclose(all_books, ref, atol=1e-4)
    first_only = mmm.decode(codes[..., 0], codes, ~keep)
    np.testing.assert_allclose(first_only, mmm.decode(codes[..., 0]), atol=1e-5)


def test_generate_lengths_and_sample_needs_captions(mmm: MMM) -> None:
    assert mmm.generate(["a person waves"], 30).shape == (1, 30, 155)
    with pytest.raises(InputError, match="captions"):
        mmm.sample(np.zeros((1, 8)), 48)


def test_process_mask_id_is_after_the_codes() -> None:
    assert mmm_process(256).mask_id == 256


def test_retrieval_picks_the_nearest_caption() -> None:
    bank_text = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    bank = np.arange(3)[:, None, None] * np.ones((3, 2, 4))
    out, idx = retrieve(np.array([[0.1, 2.0], [3.0, 2.9]]), bank_text, bank)
    assert idx.tolist() == [1, 2]
    assert np.array_equal(out[:, 0, 0], [1.0, 2.0])
    with pytest.raises(InputError, match="retrieve"):
        retrieve(np.zeros((1, 3)), bank_text, bank)
