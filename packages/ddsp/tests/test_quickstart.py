"""The quickstart with the shipped violin model: report with players, spectrograms, metrics."""

import json

import pytest

from polyfold.core.errors import InputError
from polyfold.ddsp.quickstart import MARKER, quickstart


def test_quickstart_writes_a_self_contained_report(tmp_path):
    path = quickstart(tmp_path / "qs", quiet=True)
    text = path.read_text()
    assert text.count("<audio controls") == 6
    assert text.count("data:image/png;base64,") == 6
    assert "transfer raw pitch accuracy" in text
    summary = json.loads((tmp_path / "qs" / MARKER).read_text())
    assert 0 <= summary["metrics"]["transfer_raw_pitch_accuracy_50c"] <= 1
    assert (tmp_path / "qs" / "transfer.wav").stat().st_size > 0
    assert summary["vocoder"]["rtf_1thread"] > 0
    assert summary["vocoder"]["mel_l1"] < 1.0  # the vocoded speech's mel is near its input
    assert (tmp_path / "qs" / "vocoded.wav").stat().st_size > 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty"):
        quickstart(tmp_path / "mine", quiet=True)
