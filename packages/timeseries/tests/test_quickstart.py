"""The quickstart writes its report with forecast and generation plots."""

from __future__ import annotations

import json
from pathlib import Path

from polyfold.timeseries.quickstart import MARKER, quickstart


def test_quickstart(tmp_path: Path) -> None:
    path = quickstart(tmp_path, quiet=True)
    assert path == tmp_path / "report.html"
    html = path.read_text()
    assert "TSDiff" in html
    assert "PaD-TS" in html
    assert html.count("<svg") >= 5
    summary = json.loads((tmp_path / MARKER).read_text())
    assert 0 < summary["crps_tsdiff"] < 1
    assert summary["fdds"] >= 0
    assert (tmp_path / "tsdiff" / "tsdiff.safetensors").is_file()
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")}
    assert written <= {"report.html", MARKER, "tsdiff", "forecast_samples.csv"}
