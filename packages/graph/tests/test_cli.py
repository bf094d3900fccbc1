"""The polyfold-graph CLI: train + export, sample to files, evaluate, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyfold.core.cli import exit_status
from polyfold.graph.cli import app
from polyfold.graph.training import load_model

runner = CliRunner()


def _run(args: list[str]) -> int:
    return exit_status(app, args)


def test_train_exports_a_loadable_model_card(tmp_path: Path) -> None:
    run, export = tmp_path / "run", tmp_path / "model" / "cs"
    args = [
        "train",
        "--dataset",
        "community_small",
        "--run",
        str(run),
        "--steps",
        "2",
        "--max-graphs",
        "8",
        "--batch-size",
        "4",
        "--export",
        str(export),
        "--quiet",
    ]
    assert _run(args) == 0
    card = json.loads(export.with_suffix(".json").read_text())["card"]
    assert card["steps"] == 2
    assert card["preset"] == "community_small"
    assert card["data_card"] == "community-small"
    assert isinstance(card["command"], str)
    assert sum(card["node_counts"]) == 8
    gm = load_model(export)
    assert gm.kind == "graph"
    assert gm.max_nodes == 20
    assert gm.n_features == 10
    # resuming the finished run to more steps continues from its checkpoint
    assert _run([*args[:6], "3", *args[7:], "--force"]) == 0
    assert load_model(export).meta["steps"] == 3

    # a new run initialised from the exported weights counts their steps too
    init_export = tmp_path / "model" / "cs_init"
    init_args = [
        "train", "--dataset", "community_small", "--run", str(tmp_path / "run2"),
        "--steps", "1", "--max-graphs", "8", "--batch-size", "4", "--init", str(export),
        "--export", str(init_export), "--quiet",
    ]  # fmt: skip
    assert _run(init_args) == 0
    card2 = load_model(init_export).meta
    assert card2["steps"] == 4
    assert card2["init"]["steps"] == 3

    out = tmp_path / "graphs.json"
    assert (
        _run(
            [
                "sample",
                "--model",
                str(export),
                "-n",
                "3",
                "--steps",
                "4",
                "--sampler",
                "s4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    graphs = json.loads(out.read_text())["graphs"]
    assert len(graphs) == 3
    assert all(g["n_nodes"] >= 1 for g in graphs)
    g6 = tmp_path / "graphs.g6"
    assert (
        _run(
            [
                "sample",
                "--model",
                str(export),
                "-n",
                "2",
                "--steps",
                "3",
                "--sampler",
                "dpm_solver_pp",
                "--out",
                str(g6),
            ]
        )
        == 0
    )
    assert len(g6.read_text().splitlines()) == 2


def test_sample_molecules_writes_smiles_and_a_grid(tmp_path: Path) -> None:
    out = tmp_path / "mols.smi"
    code = _run(
        [
            "sample",
            "--model",
            "qm9",
            "-n",
            "12",
            "--sampler",
            "dpm_solver_pp",
            "--steps",
            "20",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines
    assert all(line.strip() for line in lines)
    assert (tmp_path / "mols.png").stat().st_size > 1000


def test_evaluate_graphs_prints_the_mmds(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    code = _run(
        [
            "evaluate",
            "--model",
            "community_small",
            "-n",
            "6",
            "--sampler",
            "dpm_solver_pp",
            "--steps",
            "10",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert {"degree", "clustering", "orbit", "spectral", "nfe"} <= set(metrics)
    assert all(metrics[k] >= 0 for k in ("degree", "clustering", "orbit", "spectral"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "zinc", "--steps", "1"], "--dataset"),
        (["sample", "--model", "nope", "--out", "x.smi"], "--model"),
        (["sample", "--model", "qm9", "-n", "0", "--out", "x.smi"], "-n"),
        (["sample", "--model", "qm9", "-n", "2", "--steps", "3", "--out", "x.g6"], ".sdf"),
        (["sample", "--model", "qm9", "--sampler", "magic", "--out", "x.smi"], "sampler"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(args) == 2
    assert message in capsys.readouterr().err
