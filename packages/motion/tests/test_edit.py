"""MMM editing: what is given stays exactly, ranges and parts are checked, slerp in-betweening."""

from __future__ import annotations

import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.baselines import slerp_inbetween
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.edit import (
    PARTS,
    body_part_edit,
    chain_captions,
    continue_motion,
    edit_range,
    part_columns,
)
from polyfold.motion.features import LAYOUT, joints_from_features, motion_features
from polyfold.motion.mmm import MMM
from polyfold.motion.skeleton import HUMANOID


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    clip = load_clips(("humanoid3d_spin",))[0].resampled()
    return motion_features(clip)[:46].astype(np.float32)  # not a multiple of 4 frames


def test_edit_range_keeps_every_frame_outside_the_range(mmm: MMM, walk: np.ndarray) -> None:
    out = edit_range(mmm, walk, "a person jumps", 13, 30, seed=1)
    assert out.shape == walk.shape
    assert np.array_equal(out[:13], walk[:13])
    assert np.array_equal(out[30:], walk[30:])
    assert not np.allclose(out[15:28], walk[15:28])
    # the range turns and travels as the original did: the frames after it stay put in the world
    np.testing.assert_allclose(joints_from_features(out)[30:], joints_from_features(walk)[30:],
                               atol=1e-4)  # fmt: skip
    # prefix and suffix completion are ranges at either end
    assert np.array_equal(edit_range(mmm, walk, "run", 0, 10)[10:], walk[10:])
    assert np.array_equal(edit_range(mmm, walk, "run", 40, 46)[:40], walk[:40])
    several = edit_range(mmm, walk, "a person jumps", 13, 30, seed=1, candidates=3)
    assert np.array_equal(several[:13], walk[:13])
    assert np.array_equal(several[30:], walk[30:])


@pytest.mark.parametrize(("start", "end"), [(10, 10), (-1, 5), (20, 47), (30, 12)])
def test_bad_edit_range_is_a_clear_error(mmm: MMM, walk: np.ndarray, start: int, end: int) -> None:
    with pytest.raises(InputError, match=r"start|end"):
        edit_range(mmm, walk, "walk", start, end)


def test_continue_keeps_the_given_motion(mmm: MMM, walk: np.ndarray) -> None:
    out = continue_motion(mmm, walk, "a person waves", 20)
    assert out.shape == (66, LAYOUT.dim)
    assert np.array_equal(out[:46], walk)


def test_body_part_edit_keeps_the_legs_and_root(mmm: MMM, walk: np.ndarray) -> None:
    out = body_part_edit(mmm, walk, "a person waves both arms", ["upper"])
    legs = [HUMANOID.index(n) for n in ("root", *PARTS["legs"])]
    np.testing.assert_array_equal(joints_from_features(out)[:, legs],
                                  joints_from_features(walk)[:, legs])  # fmt: skip
    arms = [HUMANOID.index(n) for n in PARTS["arms"]]
    assert not np.allclose(joints_from_features(out)[:, arms], joints_from_features(walk)[:, arms])
    with pytest.raises(InputError, match="part 'tail'"):
        body_part_edit(mmm, walk, "walk", ["tail"])
    with pytest.raises(InputError, match="part 'root'"):
        part_columns(["root"])


def test_parts_partition_the_features() -> None:
    upper, legs = set(part_columns(["upper"])), set(part_columns(["legs"]))
    g = LAYOUT.groups
    root = set(range(g["ric"].start)) | set(range(g["rot6d"].start, g["rot6d"].start + 6))
    root |= set(range(g["joint_vel"].start, g["joint_vel"].start + 3))  # the root's velocity
    assert not upper & legs
    assert not upper & root
    assert not legs & root
    assert upper | legs | root == set(range(LAYOUT.dim))
    assert set(part_columns(["left_arm", "right_arm"])) == set(part_columns(["arms"]))


def test_chain_captions_length_and_errors(mmm: MMM) -> None:
    out = chain_captions(mmm, ["walk", "jump", "run"], 48, overlap=2)
    assert out.shape == (4 * (12 + 2 * 10), LAYOUT.dim)
    with pytest.raises(InputError, match="overlap"):
        chain_captions(mmm, ["walk"], 48, overlap=12)
    with pytest.raises(InputError, match="captions"):
        chain_captions(mmm, [], 48)


def test_slerp_inbetween_keeps_keys_and_interpolates(walk: np.ndarray) -> None:
    from polyfold.motion.features import motion_from_features

    m = motion_from_features(walk)
    s = slerp_inbetween(walk, 10, 20)
    np.testing.assert_allclose(s.rotations[:10], m.rotations[:10])
    np.testing.assert_allclose(s.rotations[20:], m.rotations[20:])
    mid = s.root_pos[15]
    np.testing.assert_allclose(mid, m.root_pos[9] + (m.root_pos[20] - m.root_pos[9]) * 6 / 11)
    with pytest.raises(InputError, match="key frames"):
        slerp_inbetween(walk, 0, 20)


def test_edit_cli_reports_bad_input(mmm: MMM, monkeypatch, capsys, tmp_path) -> None:
    from polyfold.core.export import save_model
    from polyfold.motion.cli import main

    save_model(mmm.net, tmp_path / "mmm", config=mmm.net.model_config(),
               card={"kind": "mmm", "tokenizer": "shipped", "sample_steps": 4})  # fmt: skip

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr("sys.argv", ["polyfold-motion", "edit", "humanoid3d_spin", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        out = capsys.readouterr()
        return int(exc.value.code), out.out + out.err

    model = ["--model", str(tmp_path / "mmm"), "--out", str(tmp_path / "e")]
    code, text = run("walk", "--start", "80", "--end", "95", *model)
    assert code == 2
    assert "start < end <= 89" in text
    code, text = run("walk", "--mode", "body-part", "--parts", "upper,tail", *model)
    assert code == 2
    assert "part 'tail'" in text
    code, text = run("walk", "--mode", "sideways", *model)
    assert code == 2
    assert "--mode" in text
    code, text = run("walk", "--model", "emdm", "--start", "1", "--end", "5", "--out", "x")
    assert code == 2
    assert "needs an MMM or BiPO model" in text
