"""MMDM: body-part feature groups, masked embeddings, mask drawing, training and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.motion.features import LAYOUT
from polyfold.motion.mmdm import (
    BODY_PARTS,
    MaskedEmbedding,
    MaskedMotionDenoiser,
    MaskSettings,
    draw_masks,
    load_mmdm,
    part_feature_dims,
    train_mmdm,
)


def test_body_parts_partition_the_feature_row() -> None:
    dims = part_feature_dims()
    flat = [d for part in dims.values() for d in part]
    assert sorted(flat) == list(range(LAYOUT.dim))  # every dimension in exactly one part
    g = LAYOUT.groups
    assert g["contact"].start in dims["left_leg"]
    assert g["contact"].start + 1 in dims["right_leg"]
    assert 0 in dims["torso"]  # the root track


def test_masked_embedding_hides_parts_and_frames() -> None:
    torch.manual_seed(0)
    emb = MaskedEmbedding(LAYOUT.dim, 16)
    with torch.no_grad():
        emb.frame_token.normal_()
        emb.part_tokens.normal_()
    x = torch.randn(2, 6, LAYOUT.dim)
    torch.testing.assert_close(emb(x), emb.linear(x))  # no masks: a plain projection
    frames = torch.zeros(2, 6, dtype=torch.bool)
    frames[0, 2] = True
    parts = torch.zeros(2, len(BODY_PARTS), dtype=torch.bool)
    parts[1, list(BODY_PARTS).index("left_arm")] = True
    emb.masks = (frames, parts)
    h = emb(x)
    torch.testing.assert_close(h[0, 2], emb.frame_token)
    torch.testing.assert_close(h[0, :2], emb.linear(x)[0, :2])
    moved = x.clone()
    moved[1][:, part_feature_dims()["left_arm"]] += 5.0  # a hidden part changes nothing
    torch.testing.assert_close(emb(moved)[1], h[1])
    moved[1][:, part_feature_dims()["right_arm"]] += 5.0
    assert not torch.allclose(emb(moved)[1], h[1])


def test_draw_masks_follows_the_settings() -> None:
    g = torch.Generator().manual_seed(0)
    s = MaskSettings(p_frames=0.5, p_parts=0.25, frame_ratio=0.25)
    frames, parts = draw_masks(4000, 8, s, g, torch.device("cpu"))
    framed, parted = frames.any(1), parts.any(1)
    assert not (framed & parted).any()  # one kind of mask per window
    assert set(frames[framed].sum(1).tolist()) == {2}  # 25 % of 8 frames
    assert set(parts[parted].sum(1).tolist()) == {1, 2}
    assert framed.float().mean() == pytest.approx(0.5, abs=0.03)
    assert parted.float().mean() == pytest.approx(0.25, abs=0.03)
    with pytest.raises(InputError, match="mask settings"):
        MaskSettings(p_frames=0.8, p_parts=0.3)


def test_train_save_load_sample(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.dataset import DatasetConfig, build_dataset

    data = build_dataset(DatasetConfig(train_windows_per_clip=1, test_windows_per_clip=1,
                                       train_then=2, test_then=1, length=16))  # fmt: skip
    text = np.random.default_rng(0).normal(size=(len(data), 8)).astype(np.float32)
    net = train_mmdm(data, text, tmp_path / "m", steps=2, batch_size=4, width=16, layers=1,
                     quiet=True, command="test")  # fmt: skip
    assert isinstance(net, MaskedMotionDenoiser)
    assert net.embedding.masks is None
    m = load_mmdm(tmp_path / "m" / "model")
    assert m.kind == "mmdm"
    out = m.sample(text[:2], 12, steps=3, seed=0)
    assert out.shape == (2, 12, LAYOUT.dim)
    assert np.isfinite(out).all()
    from polyfold.motion.shipped import shipped_path

    with pytest.raises(InputError, match="not an MMDM model file"):
        load_mmdm(shipped_path("ddpm"))


def test_shipped_mmdm_is_the_ddpm_network_with_masked_embedding() -> None:
    from polyfold.motion.generate import resolve_model

    m = resolve_model("mmdm")
    ddpm = resolve_model("ddpm")
    assert m.kind == "mmdm"
    assert isinstance(m.net, MaskedMotionDenoiser)
    assert m.net.model_config() == ddpm.net.model_config()  # same network, same budget
    assert m.card["train"]["steps"] == ddpm.card["train"]["steps"]
    out = m.sample(np.zeros((1, 384), np.float32), 8, steps=2, seed=0)
    assert out.shape == (1, 8, LAYOUT.dim)


def test_cli_train_rejects_an_unknown_model(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from polyfold.motion.cli import main

    monkeypatch.setattr("sys.argv", ["polyfold-motion", "train", "--model", "mdm",
                                      "--out", str(tmp_path / "x")])  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert "mmdm" in capsys.readouterr().err
