"""The evaluation: closed forms, null behaviour of the two-sample statistics, the result layout."""

from __future__ import annotations

import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.eeg.data import CLASSES, SFREQ, Windows
from polyfold.eeg.evaluation import (
    KERNEL,
    aggregate,
    autocorrelation_distance,
    band_rel_error,
    c2st,
    covariance_distance,
    diversity,
    evaluate,
    evaluate_seeds,
    mmd,
    psd_distance,
)
from polyfold.eeg.simtuar import simulate
from polyfold.eeg.spectra import BANDS, band_powers


@pytest.fixture(scope="module")
def sims() -> tuple[Windows, Windows]:
    a = simulate(n_subjects=2, windows_per_class=12, seed=0)
    b = simulate(n_subjects=2, windows_per_class=12, seed=5)
    return a, b


def test_band_power_of_a_sine() -> None:
    t = np.arange(500) / SFREQ
    amp = np.array([3.0, 7.0])[:, None]
    x = (amp * np.sin(2 * np.pi * 10.0 * t))[None]  # 10 Hz: alpha
    bp = band_powers(x, SFREQ)
    np.testing.assert_allclose(bp[0, :, list(BANDS).index("alpha")], [4.5, 24.5], rtol=1e-3)
    assert bp[0, :, list(BANDS).index("gamma")].max() < 1e-6
    x2 = (2.0 * np.sin(2 * np.pi * 20.0 * t))[None, None]
    x3 = (4.0 * np.sin(2 * np.pi * 20.0 * t))[None, None]
    err = band_rel_error(x2, x3, SFREQ)
    assert err["beta"] == pytest.approx(3.0, rel=1e-3)  # power ratio 4: |4 - 1| / 1


def test_unbiased_mmd_of_one_distribution_has_mean_zero() -> None:
    rng = np.random.default_rng(0)
    same = [mmd(rng.normal(size=(40, 6)), rng.normal(size=(40, 6))) for _ in range(40)]
    shifted = [mmd(rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 1.0) for _ in range(5)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-3
    assert min(same) < 0  # unbiased: negative values occur
    assert min(shifted) > max(same)
    x = rng.normal(size=(30, 5))
    assert abs(mmd(x, x)) < 0.05


def test_c2st_is_at_chance_on_identical_distributions() -> None:
    rng = np.random.default_rng(1)
    accs = [c2st(rng.normal(size=(60, 8)), rng.normal(size=(60, 8)), seed=s) for s in range(3)]
    assert 0.35 < np.mean(accs) < 0.62
    far = c2st(rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 2.0, seed=0)
    assert far > 0.9


def test_distances_vanish_on_a_set_with_itself(sims: tuple[Windows, Windows]) -> None:
    a, _ = sims
    assert psd_distance(a.x, a.x, SFREQ) == pytest.approx(0.0, abs=1e-9)
    assert covariance_distance(a.x, a.x) == pytest.approx(0.0, abs=1e-12)
    assert autocorrelation_distance(a.x, a.x, 50) == pytest.approx(0.0, abs=1e-12)
    assert max(band_rel_error(a.x, a.x, SFREQ).values()) == pytest.approx(0.0, abs=1e-12)
    assert psd_distance(a.x, 2 * a.x, SFREQ) == pytest.approx(20 * np.log10(2), rel=1e-6)
    assert covariance_distance(a.x, 2 * a.x) == pytest.approx(3.0, rel=1e-6)


def test_diversity() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 8, 100))
    copies = np.repeat(base, 10, axis=0)
    assert diversity(copies) == pytest.approx(0.0, abs=1e-9)
    assert diversity(rng.normal(size=(50, 8, 100))) == pytest.approx(1.0, abs=0.02)


def test_evaluate_layout_and_sense(sims: tuple[Windows, Windows]) -> None:
    real, other = sims
    res = evaluate(real, other, train_real=other, seed=0)
    assert res["kernel"] == KERNEL
    assert set(res["per_class"]) == set(CLASSES)
    row = res["per_class"]["musc"]
    assert set(row["band_rel_error"]) == set(BANDS)
    for key in ("mmd_features", "mmd_windows", "c2st_accuracy", "class_recovery", "diversity"):
        assert np.isfinite(row[key])
    overall = res["overall"]
    assert overall["tstr_over_trtr"] >= 0.0
    assert overall["class_recovery"] > 0.6  # distinct artifact classes are recognisable
    # a set mislabelled on purpose is not recovered
    wrong = Windows(other.x, (other.y + 1) % len(CLASSES), other.subject)
    bad = evaluate(_few(real), _few(wrong), train_real=other, seed=0)
    assert bad["overall"]["class_recovery"] < 0.3
    assert bad["overall"]["tstr_over_trtr"] < 0.5


def _few(w: Windows, per_class: int = 6) -> Windows:
    return w.subset(np.concatenate([np.flatnonzero(w.y == k)[:per_class] for k in range(5)]))


def test_aggregate_gives_intervals(sims: tuple[Windows, Windows]) -> None:
    real, other = _few(sims[0]), _few(sims[1])
    agg = evaluate_seeds(real, [other, other], seeds=(0, 1))
    c2 = agg["overall"]["c2st_accuracy"]
    assert c2["n"] == 2
    assert c2["ci95_low"] <= c2["mean"] <= c2["ci95_high"]
    assert agg["seeds"] == [0, 1]
    fixed = aggregate([{"a": 1.0, "b": {"c": 2.0}}, {"a": 3.0, "b": {"c": 2.0}}])
    assert fixed["a"]["mean"] == 2.0
    assert fixed["a"]["std"] == pytest.approx(np.sqrt(2))
    assert fixed["b"]["c"]["ci95_low"] == fixed["b"]["c"]["ci95_high"] == 2.0
    with pytest.raises(InputError, match="one set per seed"):
        evaluate_seeds(real, [other], seeds=(0, 1))


def test_mismatched_sets_are_refused(sims: tuple[Windows, Windows]) -> None:
    real, other = sims
    short = Windows(other.x[:, :, :250], other.y, other.subject)
    with pytest.raises(InputError, match="samples per window"):
        evaluate(real, short)
    fewer = Windows(other.x, other.y % 2, other.subject, classes=("eyem", "musc"))
    with pytest.raises(InputError, match="classes"):
        evaluate(real, fewer)


@pytest.mark.slow
def test_iclabel_finds_eye_components_in_eye_movements() -> None:
    pytest.importorskip("mne_icalabel")
    from polyfold.eeg.evaluation import ICLABEL_CLASSES, iclabel_distribution

    eyem = simulate(n_subjects=2, windows_per_class=6, seed=0).of_class("eyem")
    p = iclabel_distribution(eyem)
    assert p.shape == (len(ICLABEL_CLASSES),)
    assert p.sum() == pytest.approx(1.0, abs=1e-4)
    assert p[ICLABEL_CLASSES.index("eye blink")] > 0.1
