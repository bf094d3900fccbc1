"""``generate`` writes each window's raw features, which ``edit`` takes directly."""

from __future__ import annotations

import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.features import LAYOUT, motion_from_features
from polyfold.motion.generate import write_features


def _cli(monkeypatch, capsys, *args):
    from polyfold.motion.cli import main

    monkeypatch.setattr("sys.argv", ["polyfold-motion", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def test_write_features_names_and_checks(tmp_path) -> None:
    feats = np.random.default_rng(0).normal(size=(2, 6, LAYOUT.dim))
    paths = write_features(tmp_path, ["a person walks", "Jump!"], feats)
    assert [p.name for p in paths] == ["00_a_person_walks.features.npy", "01_jump.features.npy"]
    back = np.load(paths[1])
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, feats[1].astype(np.float32))
    with pytest.raises(InputError, match="captions: expected 2"):
        write_features(tmp_path, ["one"], feats)


def test_generated_features_feed_edit(monkeypatch, capsys, tmp_path) -> None:
    from polyfold.motion import render

    monkeypatch.setattr(render, "write_gif", lambda path, *a, **k: path)  # slow; tested elsewhere
    gen, ed = tmp_path / "g", tmp_path / "e"
    code, text = _cli(monkeypatch, capsys, "generate", "a person walks", "--seconds", "2.4",
                      "--out", str(gen))  # fmt: skip
    assert code == 0, text
    feats = np.load(gen / "00_a_person_walks.features.npy")
    assert feats.shape == (48, LAYOUT.dim)
    # the joints file next to it is these features' motion
    np.testing.assert_allclose(motion_from_features(feats).joints(),
                               np.load(gen / "00_a_person_walks.npy"), atol=1e-5)  # fmt: skip
    edit = ("a person jumps", "--start", "16", "--end", "32", "--out", str(ed))
    code, text = _cli(monkeypatch, capsys, "edit", str(gen / "00_a_person_walks.features.npy"),
                      *edit)  # fmt: skip
    assert code == 0, text
    edited = np.load(ed / "features.npy")
    assert edited.shape == feats.shape
    before = motion_from_features(feats).joints()
    after = motion_from_features(edited).joints()
    np.testing.assert_allclose(after[:16], before[:16], atol=1e-3)  # untouched frames stay
    assert not np.allclose(after[18:30], before[18:30], atol=1e-3)
    # the joints file is not an edit input, and says which file is
    code, text = _cli(monkeypatch, capsys, "edit", str(gen / "00_a_person_walks.npy"), *edit)
    assert code == 2
    assert "holds joint positions" in text
    assert ".features.npy" in text
