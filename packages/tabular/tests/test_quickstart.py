"""The quickstart writes its report with histograms and the downstream table."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyfold.core.cli import run_app
from polyfold.tabular.cli import app
from polyfold.tabular.quickstart import MARKER, quickstart


def test_quickstart_writes_its_report(tmp_path: Path) -> None:
    report = quickstart(tmp_path, quiet=True)
    assert report == tmp_path / "report.html"
    assert report.is_file()
    page = report.read_text()
    assert page.count("<svg") == 3 * 4  # 3 classes x 4 features
    assert page.count(">real</text>") == page.count(">synthetic</text>") == 3 * 4
    for method in ("real", "gmm", "tabebm"):
        assert f"<td>{method}</td>" in page
    # every metric says its direction and reference; images are inline SVG, nothing external
    assert "mean balanced accuracy (higher is better)" in page
    assert "KS (lower is better)" in page
    assert "inverse KL (higher is better)" in page
    assert "DCR (vs the real row)" in page
    assert "the data&#x27;s own floor" in page or "the data's own floor" in page
    assert "<img" not in page
    assert "src=" not in page
    assert (tmp_path / MARKER).is_file()
    assert (tmp_path / "wine_synthetic.csv").stat().st_size > 0


def test_quickstart_cli_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(SystemExit) as exit_:
        run_app(app, ["quickstart", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "report.html").exists()
