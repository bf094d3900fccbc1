"""polyfold-tabular's tests: one torch thread (tiny models) and the same global seed."""

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def mixed_table() -> tuple[pd.DataFrame, pd.Series]:
    """A small table with float, int, string, category and bool columns and string labels."""
    rng = np.random.default_rng(0)
    n = 40
    label = np.where(np.arange(n) % 2 == 0, "a", "b")
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n) + (label == "a") * 3.0,
            "count": rng.integers(0, 5, size=n).astype("int32"),
            "colour": pd.Series(rng.choice(["red", "green", "blue"], size=n), dtype=object),
            "size": pd.Categorical(rng.choice(["S", "M", "L"], size=n), categories=["S", "M", "L"]),
            "flag": rng.random(n) > 0.5,
        }
    )
    return frame, pd.Series(label, name="label")
