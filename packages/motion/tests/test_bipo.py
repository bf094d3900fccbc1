"""BiPO: part columns and reassembly, causal masks in both directions, partial occlusion,
length-free generation, edits that keep fixed tokens, training and model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyfold.core.errors import InputError
from polyfold.motion.bipo import (
    BIPO_PARTS,
    BiPOTransformer,
    PartTokenizer,
    backward_log_likelihood,
    bipo_loss,
    bipo_part_columns,
    edit_part_tokens,
    part_mask,
    part_tokenizer_loss,
    sample_part_tokens,
)
from polyfold.motion.features import LAYOUT


def _net() -> BiPOTransformer:
    torch.manual_seed(0)
    return BiPOTransformer(num_codes=16, text_dim=8, width=32, heads=4, layers=2,
                           max_tokens=6).eval()  # fmt: skip


def _tokenizer() -> PartTokenizer:
    torch.manual_seed(1)
    return PartTokenizer(width=16, code_dim=8, num_codes=16).eval()


def test_part_columns_partition_the_feature_vector() -> None:
    cols = bipo_part_columns()
    assert len(cols) == len(BIPO_PARTS) == 5
    every = np.concatenate(cols)
    assert len(every) == LAYOUT.dim
    np.testing.assert_array_equal(np.sort(every), np.arange(LAYOUT.dim))
    assert {0, 1, 2, 3} <= set(cols[0].tolist())  # the root track belongs to the torso


def test_part_codes_reassemble_the_whole_body() -> None:
    tok = _tokenizer()
    x = torch.randn(2, 16, LAYOUT.dim)
    codes = tok.encode(x)
    assert codes.shape == (2, 4, 5)
    whole = tok.decode(codes)
    assert whole.shape == x.shape
    for i, (sub, c) in enumerate(zip(tok.parts, tok.columns, strict=True)):
        part = sub.decode(sub.encode(x[..., c]))  # type: ignore[operator]
        torch.testing.assert_close(whole[..., c], part, rtol=0, atol=0)
        other = codes.clone()
        other[..., i] = (other[..., i] + 1) % 16  # another code for part i only
        changed = tok.decode(other)
        rest = np.setdiff1d(np.arange(LAYOUT.dim), c.numpy())
        torch.testing.assert_close(changed[..., rest], whole[..., rest], rtol=0, atol=0)
        assert not torch.allclose(changed[..., c], whole[..., c])
    loss, stats = part_tokenizer_loss(tok.train(), x)
    assert torch.isfinite(loss)
    assert 0 < stats["usage"] <= 1


def test_forward_and_backward_directions_are_causal() -> None:
    net = _net()
    text = torch.randn(2, 8)
    codes = torch.randint(0, 16, (2, 6, 5))
    later = codes.clone()
    later[:, 3] = (later[:, 3] + 5) % 16  # step 3 is an input from position 4 on
    for backward in (False, True):
        logits, end = net(text, codes, backward)
        other, other_end = net(text, later, backward)
        assert logits.shape == (2, 7, 5, 16)
        assert end.shape == (2, 7)
        torch.testing.assert_close(logits[:, :4], other[:, :4], rtol=0, atol=1e-6)
        torch.testing.assert_close(end[:, :4], other_end[:, :4], rtol=0, atol=1e-6)
        assert not torch.allclose(logits[:, 4:], other[:, 4:])
    fwd, _ = net(text, codes, False)
    bwd, _ = net(text, codes, True)
    assert not torch.allclose(fwd, bwd)  # the direction is an input


def test_occluded_part_is_hidden_from_the_context() -> None:
    net = _net()
    text = torch.randn(2, 8)
    codes = torch.randint(0, 16, (2, 6, 5))
    occluded = torch.zeros(2, 5, dtype=torch.bool)
    occluded[:, 1] = True  # left arm
    other = codes.clone()
    other[..., 1] = (other[..., 1] + 3) % 16
    a, ea = net(text, codes, False, occluded)
    b, eb = net(text, other, False, occluded)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(ea, eb, rtol=0, atol=0)
    visible, _ = net(text, other, False, None)
    assert not torch.allclose(a[:, 2:], visible[:, 2:])
    g = torch.Generator().manual_seed(0)
    loss = bipo_loss(net.train(), text, codes, g, p_occlude=0.5)
    assert torch.isfinite(loss)
    assert loss > 0


def test_generation_without_a_length_stops_at_the_end_token() -> None:
    net = _net()
    with torch.no_grad():
        net.end.bias.fill_(-30.0)  # never ends: runs to the context
        codes, lengths = sample_part_tokens(net, torch.randn(3, 8), seed=0)
        assert codes.shape == (3, 6, 5)
        assert lengths.tolist() == [6, 6, 6]
        net.end.bias.fill_(30.0)  # ends as soon as allowed: one step
        codes, lengths = sample_part_tokens(net, torch.randn(3, 8), seed=0)
        assert lengths.tolist() == [1, 1, 1]
        assert (codes == codes[:, :1]).all()  # padded with the last step
    fixed_len, lengths = sample_part_tokens(net, torch.randn(2, 8), 4, seed=1)
    assert fixed_len.shape == (2, 4, 5)
    assert lengths.tolist() == [4, 4]
    with pytest.raises(InputError, match="length"):
        sample_part_tokens(net, torch.randn(1, 8), 7)


def test_backward_likelihood_and_candidates_use_the_backward_direction() -> None:
    net = _net()
    text = torch.randn(2, 8)
    codes = torch.randint(0, 16, (2, 6, 5))
    logits, end = net(text, codes.flip(1), True)
    lp = logits[:, :6].log_softmax(-1).gather(-1, codes.flip(1)[..., None]).sum((1, 2, 3))
    expect = lp + F.logsigmoid(-end[:, :6]).sum(1) + F.logsigmoid(end[:, 6])
    full = torch.full((2,), 6)
    torch.testing.assert_close(backward_log_likelihood(net, text, codes, full), expect)
    short = codes.clone()
    short[:, 3:] = 0  # steps past the length do not count
    torch.testing.assert_close(
        backward_log_likelihood(net, text, codes, torch.full((2,), 3)),
        backward_log_likelihood(net, text, short, torch.full((2,), 3)),
    )
    many = text.repeat_interleave(3, dim=0)
    drawn, lengths = sample_part_tokens(net, many, 4, seed=5)  # the same draws, unranked
    scores = backward_log_likelihood(net, many, drawn, lengths).view(2, 3)
    best, _ = sample_part_tokens(net, text, 4, seed=5, candidates=3)
    torch.testing.assert_close(best, drawn.view(2, 3, 4, 5)[torch.arange(2), scores.argmax(1)])
    with pytest.raises(InputError, match="candidates"):
        sample_part_tokens(net, text, 4, candidates=0)


@pytest.mark.parametrize("which", ["parts", "suffix", "prefix"])
def test_edits_never_change_fixed_tokens(which: str) -> None:
    net = _net()
    codes = torch.randint(0, 16, (3, 6, 5))
    fixed = torch.zeros(3, 6, 5, dtype=torch.bool)
    if which == "parts":
        fixed[..., torch.from_numpy(~part_mask(["left_arm", "right_arm"]))] = True
    elif which == "suffix":
        fixed[:, 3:] = True  # generated backward towards the fixed end
    else:
        fixed[:, :2] = True
    out = edit_part_tokens(net, torch.randn(3, 8), codes, fixed, seed=2, temperature=2.0)
    assert out.shape == codes.shape
    torch.testing.assert_close(out[fixed], codes[fixed], rtol=0, atol=0)
    assert (out[~fixed] != codes[~fixed]).any()
    with pytest.raises(InputError, match="fixed"):
        edit_part_tokens(net, torch.randn(3, 8), codes, fixed[:, :3])


def test_unknown_part_and_bad_input_are_clear_errors() -> None:
    with pytest.raises(InputError, match="part 'tail'"):
        part_mask(["left_arm", "tail"])
    with pytest.raises(InputError, match="parts"):
        part_mask("left_arm")  # type: ignore[arg-type]
    np.testing.assert_array_equal(part_mask(["torso", "left_leg"]), [1, 0, 0, 1, 0])
    net = _net()
    with pytest.raises(InputError, match="codes"):
        net(torch.randn(1, 8), torch.randint(0, 16, (1, 7, 5)))
    with pytest.raises(InputError, match="codes"):
        net(torch.randn(1, 8), torch.full((1, 2, 5), 16))
    with pytest.raises(InputError, match="text"):
        net(torch.randn(1, 9), torch.randint(0, 16, (1, 2, 5)))
    with pytest.raises(InputError, match="part tokenizer input"):
        _tokenizer().encode(torch.randn(1, 6, LAYOUT.dim))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A few-step BiPO (tokenizer and transformer) on a tiny dataset, saved as model files."""
    from polyfold.motion.bipo_train import BiPOSettings, train_bipo
    from polyfold.motion.dataset import DatasetConfig, build_dataset

    tmp = tmp_path_factory.mktemp("bipo")
    data = build_dataset(DatasetConfig(train_windows_per_clip=1, test_windows_per_clip=1,
                                       train_then=2, test_then=1, length=16))  # fmt: skip
    text = np.random.default_rng(0).normal(size=(len(data), 384)).astype(np.float32)
    s = BiPOSettings(tokenizer_steps=3, steps=3, batch_size=4, num_codes=16, tokenizer_width=8,
                     width=16, layers=1)  # fmt: skip
    train_bipo(data, text, tmp / "m", s, quiet=True, command="test")
    return tmp, data, text, s


def test_resume_continues_both_stages_from_their_checkpoints(trained) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from polyfold.core.progress import checkpoint_step
    from polyfold.motion.bipo_train import train_bipo

    tmp, data, text, s = trained
    longer = replace(s, tokenizer_steps=5, steps=5)
    train_bipo(data, text, tmp / "m", longer, quiet=True, command="test", resume=True)
    assert checkpoint_step(tmp / "m" / "tokenizer" / "run") == 5
    assert checkpoint_step(tmp / "m" / "run") == 5


def test_train_save_load_generate_and_edit(trained) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.bipo_generate import is_bipo_file, load_bipo
    from polyfold.motion.generate import resolve_model

    tmp, data, text, _ = trained
    path = tmp / "m" / "model"
    assert is_bipo_file(path)
    assert not is_bipo_file(tmp / "m" / "part_tokenizer")
    m = resolve_model(path)
    assert m.kind == "bipo"
    assert np.isfinite(m.card["metrics"]["held_out_loss"])
    again = load_bipo(path)
    for a, b in zip(m.net.state_dict().values(), again.net.state_dict().values(), strict=True):  # type: ignore[union-attr]
        torch.testing.assert_close(a, b)
    feats = m.sample(text[:2], 14, seed=0)
    assert feats.shape == (2, 14, LAYOUT.dim)
    assert np.isfinite(feats).all()
    free, frames = again.generate_free(text[:2], seed=0)
    assert free.shape == (2, 16, LAYOUT.dim)
    assert ((frames >= 4) & (frames <= 16)).all()
    given = data.features[:2]
    edited = again.edit_parts(given, text[:2], ["left_arm"], frames=(4, 12), seed=0)
    arm = bipo_part_columns()[1]
    rest = np.setdiff1d(np.arange(LAYOUT.dim), arm)
    np.testing.assert_array_equal(edited[..., rest], given[..., rest])
    np.testing.assert_array_equal(edited[:, :4], given[:, :4])
    np.testing.assert_array_equal(edited[:, 12:], given[:, 12:])
    assert not np.allclose(edited[:, 4:12, arm], given[:, 4:12, arm])
    with pytest.raises(InputError, match="frames"):
        again.edit_parts(given, text[:2], ["left_arm"], frames=(8, 4))


def test_cli_generate_takes_the_bipo_file(trained, monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.cli import main

    args = ["generate", "a person walks", "--seconds", "0.6", "--model",
            str(trained[0] / "m" / "model"), "--out", str(tmp_path / "g")]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["polyfold-motion", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0, capsys.readouterr().err
    assert np.load(tmp_path / "g" / "00_a_person_walks.npy").shape == (12, 15, 3)
    assert "bipo" in capsys.readouterr().out


def test_shipped_bipo_edits_only_the_chosen_parts() -> None:
    from polyfold.motion.generate import resolve_model

    m = resolve_model("bipo")
    assert m.kind == "bipo"
    assert "metrics" in m.card
    text = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
    feats = m.sample(text, 48, seed=0)
    edited = m.edit_parts(feats, text[::-1], ["left_leg", "right_leg"], seed=1)  # type: ignore[union-attr]
    legs = np.concatenate(bipo_part_columns()[3:])
    rest = np.setdiff1d(np.arange(LAYOUT.dim), legs)
    np.testing.assert_array_equal(edited[..., rest], feats[..., rest])
    with pytest.raises(InputError, match="48 frames"):
        m.sample(text, 60)


def test_cli_auto_length_writes_each_motion_at_the_length_bipo_chose(
    trained, monkeypatch, capsys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.bipo_generate import load_bipo
    from polyfold.motion.cli import main
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    model = trained[0] / "m" / "model"
    caps = ["a person walks", "a person does a cartwheel"]

    def run(*args: str) -> int:
        monkeypatch.setattr("sys.argv", ["polyfold-motion", "generate", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        return int(exc.value.code)

    assert run(*caps, "--auto-length", "--model", str(model), "--out", str(tmp_path / "g")) == 0
    _, frames = load_bipo(model).generate_free(encode_captions(load_text_encoder(), caps), seed=0)
    for stem, n in zip(("00_a_person_walks", "01_a_person_does_a_cartwheel"), frames, strict=True):
        assert np.load(tmp_path / "g" / f"{stem}.npy").shape == (n, 15, 3)
        assert np.load(tmp_path / "g" / f"{stem}.features.npy").shape == (n, LAYOUT.dim)
    capsys.readouterr()
    assert run(caps[0], "--auto-length", "--model", "emdm", "--out", str(tmp_path / "e")) == 2
    assert "--auto-length: only a BiPO model" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_edit_span_changes_only_the_chosen_parts_in_the_range_of_a_longer_motion() -> None:
    from polyfold.motion.generate import resolve_model

    m = resolve_model("bipo")
    text = np.random.default_rng(1).normal(size=(2, 384)).astype(np.float32)
    feats = m.sample(text, 48, seed=0).reshape(96, LAYOUT.dim)[:93]  # not a multiple of 4
    edited = m.edit_span(feats, text[1:][::-1], ["left_leg", "right_leg"], 30, 50, seed=1)  # type: ignore[union-attr]
    legs = np.concatenate(bipo_part_columns()[3:])
    rest = np.setdiff1d(np.arange(LAYOUT.dim), legs)
    assert edited.shape == feats.shape
    np.testing.assert_array_equal(edited[:, rest], feats[:, rest])
    np.testing.assert_array_equal(edited[:30], feats[:30])
    np.testing.assert_array_equal(edited[50:], feats[50:])
    assert not np.allclose(edited[30:50][:, legs], feats[30:50][:, legs])
    tail = m.edit_span(feats, text[:1], ["torso"], 80, 93, seed=0)  # type: ignore[union-attr]
    np.testing.assert_array_equal(tail[:80], feats[:80])
    with pytest.raises(InputError, match="at most 48 frames"):
        m.edit_span(feats, text[:1], ["torso"], 0, 93)  # type: ignore[union-attr]
    with pytest.raises(InputError, match="start < end <= 93"):
        m.edit_span(feats, text[:1], ["torso"], 50, 30)  # type: ignore[union-attr]


def test_cli_edit_with_bipo_regenerates_parts_and_refuses_other_modes(
    monkeypatch, capsys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.cli import main

    def run(*args: str) -> int:
        monkeypatch.setattr("sys.argv", ["polyfold-motion", "edit", "humanoid3d_walk", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        return int(exc.value.code)

    args = ["a person punches", "--model", "bipo", "--parts", "left_arm,right_arm"]
    assert run(*args, "--mode", "body-part", "--start", "3", "--end", "22",
               "--out", str(tmp_path / "a")) == 0  # fmt: skip
    from polyfold.motion.deepmimic import load_clips
    from polyfold.motion.features import motion_features

    given = motion_features(load_clips(("humanoid3d_walk",))[0].resampled()).astype(np.float32)
    edited = np.load(tmp_path / "a" / "features.npy")
    arms = np.concatenate(bipo_part_columns()[1:3])
    rest = np.setdiff1d(np.arange(LAYOUT.dim), arms)
    np.testing.assert_array_equal(edited[:, rest], given[:, rest])
    np.testing.assert_array_equal(edited[22:], given[22:])
    assert not np.allclose(edited[3:22][:, arms], given[3:22][:, arms])
    assert run(*args, "--mode", "body-part", "--out", str(tmp_path / "b")) == 0
    capsys.readouterr()
    assert run(*args, "--mode", "inbetween", "--start", "0", "--end", "8",
               "--out", str(tmp_path / "c")) == 2  # fmt: skip
    assert "a BiPO model edits body parts only" in capsys.readouterr().err
