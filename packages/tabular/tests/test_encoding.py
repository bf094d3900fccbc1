"""TableEncoder: standardised one-hot encoding and its exact inverse on the original dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polyfold.core.errors import InputError
from polyfold.tabular import TabEBM, TableEncoder


def test_round_trip_restores_values_and_dtypes(mixed_table) -> None:
    X, _ = mixed_table
    enc = TableEncoder().fit(X)
    Z = enc.transform(X)
    assert Z.shape == (len(X), 1 + 1 + 3 + 3 + 2)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    back = enc.inverse_transform(Z)
    pd.testing.assert_frame_equal(back, X, check_exact=False, rtol=1e-9)


def test_categorical_decoding_takes_the_largest_indicator(mixed_table) -> None:
    X, _ = mixed_table
    enc = TableEncoder().fit(X)
    block = enc.blocks[2]  # colour: blue, green, red (sorted)
    Z = enc.transform(X)
    raw = np.zeros((1, Z.shape[1]))
    raw[0, block] = [0.1, 0.7, 0.2]
    Z1 = (raw - enc.mean_) / enc.scale_
    Z1[0, : block.start] = Z[0, : block.start]
    Z1[0, block.stop :] = Z[0, block.stop :]
    assert enc.inverse_transform(Z1)["colour"].iloc[0] == "green"


def test_integer_columns_are_rounded_and_kept_in_range() -> None:
    X = pd.DataFrame({"k": np.array([1, 2, 3, 4], dtype="int16")})
    enc = TableEncoder().fit(X)
    Z = enc.transform(X) + np.array([[0.3], [-0.2], [5.0], [-9.0]])
    back = enc.inverse_transform(Z)
    assert back["k"].dtype == np.int16
    assert back["k"].tolist()[2:] == [4, 1]


def test_numeric_column_named_categorical_is_one_hot() -> None:
    X = pd.DataFrame({"code": [10, 20, 30, 10, 20, 30], "v": np.linspace(0, 1, 6)})
    enc = TableEncoder(categorical=["code"]).fit(X)
    assert enc.n_features_out == 4
    back = enc.inverse_transform(enc.transform(X))
    assert back["code"].tolist() == X["code"].tolist()
    assert back["code"].dtype == X["code"].dtype
    with pytest.raises(InputError, match=r"categorical: column\(s\) \['nope'\]"):
        TableEncoder(categorical=["nope"]).fit(X)


def test_unseen_category_and_changed_columns_are_refused(mixed_table) -> None:
    X, _ = mixed_table
    enc = TableEncoder().fit(X)
    other = X.copy()
    other.loc[0, "colour"] = "purple"
    with pytest.raises(InputError, match="'purple'"):
        enc.transform(other)
    with pytest.raises(InputError, match="differ from those seen in fit"):
        enc.transform(X[["x", "count"]])


def test_tabebm_keeps_categories_and_dtypes(mixed_table) -> None:
    X, y = mixed_table
    X_syn, y_syn = TabEBM(sgld_steps=20).fit(X, y).sample(25, seed=0)
    assert isinstance(X_syn, pd.DataFrame)
    assert list(X_syn.columns) == list(X.columns)
    assert X_syn.dtypes.to_dict() == X.dtypes.to_dict()
    assert set(X_syn["colour"]) <= {"red", "green", "blue"}
    assert X_syn["size"].cat.categories.tolist() == ["S", "M", "L"]
    assert X_syn["flag"].dtype == bool
    assert X_syn["count"].between(X["count"].min(), X["count"].max()).all()
    assert isinstance(y_syn, pd.Series)
    assert y_syn.name == "label"
    assert y_syn.value_counts().to_dict() == {"a": 25, "b": 25}


def test_object_numpy_array_round_trip() -> None:
    X = np.array([[1.5, "x"], [2.5, "y"], [0.5, "x"], [3.0, "y"]], dtype=object)
    enc = TableEncoder().fit(X)
    assert [c.kind for c in enc.columns_] == ["numeric", "categorical"]
    back = enc.inverse_transform(enc.transform(X))
    assert back.dtype == object
    assert back[:, 1].tolist() == ["x", "y", "x", "y"]
    np.testing.assert_allclose(back[:, 0].astype(float), [1.5, 2.5, 0.5, 3.0])
