"""Time-series plots on core's :class:`~polyfold.core.report.Report`: windows and forecasts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from polyfold.core.report import Report

__all__ = ["plot_forecast", "plot_series"]


def _points(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]


def plot_series(report: Report, title: str, series: Mapping[str, Sequence[float]]) -> Report:
    """Named series on shared axes, x = position (NaNs leave gaps)."""
    lines = {k: np.asarray(v, dtype=float) for k, v in series.items()}
    return report.lines(title, {k: _points(np.arange(len(v)), v) for k, v in lines.items()})


def plot_forecast(
    report: Report,
    title: str,
    history: Sequence[float],
    samples: np.ndarray,
    *,
    truth: Sequence[float] | None = None,
    band: tuple[float, float] = (0.1, 0.9),
) -> Report:
    """History, the forecast median of ``samples (S, H)`` with a quantile band, and the truth."""
    h = np.asarray(history, dtype=float)
    s = np.asarray(samples, dtype=float)
    xs = np.arange(len(h), len(h) + s.shape[1])
    lo, med, hi = np.quantile(s, [band[0], 0.5, band[1]], axis=0)
    lines = {"history": _points(np.arange(len(h)), h), "median": _points(xs, med)}
    if truth is not None:
        lines["truth"] = _points(xs, np.asarray(truth, dtype=float))
    band_points = list(zip(xs.tolist(), lo.tolist(), hi.tolist(), strict=True))
    bands = {f"{band[0]:.0%}-{band[1]:.0%}": band_points}
    return report.lines(title, lines, bands=bands)
