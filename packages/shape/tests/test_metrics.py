import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.shape.metrics import (
    chamfer,
    emd,
    fscore,
    generation_metrics,
    normal_consistency,
    one_nna,
    volume_iou,
)


def _cloud(seed, n=256):
    return np.random.default_rng(seed).random((n, 3))


def test_reconstruction_metrics_on_known_cases():
    a = _cloud(0)
    assert chamfer(a, a) == 0
    assert fscore(a, a, 0.01) == 1
    shifted = a + np.array([0.1, 0, 0])
    assert chamfer(a[:1], a[:1] + np.array([0.1, 0, 0])) == pytest.approx(0.02)
    assert fscore(a[:50], shifted[:50] + 5, 0.01) == 0
    n = np.tile([[0.0, 0, 1]], (len(a), 1))
    assert normal_consistency(a, n, a, -n) == pytest.approx(1)
    assert volume_iou(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)) == pytest.approx(
        1 / 3
    )


def test_emd_of_a_shift_is_its_length():
    a = _cloud(1, 64)
    assert emd(a, a + np.array([0, 0.05, 0])) == pytest.approx(0.05, rel=1e-6)
    assert emd(a, a[::-1]) == pytest.approx(0)


def test_generation_metrics_identical_sets_and_separated_sets():
    ref = [_cloud(i, 128) for i in range(4)]
    same = generation_metrics(ref, ref, use_emd=False)
    assert same["mmd_cd"] == 0
    assert same["cov_cd"] == 1
    far = [r + 3 for r in ref]
    sep = generation_metrics(far, ref, use_emd=True)
    assert sep["1nna_cd"] == 1
    assert sep["1nna_emd"] == 1
    gg = np.array([[0, 1.0], [1.0, 0]])
    assert one_nna(gg, np.full((2, 2), 5.0), gg) == 1


def test_bad_point_sets_are_refused():
    with pytest.raises(InputError, match="a: expected a non-empty"):
        chamfer(np.zeros((0, 3)), _cloud(0))
    with pytest.raises(InputError, match="finite"):
        chamfer(np.full((2, 3), np.nan), _cloud(0))
    with pytest.raises(InputError, match="equal-size"):
        emd(_cloud(0, 3), _cloud(0, 4))
