"""S^3: scaffold layout, null tokens, schema validation, oracle decoding, errors, the corpus."""

from __future__ import annotations

import json

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.text.json_records import (
    json_records,
    json_records_corpus,
    json_records_schema,
    json_records_slot_lengths,
    null_augmented_chunks,
)
from polyfold.text.model import DiffusionTransformer, TransformerConfig
from polyfold.text.s3 import (
    build_scaffold,
    content_fidelity,
    evaluate_schema_adherence,
    extract_json,
    load_schema,
    render_with_nulls,
    s3_generate,
    slot_vocabulary,
    unscaffolded_generate,
    validate_json,
    validation_error,
)
from polyfold.text.tokenizer import CharTokenizer

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 4},
        "age": {"type": "integer"},
        "ok": {"type": "boolean"},
        "size": {"enum": ["S", "M", "XL"]},
    },
    "required": ["name", "age", "ok", "size"],
    "additionalProperties": False,
}
RECORDS = [
    {"name": "ann", "age": 31, "ok": True, "size": "M"},
    {"name": "bob", "age": 7, "ok": False, "size": "XL"},
    {"name": "cy", "age": 45, "ok": True, "size": "S"},
]


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.train(['{}[]",:.-_ abcdefghijklmnopqrstuvwxyzSMXL0123456789'])


def test_scaffold_layout(tok: CharTokenizer) -> None:
    sc = build_scaffold(SCHEMA, tok, slot_len=3)
    assert sc.template == '{"name":"____","age":___,"ok":_____,"size":"__"}'
    assert len(sc) == len(sc.template)
    assert [(s.path, s.kind, s.length) for s in sc.slots] == [
        ("name", "string", 4),  # maxLength
        ("age", "integer", 3),  # slot_len
        ("ok", "boolean", 5),  # len("false")
        ("size", "enum", 2),  # longest enum value
    ]
    for s in sc.slots:
        assert not sc.fixed[s.start : s.start + s.length].any()
        assert (sc.tokens[s.start : s.start + s.length] == tok.mask_id).all()
    assert int((~sc.fixed).sum()) == 14
    assert tok.decode(sc.tokens[sc.fixed].tolist()) == sc.template.replace("_", "")
    per_path = build_scaffold(SCHEMA, tok, slot_len={"age": 2, "name": 1})
    assert per_path.template == '{"name":"_","age":__,"ok":_____,"size":"__"}'


def test_given_values_are_fixed_in_the_scaffold(tok: CharTokenizer) -> None:
    sc = build_scaffold(SCHEMA, tok, slot_len=3, values={"size": "S", "age": 12})
    assert sc.template == '{"name":"____","age":12\u2400,"ok":_____,"size":"S\u2400"}'
    assert [s.path for s in sc.slots] == ["name", "age", "ok", "size"]
    age = sc.slots[1]
    assert bool(sc.fixed[age.start : age.start + 3].all())
    assert sc.tokens[age.start + 2] == tok.null_id
    assert int((~sc.fixed).sum()) == 4 + 5
    oracle = oracle_for(tok, slot_len=3)
    texts = s3_generate(
        oracle,
        tok,
        SCHEMA,
        n=8,
        k=1,
        slot_len=3,
        values={"size": "XL"},
        generator=torch.Generator().manual_seed(0),
    )
    assert set(texts) == {'{"name":"bob","age":7,"ok":false,"size":"XL"}'}
    with pytest.raises(InputError, match="more than its slot of 3"):
        build_scaffold(SCHEMA, tok, slot_len=3, values={"age": 1234})
    with pytest.raises(InputError, match="unknown path 'colour'"):
        build_scaffold(SCHEMA, tok, values={"colour": "red"})


def test_nested_objects_and_fixed_arrays(tok: CharTokenizer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "p": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "tag": {"enum": [1, 22]}},
            },
            "v": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}},
        },
    }
    sc = build_scaffold(schema, tok, slot_len=2)
    assert sc.template == '{"p":{"x":__,"tag":__},"v":[__,__]}'
    assert [s.path for s in sc.slots] == ["p.x", "p.tag", "v.0", "v.1"]
    rec = {"p": {"x": 1.5, "tag": 22}, "v": [3, 4]}
    ids = render_with_nulls(rec, schema, tok, [0, 1, 2, 0])
    assert ids.count(tok.null_id) == 3
    assert tok.decode(ids) == json.dumps(rec, separators=(",", ":"))


def test_null_tokens_are_removed_at_decode(tok: CharTokenizer) -> None:
    ids = render_with_nulls(RECORDS[1], SCHEMA, tok, [2, 0, 3, 1])
    assert ids.count(tok.null_id) == 6
    text = tok.decode(ids)
    assert text == '{"name":"bob","age":7,"ok":false,"size":"XL"}'
    assert validate_json(text, SCHEMA)
    with pytest.raises(InputError, match="nulls: expected 4"):
        render_with_nulls(RECORDS[1], SCHEMA, tok, [1])
    with pytest.raises(InputError, match="missing value for 'age'"):
        render_with_nulls({"name": "x"}, SCHEMA, tok)


def test_validate_json() -> None:
    good = '{"name":"ann","age":31,"ok":true,"size":"M"}'
    assert validate_json(good, SCHEMA)
    assert validation_error(good, SCHEMA) is None
    bad = {
        '{"name":"ann","age":"31","ok":true,"size":"M"}': "schema",  # wrong type
        '{"name":"ann","age":31,"ok":true,"size":"XXL"}': "schema",  # not in the enum
        '{"name":"ann","age":31,"ok":true}': "schema",  # missing property
        '{"name":"ann","age":31,"ok":true,"size":"M","x":1}': "schema",  # extra property
        '{"name":"ann","age":31,"ok":true,"size":"M"': "not JSON",
        '{"name":"annie","age":31,"ok":true,"size":"M"}': "schema",  # maxLength
        "": "not JSON",
    }
    for text, why in bad.items():
        assert not validate_json(text, SCHEMA)
        assert validation_error(text, SCHEMA).startswith(why)  # type: ignore[union-attr]


def test_extract_json() -> None:
    assert extract_json('{"a":1}xyz{') == '{"a":1}'
    assert extract_json('noise {"a": [1, 2]} more') == '{"a":[1,2]}'
    assert extract_json('{"a":1') is None
    assert extract_json("none") is None


class LayoutOracle:
    """The exact denoiser of the uniform distribution over a few scaffold layouts: per-position
    marginals of the layouts consistent with the revealed tokens (of all layouts when none is:
    an unscaffolded sampler can reveal tokens no layout has, where the exact answer is 0/0)."""

    def __init__(self, layouts: torch.Tensor, vocab: int, mask_id: int) -> None:
        self.layouts = layouts
        self.onehot = torch.nn.functional.one_hot(layouts, vocab).double()
        self.mask_id = mask_id

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        seen = (x_t[:, None] == self.mask_id) | (x_t[:, None] == self.layouts[None])
        w = seen.all(-1).double()
        total = w.sum(-1, keepdim=True)
        w = torch.where(total > 0, w / total.clamp_min(1.0), 1.0 / w.shape[-1])
        return torch.einsum("br,rlv->blv", w, self.onehot).clamp_min(1e-12).log().float()


def oracle_for(tok: CharTokenizer, slot_len: int) -> LayoutOracle:
    sc = build_scaffold(SCHEMA, tok, slot_len=slot_len)
    layouts = []
    for rec in RECORDS:
        values = [rec[s.path] for s in sc.slots]
        sizes = [len(tok.encode(v if isinstance(v, str) else json.dumps(v))) for v in values]
        nulls = [s.length - n for s, n in zip(sc.slots, sizes, strict=True)]
        layouts.append(render_with_nulls(rec, SCHEMA, tok, nulls))
    return LayoutOracle(torch.tensor(layouts), tok.vocab_size, tok.mask_id)


def test_s3_with_an_oracle_denoiser_is_schema_valid(tok: CharTokenizer) -> None:
    oracle = oracle_for(tok, slot_len=3)
    texts = s3_generate(
        oracle, tok, SCHEMA, n=24, k=1, slot_len=3, generator=torch.Generator().manual_seed(0)
    )
    assert len(texts) == 24
    assert all(validate_json(t, SCHEMA) for t in texts)
    compact = {json.dumps(r, separators=(",", ":")) for r in RECORDS}
    assert set(texts) <= compact
    assert len(set(texts)) >= 2
    # the fixed structure is kept, the nulls are gone
    assert all("\u2400" not in t and t.startswith('{"name":"') for t in texts)
    fid = content_fidelity(texts, RECORDS)
    assert fid["value_fidelity"] == 1.0
    assert fid["record_fidelity"] == 1.0
    assert fid["novel_rate"] == 0.0
    details = s3_generate(
        oracle,
        tok,
        SCHEMA,
        n=4,
        steps=14,
        slot_len=3,
        generator=torch.Generator().manual_seed(1),
        return_details=True,
    )
    assert details.nfe == 14
    assert len(details.texts) == 4


def test_slot_vocabulary_and_constrained_decoding(tok: CharTokenizer) -> None:
    sc = build_scaffold(SCHEMA, tok, slot_len=3)
    banned = slot_vocabulary(tok, sc, tok.vocab_size)
    assert banned.shape == (len(sc), tok.vocab_size)
    name, age, ok, _ = sc.slots
    (quote,) = tok.encode('"')
    assert bool(banned[name.start, quote])
    assert not bool(banned[name.start, tok.encode("a")[0]])
    assert not bool(banned[age.start, tok.encode("7")[0]])
    assert bool(banned[age.start, tok.encode("a")[0]])
    assert bool(banned[ok.start, tok.encode("x")[0]])
    assert not bool(banned[ok.start, tok.encode("u")[0]])
    for pos in (name.start, age.start):
        assert not bool(banned[pos, tok.null_id])
        assert bool(banned[pos, tok.eos_id])
        assert bool(banned[pos, tok.mask_id])
    assert not bool(banned[0].any())  # structure positions: nothing banned
    # a random network with constrained slots can only write digits / letters where allowed
    model = DiffusionTransformer(
        TransformerConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1)
    )
    torch.nn.init.normal_(model.out.weight, std=1.0)
    texts = s3_generate(
        model,
        tok,
        SCHEMA,
        n=8,
        steps=4,
        slot_len=3,
        constrain_slots=True,
        generator=torch.Generator().manual_seed(0),
    )
    for text in texts:
        age_text = text.split('"age":')[1].split(",")[0]
        assert set(age_text) <= set("0123456789-")
        assert text.count('"') == sc.template.count('"')


def test_evaluate_schema_adherence_keys(tok: CharTokenizer) -> None:
    oracle = oracle_for(tok, slot_len=3)
    length = len(build_scaffold(SCHEMA, tok, slot_len=3))
    out = evaluate_schema_adherence(
        oracle,
        tok,
        SCHEMA,
        reference=RECORDS,
        n=8,
        k=1,
        slot_len=3,
        length=length,
        baseline_steps=8,
    )
    assert out["s3_schema_valid_rate"] == 1.0
    assert out["s3_nfe_per_sample"] == 14
    assert 0.0 <= out["unscaffolded_schema_valid_rate"] <= 1.0
    assert {"s3_value_fidelity", "unscaffolded_record_fidelity", "baseline_steps"} <= set(out)


def test_bad_schemas_raise(tok: CharTokenizer) -> None:
    cases = {
        '{"type": "object", "properties": {"a": {"type": "null"}}}': "unsupported type 'null'",
        '{"type": "object"}': "non-empty 'properties'",
        '{"type": "object", "properties": {}}': "non-empty 'properties'",
        '{"type": "object", "properties": {"a": {}}}': "a: missing 'type'",
        '{"type": "string"}': "root must be an object",
        '{"type": "object", "properties": {"a": {"type": "array", "items": {}}}}': "fixed length",
        '{"type": 5, "properties": {"a": {"type": "integer"}}}': "not a valid JSON schema",
        '{"type": "object", "properties": {"a": {"enum": [true, 1]}}}': "enum of strings",
        "{not json": "not valid JSON",
    }
    for schema, message in cases.items():
        with pytest.raises(InputError, match=message):
            build_scaffold(schema, tok)
    with pytest.raises(InputError, match="expected a JSON schema"):
        build_scaffold(42, tok)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="slot_len"):
        build_scaffold(SCHEMA, tok, slot_len=0)
    narrow = CharTokenizer.train(["abc"])
    with pytest.raises(InputError, match="cannot encode the structure text"):
        build_scaffold(SCHEMA, narrow)


def test_schema_files(tok: CharTokenizer, tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCHEMA))
    assert load_schema(path) == SCHEMA
    assert load_schema(str(path)) == SCHEMA
    with pytest.raises(InputError, match="cannot read"):
        load_schema(tmp_path / "missing.json")


def test_prompt_and_scaffold_longer_than_the_context(tok: CharTokenizer) -> None:
    model = DiffusionTransformer(
        TransformerConfig(
            vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1, max_length=56
        )
    )
    g = torch.Generator().manual_seed(0)
    texts = s3_generate(model, tok, SCHEMA, n=2, steps=3, slot_len=3, generator=g)
    assert all(t.startswith('{"name":"') and t.endswith('"}') for t in texts)  # fits: 48 + 8 EOS
    with pytest.raises(InputError, match="more than the context of 56"):
        s3_generate(model, tok, SCHEMA, n=1, steps=2, slot_len=3, prompt="abcdefghi", generator=g)
    with pytest.raises(InputError, match="more than the context"):
        s3_generate(model, tok, SCHEMA, n=1, steps=2, slot_len=20, generator=g)
    with pytest.raises(InputError, match="not both"):
        s3_generate(model, tok, SCHEMA, n=1, steps=2, k=1, generator=g)
    with pytest.raises(InputError, match="prompt"):
        unscaffolded_generate(model, tok, "{" * 56, n=1, steps=2, generator=g)
    base = unscaffolded_generate(model, tok, n=3, steps=4, generator=g)
    assert len(base) == 3
    assert all(t.startswith("{") for t in base)


def test_content_fidelity_counts() -> None:
    ref = [{"s": "a", "i": "x", "v": 1.0}, {"s": "b", "i": "y", "v": 3.0}]
    texts = [
        '{"s":"a","i":"x","v":2.0}',  # all in range, seen combination, novel
        '{"s":"a","i":"y","v":2.0}',  # values fine, unseen combination (a, y)
        '{"s":"c","i":"x","v":9.0}',  # two bad values
        "not json",
        None,
        '{"s":"a","i":"x","v":2.0}',  # a repeat
    ]
    out = content_fidelity(texts, ref)
    assert out["value_fidelity"] == pytest.approx((3 + 3 + 1 + 3) / 18)
    assert out["record_fidelity"] == pytest.approx(2 / 6)
    assert out["novel_rate"] == 1.0
    assert out["distinct_rate"] == pytest.approx(3 / 4)


def test_json_records_corpus_and_schema() -> None:
    corpus = json_records_corpus()
    assert len(corpus) == 333
    assert corpus == json_records_corpus()
    assert corpus[0] == (
        '{"species":"Adelie","island":"Torgersen","bill_length_mm":39.1,"bill_depth_mm":18.7,'
        '"flipper_length_mm":181,"body_mass_g":3750,"sex":"male","year":2007}'
    )
    schema = json_records_schema()
    assert all(validate_json(c, schema) for c in corpus)
    assert len(json_records("train")) == 300
    assert len(json_records("validation")) == 33
    assert json_records("validation")[0] == json_records()[9]
    with pytest.raises(InputError, match="split"):
        json_records("test")
    tok = CharTokenizer.train(corpus)
    lengths = json_records_slot_lengths(tok)
    assert lengths["species"] == len("Chinstrap") + 1
    assert lengths["year"] == 5
    sc = build_scaffold(schema, tok, slot_len=lengths)
    assert sc.template.startswith('{"species":"__________","island":"')


def test_null_augmented_chunks_decode_to_the_corpus() -> None:
    corpus = json_records_corpus("train")[:20]
    tok = CharTokenizer.train(json_records_corpus())
    tokens, mask = null_augmented_chunks(
        json_records("train")[:20],
        json_records_schema(),
        tok,
        length=208,
        copies=3,
        max_nulls=6,
        seed=1,
    )
    assert tokens.shape == (60, 208)
    assert bool(mask.all())
    decoded = [tok.decode(row.tolist()) for row in tokens]
    assert decoded == corpus * 3
    nulls = (tokens == tok.null_id).sum(dim=1)
    assert int(nulls[:20].sum()) == 0
    assert int(nulls[20:].max()) <= 6 * 8
    assert int(nulls[20:].min()) > 0
    assert int(tokens[0, -1]) == tok.eos_id
    with pytest.raises(InputError, match="length: a record needs"):
        null_augmented_chunks(json_records()[:1], json_records_schema(), tok, length=100)
