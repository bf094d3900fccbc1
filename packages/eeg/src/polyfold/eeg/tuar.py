"""The TUH EEG Artifact corpus (TUAR): EDF+ recordings with per-channel CSV annotations.

A TUAR folder holds ``<subject>_s<session>_t<token>.edf`` recordings, each with a ``.csv``
beside it: comment lines starting with ``#``, a header row, then rows
``channel,start_time,stop_time,label,confidence`` (seconds from the start of the recording).
:func:`load_tuar` turns a folder into :class:`~polyfold.eeg.data.Windows`:

1. **Montage**: the 8 ArtifactGen channels are picked from the referential montage by name
   (``EEG FP1-REF``, ``EEG T3-LE``, ``FP1`` ... -> ``Fp1``; ``T7``/``T8`` stand for ``T3``/
   ``T4``). A recording lacking one is an InputError naming the file and the missing channels.
2. **Filtering and resampling** of the continuous recording: to 250 Hz, band-pass 0.5-100 Hz
   (muscle artifacts live at 20-100 Hz, see :mod:`polyfold.eeg.preprocess`) and a notch at the
   line frequency (60 Hz in the US-recorded TUH corpus), in microvolts.
3. **Labels**: per-channel rows with the same ``(start, stop, label)`` are one event.
   ``elpp`` (electrode pop) and ``elst`` (electrostatic) are ``elec``; ``bckg``/``null`` rows
   are ignored. Combined labels such as ``eyem_musc`` are ambiguous: ``combined="drop"`` (the
   default) leaves them out, ``combined="first"`` keeps the first class (``eyem``). A label
   outside TUAR's vocabulary, or an event outside the recording, is an InputError naming the
   file and line.
4. **Windows around events**: an event shorter than a window gets one window centred on it
   (moved inside the recording if needed); a longer one is tiled with windows every
   ``stride`` seconds (default: the window length), at most ``max_per_event``.
5. **Subjects**: the id is the file name up to the first underscore (TUH's patient id); the
   card maps the integer ``subject`` of each window to it, so :func:`~polyfold.eeg.data.
   subject_split` splits by patient.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyfold.core.errors import InputError, reading
from polyfold.eeg.data import CHANNELS, CLASSES, SFREQ, Windows, class_index

__all__ = ["LABEL_MAP", "channel_name", "load_tuar", "read_annotations", "subject_of"]

#: TUAR labels that name one class (after merging) or no class (None: ignored).
LABEL_MAP: dict[str, str | None] = {
    "eyem": "eyem",
    "musc": "musc",
    "chew": "chew",
    "shiv": "shiv",
    "elec": "elec",
    "elpp": "elec",
    "elst": "elec",
    "bckg": None,
    "null": None,
}
_ALIASES = {"T7": "T3", "T8": "T4"}
_HEADER = ["channel", "start_time", "stop_time", "label", "confidence"]


def channel_name(raw_name: str) -> str | None:
    """The 10-20 name of a TUH channel (``'EEG FP1-REF'`` -> ``'Fp1'``), or None."""
    name = re.sub(r"^EEG\s+", "", raw_name.strip(), flags=re.IGNORECASE)
    name = re.split(r"-(REF|LE|AR|AVG)$", name, flags=re.IGNORECASE)[0].upper()
    name = _ALIASES.get(name, name)
    for ch in CHANNELS:
        if ch.upper() == name:
            return ch
    return None


def subject_of(path: str | Path) -> str:
    """TUH's patient id: the file name up to the first underscore."""
    return Path(path).stem.split("_")[0]


def _merge_label(label: str, combined: str, where: str) -> str | None:
    label = label.strip().lower()
    if label in LABEL_MAP:
        return LABEL_MAP[label]
    parts = label.split("_")
    if len(parts) > 1 and all(LABEL_MAP.get(p) for p in parts):
        return LABEL_MAP[parts[0]] if combined == "first" else None
    known = ", ".join([*LABEL_MAP, "and combinations such as eyem_musc"])
    raise InputError(f"{where}: unknown label {label!r}; TUAR labels are {known}")


def read_annotations(
    path: str | Path, *, duration: float | None = None, combined: str = "drop"
) -> list[tuple[float, float, str]]:
    """Events ``(start, stop, class)`` of a TUAR CSV, one per distinct ``(start, stop, label)``
    over channels, sorted. ``duration`` (seconds) checks that every event is inside the
    recording."""
    if combined not in ("drop", "first"):
        raise InputError(f"combined: expected 'drop' or 'first', got {combined!r}")
    path = Path(path)
    events: set[tuple[float, float, str]] = set()
    with reading(path, "annotations"):
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
        if not rows:
            raise InputError(f"{path}: no header row; expected {','.join(_HEADER)}")
        header = [h.strip().lower() for h in next(csv.reader([rows[0][1]]))]
        if header[:4] != _HEADER[:4]:
            raise InputError(f"{path}: header {header}; expected {','.join(_HEADER)}")
        for lineno, text in rows[1:]:
            cells = next(csv.reader([text]))
            where = f"{path}, line {lineno}"
            if len(cells) < 4:
                raise InputError(f"{where}: expected {len(_HEADER)} fields, got {len(cells)}")
            try:
                start, stop = float(cells[1]), float(cells[2])
            except ValueError:
                raise InputError(f"{where}: start/stop times must be numbers") from None
            if not (0.0 <= start < stop) or (duration is not None and stop > duration + 1e-6):
                span = f"[0, {duration:g}] s" if duration is not None else "start >= 0"
                raise InputError(
                    f"{where}: event {start:g}-{stop:g} s is outside the recording ({span}) "
                    "or ends before it starts"
                )
            label = _merge_label(cells[3], combined, where)
            if label is not None:
                events.add((start, stop, label))
    return sorted(events)


def _event_starts(
    start: float, stop: float, seconds: float, stride: float, duration: float, max_n: int
) -> list[float]:
    if stop - start <= seconds:
        centre = 0.5 * (start + stop)
        return [min(max(centre - seconds / 2, 0.0), duration - seconds)]
    n = min(int((stop - start - seconds) // stride) + 1, max_n)
    return [start + k * stride for k in range(n)]


def _read_recording(edf: Path, line_freq: float | None) -> tuple[np.ndarray, float]:
    """(8, T) microvolts at 250 Hz, filtered; and the duration in seconds."""
    import mne

    with reading(edf, "EDF file"):
        raw = mne.io.read_raw_edf(edf, preload=False, verbose="ERROR")
    picks: dict[str, str] = {}
    for name in raw.ch_names:
        ch = channel_name(name)
        if ch is not None and ch not in picks:
            picks[ch] = name
    missing = [ch for ch in CHANNELS if ch not in picks]
    if missing:
        raise InputError(
            f"{edf}: missing channels {', '.join(missing)} (expected referential channels like "
            f"'EEG FP1-REF'; found {', '.join(raw.ch_names)})"
        )
    raw = raw.pick([picks[ch] for ch in CHANNELS]).load_data(verbose="ERROR")
    duration = raw.n_times / raw.info["sfreq"]
    if raw.info["sfreq"] != SFREQ:
        raw.resample(SFREQ, verbose="ERROR")
    raw.filter(0.5, 100.0, verbose="ERROR")
    if line_freq is not None and line_freq < SFREQ / 2:
        raw.notch_filter(line_freq, verbose="ERROR")
    return raw.get_data() * 1e6, duration


def load_tuar(
    folder: str | Path,
    *,
    seconds: float = 2.0,
    stride: float | None = None,
    classes: Sequence[str] = CLASSES,
    combined: str = "drop",
    line_freq: float | None = 60.0,
    max_per_event: int = 10,
) -> Windows:
    """Windows of ``seconds`` around the artifact events of every ``*.edf`` under ``folder``
    (recursively) with its ``.csv`` annotations, keeping only ``classes``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder {folder}: not a folder (expected a TUAR folder of .edf + .csv)")
    for k in classes:
        class_index(k, CLASSES, what="classes")
    if not 0.2 <= seconds <= 60.0:
        raise InputError(f"seconds: expected a number in [0.2, 60], got {seconds!r}")
    stride = seconds if stride is None else stride
    if not stride > 0:
        raise InputError(f"stride: expected a number > 0, got {stride!r}")
    edfs = sorted(folder.rglob("*.edf"))
    if not edfs:
        raise InputError(f"folder {folder}: no .edf recordings found")
    n_times = round(seconds * SFREQ)
    subjects = sorted({subject_of(p) for p in edfs})
    xs: list[np.ndarray] = []
    ys: list[int] = []
    subs: list[int] = []
    for edf in edfs:
        ann = edf.with_suffix(".csv")
        if not ann.is_file():
            raise InputError(f"{edf}: no annotation file {ann.name} beside it")
        data, duration = _read_recording(edf, line_freq)
        if duration < seconds:
            continue
        for start, stop, label in read_annotations(ann, duration=duration, combined=combined):
            if label not in classes:
                continue
            for t0 in _event_starts(start, stop, seconds, stride, duration, max_per_event):
                i0 = min(round(t0 * SFREQ), data.shape[1] - n_times)
                xs.append(data[:, i0 : i0 + n_times])
                ys.append(list(classes).index(label))
                subs.append(subjects.index(subject_of(edf)))
    if not xs:
        raise InputError(f"folder {folder}: no events of classes {', '.join(classes)} found")
    card: dict[str, Any] = {
        "id": "tuar",
        "name": "TUH EEG Artifact corpus (TUAR)",
        "simulated": False,
        "source": str(folder),
        "subject_ids": subjects,
        "seconds": seconds,
        "stride": stride,
        "combined_labels": combined,
        "filter": f"0.5-100 Hz band-pass, notch {line_freq} Hz, resampled to {SFREQ:g} Hz",
    }
    y, subject = np.asarray(ys), np.asarray(subs)
    return Windows(np.stack(xs), y, subject, classes=tuple(classes), card=card)
