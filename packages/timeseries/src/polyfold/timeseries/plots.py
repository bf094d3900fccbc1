"""Time-series plots on core's :class:`~polyfold.core.report.Report`: windows and forecasts.

Each plot gets its title as a heading above the chart (long titles never run into the legend)
and a caption naming both axes, with the first and last timestamps where they are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from polyfold.core.report import Report

__all__ = ["plot_forecast", "plot_series"]


def _points(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]


def _titled(report: Report, title: str, caption: str) -> None:
    report.heading(title, level=3)
    report.paragraph(caption)


def plot_series(
    report: Report,
    title: str,
    series: Mapping[str, Sequence[float]],
    *,
    x_label: str = "time step",
    y_label: str = "value",
) -> Report:
    """Named series on shared axes, x = position (NaNs leave gaps)."""
    lines = {k: np.asarray(v, dtype=float) for k, v in series.items()}
    n = max((len(v) for v in lines.values()), default=0)
    _titled(report, title, f"x: {x_label} (0 to {max(n - 1, 0)}); y: {y_label}.")
    # the chart's own title stays empty: inside the SVG it would share a band with the legend
    return report.lines("", {k: _points(np.arange(len(v)), v) for k, v in lines.items()})


def plot_forecast(
    report: Report,
    title: str,
    history: Sequence[float],
    samples: np.ndarray,
    *,
    truth: Sequence[float] | None = None,
    band: tuple[float, float] = (0.1, 0.9),
    first: str | None = None,
    last: str | None = None,
    y_label: str = "value (the data's units)",
) -> Report:
    """History, the forecast median of ``samples (S, H)`` with a quantile band, and the truth;
    ``first``/``last``: the timestamps of the first history point and the last forecast one."""
    h = np.asarray(history, dtype=float)
    s = np.asarray(samples, dtype=float)
    xs = np.arange(len(h), len(h) + s.shape[1])
    lo, med, hi = np.quantile(s, [band[0], 0.5, band[1]], axis=0)
    lines = {"history": _points(np.arange(len(h)), h), "median": _points(xs, med)}
    if truth is not None:
        lines["truth"] = _points(xs, np.asarray(truth, dtype=float))
    band_points = list(zip(xs.tolist(), lo.tolist(), hi.tolist(), strict=True))
    label = f"{band[0]:.0%}-{band[1]:.0%}"
    span = f"{first} to {last}" if first is not None and last is not None else "periods"
    _titled(
        report,
        title,
        f"x: time, {span} ({len(h)} periods of history, {s.shape[1]} forecast); y: {y_label}; "
        f"shaded: the {label} forecast quantiles.",
    )
    return report.lines("", lines, bands={label: band_points})
