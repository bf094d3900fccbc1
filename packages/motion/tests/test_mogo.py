"""Mogo / T2M-GPT: causal masking, the KV cache against full recomputation, streaming against
batch decoding, long sequences past the context, training and model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.motion.mogo import MogoTransformer, mogo_loss
from polyfold.motion.mogo_generate import (
    TokenMotionModel,
    decoder_reach,
    generate_tokens,
    is_token_model_file,
    load_token_model,
)
from polyfold.motion.tokenizer import MotionTokenizer


def _net(q: int = 3, positions: int = 6) -> MogoTransformer:
    torch.manual_seed(0)
    return MogoTransformer(num_codes=16, num_quantizers=q, text_dim=8, width=32, heads=4,
                           base_layers=2, max_positions=positions).eval()  # fmt: skip


def _tokenizer() -> MotionTokenizer:
    torch.manual_seed(1)
    return MotionTokenizer(feature_dim=155, width=16, code_dim=8, num_codes=16, num_quantizers=3,
                           blocks=1).eval()  # fmt: skip


def test_changing_a_future_token_leaves_earlier_logits_unchanged() -> None:
    net = _net()
    text = torch.randn(2, 8)
    codes = torch.randint(0, 16, (2, 6, 3))
    base = net(text, codes)
    later = codes.clone()
    later[:, 3] = (later[:, 3] + 5) % 16  # token 3 is an input from position 4 on
    changed = net(text, later)
    torch.testing.assert_close(base[:, :3], changed[:, :3], rtol=0, atol=1e-6)
    torch.testing.assert_close(base[:, 3, 0], changed[:, 3, 0], rtol=0, atol=1e-6)
    assert not torch.allclose(base[:, 4:], changed[:, 4:])


def test_residual_layer_sees_lower_codes_of_its_own_token_only() -> None:
    net = _net()
    text = torch.randn(1, 8)
    codes = torch.randint(0, 16, (1, 5, 3))
    base = net(text, codes)
    other = codes.clone()
    other[0, 2, 1] = (other[0, 2, 1] + 1) % 16  # layer 1 of token 2
    out = net(text, other)
    torch.testing.assert_close(base[0, :2], out[0, :2], rtol=0, atol=1e-6)  # earlier tokens
    torch.testing.assert_close(base[0, 2, :2], out[0, 2, :2], rtol=0, atol=1e-6)  # layers 0, 1
    assert not torch.allclose(base[0, 2, 2], out[0, 2, 2])  # layer 2 sees layer 1's code


def test_kv_cache_matches_full_recomputation_across_slides_and_captions() -> None:
    net = _net()
    segments = [(torch.randn(3, 8), 11), (torch.randn(3, 8), 7)]  # longer than the context 6
    cached = torch.stack(list(generate_tokens(net, segments, seed=4)), dim=1)
    full = torch.stack(list(generate_tokens(net, segments, seed=4, use_cache=False)), dim=1)
    assert cached.shape == (3, 18, 3)
    assert torch.equal(cached, full)


def test_streaming_frames_equal_batch_decoding() -> None:
    tok = _tokenizer()
    m = TokenMotionModel(_net(), tok, np.zeros(155), np.ones(155), "mogo", {})
    segments = [(torch.randn(2, 8), 10), (torch.randn(2, 8), 5)]
    batch = m.sample_segments(segments, seed=2)
    chunks = list(m.stream(segments, seed=2))
    assert len(chunks) > 2  # frames came out before generation ended
    assert chunks[0].shape[1] == tok.factor  # one token's frames once its right context exists
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), batch, atol=1e-5)
    assert batch.shape == (2, 15 * tok.factor, 155)


def test_decoder_reach_bounds_the_influence_of_one_token() -> None:
    tok = _tokenizer()
    reach = decoder_reach(tok)
    codes = torch.randint(0, 16, (1, 24, 3))
    moved = codes.clone()
    moved[0, 12] = (moved[0, 12] + 3) % 16
    diff = (tok.decode(codes) - tok.decode(moved)).abs().amax(-1)[0]
    touched = torch.nonzero(diff > 0)[:, 0] // tok.factor
    assert int(touched.min()) >= 12 - reach
    assert int(touched.max()) <= 12 + reach


def test_t2m_gpt_ablation_models_only_the_first_codebook() -> None:
    net = _net(q=1)
    codes = torch.randint(0, 16, (2, 5, 3))  # extra layers are ignored
    assert net(torch.randn(2, 8), codes).shape == (2, 5, 1, 16)
    out = torch.stack(list(generate_tokens(net, [(torch.randn(2, 8), 4)])), dim=1)
    assert out.shape == (2, 4, 1)


def test_loss_is_log_vocab_at_uniform_logits() -> None:
    net = _net()
    for p in net.heads.parameters():
        torch.nn.init.zeros_(p)
    loss = mogo_loss(net, torch.randn(2, 8), torch.randint(0, 16, (2, 5, 3)))
    assert float(loss.detach()) == pytest.approx(np.log(16), abs=1e-5)


def test_bad_input_is_a_clear_error() -> None:
    net = _net()
    with pytest.raises(InputError, match="codes"):
        net(torch.randn(1, 8), torch.full((1, 4, 3), 16))
    with pytest.raises(InputError, match="text"):
        net(torch.randn(1, 5), torch.zeros(1, 4, 3, dtype=torch.long))
    with pytest.raises(InputError, match="context"):
        net(torch.randn(1, 8), torch.zeros(1, 7, 3, dtype=torch.long))
    with pytest.raises(InputError, match="keep"):
        next(generate_tokens(net, [(torch.randn(1, 8), 2)], keep=5))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A 3-step Mogo on a tiny tokenizer and dataset, saved as a model file."""
    from polyfold.core.export import save_model
    from polyfold.motion.dataset import DatasetConfig, build_dataset
    from polyfold.motion.mogo_train import TokenTrainSettings, train_token_model

    tmp = tmp_path_factory.mktemp("mogo")
    tok = _tokenizer()
    data = build_dataset(DatasetConfig(train_windows_per_clip=1, test_windows_per_clip=1,
                                       train_then=2, test_then=1, length=16))  # fmt: skip
    mean, std = data.stats()
    save_model(tok, tmp / "tok", config=tok.model_config(),
               tensors={"mean": torch.from_numpy(mean).float(),
                        "std": torch.from_numpy(std).float()})  # fmt: skip
    text = np.random.default_rng(0).normal(size=(len(data), 384)).astype(np.float32)
    s = TokenTrainSettings(steps=3, batch_size=4, width=16, base_layers=1)
    train_token_model("mogo", data, text, tmp / "m", s, tokenizer=tmp / "tok", quiet=True,
                      command="test")  # fmt: skip
    return tmp, data, text, s


def test_train_save_load_and_generate(trained) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.mogo_train import train_token_model

    tmp, data, text, s = trained
    assert is_token_model_file(tmp / "m" / "model")
    assert not is_token_model_file(tmp / "tok")
    m = load_token_model(tmp / "m" / "model")
    assert m.kind == "mogo"
    assert m.net.config.num_quantizers == 3
    feats = m.sample(text[:2], 18, seed=0)
    assert feats.shape == (2, 18, 155)
    assert np.isfinite(feats).all()
    with pytest.raises(InputError, match="--model"):
        train_token_model("bipo", data, text, tmp / "x", s)


def _cli(monkeypatch, capsys, *args):  # type: ignore[no-untyped-def]
    from polyfold.motion.cli import main

    monkeypatch.setattr("sys.argv", ["polyfold-motion", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_stream_writes_every_frame_and_generate_takes_the_file(  # type: ignore[no-untyped-def]
    trained, monkeypatch, capsys, tmp_path
) -> None:
    model = str(trained[0] / "m" / "model")
    out = tmp_path / "frames.txt"
    code, _, err = _cli(monkeypatch, capsys, "stream", "a person walks", "a person jumps",
                        "--seconds", "1", "--model", model, "--out", str(out))  # fmt: skip
    assert code == 0, err
    rows = np.loadtxt(out)
    assert rows.shape == (40, 1 + 45)  # 2 captions x 20 frames, chained
    np.testing.assert_array_equal(rows[:, 0], np.arange(40))
    assert "40 frames" in err
    code, _, err = _cli(monkeypatch, capsys, "stream", "a person walks", "--model", model,
                        "--out", str(out))  # fmt: skip
    assert code == 2
    assert "--force" in err
    code, text, err = _cli(monkeypatch, capsys, "stream", "a person walks", "--seconds", "0.4",
                           "--model", model)  # fmt: skip
    assert code == 0, err
    assert len([x for x in text.splitlines() if not x.startswith("#")]) == 8
    code, _, err = _cli(monkeypatch, capsys, "stream", "a person walks", "--model", "emdm")
    assert code == 2
    assert "streaming needs a mogo or t2m-gpt model" in err
    code, text, err = _cli(monkeypatch, capsys, "generate", "a person walks", "--seconds", "1",
                           "--model", model, "--out", str(tmp_path / "g"))  # fmt: skip
    assert code == 0, err
    assert np.load(tmp_path / "g" / "00_a_person_walks.npy").shape == (20, 15, 3)


@pytest.mark.parametrize("name", ["mogo", "t2m-gpt"])
def test_shipped_token_models_load_and_stream_like_batch(name: str) -> None:
    from polyfold.motion.generate import resolve_model

    m = resolve_model(name)
    assert m.kind == name  # type: ignore[union-attr]
    assert m.net.config.num_quantizers == (4 if name == "mogo" else 1)  # type: ignore[union-attr]
    text = np.random.default_rng(0).normal(size=(1, 384)).astype(np.float32)
    seg = [(torch.from_numpy(text), 5)]
    streamed = np.concatenate(list(m.stream(seg, seed=3)), axis=1)  # type: ignore[union-attr]
    np.testing.assert_allclose(streamed, m.sample_segments(seg, seed=3), atol=1e-5)  # type: ignore[union-attr]
    assert streamed.shape == (1, 20, 155)
