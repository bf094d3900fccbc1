"""TabEBM's evaluation protocol: augment small training sets, score downstream classifiers.

For one labelled table, each *cell* is a training-set size n and a seed:

1. a stratified held-out test set (``test_fraction`` of the rows) and, from the rest, a
   stratified training subset of n rows (at least 2 rows of every class);
2. each *method* adds ``n_syn`` synthetic rows per class to the training subset: ``real`` (none),
   ``smote`` (imbalanced-learn's SMOTE), ``gmm`` (a Gaussian mixture per class, components by
   BIC), ``tabebm`` (TabEBM, default backbone) and ``tabebm-<backbone>`` for other backbones;
3. downstream classifiers (logistic regression, KNN, random forest, MLP; scikit-learn, each after
   a StandardScaler on one-hot encoded features) are trained on the augmented set and scored by
   balanced accuracy on the test set;
4. statistical fidelity of the synthetic rows against the held-out real rows: mean per-feature
   KS statistic (numeric columns; 0 = same marginals), mean inverse KL ``1 / (1 + KL)`` over all
   columns (1 = same marginals), and the median distance from each synthetic row to its closest
   real training row (DCR, in the training set's standardised encoding). The ``real`` rows
   carry the data's own floor instead: the real training rows scored the same way against the
   held-out rows (KS, inverse KL), and the held-out rows' DCR to the training rows.

:data:`METRICS` says, for every figure written or printed, which direction is better and what
it is compared against.

Every generator works in the same standardised encoding (:class:`TableEncoder` fitted on the
training subset) and decodes through it, so every method hands the classifiers valid categories.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from polyfold.core.errors import InputError
from polyfold.tabular.backbones import BACKBONES
from polyfold.tabular.encoding import TableEncoder
from polyfold.tabular.extras import require_extra
from polyfold.tabular.splits import stratified_indices
from polyfold.tabular.tabebm import TabEBM

__all__ = [
    "CLASSIFIERS",
    "METRICS",
    "EvalConfig",
    "augment",
    "check_methods",
    "compare_with_smote",
    "downstream_scores",
    "evaluate",
    "fidelity",
    "planned_runs",
    "reference_fidelity",
    "seed_interval",
    "smote_line",
    "stratified_indices",
    "summarize",
]

CLASSIFIERS = ("logreg", "knn", "rf", "mlp")

METRICS: dict[str, str] = {
    "bal_acc": "balanced accuracy on the held-out real test rows, mean of the downstream "
    "classifiers; higher is better; compare with the 'real' row (real training rows only) "
    "and with 'smote'",
    "ks": "mean Kolmogorov-Smirnov statistic of the numeric columns against the held-out real "
    "rows; lower is better (0 = same marginals); floor: the 'real' row (real training rows "
    "against the held-out rows)",
    "inv_kl": "mean inverse KL 1/(1+KL) of every column against the held-out real rows; higher "
    "is better (1 = same marginals); reference: the 'real' row (real training rows against the "
    "held-out rows)",
    "dcr": "median distance of a row to its closest real training row (standardised); higher "
    "is more private, lower copies the training rows more closely; reference: the 'real' row "
    "(held-out real rows, i.e. new data from the same source)",
    "win_rate_vs_real": "share of (dataset, size) cells where TabEBM's balanced accuracy beats "
    "real-only training; higher is better (0.5 = as often better as worse)",
    "mean_gain_vs_real": "TabEBM's balanced accuracy minus real-only's, in points, mean over "
    "cells; higher is better (0 = no gain over real-only)",
    "mean_gain_vs_smote": "TabEBM's balanced accuracy minus SMOTE's, in points, mean over cells; "
    "higher is better (0 = no gain over SMOTE); read it with gain_vs_smote_interval",
    "win_rate_vs_smote": "share of cells where TabEBM's balanced accuracy beats SMOTE's; 0.5 = "
    "as often better as worse",
    "gain_vs_smote_interval": "95% Student-t interval of mean_gain_vs_smote over seeds (each "
    "seed's gain averaged over the cells); an interval holding 0 is a tie within seed noise",
    "vs_smote": "the verdict on these tables only: 'tie within seed noise' (the interval holds "
    "0), 'ahead of SMOTE' or 'behind SMOTE'; it says nothing of other tables",
    "mean_gain_vs_real[METHOD]": "METHOD's balanced accuracy minus real-only's, in points; "
    "higher is better",
    "gen_seconds": "seconds to generate the synthetic rows; lower is faster",
}
"""What each metric means, which direction is better and what it is compared against."""


@dataclass(frozen=True)
class EvalConfig:
    """What one evaluation run does."""

    sizes: Sequence[int] = (20, 50, 100, 200)
    seeds: Sequence[int] = (0, 1, 2)
    methods: Sequence[str] = ("real", "smote", "gmm", "tabebm", "tabebm-logistic")
    n_syn: int = 500  # synthetic rows per class
    test_fraction: float = 0.3
    classifiers: Sequence[str] = CLASSIFIERS
    rf_trees: int = 100
    mlp_iter: int = 300
    backbone: str = "mlp"  # TabEBM's default backbone in this run


# --------------------------------------------------------------------------------------------
# Generators: each returns (X_syn table, y_syn array) of n_syn rows per class
# --------------------------------------------------------------------------------------------


def _smote(Z: np.ndarray, y: np.ndarray, n_syn: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    require_extra("smote", "method 'smote'")
    from imblearn.over_sampling import SMOTE  # an optional extra: imported only when used

    classes, counts = np.unique(y, return_counts=True)
    k = int(min(5, counts.min() - 1))
    strategy = {c: int(n + n_syn) for c, n in zip(classes, counts, strict=True)}
    smote = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    Z_res, y_res = smote.fit_resample(Z, y)
    return np.asarray(Z_res)[len(y) :], np.asarray(y_res)[len(y) :]


def _gmm(Z: np.ndarray, y: np.ndarray, n_syn: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    parts, labels = [], []
    for c in np.unique(y):
        Zc = Z[y == c]
        best, best_bic = None, np.inf
        for k in range(1, min(3, len(Zc) // 2) + 1):
            gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-2, random_state=seed)
            gmm.fit(Zc)
            bic = gmm.bic(Zc)
            if bic < best_bic:
                best, best_bic = gmm, bic
        assert best is not None
        best.random_state = seed
        parts.append(best.sample(n_syn)[0])
        labels.append(np.full(n_syn, c, dtype=y.dtype))
    return np.concatenate(parts), np.concatenate(labels)


def check_methods(methods: Iterable[str], backbone: str = "mlp") -> tuple[str, ...]:
    """``methods`` if every one is known (``tabebm-<name>`` with a known backbone) and
    ``backbone`` (TabEBM's) is a backbone name, else an :class:`InputError` naming the option."""
    known = (*BACKBONES, "pfn")
    if backbone not in known:
        raise InputError(f"--backbone: unknown name {backbone!r}; choose one of {', '.join(known)}")
    names = tuple(methods)
    if not names:
        raise InputError("--methods: expected at least one of real, smote, gmm, tabebm")
    for m in names:
        name = m.removeprefix("tabebm-") if m.startswith("tabebm-") else None
        if m in ("real", "smote", "gmm", "tabebm") or name in known:
            continue
        raise InputError(
            f"--methods: {m!r} is not a method; choose real, smote, gmm, tabebm or "
            f"tabebm-<backbone> with a backbone from {', '.join(known)}"
        )
    return names


def planned_runs(n_rows: int, cfg: EvalConfig) -> int:
    """How many (seed, size, method) runs :func:`evaluate` makes on a table of ``n_rows``
    (sizes larger than the rows left after the test split are skipped)."""
    pool = n_rows - round(cfg.test_fraction * n_rows)
    return len(cfg.seeds) * sum(size <= pool for size in cfg.sizes) * len(cfg.methods)


def augment(
    method: str, X: pd.DataFrame, y: np.ndarray, n_syn: int, seed: int, *, backbone: str = "mlp"
) -> tuple[pd.DataFrame, np.ndarray]:
    """``n_syn`` synthetic rows per class of the training table by ``method``."""
    if method == "real":
        return X.iloc[:0], y[:0]
    if method == "tabebm" or method.startswith("tabebm-"):
        name = backbone if method == "tabebm" else method.removeprefix("tabebm-")
        model = TabEBM(name, seed=seed).fit(X, y)
        X_syn, y_syn = model.sample(n_syn, seed=seed)
        return X_syn, np.asarray(y_syn)
    generators: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
        "smote": _smote,
        "gmm": _gmm,
    }
    if method not in generators:
        raise InputError(f"method {method!r}: choose real, smote, gmm, tabebm or tabebm-<backbone>")
    encoder = TableEncoder().fit(X)
    Z_syn, y_syn = generators[method](encoder.transform(X), np.asarray(y), n_syn, seed)
    return encoder.inverse_transform(Z_syn), y_syn


# --------------------------------------------------------------------------------------------
# Downstream classifiers and fidelity
# --------------------------------------------------------------------------------------------


def _classifier(name: str, seed: int, n_train: int, cfg: EvalConfig) -> Any:
    models: dict[str, Any] = {
        "logreg": LogisticRegression(max_iter=2000),
        "knn": KNeighborsClassifier(n_neighbors=min(5, n_train)),
        "rf": RandomForestClassifier(n_estimators=cfg.rf_trees, random_state=seed, n_jobs=1),
        "mlp": MLPClassifier(hidden_layer_sizes=(100,), max_iter=cfg.mlp_iter, random_state=seed),
    }
    if name not in models:
        raise InputError(f"classifier {name!r}: choose from {', '.join(models)}")
    return make_pipeline(StandardScaler(), models[name])


def downstream_scores(
    Z_train: np.ndarray,
    y_train: np.ndarray,
    Z_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    cfg: EvalConfig,
) -> dict[str, float]:
    """Balanced accuracy on the test set of each downstream classifier."""
    scores = {}
    for name in cfg.classifiers:
        clf = _classifier(name, seed, len(y_train), cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Z_train, y_train)
        scores[name] = float(balanced_accuracy_score(y_test, clf.predict(Z_test)))
    return scores


def _inverse_kl(real: np.ndarray, syn: np.ndarray, categorical: bool) -> float:
    if categorical:
        cats = np.unique(np.concatenate([real, syn]).astype(str))
        p = np.array([(real.astype(str) == c).mean() for c in cats])
        q = np.array([(syn.astype(str) == c).mean() for c in cats])
    else:
        edges = np.unique(np.quantile(real.astype(float), np.linspace(0, 1, 11)))
        if len(edges) < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        p = np.histogram(np.clip(real, edges[0], edges[-1]), edges)[0].astype(float)
        q = np.histogram(np.clip(syn.astype(float), edges[0], edges[-1]), edges)[0].astype(float)
    p = (p + 1e-6) / (p + 1e-6).sum()
    q = (q + 1e-6) / (q + 1e-6).sum()
    return float(1.0 / (1.0 + np.sum(p * np.log(p / q))))


def fidelity(X_real: pd.DataFrame, X_syn: pd.DataFrame, X_train: pd.DataFrame) -> dict[str, float]:
    """``ks`` (mean KS statistic, numeric columns), ``inv_kl`` (mean 1/(1+KL), all columns) of
    the synthetic rows against ``X_real``; ``dcr``: median distance to the closest training row."""
    if len(X_syn) == 0:
        return {"ks": float("nan"), "inv_kl": float("nan"), "dcr": float("nan")}
    encoder = TableEncoder().fit(X_train)
    ks, ikl = [], []
    for spec in encoder.columns_:
        real = X_real[spec.name].to_numpy()
        syn = X_syn[spec.name].to_numpy()
        numeric = spec.kind == "numeric"
        if numeric:
            ks.append(float(stats.ks_2samp(real.astype(float), syn.astype(float)).statistic))
        ikl.append(_inverse_kl(real, syn, categorical=not numeric))
    nn = NearestNeighbors(n_neighbors=1).fit(encoder.transform(X_train))
    dist = nn.kneighbors(encoder.transform(X_syn))[0][:, 0]
    return {
        "ks": float(np.mean(ks)) if ks else float("nan"),
        "inv_kl": float(np.mean(ikl)),
        "dcr": float(np.median(dist)),
    }


def reference_fidelity(X_real: pd.DataFrame, X_train: pd.DataFrame) -> dict[str, float]:
    """The data's own floor for :func:`fidelity`: ``ks`` and ``inv_kl`` of the real training
    rows against ``X_real`` (held-out rows), ``dcr`` of the held-out rows to the training rows."""
    own = fidelity(X_real, X_train, X_train)
    own["dcr"] = fidelity(X_real, X_real, X_train)["dcr"]
    return own


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------


def evaluate(
    X: pd.DataFrame,
    y: Any,
    cfg: EvalConfig,
    *,
    dataset: str = "data",
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (size, seed, method): balanced accuracies, their mean, fidelity, seconds
    (see :data:`METRICS`). ``progress`` gets a line and ``on_row`` the row after each run."""
    y = np.asarray(y)
    vocab = TableEncoder().fit(X)  # the downstream one-hot vocabulary: every category of X
    rows: list[dict[str, Any]] = []
    for seed in cfg.seeds:
        rng = np.random.default_rng(seed)
        n_test = round(cfg.test_fraction * len(y))
        test_idx = stratified_indices(y, n_test, rng, min_per_class=1)
        pool = np.setdiff1d(np.arange(len(y)), test_idx)
        X_test, y_test = X.iloc[test_idx].reset_index(drop=True), y[test_idx]
        Z_test = vocab.transform(X_test)
        for size in cfg.sizes:
            if size > len(pool):
                continue
            train_idx = pool[stratified_indices(y[pool], size, rng)]
            X_tr, y_tr = X.iloc[train_idx].reset_index(drop=True), y[train_idx]
            for method in cfg.methods:
                start = time.perf_counter()
                X_syn, y_syn = augment(method, X_tr, y_tr, cfg.n_syn, seed, backbone=cfg.backbone)
                gen_s = time.perf_counter() - start
                X_aug = pd.concat([X_tr, X_syn], ignore_index=True)
                y_aug = np.concatenate([y_tr, y_syn])
                scores = downstream_scores(
                    vocab.transform(X_aug), y_aug, Z_test, y_test, seed=seed, cfg=cfg
                )
                fid = (
                    reference_fidelity(X_test, X_tr)
                    if method == "real"
                    else fidelity(X_test, X_syn, X_tr)
                )
                row: dict[str, Any] = {
                    "dataset": dataset,
                    "n_train": size,
                    "seed": seed,
                    "method": method,
                    "bal_acc": float(np.mean(list(scores.values()))),
                    **{f"bal_acc_{k}": v for k, v in scores.items()},
                    **fid,
                    "gen_seconds": gen_s,
                }
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                if progress is not None:
                    progress(
                        f"{dataset} n={size} seed={seed} {method}: "
                        f"bal_acc {row['bal_acc']:.3f} ({gen_s:.1f} s)"
                    )
    return rows


def seed_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The ``level`` Student-t interval of the mean of per-seed values (NaN for one seed)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def compare_with_smote(frame: pd.DataFrame, wide: pd.DataFrame, method: str) -> dict[str, Any]:
    """``method`` against SMOTE as what it is on these tables: the mean gain in points with its
    95% interval over seeds (each seed's gain averaged over the cells), the share of cells it
    wins, and a verdict: ``"tie within seed noise"`` when the interval holds 0."""
    diff = wide[method] - wide["smote"]
    out: dict[str, Any] = {
        "mean_gain_vs_smote": float(100 * diff.mean()),
        "win_rate_vs_smote": float((diff > 0).mean()),
    }
    per_seed = frame[frame["method"].isin([method, "smote"])].pivot_table(
        index=["dataset", "n_train", "seed"], columns="method", values="bal_acc"
    )
    gains = 100 * (per_seed[method] - per_seed["smote"]).groupby(level="seed").mean()
    lo, hi = seed_interval(gains.tolist())
    out["gain_vs_smote_interval"] = [lo, hi]
    out["seeds"] = len(gains)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0.0 <= hi:
        out["vs_smote"] = "tie within seed noise"
    else:
        out["vs_smote"] = "ahead of SMOTE" if lo > 0 else "behind SMOTE"
    return out


def smote_line(summary: dict[str, Any]) -> str | None:
    """The SMOTE comparison of :func:`compare_with_smote` in words, with its interval, win rate
    and the verdict's scope (these tables); ``None`` when the summary has no SMOTE figures."""
    if "mean_gain_vs_smote" not in summary:
        return None
    lo, hi = summary.get("gain_vs_smote_interval", [float("nan")] * 2)
    spread = (
        f"95% interval over {summary['seeds']} seeds {lo:+.2f} to {hi:+.2f}"
        if np.isfinite(lo) and np.isfinite(hi)
        else "one seed: no interval"
    )
    verdict = summary.get("vs_smote", "tie within seed noise")
    scope = ", not a general advantage" if verdict == "tie within seed noise" else ""
    return (
        f"TabEBM vs SMOTE: {summary['mean_gain_vs_smote']:+.2f} points of balanced accuracy "
        f"({spread}), ahead in {summary['win_rate_vs_smote']:.0%} of the cells: {verdict} on "
        f"these tables{scope}"
    )


def summarize(
    rows: Sequence[dict[str, Any]], *, method: str = "tabebm"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per (dataset, size, method) means over seeds, and the issue's summary figures for
    ``method``: win rate and mean gain (points of balanced accuracy) over real and SMOTE."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return [], {
            "win_rate_vs_real": float("nan"),
            "mean_gain_vs_real": float("nan"),
            "mean_gain_vs_smote": float("nan"),
            "datasets": 0,
        }
    metrics = ["bal_acc", "ks", "inv_kl", "dcr", "gen_seconds"]
    table = frame.groupby(["dataset", "n_train", "method"], sort=False)[metrics].mean()
    table = table.reset_index()
    wide = table.pivot_table(index=["dataset", "n_train"], columns="method", values="bal_acc")
    summary: dict[str, Any] = {"datasets": int(frame["dataset"].nunique()), "cells": len(wide)}
    if method in wide and "real" in wide:
        diff = wide[method] - wide["real"]
        summary["win_rate_vs_real"] = float((diff > 0).mean())
        summary["mean_gain_vs_real"] = float(100 * diff.mean())
    if method in wide and "smote" in wide:
        summary.update(compare_with_smote(frame, wide, method))
    for other in wide.columns:
        if other not in (method, "real") and "real" in wide:
            summary[f"mean_gain_vs_real[{other}]"] = float(
                100 * (wide[other] - wide["real"]).mean()
            )
    return table.to_dict(orient="records"), summary
