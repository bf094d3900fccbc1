"""Windows: validation, selection, the subject-wise split and the npz + card round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.eeg.data import CLASSES, Windows, subject_split


def make(n: int = 40, subjects: int = 8, seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    return Windows(
        rng.normal(size=(n, 8, 50)),
        np.arange(n) % len(CLASSES),
        np.arange(n) % subjects,
        card={"id": "test"},
    )


def test_dtypes_and_selection() -> None:
    w = make()
    assert w.x.dtype == np.float32
    assert w.y.dtype == np.int64
    assert len(w) == 40
    assert w.n_times == 50
    eyem = w.of_class("eyem")
    assert len(eyem) == 8
    assert (eyem.y == 0).all()
    assert len(w.subset(slice(0, 5))) == 5
    assert w.counts() == dict.fromkeys(CLASSES, 8)
    with pytest.raises(InputError, match="unknown class 'blink'; expected one of eyem"):
        w.of_class("blink")


def test_validation() -> None:
    with pytest.raises(InputError, match=r"\(N, C, T\)"):
        Windows(np.zeros((4, 8)), np.zeros(4), np.zeros(4))
    with pytest.raises(InputError, match="8 channel names"):
        Windows(np.zeros((4, 3, 10)), np.zeros(4), np.zeros(4))
    with pytest.raises(InputError, match="class indices"):
        Windows(np.zeros((4, 8, 10)), np.full(4, 7), np.zeros(4))
    with pytest.raises(InputError, match="NaN"):
        Windows(np.full((4, 8, 10), np.nan), np.zeros(4), np.zeros(4))


def test_subject_split_is_disjoint_and_seeded() -> None:
    w = make()
    train, test = subject_split(w, test_fraction=0.25, seed=3)
    assert len(train) + len(test) == len(w)
    assert set(train.subject.tolist()).isdisjoint(test.subject.tolist())
    assert len(set(test.subject.tolist())) == 2
    again = subject_split(w, test_fraction=0.25, seed=3)[1]
    np.testing.assert_array_equal(again.subject, test.subject)
    with pytest.raises(InputError, match=">= 2 subjects"):
        subject_split(make(subjects=1))
    with pytest.raises(InputError, match="test_fraction"):
        subject_split(w, test_fraction=1.0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    w = make()
    npz = w.save(tmp_path / "set")
    assert npz.name == "set.npz"
    card = json.loads((tmp_path / "set.json").read_text())
    assert card["id"] == "test"
    assert card["n_windows"] == 40
    assert card["n_subjects"] == 8
    back = Windows.load(tmp_path / "set.npz")
    np.testing.assert_array_equal(back.x, w.x)
    np.testing.assert_array_equal(back.y, w.y)
    np.testing.assert_array_equal(back.subject, w.subject)
    assert (back.sfreq, back.channels, back.classes) == (w.sfreq, w.channels, w.classes)
    assert back.card["id"] == "test"


def test_load_rejects_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such windows file"):
        Windows.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.npz"):
        Windows.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="missing"):
        Windows.load(tmp_path / "other.npz")
    np.savez(
        tmp_path / "objs.npz",
        **{k: np.zeros(2) for k in ("x", "y", "subject")},
        sfreq=np.float64(250),
        channels=np.array(["a"]),
        classes=np.array(["b"]),
    )
    with pytest.raises(InputError, match=r"objs\.npz"):
        Windows.load(tmp_path / "objs.npz")
