"""The polyfold-graph CLI as a user meets it (issue 31): outputs are never replaced without
--force, bad paths and files fail before work with ``error: ...`` (exit 2), training says when it
resumes, long work shows progress, metrics carry direction and references, and molecules go in
and out as SMILES and SDF files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rdkit import Chem

from polyfold.core.cli import exit_status
from polyfold.graph import data
from polyfold.graph.cli import app

TRAIN = [
    "train", "--dataset", "community_small", "--max-graphs", "8", "--batch-size", "4",
    "--checkpoint-every", "1",
]  # fmt: skip
FAST = ["--steps", "3", "--sampler", "s4"]


def _run(args: list[str]) -> int:
    return exit_status(app, args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("graphcli") / "run"
    assert _run([*TRAIN, "--run", str(run), "--steps", "2", "--quiet"]) == 0
    return run


# 1. outputs and paths ------------------------------------------------------------------------


def test_sample_refuses_existing_outputs_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mols.smi"
    (tmp_path / "mols.png").write_text("mine")
    args = ["sample", "--model", "qm9", "-n", "3", *FAST, "--out", str(out), "-q"]
    assert _run(args) == 2
    assert "mols.png: file exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "mols.png").read_text() == "mine"
    assert not out.exists()
    assert _run([*args, "--force"]) == 0
    assert (tmp_path / "mols.png").read_bytes().startswith(b"\x89PNG")
    out.write_text("mine\n")
    assert _run(args) == 2
    assert out.read_text() == "mine\n"


def test_evaluate_refuses_an_existing_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.json"
    out.write_text("{}")
    assert (
        _run(["evaluate", "--model", "community_small", "-n", "2", *FAST, "--out", str(out)]) == 2
    )
    assert "file exists" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_unwritable_export_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = tmp_path / "run"
    code = _run([*TRAIN, "--run", str(run), "--steps", "2", "--export", str(blocker / "m"), "-q"])
    assert code == 2
    assert "--export" in capsys.readouterr().err
    assert not list(run.glob("step_*"))  # no training happened
    for option in ("--run", "--out"):
        target = str(blocker / "sub")
        args = [*TRAIN, "--run", target] if option == "--run" else ["sample", "--out", target]
        assert _run([*args, "-q"]) == 2
        assert f"{option} {blocker}" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe binary \x80", b"   \n\n"])
def test_bad_input_files_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    model = tmp_path / "m.json"
    model.write_bytes(content)
    assert _run(["sample", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "x.json")]) == 2
    smi = tmp_path / "in.smi"
    smi.write_bytes(content)
    assert _run(["score", str(smi), "--no-fcd"]) == 2
    assert _run(["train", "--smiles", str(smi), "--run", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 3
    assert "Traceback" not in err


# 2. training -----------------------------------------------------------------------------------


def test_train_says_it_resumes_and_names_the_option_on_a_finished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert _run([*TRAIN, "--run", str(run), "--steps", "2", "-q"]) == 0
    capsys.readouterr()
    assert _run([*TRAIN, "--run", str(run), "--steps", "3", "-q"]) == 0
    assert f"resuming from step 2 of 3 ({run})" in capsys.readouterr().err
    assert _run([*TRAIN, "--run", str(run), "--steps", "1", "-q"]) == 2
    assert "--steps 1: the run in" in capsys.readouterr().err
    assert _run([*TRAIN, "--run", str(run), "--steps", "3", "--no-resume", "-q"]) == 2
    assert "drop --no-resume" in capsys.readouterr().err
    qm9 = ["train", "--dataset", "qm9", "--run", str(run), "--steps", "4", "-q"]
    assert _run(qm9) == 2
    assert "holds a community_small run, not qm9" in capsys.readouterr().err


# 3. progress -----------------------------------------------------------------------------------


def test_sampling_and_training_show_progress_unless_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sample", "--model", "community_small", "-n", "2", *FAST]
    assert _run([*args, "--out", str(tmp_path / "a.json")]) == 0
    assert "sample: 3/3 (100%)" in capsys.readouterr().err
    assert _run([*args, "--out", str(tmp_path / "b.json"), "--quiet"]) == 0
    assert "sample:" not in capsys.readouterr().err
    assert _run([*TRAIN, "--run", str(tmp_path / "r"), "--steps", "2"]) == 0
    assert "train: 2/2 (100%)" in capsys.readouterr().err


# 4. reports ------------------------------------------------------------------------------------


def test_evaluate_gives_each_metric_its_direction_and_references(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(["evaluate", "--model", "community_small", "-n", "4", *FAST]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    ref = result["reference"]
    assert set(ref) == {"degree", "clustering", "orbit", "spectral"}
    assert all(row["better"] == "lower" for row in ref.values())
    assert ref["degree"]["paper"] == 0.045
    assert all(row["data_floor"] >= 0 for row in ref.values())
    assert ref["orbit"]["value"] == result["orbit"]
    assert "degree: " in captured.err
    assert "lower is better; GDSS paper 0.045 at 20 graphs" in captured.err


# 5. molecules ----------------------------------------------------------------------------------


def test_sample_writes_sdf(tmp_path: Path) -> None:
    out = tmp_path / "mols.sdf"
    assert _run(["sample", "--model", "qm9", "-n", "6", *FAST, "--out", str(out), "-q"]) == 0
    mols = [m for m in Chem.SDMolSupplier(str(out)) if m is not None]
    assert mols
    assert all(m.GetProp("_Name") == Chem.MolToSmiles(m) for m in mols)


def test_score_reports_invalid_lines_and_the_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = {"train": ["CCO", "CCN", "CC=O"], "test": ["CCC", "CO", "OCC=O", "NCC"]}
    monkeypatch.setattr(data, "load_qm9_smiles", lambda split: refs[split])
    smi = tmp_path / "mine.smi"
    smi.write_text("smiles name\nCCO ethanol\nC1CC\n\nOCC=O\nnot-a-smiles\nOCC=O\n")
    out = tmp_path / "scores.json"
    assert _run(["score", str(smi), "--no-fcd", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "line 3: invalid SMILES 'C1CC'" in err
    assert "line 6: invalid SMILES 'not-a-smiles'" in err
    result = json.loads(out.read_text())
    assert [row["line"] for row in result["invalid"]] == [3, 6]
    assert result["n"] == 5
    assert result["validity"] == pytest.approx(3 / 5)
    assert result["uniqueness"] == pytest.approx(2 / 3)
    assert result["novelty"] == pytest.approx(1 / 2)  # CCO is a training molecule
    assert result["fcd"] is None
    assert result["reference"]["nspdk"]["better"] == "lower"


def test_train_on_smiles_names_line_and_atom_then_samples_from_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.smi"
    bad.write_text("CCO\nCCS\n")
    run = tmp_path / "run"
    assert _run(["train", "--smiles", str(bad), "--run", str(run), "--steps", "1", "-q"]) == 2
    assert "line 2: atom type 'S'" in capsys.readouterr().err
    good = tmp_path / "good.smi"
    good.write_text("SMILES\nCCO\nOCC=O\nC#N\nCC(C)O\n")
    args = ["train", "--smiles", str(good), "--run", str(run), "--steps", "2", "-q"]
    assert _run([*args, "--checkpoint-every", "1"]) == 0
    out = tmp_path / "mine.smi"
    assert _run(["sample", "--run", str(run), "-n", "4", *FAST, "--out", str(out), "-q"]) == 0
    assert len(out.read_text().splitlines()) >= 1


def test_sample_from_a_graph_run_folder(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    assert _run(["sample", "--run", str(run_dir), "-n", "3", *FAST, "--out", str(out), "-q"]) == 0
    assert len(json.loads(out.read_text())["graphs"]) == 3


def test_a_missing_qm9_extra_is_named_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "qm9pack", None)  # import qm9pack raises ImportError
    smi = tmp_path / "mine.smi"
    smi.write_text("CCO\n")
    run = tmp_path / "run"
    assert _run(["score", str(smi)]) == 2
    assert _run(["train", "--dataset", "qm9", "--run", str(run), "--steps", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count('pip install "./packages/graph[qm9]"') == 2
    assert not run.exists()
