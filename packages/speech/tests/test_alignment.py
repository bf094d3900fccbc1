import itertools

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.speech.alignment import (
    durations_from_path,
    monotonic_alignment,
    monotonic_alignment_batch,
)


def test_toy_matrix_alignment():
    score = np.full((3, 6), -10.0)
    score[0, :2] = 0
    score[1, 2:5] = 0
    score[2, 5] = 0
    path = monotonic_alignment(score)
    assert durations_from_path(path).tolist() == [2, 3, 1]
    assert (path.sum(0) == 1).all()


def test_alignment_is_the_best_monotonic_path():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, t = int(rng.integers(1, 5)), int(rng.integers(5, 9))
        score = rng.normal(size=(n, t))
        best = -np.inf
        for cuts in itertools.combinations(range(1, t), n - 1):
            b = (0, *cuts, t)
            best = max(best, sum(score[i, b[i] : b[i + 1]].sum() for i in range(n)))
        path = monotonic_alignment(score)
        assert (durations_from_path(path) >= 1).all()
        assert np.isclose((path * score).sum(), best)


def test_batch_respects_masks():
    score = torch.randn(2, 4, 10)
    pmask = torch.tensor([[True] * 4, [True, True, False, False]])
    fmask = torch.tensor([[True] * 10, [True] * 6 + [False] * 4])
    d = monotonic_alignment_batch(score, pmask, fmask)
    assert d.sum(1).tolist() == [10, 6]
    assert d[1, 2:].tolist() == [0, 0]


def test_too_few_frames():
    with pytest.raises(InputError, match="cannot cover"):
        monotonic_alignment(np.zeros((5, 3)))
