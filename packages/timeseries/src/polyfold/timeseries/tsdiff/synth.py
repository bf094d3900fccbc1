"""Train on synthetic, test on real (TSDiff's evaluation of synthetic data).

- :func:`linear_predictive_score`: the paper's LPS. A ridge regression from the context to the
  horizon is fitted on windows (mean-scaled by their context), then tested on real windows;
  the score is the CRPS of that point forecast, i.e. the normalised absolute error
  ``sum |y - y_hat| / sum |y|`` (the CRPS of a deterministic forecast).
- :func:`synthetic_dataset`: synthetic windows as gluonts training entries, so that any gluonts
  estimator (e.g. DeepAR) can be trained on them and evaluated on the real test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from polyfold.core.errors import InputError

__all__ = ["linear_predictive_score", "real_windows", "synthetic_dataset"]


def real_windows(series: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """``(N, length)`` windows of a NaN-free series."""
    y = np.asarray(series, dtype=np.float32)
    if len(y) < length:
        raise InputError(f"series: {len(y)} points is shorter than the window length {length}")
    idx = np.arange(0, len(y) - length + 1, stride)[:, None] + np.arange(length)[None]
    return y[idx]


def _scaled(w: np.ndarray, context_length: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.abs(w[:, :context_length]).mean(1, keepdims=True)
    s = np.where(s > 1e-5, s, 1.0)
    return w / s, s


def linear_predictive_score(
    train_windows: np.ndarray,
    test_windows: np.ndarray,
    context_length: int,
    *,
    alpha: float = 1.0,
) -> float:
    """Ridge (context -> horizon) fit on ``train_windows (N, L)`` (e.g. synthetic), scored on
    ``test_windows (M, L)`` (real): ``sum |y - y_hat| / sum |y|`` over the horizons."""
    tr, te = np.asarray(train_windows, np.float64), np.asarray(test_windows, np.float64)
    if tr.ndim != 2 or te.ndim != 2 or tr.shape[1] != te.shape[1]:
        raise InputError(
            f"windows: expected (N, L) train and test windows of one length, got {tr.shape} "
            f"and {te.shape}"
        )
    if not 0 < context_length < tr.shape[1]:
        raise InputError(f"context_length: expected 1..{tr.shape[1] - 1}, got {context_length}")
    if not (np.isfinite(tr).all() and np.isfinite(te).all()):
        raise InputError("windows: contain NaN or infinite values")
    trs, _ = _scaled(tr, context_length)
    tes, s = _scaled(te, context_length)
    x, y = trs[:, :context_length], trs[:, context_length:]
    x1 = np.concatenate([x, np.ones((len(x), 1))], 1)
    reg = alpha * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(x1.T @ x1 + reg, x1.T @ y)
    xt = np.concatenate([tes[:, :context_length], np.ones((len(tes), 1))], 1)
    pred = (xt @ coef) * s
    truth = te[:, context_length:]
    return float(np.abs(truth - pred).sum() / max(np.abs(truth).sum(), 1e-12))


def synthetic_dataset(
    windows: np.ndarray, freq: str, start: str = "2000-01-01"
) -> list[dict[str, Any]]:
    """gluonts entries, one per synthetic window ``(N, L)``."""
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 2:
        raise InputError(f"windows: expected (N, L), got {w.shape}")
    p = pd.Period(start, freq=freq)
    return [{"start": p, "target": row, "item_id": f"synthetic_{i}"} for i, row in enumerate(w)]
