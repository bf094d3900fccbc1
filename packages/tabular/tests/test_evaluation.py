"""The evaluation protocol's pieces: subsampling, baselines, fidelity, summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polyfold.core.errors import InputError
from polyfold.tabular.evaluation import (
    EvalConfig,
    augment,
    evaluate,
    fidelity,
    stratified_indices,
    summarize,
)


def test_stratified_indices_keep_proportions_and_minimum() -> None:
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    idx = stratified_indices(y, 20, np.random.default_rng(0))
    assert len(idx) == len(set(idx)) == 20
    counts = np.bincount(y[idx])
    assert counts.tolist() == [15, 3, 2]  # proportional, the smallest class raised to 2
    with pytest.raises(InputError, match="cannot hold 2 rows"):
        stratified_indices(y, 5, np.random.default_rng(0))


@pytest.mark.parametrize("method", ["smote", "gmm", "tabebm", "tabebm-logistic"])
def test_generators_give_n_rows_per_class_in_the_tables_format(mixed_table, method) -> None:
    X, y = mixed_table
    X_syn, y_syn = augment(method, X, y.to_numpy(), 9, seed=0)
    assert list(X_syn.columns) == list(X.columns)
    assert X_syn.dtypes.to_dict() == X.dtypes.to_dict()
    assert pd.Series(y_syn).value_counts().to_dict() == {"a": 9, "b": 9}
    assert set(X_syn["colour"]) <= {"red", "green", "blue"}


def test_fidelity_separates_close_and_far_copies() -> None:
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"a": rng.normal(size=300), "c": rng.choice(["x", "y"], size=300)})
    same = pd.DataFrame({"a": rng.normal(size=300), "c": rng.choice(["x", "y"], size=300)})
    far = pd.DataFrame({"a": rng.normal(4, 1, size=300), "c": ["x"] * 300})
    near, off = fidelity(real, same, real), fidelity(real, far, real)
    assert near["ks"] < 0.15 < 0.8 < off["ks"]
    assert near["inv_kl"] > 0.9 > 0.5 > off["inv_kl"]
    assert near["dcr"] < off["dcr"]
    assert fidelity(real, real, real)["dcr"] == 0.0


def test_evaluate_and_summarize(mixed_table) -> None:
    X, y = mixed_table
    cfg = EvalConfig(
        sizes=(10, 20, 1000),
        seeds=(0,),
        methods=("real", "tabebm"),
        n_syn=10,
        classifiers=("logreg", "knn"),
        rf_trees=5,
    )
    rows = evaluate(X, y, cfg, dataset="toy")
    assert {(r["n_train"], r["method"]) for r in rows} == {
        (10, "real"),
        (10, "tabebm"),
        (20, "real"),
        (20, "tabebm"),
    }
    means, summary = summarize(rows)
    assert len(means) == 4
    assert summary["datasets"] == 1
    assert summary["cells"] == 2
    wide = {(m["n_train"], m["method"]): m["bal_acc"] for m in means}
    gains = [wide[(n, "tabebm")] - wide[(n, "real")] for n in (10, 20)]
    assert summary["mean_gain_vs_real"] == pytest.approx(100 * np.mean(gains))
    assert summary["win_rate_vs_real"] == pytest.approx(np.mean([g > 0 for g in gains]))
