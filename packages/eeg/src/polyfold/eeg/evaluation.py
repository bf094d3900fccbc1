"""The evaluation of synthetic EEG artifact windows against real ones, per class.

:func:`evaluate` compares ``fake`` with ``real`` (held-out subjects) class by class; every
metric is also a function of its own. Fidelity:

- ``band_rel_error[band]``: ``|P_fake - P_real| / P_real``, with ``P`` the mean absolute band
  power (Welch, summed over channels) in delta 0.5-4, theta 4-8, alpha 8-13, beta 13-30 and
  gamma 30-45 Hz; ``worst_band_rel_error`` is its maximum over bands. 0 is perfect.
- ``psd_distance_db``: RMS over channels and 0.5-100 Hz of the difference of the mean log
  PSDs, in dB.
- ``covariance_distance``: ``|C_fake - C_real|_F / |C_real|_F`` of the mean channel
  covariances; ``autocorrelation_distance``: RMS difference of the per-channel mean
  autocorrelation functions over lags 0-0.5 s.
- ``mmd_features`` / ``mmd_windows``: unbiased ``MMD^2`` (core's :func:`~polyfold.core.metrics.
  mmd_multiscale`) with the kernel :data:`KERNEL` on the classifier features (standardised by
  the real set) and on flattened windows (each channel standardised by the real set). Mean 0
  for samples of one distribution, so small negative values are noise.
- ``frechet_features``: core's Frechet distance between Gaussians fitted to those features.

Specificity and utility, all on :func:`~polyfold.eeg.spectra.features` (log band powers
including 45-100 Hz, log variances and channel correlations):

- ``c2st_accuracy``: 5-fold cross-validated accuracy of a logistic regression on the features
  and their squares telling real from fake (balanced; 0.5 = indistinguishable, 1.0 = perfectly
  separable).
- ``class_recovery``: accuracy of a random forest (100 trees) trained on real windows
  (``train_real``, else ``real``) at naming the class of fake windows; ``class_recovery_real``
  is its accuracy on ``real`` itself (cross-validated by subject when it was trained on it),
  the ceiling.
- ``tstr_balanced_accuracy`` / ``trtr_balanced_accuracy`` / ``tstr_over_trtr``: balanced
  accuracy on ``real`` of a classifier trained on ``fake`` versus on ``train_real`` (only when
  ``train_real`` is given).
- ``diversity``: ``1 - mean pairwise correlation`` of flattened windows (ArtifactGen's
  notebook), reported beside ``diversity_real``, the real set's own value.
- ``iclabel_agreement`` (optional, ``iclabel=True``, needs the ``iclabel`` extra):
  ``1 - total variation distance`` between the ICLabel component-type distributions of real and
  fake windows of a class (extended-infomax ICA on the concatenated windows).

:func:`aggregate` turns the results of several seeds into mean, standard deviation and a 95 %
t-interval for every number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats

from polyfold.core.errors import InputError
from polyfold.core.metrics import frechet_distance, mmd_multiscale
from polyfold.eeg.data import Windows
from polyfold.eeg.spectra import BANDS, autocorrelation, band_powers, features, mean_covariance, psd

__all__ = [
    "ICLABEL_CLASSES",
    "KERNEL",
    "aggregate",
    "autocorrelation_distance",
    "band_rel_error",
    "c2st",
    "class_recovery",
    "covariance_distance",
    "diversity",
    "evaluate",
    "evaluate_seeds",
    "iclabel_agreement",
    "mmd",
    "psd_distance",
    "tstr",
]

MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
KERNEL = (
    "k(x, y) = mean over h of exp(-|x - y|^2 / (2 h^2)), h = median pooled pairwise distance "
    f"times {MMD_SCALES}; unbiased U-statistic estimate of MMD^2"
)
ICLABEL_CLASSES = (
    "brain",
    "muscle artifact",
    "eye blink",
    "heart beat",
    "line noise",
    "channel noise",
    "other",
)


def _same_layout(real: Windows, fake: Windows) -> None:
    if real.channels != fake.channels or real.sfreq != fake.sfreq:
        raise InputError(
            f"fake: channels/sfreq {fake.channels} @ {fake.sfreq} Hz differ from real's "
            f"{real.channels} @ {real.sfreq} Hz"
        )
    if real.n_times != fake.n_times:
        raise InputError(f"fake: {fake.n_times} samples per window; real has {real.n_times}")
    if real.classes != fake.classes:
        raise InputError(f"fake: classes {fake.classes} differ from real's {real.classes}")


def band_rel_error(real: np.ndarray, fake: np.ndarray, sfreq: float) -> dict[str, float]:
    """``|P_fake - P_real| / P_real`` per band of :data:`~polyfold.eeg.spectra.BANDS`, ``P``
    the mean band power summed over channels."""
    pr = band_powers(real, sfreq).sum(1).mean(0)
    pf = band_powers(fake, sfreq).sum(1).mean(0)
    return {b: float(abs(f - r) / max(r, 1e-12)) for b, r, f in zip(BANDS, pr, pf, strict=True)}


def psd_distance(
    real: np.ndarray, fake: np.ndarray, sfreq: float, fmin: float = 0.5, fmax: float = 100.0
) -> float:
    """RMS (channels x frequencies in [fmin, fmax]) difference of mean log PSDs, in dB."""
    freqs, pr = psd(real, sfreq)
    _, pf = psd(fake, sfreq)
    keep = (freqs >= fmin) & (freqs <= fmax)
    lr = 10 * np.log10(pr[..., keep].mean(0) + 1e-12)
    lf = 10 * np.log10(pf[..., keep].mean(0) + 1e-12)
    return float(np.sqrt(((lr - lf) ** 2).mean()))


def covariance_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Relative Frobenius distance of the mean channel covariances."""
    cr, cf = mean_covariance(real), mean_covariance(fake)
    return float(np.linalg.norm(cf - cr) / max(float(np.linalg.norm(cr)), 1e-12))


def autocorrelation_distance(real: np.ndarray, fake: np.ndarray, max_lag: int) -> float:
    """RMS difference of the mean per-channel autocorrelations over lags 0..max_lag."""
    ar, af = autocorrelation(real, max_lag), autocorrelation(fake, max_lag)
    return float(np.sqrt(((ar - af) ** 2).mean()))


def mmd(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased multi-bandwidth ``MMD^2`` (:data:`KERNEL`) of two (N, D) arrays whose columns
    are first standardised by ``real``'s mean and standard deviation."""
    real = np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    fake = np.asarray(fake, dtype=np.float64).reshape(len(fake), -1)
    mu, sd = real.mean(0), real.std(0) + 1e-8
    a, b = torch.from_numpy((real - mu) / sd), torch.from_numpy((fake - mu) / sd)
    return mmd_multiscale(a, b, scales=MMD_SCALES)


def _flat_standardised(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened windows, each channel standardised by real's mean and std."""
    mu = real.mean(axis=(0, 2), keepdims=True)
    sd = real.std(axis=(0, 2), keepdims=True) + 1e-8
    return ((real - mu) / sd).reshape(len(real), -1), ((fake - mu) / sd).reshape(len(fake), -1)


def _forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)


def _c2st_classifier(seed: int) -> Any:
    """Logistic regression on standardised features and their squares (so that a wrong spread,
    not only a wrong mean, is detectable); one cheap fit per fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    def with_squares(z: np.ndarray) -> np.ndarray:
        return np.concatenate([z, z**2], axis=1)

    return make_pipeline(
        StandardScaler(),
        FunctionTransformer(with_squares),
        StandardScaler(),
        LogisticRegression(C=0.1, max_iter=2000, random_state=seed),
    )


def c2st(real_features: np.ndarray, fake_features: np.ndarray, *, seed: int = 0) -> float:
    """Classifier two-sample test: 5-fold cross-validated accuracy of a classifier telling real
    from fake rows (logistic regression on standardised features and their squares), on equal
    numbers of each (the larger set is subsampled). 0.5 = indistinguishable, 1.0 = separable."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    n = min(len(real_features), len(fake_features))
    if n < 5:
        raise InputError(f"c2st: expected at least 5 real and 5 fake windows, got {n}")
    a = real_features[rng.choice(len(real_features), n, replace=False)]
    b = fake_features[rng.choice(len(fake_features), n, replace=False)]
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(n), np.ones(n)]
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(_c2st_classifier(seed), x, y, cv=cv).mean())


def class_recovery(
    train_features: np.ndarray,
    train_y: np.ndarray,
    fake_features: np.ndarray,
    fake_y: np.ndarray,
    *,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """``(accuracy, predictions)`` of a random forest trained on real ``(features, labels)`` at
    naming the classes of the fake windows."""
    clf = _forest(seed).fit(train_features, train_y)
    pred = clf.predict(fake_features)
    return float((pred == fake_y).mean()), pred


def tstr(
    train_features: np.ndarray,
    train_y: np.ndarray,
    test_features: np.ndarray,
    test_y: np.ndarray,
    *,
    seed: int = 0,
) -> float:
    """Balanced accuracy on ``test`` of a random forest trained on ``train`` (TSTR when train
    is synthetic, TRTR when it is real)."""
    from sklearn.metrics import balanced_accuracy_score

    clf = _forest(seed).fit(train_features, train_y)
    return float(balanced_accuracy_score(test_y, clf.predict(test_features)))


def diversity(x: np.ndarray, *, max_windows: int = 500, seed: int = 0) -> float:
    """``1 - mean pairwise Pearson correlation`` of flattened windows (ArtifactGen's notebook),
    over at most ``max_windows`` windows drawn at random."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise InputError("diversity: expected at least 2 windows")
    if len(x) > max_windows:
        x = x[np.random.default_rng(seed).choice(len(x), max_windows, replace=False)]
    corr = np.corrcoef(x)
    n = len(x)
    return float(1.0 - (corr.sum() - np.trace(corr)) / (n * (n - 1)))


def iclabel_distribution(w: Windows, *, seed: int = 0) -> np.ndarray:
    """Mean ICLabel probabilities (over components) of :data:`ICLABEL_CLASSES` for windows
    concatenated in time, average-referenced, 1-100 Hz filtered, decomposed by extended
    infomax ICA into ``C - 1`` components."""
    import mne

    from polyfold.core.extras import require_extra

    iclabel = require_extra("mne_icalabel", "eeg", "iclabel", needed_for="ICLabel agreement")
    from polyfold.eeg.simtuar import montage_info

    info = montage_info(w.channels, w.sfreq)
    raw = mne.io.RawArray(np.concatenate(list(w.x), axis=1) * 1e-6, info, verbose="ERROR")
    raw.set_eeg_reference("average", verbose="ERROR")
    raw.filter(1.0, min(100.0, w.sfreq / 2 - 1), verbose="ERROR")
    ica = mne.preprocessing.ICA(
        n_components=len(w.channels) - 1,
        method="infomax",
        fit_params={"extended": True},
        random_state=seed,
        max_iter=500,
        verbose="ERROR",
    )
    ica.fit(raw, verbose="ERROR")
    probs = iclabel.iclabel.iclabel_label_components(raw, ica, inplace=False)
    return np.asarray(np.asarray(probs, dtype=np.float64).mean(0))


def iclabel_agreement(real: Windows, fake: Windows, *, seed: int = 0) -> float:
    """``1 - TV(p_real, p_fake)`` of the ICLabel component-type distributions (1 = same mix)."""
    pr, pf = iclabel_distribution(real, seed=seed), iclabel_distribution(fake, seed=seed)
    return float(1.0 - 0.5 * np.abs(pr - pf).sum())


def _pair_metrics(
    real: Windows, fake: Windows, fr: np.ndarray, ff: np.ndarray, seed: int
) -> dict[str, Any]:
    sfreq = real.sfreq
    rel = band_rel_error(real.x, fake.x, sfreq)
    flat_r, flat_f = _flat_standardised(real.x.astype(np.float64), fake.x.astype(np.float64))
    mu, sd = fr.mean(0), fr.std(0) + 1e-8
    return {
        "n_real": len(real),
        "n_fake": len(fake),
        "band_rel_error": rel,
        "worst_band_rel_error": max(rel.values()),
        "psd_distance_db": psd_distance(real.x, fake.x, sfreq),
        "covariance_distance": covariance_distance(real.x, fake.x),
        "autocorrelation_distance": autocorrelation_distance(
            real.x, fake.x, max(1, min(round(0.5 * sfreq), real.n_times - 1))
        ),
        "mmd_features": mmd(fr, ff),
        "mmd_windows": mmd_multiscale(
            torch.from_numpy(flat_r), torch.from_numpy(flat_f), scales=MMD_SCALES
        ),
        "frechet_features": frechet_distance(
            torch.from_numpy((fr - mu) / sd), torch.from_numpy((ff - mu) / sd)
        ),
        "c2st_accuracy": c2st(fr, ff, seed=seed),
        "diversity": diversity(fake.x, seed=seed),
        "diversity_real": diversity(real.x, seed=seed),
    }


def evaluate(
    real: Windows,
    fake: Windows,
    *,
    train_real: Windows | None = None,
    seed: int = 0,
    iclabel: bool = False,
) -> dict[str, Any]:
    """Every metric of the module docstring, per class and overall.

    Returns ``{"per_class": {class: {...}}, "overall": {...}, "kernel": KERNEL, "seed": seed}``.
    ``per_class[c]`` holds the pairwise metrics of class ``c`` (``n_real``, ``n_fake``,
    ``band_rel_error`` (dict by band), ``worst_band_rel_error``, ``psd_distance_db``,
    ``covariance_distance``, ``autocorrelation_distance``, ``mmd_features``, ``mmd_windows``,
    ``frechet_features``, ``c2st_accuracy``, ``diversity``, ``diversity_real``,
    ``class_recovery`` (share of its fake windows classified as ``c``), ``iclabel_agreement``
    if asked). ``overall`` holds the worst ``worst_band_rel_error`` over classes, the means over
    classes of the other pairwise metrics, ``class_recovery`` (all fake windows),
    ``class_recovery_real`` and, with ``train_real``, ``tstr_balanced_accuracy``,
    ``trtr_balanced_accuracy`` and ``tstr_over_trtr``. Classes without windows on both sides
    are skipped (listed in ``overall["classes_skipped"]``).
    """
    _same_layout(real, fake)
    if train_real is not None:
        _same_layout(real, train_real)
    if iclabel:
        from polyfold.core.extras import require_extra

        require_extra("mne_icalabel", "eeg", "iclabel", needed_for="ICLabel agreement")
    f_real, f_fake = features(real.x, real.sfreq), features(fake.x, fake.sfreq)
    f_train = np.empty(0)
    if train_real is not None:
        f_train = features(train_real.x, train_real.sfreq)
        recovery, pred = class_recovery(f_train, train_real.y, f_fake, fake.y, seed=seed)
        recovery_real, _ = class_recovery(f_train, train_real.y, f_real, real.y, seed=seed)
    else:
        recovery, pred = class_recovery(f_real, real.y, f_fake, fake.y, seed=seed)
        recovery_real = _subject_cv_accuracy(f_real, real.y, real.subject, seed)
    per_class: dict[str, dict[str, Any]] = {}
    skipped = []
    for i, name in enumerate(real.classes):
        r_idx, f_idx = real.y == i, fake.y == i
        if r_idx.sum() < 5 or f_idx.sum() < 5:
            skipped.append(name)
            continue
        row = _pair_metrics(
            real.subset(r_idx), fake.subset(f_idx), f_real[r_idx], f_fake[f_idx], seed
        )
        row["class_recovery"] = float((pred[f_idx] == i).mean())
        if iclabel:
            row["iclabel_agreement"] = iclabel_agreement(
                real.subset(r_idx), fake.subset(f_idx), seed=seed
            )
        per_class[name] = row
    if not per_class:
        raise InputError("real/fake: no class has at least 5 windows on both sides")
    overall: dict[str, Any] = {
        "worst_band_rel_error": max(r["worst_band_rel_error"] for r in per_class.values()),
        "class_recovery": recovery,
        "class_recovery_real": recovery_real,
        "classes_skipped": skipped,
    }
    for key in (
        "psd_distance_db",
        "covariance_distance",
        "autocorrelation_distance",
        "mmd_features",
        "mmd_windows",
        "frechet_features",
        "c2st_accuracy",
        "diversity",
        "diversity_real",
        *(["iclabel_agreement"] if iclabel else []),
    ):
        overall[key] = float(np.mean([r[key] for r in per_class.values()]))
    if train_real is not None:
        tstr_acc = tstr(f_fake, fake.y, f_real, real.y, seed=seed)
        trtr_acc = tstr(f_train, train_real.y, f_real, real.y, seed=seed)
        overall |= {
            "tstr_balanced_accuracy": tstr_acc,
            "trtr_balanced_accuracy": trtr_acc,
            "tstr_over_trtr": tstr_acc / max(trtr_acc, 1e-12),
        }
    return {"per_class": per_class, "overall": overall, "kernel": KERNEL, "seed": seed}


def _subject_cv_accuracy(f: np.ndarray, y: np.ndarray, subject: np.ndarray, seed: int) -> float:
    """Accuracy of the class-recovery forest on real windows, cross-validated by subject
    (leave-subjects-out, up to 5 folds); NaN with a single subject."""
    from sklearn.model_selection import GroupKFold, cross_val_score

    n_groups = len(np.unique(subject))
    if n_groups < 2:
        return float("nan")
    cv = GroupKFold(n_splits=min(5, n_groups))
    return float(cross_val_score(_forest(seed), f, y, groups=subject, cv=cv).mean())


def evaluate_seeds(
    real: Windows,
    fakes: Sequence[Windows] | Callable[[int], Windows],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    train_real: Windows | None = None,
    iclabel: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate` under each seed (``fakes``: one set per seed, or a function of the
    seed that generates it), then :func:`aggregate`."""
    if not callable(fakes) and len(fakes) != len(seeds):
        raise InputError(f"fakes: expected one set per seed ({len(seeds)}), got {len(fakes)}")
    results = []
    for k, seed in enumerate(seeds):
        fake = fakes(seed) if callable(fakes) else fakes[k]
        results.append(evaluate(real, fake, train_real=train_real, seed=seed, iclabel=iclabel))
    return aggregate(results)


def _interval(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "std": sd, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge :func:`evaluate` results of several seeds: every number becomes ``{"mean", "std",
    "ci95_low", "ci95_high", "n"}`` (a Student-t 95 % interval of the mean over seeds);
    ``seeds`` lists the seeds. Nested dicts are merged key by key; non-numbers are kept from
    the first result."""
    if not results:
        raise InputError("results: expected at least one evaluation result")

    def merge(items: list[Any]) -> Any:
        first = items[0]
        if isinstance(first, dict):
            keys = [k for k in first if all(isinstance(it, dict) and k in it for it in items)]
            return {k: merge([it[k] for it in items]) for k in keys}
        if isinstance(first, int | float) and not isinstance(first, bool):
            return _interval([float(it) for it in items])
        return first

    out = merge([{k: v for k, v in r.items() if k != "seed"} for r in results])
    out["seeds"] = [r.get("seed") for r in results]
    return dict(out)
