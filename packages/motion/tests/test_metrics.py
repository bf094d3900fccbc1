import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.metrics import (
    accuracy,
    bone_length_std_cm,
    bootstrap,
    diversity,
    fid,
    foot_skating_ratio,
    ground_penetration_cm,
    jerk,
    kid,
    mm_dist,
    r_precision,
)


def test_distribution_metrics_known_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([3.0] + [0.0] * 7)
    assert fid(a, shifted) == pytest.approx(9.0, rel=1e-6)  # mean shift only: |mu|^2
    assert kid(a, rng.normal(size=(400, 8))) == pytest.approx(0.0, abs=0.05)
    assert kid(a, shifted) > 1.0
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert diversity(x, pairs=50) == pytest.approx(5.0)
    with pytest.raises(InputError, match="fid a"):
        fid(np.zeros((1, 3)), a[:, :3])


def test_text_motion_metrics():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(64, 16))
    r = r_precision(t, t * 2.0)  # scale does not matter: unit vectors
    assert r[1] == 1.0
    assert r[3] == 1.0
    assert mm_dist(t, t) == pytest.approx(0.0)
    chance = r_precision(t, rng.normal(size=(64, 16)))
    assert chance[1] < 0.25
    assert accuracy(np.eye(4), np.arange(4)) == 1.0
    value, lo, hi = bootstrap(lambda i: float(np.arange(10)[i].mean()), 10, reps=200)
    assert value == 4.5
    assert lo < 4.5 < hi


def test_physical_metrics():
    walk = load_clips(("humanoid3d_walk",))[0].resampled().joints()
    assert bone_length_std_cm(walk) == pytest.approx(0.0, abs=1e-6)
    assert ground_penetration_cm(walk) == pytest.approx(0.0)
    assert ground_penetration_cm(walk - np.array([0, 0.2, 0])) > 5.0
    # a rigid slide of the whole figure makes planted feet skate
    slide = walk.copy()
    slide[..., 0] += np.arange(len(walk))[:, None] * 0.2
    assert foot_skating_ratio(slide) > foot_skating_ratio(walk)
    line = np.zeros((1, 10, 15, 3))
    line[..., 0] = np.arange(10)[None, :, None] * 0.1  # constant velocity: no jerk
    assert jerk(line) == pytest.approx(0.0, abs=1e-9)
    stretched = walk.copy()
    stretched[::2, 4] *= 1.05
    assert bone_length_std_cm(stretched) > 0.1  # two of 14 bones change by ~2 cm
