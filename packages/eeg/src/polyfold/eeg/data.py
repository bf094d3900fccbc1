"""Labelled EEG artifact windows: the one container every loader returns and every model reads.

A :class:`Windows` holds ``x`` (N, C, T) float32 microvolts, the class index ``y`` (N,) into
``classes`` and the ``subject`` id (N,) of each window, with ``sfreq`` and ``channels``.
:func:`subject_split` splits by subject, never by window, so no subject is on both sides.
``save`` writes ``X.npz`` plus the data card ``X.json`` beside it (both atomic); ``load`` reads
them back without unpickling anything.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyfold.core.errors import InputError, reading
from polyfold.core.outputs import write_bytes, write_text

__all__ = [
    "CHANNELS",
    "CLASSES",
    "CLASS_NAMES",
    "SFREQ",
    "Windows",
    "class_index",
    "subject_split",
]

#: The 8 channels of ArtifactGen (10-20 names; T3/T4 are T7/T8 in 10-10).
CHANNELS: tuple[str, ...] = ("Fp1", "Fp2", "C3", "C4", "O1", "O2", "T3", "T4")
#: Sampling frequency of every window, Hz.
SFREQ = 250.0
#: The artifact classes, by their TUAR label.
CLASSES: tuple[str, ...] = ("eyem", "musc", "elec", "chew", "shiv")
#: TUAR label -> plain words.
CLASS_NAMES: dict[str, str] = {
    "eyem": "eye movement",
    "musc": "muscle",
    "elec": "electrode",
    "chew": "chewing",
    "shiv": "shivering",
}

_KEYS = ("x", "y", "subject", "sfreq", "channels", "classes")


def class_index(name: str, classes: Sequence[str] = CLASSES, *, what: str = "class") -> int:
    """Index of ``name`` in ``classes``, or an InputError listing the known classes."""
    if name not in classes:
        raise InputError(f"{what}: unknown class {name!r}; expected one of {', '.join(classes)}")
    return list(classes).index(name)


@dataclass(frozen=True, eq=False)
class Windows:
    """N labelled multichannel windows (microvolts) with their subjects and a data card."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    sfreq: float = SFREQ
    channels: tuple[str, ...] = CHANNELS
    classes: tuple[str, ...] = CLASSES
    card: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        if x.ndim != 3:
            raise InputError(f"x: expected an (N, C, T) array, got shape {x.shape}")
        n, c, _ = x.shape
        if c != len(self.channels):
            raise InputError(f"x: {c} channels but {len(self.channels)} channel names")
        if not np.isfinite(x).all():
            raise InputError("x: contains NaN or infinite values")
        y = np.asarray(self.y)
        subject = np.asarray(self.subject)
        if y.shape != (n,) or subject.shape != (n,):
            raise InputError(f"y/subject: expected shape ({n},), got {y.shape} and {subject.shape}")
        if n and (y.min() < 0 or y.max() >= len(self.classes)):
            raise InputError(f"y: expected class indices in [0, {len(self.classes)})")
        if not float(self.sfreq) > 0:
            raise InputError(f"sfreq: expected a number > 0, got {self.sfreq!r}")
        object.__setattr__(self, "x", x.astype(np.float32, copy=False))
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "subject", subject.astype(np.int64, copy=False))
        object.__setattr__(self, "sfreq", float(self.sfreq))
        object.__setattr__(self, "channels", tuple(str(ch) for ch in self.channels))
        object.__setattr__(self, "classes", tuple(str(k) for k in self.classes))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_times(self) -> int:
        """Samples per window."""
        return int(self.x.shape[2])

    def subset(self, index: Any) -> Windows:
        """The windows selected by ``index`` (a mask, indices or a slice); same metadata."""
        index = np.arange(len(self))[index]
        return Windows(
            self.x[index],
            self.y[index],
            self.subject[index],
            self.sfreq,
            self.channels,
            self.classes,
            self.card,
        )

    def of_class(self, name: str) -> Windows:
        """The windows of class ``name`` (InputError for an unknown class)."""
        return self.subset(self.y == class_index(name, self.classes))

    def counts(self) -> dict[str, int]:
        """Windows per class."""
        return {k: int((self.y == i).sum()) for i, k in enumerate(self.classes)}

    def save(self, path: str | Path) -> Path:
        """Write ``X.npz`` (arrays and metadata) and ``X.json`` (the card); returns the npz."""
        npz = _npz_path(path)
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            x=self.x,
            y=self.y,
            subject=self.subject,
            sfreq=np.float64(self.sfreq),
            channels=np.array(self.channels, dtype=str),
            classes=np.array(self.classes, dtype=str),
        )
        card = dict(self.card) | {"n_windows": len(self), "counts": self.counts()}
        card |= {"channels": list(self.channels), "sfreq": self.sfreq, "n_times": self.n_times}
        card["n_subjects"] = len(np.unique(self.subject))
        write_bytes(npz, buf.getvalue())
        write_text(npz.with_suffix(".json"), json.dumps(card, indent=2, sort_keys=True) + "\n")
        return npz

    @classmethod
    def load(cls, path: str | Path) -> Windows:
        """Read what :meth:`save` wrote (``X``, ``X.npz``); the card ``X.json`` if present."""
        npz = _npz_path(path)
        if not npz.is_file():
            raise InputError(f"{npz}: no such windows file (expected what `prepare` writes)")
        with reading(npz, "windows file"):
            try:
                with np.load(npz, allow_pickle=False) as f:
                    missing = [k for k in _KEYS if k not in f.files]
                    if missing:
                        raise InputError(f"{npz}: not a windows file (missing {missing})")
                    arrays = {k: f[k] for k in _KEYS}
            except (zipfile.BadZipFile, EOFError) as err:
                raise InputError(f"{npz}: not a windows file ({err})") from None
        card: dict[str, Any] = {}
        card_path = npz.with_suffix(".json")
        if card_path.is_file():
            with reading(card_path, "data card"):
                card = json.loads(card_path.read_text(encoding="utf-8"))
            if not isinstance(card, dict):
                raise InputError(f"{card_path}: expected a JSON object")
        try:
            return cls(
                arrays["x"],
                arrays["y"],
                arrays["subject"],
                float(arrays["sfreq"]),
                tuple(arrays["channels"].tolist()),
                tuple(arrays["classes"].tolist()),
                card,
            )
        except InputError as err:
            raise InputError(f"{npz}: {err}") from None


def _npz_path(path: str | Path) -> Path:
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def subject_split(
    w: Windows, *, test_fraction: float = 0.25, seed: int = 0
) -> tuple[Windows, Windows]:
    """``(train, test)`` with disjoint subjects: a seeded ``round(test_fraction * S)`` of the
    ``S`` subjects (at least one on each side) go to test."""
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    subjects = np.unique(w.subject)
    if len(subjects) < 2:
        raise InputError(f"windows: a subject-wise split needs >= 2 subjects, got {len(subjects)}")
    n_test = min(max(1, round(test_fraction * len(subjects))), len(subjects) - 1)
    test_subjects = np.random.default_rng(seed).choice(subjects, n_test, replace=False)
    is_test = np.isin(w.subject, test_subjects)
    return w.subset(~is_test), w.subset(is_test)
