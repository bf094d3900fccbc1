import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.features import (
    LAYOUT,
    joints_from_features,
    motion_features,
    motion_from_features,
)
from polyfold.motion.motion import Motion
from polyfold.motion.quaternion import normalize


def test_layout():
    g = LAYOUT.groups
    assert LAYOUT.dim == 155
    assert g["ric"].stop - g["ric"].start == 42
    assert g["rot6d"].stop - g["rot6d"].start == 54


@pytest.mark.parametrize(
    "name", ["humanoid3d_cartwheel", "humanoid3d_backflip", "walker_turn_right0"]
)
def test_round_trip_exact(name):
    m = load_clips((name,))[0].resampled()
    f = motion_features(m)
    np.testing.assert_allclose(joints_from_features(f), m.joints(), atol=1e-9)
    np.testing.assert_allclose(motion_from_features(f).joints(), m.joints(), atol=1e-9)


def test_round_trip_random_pose():
    rng = np.random.default_rng(1)
    rot = normalize(rng.normal(size=(12, 15, 4)))
    rot[:, [4, 7, 10, 13]] = normalize(rot[:, [4, 7, 10, 13]] * [1, 0, 0, 1])  # hinges about z
    rot[:, [8, 14]] = [1, 0, 0, 0]
    m = Motion(rng.normal(size=(12, 3)), rot)
    f = motion_features(m)
    np.testing.assert_allclose(joints_from_features(f), m.joints(), atol=1e-9)
    np.testing.assert_allclose(motion_from_features(f).joints(), m.joints(), atol=1e-9)


def test_bad_features():
    with pytest.raises(InputError, match=r"\(T, 155\)"):
        joints_from_features(np.zeros((4, 10)))
    bad = np.zeros((3, 155))
    bad[1, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        joints_from_features(bad)
