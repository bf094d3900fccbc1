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
    seed_interval,
    smote_line,
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


def _rows(gains: dict[int, list[float]]) -> list[dict]:
    """TabEBM and SMOTE rows: per seed, TabEBM's gain over SMOTE (points) in each of 2 cells."""
    rows = []
    for seed, per_cell in gains.items():
        for cell, gain in enumerate(per_cell):
            for method, acc in (("smote", 0.7), ("tabebm", 0.7 + gain / 100), ("real", 0.6)):
                rows.append(
                    {
                        "dataset": f"d{cell}",
                        "n_train": 20,
                        "seed": seed,
                        "method": method,
                        "bal_acc": acc,
                        "ks": 0.1,
                        "inv_kl": 0.9,
                        "dcr": 1.0,
                        "gen_seconds": 0.1,
                    }
                )
    return rows


def test_seed_interval_is_students_t() -> None:
    lo, hi = seed_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert hi - lo == pytest.approx(2 * 4.302653 * 1.0 / np.sqrt(3), rel=1e-5)
    assert all(np.isnan(seed_interval([1.0])))


def test_a_gain_within_seed_noise_is_called_a_tie() -> None:
    _, summary = summarize(_rows({0: [2.0, -1.0], 1: [-1.5, 0.5], 2: [1.0, 0.0]}))
    assert summary["mean_gain_vs_smote"] == pytest.approx(1.0 / 6)
    assert summary["win_rate_vs_smote"] == pytest.approx(0.5)  # cell means: +0.5, -0.17
    lo, hi = summary["gain_vs_smote_interval"]
    assert lo < 0 < hi
    assert summary["vs_smote"] == "tie within seed noise"
    line = smote_line(summary)
    assert line is not None
    assert "+0.17 points" in line
    assert "over 3 seeds" in line
    assert line.endswith("tie within seed noise on these tables, not a general advantage")


def test_a_gain_beyond_seed_noise_is_called_ahead_or_behind() -> None:
    _, ahead = summarize(_rows({0: [2.0, 2.2], 1: [2.1, 1.9], 2: [2.0, 2.1]}))
    assert ahead["vs_smote"] == "ahead of SMOTE"
    assert ahead["gain_vs_smote_interval"][0] > 0
    _, behind = summarize(_rows({0: [-3.0, -2.0], 1: [-2.5, -2.4], 2: [-2.8, -2.2]}))
    assert behind["vs_smote"] == "behind SMOTE"
    assert "not a general advantage" not in (smote_line(behind) or "")
