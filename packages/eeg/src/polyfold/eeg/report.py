"""EEG plots on core's :class:`~polyfold.core.report.Report`: real and synthetic windows side by
side (stacked channel traces) and their mean spectra, and the metric table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from polyfold.core.report import Report
from polyfold.eeg.data import CLASS_NAMES, Windows

__all__ = ["DIRECTIONS", "add_class_section", "add_metric_table", "stacked_traces"]

#: the overall metrics a report shows, with their direction and reference
DIRECTIONS: dict[str, str] = {
    "worst_band_rel_error": "lower is better (worst class and band; goal <= 0.20)",
    "psd_distance_db": "lower is better (dB, RMS over channels and 0.5-100 Hz)",
    "covariance_distance": "lower is better (relative Frobenius)",
    "autocorrelation_distance": "lower is better",
    "mmd_features": "lower is better (unbiased MMD^2; ~0 = same distribution)",
    "c2st_accuracy": "closer to 0.5 is better (goal <= 0.7)",
    "class_recovery": "higher is better (goal >= 0.8; real windows: class_recovery_real)",
    "class_recovery_real": "reference: the classifier on real held-out windows",
    "tstr_over_trtr": "higher is better (goal >= 0.8)",
    "diversity": "closer to diversity_real is better",
    "diversity_real": "reference: the real windows' own diversity",
}


def stacked_traces(x: np.ndarray, sfreq: float) -> dict[str, list[tuple[float, float]]]:
    """One (C, T) window as lines offset per channel (first channel on top), x in seconds."""
    spread = float(np.percentile(np.abs(x), 99)) * 2.5 or 1.0
    t = np.arange(x.shape[1]) / sfreq
    n = x.shape[0]
    return {
        str(c): [(float(a), float(b)) for a, b in zip(t, x[c] + (n - 1 - c) * spread, strict=True)]
        for c in range(n)
    }


def _mean_log_psd(x: np.ndarray, sfreq: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    from polyfold.eeg.spectra import psd

    freqs, p = psd(x, sfreq)
    keep = (freqs > 0) & (freqs <= fmax)
    return freqs[keep], np.log10(p[..., keep].mean(axis=(0, 1)) + 1e-12)


def add_class_section(
    report: Report, name: str, real: Windows, fakes: Mapping[str, Windows], fmax: float = 100.0
) -> None:
    """A real window and one of each model's for class ``name``, then the channel-averaged mean
    spectra (log10 uV^2/Hz) of all real and synthetic windows of the class."""
    word = CLASS_NAMES.get(name, name)
    report.heading(f"{name} ({word})", level=3)
    r, fs = real.of_class(name), {k: v.of_class(name) for k, v in fakes.items()}
    chans = ", ".join(real.channels)
    for label, w in [("real (held-out subjects)", r), *fs.items()]:
        if len(w) == 0:
            continue
        report.paragraph(
            f"{label}: one window, channels top to bottom {chans}; x: seconds, y: microvolts "
            "(channels offset)."
        )
        report.lines("", stacked_traces(w.x[0], w.sfreq))
    series = {}
    for label, w in [("real", r), *fs.items()]:
        if len(w):
            f, lp = _mean_log_psd(w.x, w.sfreq, fmax)
            series[label] = [(float(a), float(b)) for a, b in zip(f, lp, strict=True)]
    report.paragraph(
        f"Mean spectrum of {len(r)} real and the synthetic {name} windows: x: Hz (to {fmax:g}), "
        "y: log10 power density (uV^2/Hz), averaged over channels."
    )
    report.lines("", series)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def add_metric_table(
    report: Report, metrics: Mapping[str, Mapping[str, Any]], directions: Mapping[str, str]
) -> None:
    """Rows: metrics; columns: each model's value, and the metric's direction."""
    models = list(metrics)
    names = [k for k in directions if any(k in metrics[m] for m in models)]
    rows = [[k, *(_fmt(metrics[m].get(k, "")) for m in models), directions[k]] for k in names]
    report.table(["metric", *models, "direction"], rows)
