"""Generation: fixed tokens are kept by every sampler; prompts that do not fit raise."""

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.text.generate import (
    SAMPLERS,
    build_sampler,
    build_template,
    generate,
    planned_steps,
    sampler_name,
)
from polyfold.text.tokenizer import CharTokenizer


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_infilling_keeps_fixed_tokens(sampler: str, tiny_mdlm, char_tokenizer) -> None:
    template = "ROMEO:\nBut ____, what ___ thro"
    gen = generate(
        tiny_mdlm,
        char_tokenizer,
        num_samples=3,
        infill=template,
        sampler=sampler,
        steps=4,
        block_length=8,
        seed=3,
    )
    assert len(gen.texts) == 3
    for text, row in zip(gen.texts, gen.tokens, strict=True):
        assert len(text) == len(template)
        assert all(a == b for a, b in zip(text, template, strict=True) if b != "_")
        assert int((row == char_tokenizer.mask_id).sum()) == 0  # everything revealed
    assert int(gen.fixed[0].sum()) == len(template) - template.count("_")
    assert gen.nfe >= 1


def test_prefix_suffix_and_first_hitting_calls(tiny_mdlm, char_tokenizer) -> None:
    gen = generate(
        tiny_mdlm,
        char_tokenizer,
        num_samples=2,
        length=24,
        prefix="JULIET:",
        suffix="?\n",
        sampler="first-hitting",
        seed=0,
    )
    for text in gen.texts:
        assert text.startswith("JULIET:")
        assert text.endswith("?\n")
        assert len(text) == 24
    assert gen.nfe == 24 - len("JULIET:") - 2  # one model call per revealed token
    assert gen.steps is None


def test_same_seed_same_samples_and_precision(tiny_mdlm, char_tokenizer) -> None:
    kw = {"num_samples": 2, "length": 16, "sampler": "ancestral", "steps": 8}
    a = generate(tiny_mdlm, char_tokenizer, seed=5, **kw)
    b = generate(tiny_mdlm, char_tokenizer, seed=5, **kw)
    assert a.texts == b.texts
    c = generate(tiny_mdlm, char_tokenizer, seed=5, precision="float32", **kw)
    assert len(c.texts[0]) == 16


def test_ancestral_cache_saves_calls(tiny_mdlm, char_tokenizer) -> None:
    kw = {"num_samples": 1, "length": 8, "sampler": "ancestral", "steps": 64, "seed": 1}
    cached = generate(tiny_mdlm, char_tokenizer, **kw)
    exact = generate(tiny_mdlm, char_tokenizer, cache=False, **kw)
    assert cached.nfe <= 8 < exact.nfe  # at most one call per revealed token with the cache


def test_prompt_longer_than_context_errors(tiny_mdlm, char_tokenizer) -> None:
    context = tiny_mdlm.cfg.max_length
    with pytest.raises(InputError, match="longer than the model's context of 32 tokens"):
        generate(tiny_mdlm, char_tokenizer, prefix="R" * (context + 1))
    with pytest.raises(InputError, match="longer than the model's context"):
        generate(tiny_mdlm, char_tokenizer, infill="O" * context + "_")
    with pytest.raises(InputError, match="length: 40 tokens is longer"):
        generate(tiny_mdlm, char_tokenizer, length=40)
    with pytest.raises(InputError, match="leaving nothing to generate"):
        generate(tiny_mdlm, char_tokenizer, length=4, prefix="ROMEO")


def test_bad_arguments(tiny_mdlm, char_tokenizer) -> None:
    with pytest.raises(InputError, match="sampler: expected one of"):
        generate(tiny_mdlm, char_tokenizer, length=8, sampler="beam")
    with pytest.raises(InputError, match="precision"):
        generate(tiny_mdlm, char_tokenizer, length=8, precision="float16")
    with pytest.raises(InputError, match="no '_' positions"):
        generate(tiny_mdlm, char_tokenizer, infill="ROMEO")
    with pytest.raises(InputError, match="either an infilling template or prefix"):
        generate(tiny_mdlm, char_tokenizer, infill="R_", prefix="x")


def test_build_template() -> None:
    tok = CharTokenizer.train(["abc"])
    x, fixed = build_template(tok, 6, 10, prefix="ab", suffix="c")
    assert fixed.tolist() == [True, True, False, False, False, True]
    assert x[2:5].tolist() == [tok.mask_id] * 3
    assert tok.decode(x.tolist(), mask_char="#") == "ab###c"
    x, fixed = build_template(tok, None, 10, infill="a_b__")
    assert tok.decode(x.tolist(), mask_char="_") == "a_b__"
    assert fixed.tolist() == [True, False, True, False, False]
    assert torch.equal(x[fixed], torch.tensor(tok.encode("ab")))


@pytest.mark.parametrize(
    ("sampler", "extra"),
    [
        ("ancestral", {}),
        ("fhs", {}),
        ("confidence", {}),
        ("blockwise", {"inner": "first-hitting"}),
        ("blockwise", {"inner": "confidence"}),
    ],
)
def test_callback_steps_match_the_plan(sampler, extra, tiny_mdlm, char_tokenizer) -> None:
    kw = {"num_samples": 2, "infill": "RO___:\nBut __ft", "sampler": sampler, "steps": 6}
    kw |= {"block_length": 5, "seed": 4, **extra}
    seen: list[tuple[int, float]] = []
    last: list[torch.Tensor] = []

    def callback(step: int, t: float, x: torch.Tensor, x0: object) -> None:
        seen.append((step, t))
        last[:] = [x.cpu()]

    gen = generate(tiny_mdlm, char_tokenizer, callback=callback, **kw)
    plain = generate(tiny_mdlm, char_tokenizer, **kw)
    assert torch.equal(gen.tokens, plain.tokens)  # the callback changes no draw
    assert torch.equal(last[0], gen.tokens)
    want = planned_steps(gen.fixed[0], sampler, steps=6, block_length=5, **extra)
    assert [s for s, _ in seen] == list(range(want))
    assert seen[-1][1] == 0.0
    assert want == {"ancestral": 6, "fhs": 5, "confidence": 6}.get(sampler, want)


def test_sampler_names_come_from_core_registry() -> None:
    assert set(SAMPLERS) == {"ancestral", "blockwise", "confidence", "first-hitting"}
    assert sampler_name("first-hitting") == sampler_name("FHS") == "first_hitting"
    with pytest.raises(InputError, match=r"one of ancestral, blockwise, confidence, first-hitting"):
        sampler_name("beam")
    with pytest.raises(InputError, match="inner: a blockwise sampler cannot nest"):
        build_sampler("blockwise", steps=4, length=8, inner="blockwise")
