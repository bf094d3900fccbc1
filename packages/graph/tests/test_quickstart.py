"""The quickstart samples from both shipped checkpoints and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyfold.core.cli import run_app
from polyfold.graph.cli import app
from polyfold.graph.quickstart import MARKER, N_GRAPHS, N_MOLECULES, quickstart


def test_quickstart_writes_its_report(tmp_path: Path) -> None:
    report = quickstart(tmp_path, quiet=True)
    assert report == tmp_path / "report.html"
    page = report.read_text()
    # self-contained: the molecule grid is inline, no separate image file
    assert 'src="data:image/png;base64,' in page
    assert not list(tmp_path.glob("*.png"))
    # every metric says its direction and shows its reference
    assert "lower is better" in page
    assert "higher is better" in page
    assert "GDSS paper" in page
    assert "data floor" in page
    assert "validity_wo_correction" in page
    assert "orbit" in page
    summary = json.loads((tmp_path / MARKER).read_text())
    qm9 = summary["qm9"]
    assert 0 < qm9["validity_wo_correction"] <= 1
    assert 0 < qm9["uniqueness"] <= 1
    assert 0 <= qm9["novelty"] <= 1
    assert summary["community_small"]["degree"] >= 0
    floor = summary["community_small_data_floor"]
    assert set(floor) == {"degree", "clustering", "orbit", "spectral"}
    assert all(v >= 0 for v in floor.values())
    smiles = (tmp_path / "qm9_samples.smi").read_text().splitlines()
    assert 0 < len(smiles) <= N_MOLECULES
    graphs = json.loads((tmp_path / "community_small_samples.json").read_text())["graphs"]
    assert len(graphs) == N_GRAPHS


def test_quickstart_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_:
        run_app(app, ["quickstart", "--out", str(tmp_path), "--quiet"])
    assert exit_.value.code == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "report.html").exists()
