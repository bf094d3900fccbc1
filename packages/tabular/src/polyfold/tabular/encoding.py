"""Tables in, standardised float matrices out, and back: how TabEBM sees a user's data.

:class:`TableEncoder` turns a numpy array or a pandas DataFrame into the matrix the energy works
on: numeric columns are standardised (zero mean, unit variance over the training rows),
categorical columns are one-hot encoded and each indicator is standardised the same way. It
decodes a matrix back into the user's table: numeric columns are de-standardised (integer
columns rounded and kept inside their observed range), each categorical block becomes the
category whose indicator is largest, and every column gets its original dtype back.

A column is categorical when its dtype is not numeric (object, string, category, bool) or when
the caller names it in ``categorical=``. :func:`check_table` and :func:`check_target` refuse
what TabEBM cannot use, with an :class:`~polyfold.core.errors.InputError` naming the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from polyfold.core.errors import InputError

__all__ = ["ColumnSpec", "TableEncoder", "check_table", "check_target", "to_frame"]


def to_frame(X: Any, *, name: str = "X") -> tuple[pd.DataFrame, bool]:
    """``X`` as a DataFrame, and whether it came in as one (numpy input gets columns 0..d-1)."""
    if isinstance(X, pd.DataFrame):
        return X, True
    if isinstance(X, pd.Series):
        raise InputError(f"{name}: expected a 2-D table (n_rows, n_columns), got a pandas Series")
    try:
        arr = np.asarray(X)
    except Exception as err:  # ragged lists and the like
        raise InputError(f"{name}: could not be read as a 2-D array ({err})") from None
    if arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D table (n_rows, n_columns), got an array of shape {arr.shape}"
        )
    if arr.dtype.kind == "O":
        frame = pd.DataFrame({j: pd.Series(arr[:, j]).infer_objects() for j in range(arr.shape[1])})
    else:
        frame = pd.DataFrame(arr)
    return frame, False


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series.dtype)) and not pd.api.types.is_bool_dtype(
        series.dtype
    )


def check_table(frame: pd.DataFrame, *, name: str = "X") -> None:
    """Refuse an empty table, missing values and non-finite numbers, naming the column."""
    if frame.shape[1] == 0:
        raise InputError(f"{name}: the table has no feature columns")
    if frame.shape[0] == 0:
        raise InputError(f"{name}: the table has no rows")
    if len(set(map(str, frame.columns))) != frame.shape[1]:
        raise InputError(f"{name}: column names must be unique, got {list(frame.columns)}")
    missing = frame.isna().sum()
    if int(missing.sum()) > 0:
        cols = ", ".join(f"{c!r} ({int(n)})" for c, n in missing.items() if n > 0)
        raise InputError(
            f"{name}: missing values in column(s) {cols}; TabEBM needs complete rows "
            "(drop or impute them first)"
        )
    for col in frame.columns:
        series = frame[col]
        if _is_numeric(series):
            values = series.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).sum())
                raise InputError(
                    f"{name}: column {col!r} holds {bad} non-finite value(s) (inf); "
                    "every numeric value must be finite"
                )
        elif pd.api.types.is_complex_dtype(series.dtype):
            raise InputError(f"{name}: column {col!r} is complex; expected real numbers")


def check_target(y: Any, n_rows: int, *, name: str = "y") -> pd.Series:
    """``y`` as a Series of class labels of length ``n_rows``; refuse anything else."""
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise InputError(f"{name}: expected one column of class labels, got {y.shape[1]}")
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        series = y.reset_index(drop=True)
    else:
        arr = np.asarray(y)
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1:
            raise InputError(f"{name}: expected a 1-D array of class labels, got shape {arr.shape}")
        series = pd.Series(arr)
    if len(series) != n_rows:
        raise InputError(f"{name}: has {len(series)} labels but X has {n_rows} rows")
    if series.isna().any():
        raise InputError(
            f"{name}: {int(series.isna().sum())} missing label(s); every row needs one"
        )
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all() or not np.all(values == np.round(values)):
            raise InputError(
                f"{name}: holds non-integer numbers ({values[values != np.round(values)][:3]}...); "
                "TabEBM needs class labels, not a continuous target"
            )
    counts = series.value_counts()
    single = [c for c, n in counts.items() if n < 2]
    if single:
        raise InputError(
            f"{name}: class(es) {single} have a single row; TabEBM needs at least 2 rows "
            "per class (drop the class or collect more rows)"
        )
    return series


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is encoded."""

    name: Any
    kind: str  # "numeric" or "categorical"
    dtype: Any
    categories: tuple[Any, ...] = ()  # categorical: one indicator per category, in this order
    integer: bool = False  # numeric: round on decoding
    low: float = 0.0  # numeric: observed range (integers are clipped to it on decoding)
    high: float = 0.0


class TableEncoder:
    """Fit on a table; :meth:`transform` to the standardised matrix, :meth:`inverse_transform`
    back to a table of the same columns and dtypes (numpy in, numpy out)."""

    def __init__(self, categorical: Sequence[Any] | None = None) -> None:
        self.categorical = list(categorical) if categorical is not None else []
        self.columns_: list[ColumnSpec] = []
        self.mean_: np.ndarray = np.zeros(0)
        self.scale_: np.ndarray = np.ones(0)
        self.as_frame_ = True
        self.numpy_dtype_: np.dtype[Any] | None = None
        self.frame_columns_: list[Any] = []

    @property
    def n_features_out(self) -> int:
        return len(self.mean_)

    @property
    def blocks(self) -> list[slice]:
        """The slice of the encoded matrix each input column occupies."""
        out, start = [], 0
        for spec in self.columns_:
            width = len(spec.categories) if spec.kind == "categorical" else 1
            out.append(slice(start, start + width))
            start += width
        return out

    def fit(self, X: Any) -> TableEncoder:
        frame, as_frame = to_frame(X)
        check_table(frame)
        unknown = [c for c in self.categorical if c not in frame.columns]
        if unknown:
            raise InputError(
                f"categorical: column(s) {unknown} not in the table; columns: {list(frame.columns)}"
            )
        self.as_frame_ = as_frame
        self.numpy_dtype_ = None if as_frame else np.asarray(X).dtype
        self.frame_columns_ = list(frame.columns)
        specs = []
        for col in frame.columns:
            series = frame[col]
            if _is_numeric(series) and col not in self.categorical:
                values = series.to_numpy(dtype=np.float64)
                specs.append(
                    ColumnSpec(
                        name=col,
                        kind="numeric",
                        dtype=series.dtype,
                        integer=pd.api.types.is_integer_dtype(series.dtype),
                        low=float(values.min()),
                        high=float(values.max()),
                    )
                )
            else:
                if isinstance(series.dtype, pd.CategoricalDtype):
                    cats = tuple(series.dtype.categories)
                else:
                    cats = tuple(sorted(series.unique().tolist(), key=lambda v: (str(type(v)), v)))
                specs.append(
                    ColumnSpec(name=col, kind="categorical", dtype=series.dtype, categories=cats)
                )
        self.columns_ = specs
        raw = self._raw(frame)
        self.mean_ = raw.mean(axis=0)
        scale = raw.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        return self

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for spec in self.columns_:
            series = frame[spec.name]
            if spec.kind == "numeric":
                parts.append(series.to_numpy(dtype=np.float64)[:, None])
            else:
                values = series.to_numpy(dtype=object)
                known = set(spec.categories)
                unseen = [v for v in pd.unique(values) if v not in known]
                if unseen:
                    raise InputError(
                        f"X: column {spec.name!r} holds categories {unseen[:5]} not seen in fit "
                        f"(known: {list(spec.categories)[:10]})"
                    )
                index = {c: i for i, c in enumerate(spec.categories)}
                onehot = np.zeros((len(values), len(spec.categories)))
                onehot[np.arange(len(values)), [index[v] for v in values]] = 1.0
                parts.append(onehot)
        return np.concatenate(parts, axis=1)

    def transform(self, X: Any) -> np.ndarray:
        """The standardised (n, n_features_out) float64 matrix of ``X``."""
        frame, _ = to_frame(X)
        check_table(frame)
        if list(frame.columns) != self.frame_columns_:
            raise InputError(
                f"X: columns {list(frame.columns)} differ from those seen in fit "
                f"{self.frame_columns_}"
            )
        out: np.ndarray = (self._raw(frame) - self.mean_) / self.scale_
        return out

    def fit_transform(self, X: Any) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: np.ndarray) -> Any:
        """A table of the fitted columns and dtypes from a standardised matrix ``Z``."""
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.n_features_out:
            raise InputError(f"Z: expected shape (n, {self.n_features_out}), got {Z.shape}")
        raw = Z * self.scale_ + self.mean_
        data: dict[Any, Any] = {}
        for spec, block in zip(self.columns_, self.blocks, strict=True):
            if spec.kind == "numeric":
                values = raw[:, block.start]
                if spec.integer:
                    values = np.clip(np.rint(values), spec.low, spec.high)
                data[spec.name] = pd.Series(values).astype(spec.dtype)
            else:
                picks = np.asarray(spec.categories, dtype=object)[raw[:, block].argmax(axis=1)]
                data[spec.name] = pd.Series(picks, dtype=object).astype(spec.dtype)
        frame = pd.DataFrame(data, columns=self.frame_columns_)
        if self.as_frame_:
            return frame
        if self.numpy_dtype_ is not None and self.numpy_dtype_.kind != "O":
            return frame.to_numpy().astype(self.numpy_dtype_)
        return frame.to_numpy(dtype=object)
