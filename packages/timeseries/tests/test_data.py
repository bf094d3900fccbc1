"""Loaders, validation and the embedded datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyfold.core.errors import InputError
from polyfold.timeseries.data import (
    DATASETS,
    MULTIVARIATE,
    SeriesData,
    check_freq,
    check_series,
    entries_from,
    load_dataset,
    load_multivariate,
    read_csv,
    read_jsonl,
    read_series,
    read_table,
    same_freq,
    season_length_of,
    to_list_dataset,
    to_pandas_dataset,
    windows,
)


@pytest.mark.parametrize("name", list(DATASETS))
def test_embedded_forecasting_datasets(name: str) -> None:
    d = load_dataset(name)
    y = d.values[0]
    assert y.dtype == np.float32
    assert y.ndim == 1
    assert not np.isnan(y).any()
    assert len(y) >= 10 * d.prediction_length
    assert d.season_length >= 1
    assert isinstance(d.starts[0], pd.Period)


def test_known_values() -> None:
    air = load_dataset("airline").values[0]
    assert len(air) == 144
    assert air[0] == 112
    assert air[-1] == 432
    assert len(load_dataset("taylor").values[0]) == 4032


@pytest.mark.parametrize("name", list(MULTIVARIATE))
def test_multivariate(name: str) -> None:
    a = load_multivariate(name)
    assert a.ndim == 2
    assert a.shape[1] >= 2
    assert a.shape[0] > 1000
    assert not np.isnan(a).any()


def test_windows_minmax_shapes_and_range() -> None:
    a = load_multivariate("eustocks")
    w = windows(a, 24)
    assert w.shape == (len(a) - 23, 24, 4)
    assert w.min() == pytest.approx(0.0)
    assert w.max() == pytest.approx(1.0)
    # consecutive windows overlap by one step
    np.testing.assert_allclose(w[0, 1:], w[1, :-1])
    # the scaling is per channel and invertible
    lo, hi = a.min(0), a.max(0)
    np.testing.assert_allclose(w[0] * (hi - lo) + lo, a[:24], rtol=1e-5)
    z = windows(a, 24, scale="zscore", stride=24)
    assert z.shape == ((len(a) - 24) // 24 + 1, 24, 4)


def test_windows_errors() -> None:
    with pytest.raises(InputError, match="seq_len"):
        windows(np.zeros((10, 2)), 0)
    with pytest.raises(InputError, match="shorter than seq_len"):
        windows(np.zeros((10, 2)), 11)
    with pytest.raises(InputError, match="NaN"):
        windows(np.full((10, 2), np.nan), 5)
    with pytest.raises(InputError, match="scale"):
        windows(np.zeros((10, 2)), 5, scale="robust")


@pytest.mark.parametrize("bad", ["", "banana", "3x", 5, None])
def test_bad_frequency(bad: object) -> None:
    with pytest.raises(InputError, match="freq"):
        check_freq(bad)


def test_good_frequencies() -> None:
    for f in ("30min", "h", "D", "W", "M", "Q"):
        assert check_freq(f) == f


def test_check_series() -> None:
    with pytest.raises(InputError, match="NaN"):
        check_series([1.0, np.nan, 2.0])
    assert np.isnan(check_series([1.0, np.nan, 2.0], allow_nan=True)[1])
    with pytest.raises(InputError, match="at least 5 points"):
        check_series([1.0, 2.0], min_length=5)
    with pytest.raises(InputError, match="1-D"):
        check_series(np.zeros((3, 2)))


def test_csv_round_trip(csv_file: Path, airline: SeriesData) -> None:
    d = read_csv(csv_file)
    assert d.freq.upper().startswith("M")
    assert d.item_ids == ["a", "b"]
    np.testing.assert_allclose(d.values[0], airline.values[0])
    np.testing.assert_allclose(d.values[1], airline.values[0] * 0.5 + 3, rtol=1e-6)
    assert d.starts[0] == pd.Period("1949-01", freq="M")


def test_csv_nan_and_frequency_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("date,v\n2020-01-01,1\n2020-01-02,\n2020-01-03,3\n", encoding="utf-8")
    with pytest.raises(InputError, match="NaN"):
        read_csv(p)
    assert np.isnan(read_csv(p, allow_nan=True).values[0][1])
    with pytest.raises(InputError, match="freq"):
        read_csv(p, "notafreq", allow_nan=True)
    with pytest.raises(InputError, match=r"too short|at least"):
        read_csv(p, "D", allow_nan=True, min_length=10)
    with pytest.raises(InputError, match="not found"):
        read_csv(tmp_path / "missing.csv")


def test_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    rows = [
        {"start": "2021-01-01 00:00", "target": [1.0, 2.0, 3.0, 4.0], "item_id": "x"},
        {"start": "2021-01-02 00:00", "target": [5.0, None, 7.0]},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    d = read_jsonl(p, "h", allow_nan=True)
    assert d.item_ids[0] == "x"
    assert len(d.values) == 2
    assert np.isnan(d.values[1][1])
    assert d.starts[1] == pd.Period("2021-01-02 00:00", freq="h")
    with pytest.raises(InputError, match="NaN"):
        read_jsonl(p, "h")
    with pytest.raises(InputError, match="freq"):
        read_jsonl(p, "hourly")
    with pytest.raises(InputError, match="freq"):
        read_series(p)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"start": "2021-01-01"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="'start' and 'target'"):
        read_jsonl(bad, "h")


def test_gluonts_datasets_round_trip(airline: SeriesData) -> None:
    ld = to_list_dataset(airline)
    pdd = to_pandas_dataset(airline)
    for ds in (ld, pdd):
        entries = entries_from(ds)
        assert len(entries) == 1
        np.testing.assert_allclose(entries[0]["target"], airline.values[0])
        start = entries[0]["start"]
        assert pd.Period(start, freq="M") == airline.starts[0]


def test_split_rolling_windows(airline: SeriesData) -> None:
    train, test = airline.split(3)
    h = airline.prediction_length
    assert len(train[0]["target"]) == 144 - 3 * h
    assert [len(e["target"]) for e in test] == [144 - 2 * h, 144 - h, 144]
    with pytest.raises(InputError, match="too short"):
        airline.split(20)


def test_unknown_dataset() -> None:
    with pytest.raises(InputError, match="airline"):
        load_dataset("nope")
    with pytest.raises(InputError, match="eustocks"):
        load_multivariate("nope")


@pytest.mark.parametrize(
    ("freq", "season"),
    [
        ("30min", 48),
        ("h", 24),
        ("2h", 12),
        ("D", 7),
        ("W", 52),
        ("M", 12),
        ("MS", 12),
        ("Q", 4),
        ("Y", 1),
        ("7min", 1),
    ],
)
def test_season_length_follows_the_frequency(freq: str, season: int) -> None:
    assert season_length_of(freq) == season


def test_same_freq_compares_period_frequencies() -> None:
    assert same_freq("MS", "M")
    assert not same_freq("D", "h")


def test_read_table_keeps_names_drops_timestamps_and_names_bad_cells(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("when,load,temp\n2024-01-01,1,2\n2024-01-02,3,4\n")
    arr, cols = read_table(p)
    assert cols == ["load", "temp"]
    np.testing.assert_array_equal(arr, [[1, 2], [3, 4]])
    p.write_text("load,temp\n1,2\n3,warm\n")
    with pytest.raises(InputError, match=r"line 3, column 'temp': 'warm' is not a number"):
        read_table(p)
    p.write_text("load,temp\n1,2\n3,\n")
    with pytest.raises(InputError, match=r"line 3, column 'temp': missing value"):
        read_table(p)


def test_jsonl_text_in_target_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(
        '{"start": "2000-01", "target": [1, 2, 3]}\n{"start": "2000-01", "target": [1, "x"]}\n'
    )
    with pytest.raises(InputError, match=r"d\.jsonl:2: target\[1\] = 'x' is not a number"):
        read_jsonl(p, "M")
