"""Training through core's Trainer: losses, resume, export and reload, data chunking, bpc."""

import math
from pathlib import Path

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.text.checkpoint import load_checkpoint
from polyfold.text.data import (
    TokenChunks,
    chunk_documents,
    clean_play,
    load_jsonl_corpus,
    load_text_corpus,
    shakespeare_corpus,
)
from polyfold.text.metrics import ar_bpc, mdlm_bpc, unigram_entropy
from polyfold.text.tokenizer import CharTokenizer
from polyfold.text.training import (
    TextTrainConfig,
    ar_loss,
    json_records_config,
    json_records_data,
    train_json_records_mdlm,
    train_text_model,
)


def test_chunking_pads_and_masks(char_tokenizer) -> None:
    docs = ["ROMEO:\nBut soft", "JULIET:\nO"]
    tokens, mask = chunk_documents(docs, char_tokenizer, 8)
    total = sum(len(d) for d in docs)
    assert tokens.shape == (math.ceil(total / 8), 8)
    assert int(mask.sum()) == total
    assert (tokens[~mask] == char_tokenizer.pad_id).all()
    assert char_tokenizer.decode(tokens[mask].tolist()) == "".join(docs)
    tokens, mask = chunk_documents(docs, char_tokenizer, 8, bos=True, separate=True, eos=True)
    assert (tokens[:, 0] == char_tokenizer.bos_id).all()
    # 15 + [EOS] = 16 tokens -> 3 rows of 7 (+ [BOS]); 9 + [EOS] = 10 tokens -> 2 rows
    assert tokens.shape[0] == 3 + 2
    assert len(TokenChunks(tokens, mask)) == 5
    with pytest.raises(InputError, match="length"):
        chunk_documents(docs, char_tokenizer, 1)


def test_corpus_loaders(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first doc")
    (tmp_path / "b.txt").write_text("second doc")
    assert load_text_corpus(tmp_path) == ["first doc", "second doc"]
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"text": "one"}\n\n"two"\n')
    assert load_jsonl_corpus(jl) == ["one", "two"]
    jl.write_text('{"body": "one"}\n')
    with pytest.raises(InputError, match="line 1"):
        load_jsonl_corpus(jl)
    with pytest.raises(InputError, match="neither a text file"):
        load_text_corpus(tmp_path / "nope")


def test_shakespeare_split_by_play() -> None:
    train, val = shakespeare_corpus("train"), shakespeare_corpus("validation")
    assert len(train) + len(val) == 38
    assert len(val) == 3
    assert not set(train) & set(val)
    assert any(doc.startswith("Julius Caesar") for doc in val)
    assert "**" not in train[0]
    assert "#" not in train[0][:50]
    assert clean_play("# Play\n\n**ROMEO**  \nHello  \n_Exit_\n") == "Play\n\nROMEO:\nHello\nExit\n"


def test_ar_loss_is_cross_entropy(tiny_ar, char_tokenizer) -> None:
    tokens, mask = chunk_documents(["abc abd abe"], char_tokenizer, 6, bos=True)
    loss = ar_loss(tiny_ar, {"tokens": tokens, "mask": mask}, torch.Generator())
    bpc = ar_bpc(tiny_ar, char_tokenizer, tokens, mask)
    # for characters, bits per character = nats per token / ln 2
    assert bpc["bpc"] == pytest.approx(float(loss.detach()) / math.log(2), rel=1e-5)


def test_mdlm_bpc_matches_uniform_model(char_tokenizer) -> None:
    """A denoiser with constant logits predicts uniformly over V - 1 tokens (SUBS drops the
    mask): its NELBO under the log-linear schedule is (1 - eps) * log(V - 1) nats per token."""

    class Uniform(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t, cond=None):
            return torch.zeros(*x.shape, char_tokenizer.vocab_size) + self.w

    tokens, mask = chunk_documents(["ROMEO: But soft " * 40], char_tokenizer, 32)
    out = mdlm_bpc(Uniform(), char_tokenizer, tokens, mask, n_times=8)
    expected = (1 - 1e-3) * math.log(char_tokenizer.vocab_size - 1)
    assert out["nats_per_token"] == pytest.approx(expected, rel=0.05)
    assert out["bpc"] == pytest.approx(expected / math.log(2), rel=0.05)


def test_unigram_entropy() -> None:
    assert unigram_entropy(["aaaa"]) == 0.0
    assert unigram_entropy(["abab", "abcd"]) == pytest.approx((1.0 + 2.0) / 2)


@pytest.mark.parametrize("kind", ["mdlm", "ar"])
def test_train_resume_export_reload(tmp_path: Path, kind: str, monkeypatch) -> None:
    docs = ["ROMEO:\nBut soft, what light through yonder window breaks?\n" * 8]
    monkeypatch.setattr(
        "polyfold.text.training.load_corpus", lambda name, split: (docs, "tiny-card")
    )
    cfg = TextTrainConfig(
        kind=kind,
        d_model=32,
        n_layers=1,
        n_heads=2,
        length=16,
        steps=2,
        batch_size=4,
        checkpoint_every=1,
        val_chunks=4,
        warmup_steps=0,
    )
    run = tmp_path / "run"
    first = train_text_model(cfg, run, quiet=True)
    assert first.steps == 2
    assert (run / "tokenizer.json").is_file()
    cfg.steps = 4  # resume continues the same run up to the new step count
    out = train_text_model(cfg, run, export=(tmp_path / "w", "tiny"), quiet=True, command="cmd")
    assert out.steps == 4
    assert math.isfinite(out.metrics["val_bpc"])
    model, tok, config = load_checkpoint(tmp_path / "w" / "tiny.json")
    assert config["steps"] == 4
    assert config["command"] == "cmd"
    assert config["data_card"] == "tiny-card"
    assert config["metrics"]["val_bpc"] > 0
    assert config["model_class"] == (
        "DiffusionTransformer" if kind == "mdlm" else "CausalTransformer"
    )
    for a, b in zip(model.state_dict().values(), out.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    again, _, cfg2 = load_checkpoint(run)  # the run folder itself loads too
    assert cfg2["steps"] == 4
    assert tok.vocab_size == again.config["vocab_size"]


def test_json_records_layout_and_preset(tmp_path: Path) -> None:
    cfg = json_records_config(copies=2, max_nulls=3, length=190)
    assert (cfg.corpus, cfg.length, cfg.d_model, cfg.steps) == ("json-records", 190, 128, 3000)
    assert cfg.extra == {"copies": 2, "max_nulls": 3}
    data = json_records_data(cfg)
    tok = CharTokenizer.train(data.tokenizer_docs)
    tokens, mask = data.chunks(tok)
    assert tokens.shape == (2 * 300, 190)  # two copies of the 300 training records
    assert mask.all()
    assert int((tokens[:300] == tok.null_id).sum()) == 0  # the first copy has no nulls
    assert int((tokens[300:] == tok.null_id).sum()) > 0
    assert data.validation(tok)[0].shape == (33, 190)
    assert data.card == "json-records"


def test_json_records_preset_trains_through_train_text_model(tmp_path: Path) -> None:
    small = {"d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 4, "warmup_steps": 0}
    out = train_json_records_mdlm(
        tmp_path / "run",
        export=(tmp_path / "w", "records"),
        steps=2,
        copies=1,
        max_nulls=2,
        val_chunks=4,
        checkpoint_every=1,
        command="cmd",
        **small,
    )
    assert out.steps == 2
    assert math.isfinite(out.metrics["val_bpc"])
    _, _, config = load_checkpoint(tmp_path / "w" / "records.json")
    assert config["data_card"] == "json-records"
    assert config["training"]["extra"] == {"copies": 1, "max_nulls": 2}
    assert config["validation"].startswith("json-records validation split")


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="shipped model name"):
        load_checkpoint("no-such-model")
    bad = tmp_path / "m.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match=r"m\.json: not a polyfold model card"):
        load_checkpoint(bad)
