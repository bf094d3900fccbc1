import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.augment import change_speed, concatenate, mirror, scale_bones
from polyfold.motion.captions import ACTIONS, caption_for, mirror_text, then_caption
from polyfold.motion.dataset import DatasetConfig, MotionDataset, build_dataset
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.heading import facing_yaw
from polyfold.motion.skeleton import HUMANOID


@pytest.fixture(scope="module")
def walk():
    return load_clips(("walker_turn_left0",))[0].resampled()


def test_mirror_reflects_and_swaps(walk):
    mm = mirror(walk)
    reflected = walk.joints()[:, HUMANOID.mirror_index()] * [1, 1, -1]
    np.testing.assert_allclose(mm.joints(), reflected, atol=1e-9)
    np.testing.assert_allclose(mirror(mm).joints(), walk.joints(), atol=1e-9)
    # a left turn mirrored is a right turn
    assert np.diff(facing_yaw(walk.joints()))[-5:].sum() > 0
    assert np.diff(facing_yaw(mm.joints()))[-5:].sum() < 0
    assert (
        mirror_text("kicks with the right leg, turns left")
        == "kicks with the left leg, turns right"
    )


def test_speed_and_bone_scaling(walk):
    fast = change_speed(walk, 1.25)
    assert fast.num_frames == int(np.floor((walk.num_frames - 1) / 1.25 + 1e-6)) + 1
    with pytest.raises(InputError, match="speed factor"):
        change_speed(walk, 0.0)
    big = scale_bones(walk, np.full(HUMANOID.num_joints, 1.1))
    j = big.joints()
    knee, ankle = HUMANOID.index("left_knee"), HUMANOID.index("left_ankle")
    shin = np.linalg.norm(j[:, ankle] - j[:, knee], axis=-1)
    np.testing.assert_allclose(shin, 1.1 * np.linalg.norm(HUMANOID.offsets[ankle]), atol=1e-9)
    ankles = [ankle, HUMANOID.index("right_ankle")]
    assert j[:, ankles, 1].min() == pytest.approx(walk.joints()[:, ankles, 1].min(), abs=1e-9)


def test_concatenate_is_continuous(walk):
    run = load_clips(("humanoid3d_run",))[0].resampled()
    both = concatenate(walk, run, blend=4)
    assert both.num_frames == walk.num_frames + run.num_frames - 4
    step = np.linalg.norm(np.diff(both.joints()[:, 0, [0, 2]], axis=0), axis=-1)
    assert step.max() < 0.3  # metres per frame at 20 fps: no teleport at the joint


def test_captions():
    rng = np.random.default_rng(0)
    text = caption_for("kick", rng)
    assert text
    with pytest.raises(InputError, match="expected one of"):
        caption_for("fly", rng)
    assert then_caption("a person walks", "someone runs") == "a person walks then runs"


def test_small_dataset(tmp_path):
    cfg = DatasetConfig(length=24, train_windows_per_clip=2, test_windows_per_clip=1,
                        train_then=4, test_then=2)  # fmt: skip
    clips = load_clips(("humanoid3d_walk", "humanoid3d_kick", "walker_turn_left0"))
    d = build_dataset(cfg, clips)
    assert d.features.shape[1:] == (24, 155)
    assert d.joints.shape[1:] == (24, 15, 3)
    assert 6 <= len(d.indices("train")) <= 10
    assert 3 <= len(d.indices("test")) <= 5
    assert set(d.labels.tolist()) <= set(range(len(ACTIONS)))
    then = d.labels2 >= 0
    assert all(" then " in c for c, t in zip(d.captions, then, strict=True) if t)
    # canonical start: row 0 has no yaw and no xz position
    np.testing.assert_allclose(d.features[:, 0, :3], 0.0, atol=1e-5)
    mean, std = d.stats()
    assert mean.shape == (155,)
    assert (std > 0).all()
    d.save(tmp_path / "d.npz")
    back = MotionDataset.load(tmp_path / "d.npz")
    assert back.captions == d.captions
    np.testing.assert_array_equal(back.features, d.features)
    with pytest.raises(InputError, match="split"):
        d.indices("val")
