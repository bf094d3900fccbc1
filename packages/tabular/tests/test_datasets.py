"""Bundled datasets and the CSV loader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from polyfold.core.errors import InputError
from polyfold.tabular.datasets import DATASETS, load_dataset, read_csv


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_bundled_dataset_loads_clean(name: str) -> None:
    table = load_dataset(name)
    assert len(table.X) == len(table.y) >= 100
    assert table.y.name == DATASETS[name].target
    assert table.target not in table.X.columns
    assert not table.X.isna().any().any()
    assert not table.y.isna().any()
    assert table.y.value_counts().min() >= 9
    assert table.y.nunique() >= 2


def test_at_least_eight_datasets() -> None:
    assert len(DATASETS) >= 8


def test_known_shapes() -> None:
    assert load_dataset("iris").X.shape == (150, 4)
    assert load_dataset("biopsy").X.shape == (683, 9)  # 16 rows with a missing V6 dropped
    assert set(load_dataset("penguins").X.columns) >= {"island", "sex"}
    assert "expenditure" not in load_dataset("credit-card").X.columns  # leaks the target
    olive = load_dataset("olive")
    assert olive.X.shape == (572, 8)
    assert olive.y.nunique() == 9
    assert "region" not in olive.X.columns  # a coarsening of the target area
    cells = load_dataset("cells")
    assert cells.X.shape == (2019, 56)
    assert "case" not in cells.X.columns


def test_unknown_dataset() -> None:
    with pytest.raises(InputError, match="'nope' is not bundled"):
        load_dataset("nope")


def test_read_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "x"], "y": [0, 1, 0]}).to_csv(path, index=False)
    table = read_csv(path, "y")
    assert list(table.X.columns) == ["a", "b"]
    assert table.y.tolist() == [0, 1, 0]
    with pytest.raises(InputError, match="no column 'z'"):
        read_csv(path, "z")
    with pytest.raises(InputError, match="no such file"):
        read_csv(tmp_path / "missing.csv", "y")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="could not be read as CSV"):
        read_csv(tmp_path / "empty.csv", "y")
    (tmp_path / "only.csv").write_text("y\n1\n2\n")
    with pytest.raises(InputError, match="at least one feature column"):
        read_csv(tmp_path / "only.csv", "y")
