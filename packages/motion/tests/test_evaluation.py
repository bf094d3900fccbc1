import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.dataset import DatasetConfig, build_dataset
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.evaluation import HeldOut, score


@pytest.fixture(scope="module")
def held():
    cfg = DatasetConfig(length=24, train_windows_per_clip=0, test_windows_per_clip=4,
                        train_then=0, test_then=2)  # fmt: skip
    data = build_dataset(
        cfg, load_clips(("humanoid3d_walk", "humanoid3d_cartwheel", "humanoid3d_jump"))
    )
    return HeldOut.build(data)


def test_real_scored_against_itself(held):
    real = held.data.features[held.index]
    res = score(held, real, reps=5)
    assert res["fid"][0] == pytest.approx(0.0, abs=1e-6)
    assert res["skating_over_real"] == pytest.approx(1.0)
    assert res["jerk_over_real"] == pytest.approx(1.0)
    assert res["accuracy"][0] == 1.0  # the shipped evaluator on three distinct actions
    assert res["real_fid_floor"] > 0


def test_score_rejects_bad_shapes(held):
    with pytest.raises(InputError, match="one window per held-out caption"):
        score(held, np.zeros((2, 24, 155)))
    bad = held.data.features[held.index].astype(np.float64)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        score(held, bad)
