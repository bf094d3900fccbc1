"""The TUAR loader on EDF+ recordings and CSV annotations written by the tests."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.eeg.data import CHANNELS, SFREQ, subject_split
from polyfold.eeg.tuar import channel_name, load_tuar, read_annotations, subject_of

TUH_NAMES = [f"EEG {c.upper()}-REF" for c in CHANNELS] + ["EEG CZ-REF", "EKG1-REF"]


def write_edf(
    path: Path, seconds: float = 20.0, sfreq: float = 256.0, names: list[str] | None = None
) -> np.ndarray:
    """A recording whose channel k carries a (k + 1) * 10 uV sine at 10 Hz; returns it (V)."""
    names = TUH_NAMES if names is None else names
    t = np.arange(round(seconds * sfreq)) / sfreq
    data = np.stack([(k + 1) * 10e-6 * np.sin(2 * np.pi * 10 * t) for k in range(len(names))])
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "eeg"), verbose="ERROR")
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="ERROR")
    return data


def write_csv(path: Path, rows: list[tuple[str, float, float, str]]) -> None:
    lines = [
        "# version = csv_v1.0.0",
        "# bname = " + path.stem,
        "# duration = 20.00 secs",
        "#",
        "channel,start_time,stop_time,label,confidence",
    ]
    lines += [f"{c},{a:.4f},{b:.4f},{lab},1.0000" for c, a, b, lab in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "tuar"
    write_edf(root / "01_tcp_ar" / "aaaaaaaa_s001_t000.edf")
    write_csv(
        root / "01_tcp_ar" / "aaaaaaaa_s001_t000.csv",
        [
            ("FP1-F7", 2.0, 3.0, "eyem"),  # one event on two channels: one window
            ("FP2-F8", 2.0, 3.0, "eyem"),
            ("T3-C3", 6.0, 12.5, "musc"),  # 6.5 s: three 2 s windows
            ("C3-CZ", 14.0, 15.0, "eyem_musc"),  # combined: dropped by default
            ("O1-P3", 19.5, 20.0, "elpp"),  # electrode pop -> elec, window moved inside
            ("C4-CZ", 0.0, 20.0, "bckg"),  # background rows are ignored
        ],
    )
    write_edf(root / "01_tcp_ar" / "bbbbbbbb_s002_t001.edf", sfreq=250.0)
    write_csv(
        root / "01_tcp_ar" / "bbbbbbbb_s002_t001.csv",
        [("T4-C4", 5.0, 6.0, "chew"), ("FP1-F7", 10.0, 11.0, "shiv")],
    )
    return root


def test_channel_names_and_subjects() -> None:
    assert channel_name("EEG FP1-REF") == "Fp1"
    assert channel_name("EEG T3-LE") == "T3"
    assert channel_name("T8") == "T4"
    assert channel_name("EEG CZ-REF") is None
    assert subject_of("x/aaaaaaju_s005_t000.edf") == "aaaaaaju"


def test_loads_windows_labels_and_channels(corpus: Path) -> None:
    w = load_tuar(corpus, seconds=2.0)
    assert w.channels == CHANNELS
    assert w.sfreq == SFREQ
    assert w.x.shape[1:] == (8, 500)
    assert w.counts() == {"eyem": 1, "musc": 3, "elec": 1, "chew": 1, "shiv": 1}
    assert w.card["subject_ids"] == ["aaaaaaaa", "bbbbbbbb"]
    assert sorted(set(w.subject.tolist())) == [0, 1]
    # channel k carried a (k + 1) * 10 uV sine: picked in montage order, in microvolts,
    # resampled from 256 Hz and kept by the 0.5-100 Hz band-pass
    amp = w.x[:, :, 100:400].std(-1) * np.sqrt(2)
    np.testing.assert_allclose(amp.mean(0), 10.0 * np.arange(1, 9), rtol=0.05)
    train, test = subject_split(w, test_fraction=0.5, seed=0)
    assert set(train.subject.tolist()).isdisjoint(test.subject.tolist())


def test_window_placement(tmp_path: Path, corpus: Path) -> None:
    events = read_annotations(corpus / "01_tcp_ar" / "aaaaaaaa_s001_t000.csv", duration=20.0)
    assert events == [(2.0, 3.0, "eyem"), (6.0, 12.5, "musc"), (19.5, 20.0, "elec")]
    merged = read_annotations(
        corpus / "01_tcp_ar" / "aaaaaaaa_s001_t000.csv", duration=20.0, combined="first"
    )
    assert (14.0, 15.0, "eyem") in merged
    w = load_tuar(corpus, seconds=1.0, classes=("musc",))
    assert w.classes == ("musc",)
    assert len(w) == 6  # 6.5 s tiled by 1 s windows


def test_missing_channel_names_file_and_channels(tmp_path: Path) -> None:
    names = [n for n in TUH_NAMES if "T4" not in n and "O2" not in n]
    write_edf(tmp_path / "cccccccc_s001_t000.edf", names=names)
    write_csv(tmp_path / "cccccccc_s001_t000.csv", [("T3-C3", 1.0, 2.0, "musc")])
    with pytest.raises(InputError, match=r"cccccccc_s001_t000\.edf: missing channels O2, T4"):
        load_tuar(tmp_path)


def test_annotation_outside_the_recording(tmp_path: Path) -> None:
    write_edf(tmp_path / "dddddddd_s001_t000.edf", seconds=10.0)
    write_csv(tmp_path / "dddddddd_s001_t000.csv", [("T3-C3", 8.0, 12.0, "musc")])
    msg = r"dddddddd_s001_t000\.csv, line 6: event 8-12 s is outside the recording"
    with pytest.raises(InputError, match=msg):
        load_tuar(tmp_path)


def test_unknown_label_and_class(tmp_path: Path, corpus: Path) -> None:
    write_edf(tmp_path / "eeeeeeee_s001_t000.edf", seconds=10.0)
    write_csv(tmp_path / "eeeeeeee_s001_t000.csv", [("T3-C3", 1.0, 2.0, "sneeze")])
    with pytest.raises(InputError, match="line 6: unknown label 'sneeze'"):
        load_tuar(tmp_path)
    with pytest.raises(InputError, match="classes: unknown class 'blink'"):
        load_tuar(corpus, classes=("eyem", "blink"))


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        load_tuar(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no \.edf recordings"):
        load_tuar(tmp_path)
    write_edf(tmp_path / "ffffffff_s001_t000.edf", seconds=5.0)
    with pytest.raises(InputError, match="no annotation file"):
        load_tuar(tmp_path)
    (tmp_path / "ffffffff_s001_t000.csv").write_text("start,stop\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="header"):
        load_tuar(tmp_path)
