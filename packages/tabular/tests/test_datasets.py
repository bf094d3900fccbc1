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


def test_read_csv_refuses_a_text_cell_in_a_numeric_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = {"a": ["1.5", "2", "oops", "4", "5"], "b": list("xyxyx"), "y": [0, 1, 0, 1, 0]}
    pd.DataFrame(rows).to_csv(path, index=False)
    # "a" is mostly numbers: the text cell is an error naming the row, line and column
    with pytest.raises(InputError, match=r"row 3 \(line 4\), column 'a': 'oops' is not a number"):
        read_csv(path, "y")
    # the user can say the column holds categories
    table = read_csv(path, "y", categorical=["a"])
    assert table.X["a"].tolist() == ["1.5", "2", "oops", "4", "5"]
    # a column mostly of text stays categorical unless declared numeric
    pd.DataFrame({**rows, "a": ["1", "2", "3", "4", "5"], "b": ["x", "1", "y", "z", "w"]}).to_csv(
        path, index=False
    )
    assert read_csv(path, "y").X["b"].tolist() == ["x", "1", "y", "z", "w"]
    with pytest.raises(InputError, match=r"row 1 \(line 2\), column 'b'.*declared with --numeric"):
        read_csv(path, "y", numeric=["b"])
    with pytest.raises(InputError, match=r"--numeric c: .* no such feature column"):
        read_csv(path, "y", numeric=["c"])
    with pytest.raises(InputError, match="also given to --categorical"):
        read_csv(path, "y", numeric=["a"], categorical=["a"])
    # empty cells are missing values (refused later, by name), not text
    pd.DataFrame({**rows, "a": ["1", "", "3", "4", "5"]}).to_csv(path, index=False)
    assert read_csv(path, "y").X["a"].isna().sum() == 1
