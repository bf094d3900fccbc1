"""polyfold-eeg's CLI: prepare, train (and --resume), generate, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.cli import exit_status
from polyfold.eeg.cli import app
from polyfold.eeg.data import Windows


def _run(*args: str) -> int:
    return exit_status(app, args, "polyfold-eeg")


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ")
    return err


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("data") / "sim.npz"
    code = _run(
        "prepare", "--subjects", "4", "--per-class", "5", "--seconds", "0.4", "--out", str(path)
    )
    assert code == 0
    return path


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "wgan"
    assert (
        _run(
            "train", "--model", "wgan", "--data", str(data), "--steps", "2", "--out", str(out), "-q"
        )
        == 0
    )
    return out


def test_prepare_writes_windows_and_card(data: Path) -> None:
    w = Windows.load(data)
    assert w.x.shape == (100, 8, 100)
    assert json.loads(data.with_suffix(".json").read_text())["simulated"] is True


def test_train_records_split_and_command(run: Path) -> None:
    card = json.loads((run / "model.json").read_text())["card"]
    assert card["kind"] == "wgan"
    assert len(card["test_subjects"]) == 1
    assert set(card["train_subjects"]).isdisjoint(card["test_subjects"])
    assert card["command"].startswith("polyfold-eeg train --model wgan")
    assert card["data_source"]["test_fraction"] == 0.25


def test_train_resume(
    run: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run, out)
    args = ("train", "--model", "wgan", "--data", str(data), "--out", str(out), "-q")
    err = _error(capsys, *args, "--steps", "2")
    assert "holds a training run at step 2; pass --resume" in err
    assert "already reached step 2 of 2" in _error(capsys, *args, "--resume")
    assert _run(*args, "--resume", "--steps", "3") == 0
    assert "resuming from step 2 of 3" in capsys.readouterr().err
    assert json.loads((out / "model.json").read_text())["card"]["steps"] == 3
    fresh = tmp_path / "fresh"
    err = _error(
        capsys, "train", "--model", "wgan", "--data", str(data), "--out", str(fresh), "--resume"
    )
    assert "holds no checkpoint to continue" in err


def test_train_bad_input(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x")
    assert "--model: expected one of wgan, ddpm" in _error(
        capsys, "train", "--model", "vae", "--out", out
    )
    err = _error(capsys, "train", "--model", "ddpm", "--preset", "best", "--out", out)
    assert "--preset: expected one of paper, config" in err
    err = _error(capsys, "train", "--model", "ddpm", "--steps", "0", "--out", out)
    assert "--steps: expected an integer >= 1" in err
    err = _error(
        capsys, "train", "--model", "ddpm", "--data", str(tmp_path / "no.npz"), "--out", out
    )
    assert "no such windows file" in err
    err = _error(capsys, "train", "--model", "wgan", "--guidance", "2", "--out", out)
    assert "--guidance: expected a number >= 0 for --model ddpm" in err
    err = _error(capsys, "train", "--model", "wgan", "--per-class", "0", "--out", out)
    assert "--per-class: expected an integer >= 1, got 0" in err
    err = _error(
        capsys, "train", "--model", "wgan", "--data", str(data), "--per-class", "5", "--out", out
    )
    assert "--per-class: only for the simtuar default set" in err
    err = _error(capsys, "train", "--model", "ddpm", "--batch-size", "0", "--out", out)
    assert "--batch-size: expected an integer >= 1, got 0" in err
    err = _error(capsys, "train", "--model", "wgan", "--base", "32", "--out", out)
    assert "--base: only for --model ddpm" in err
    err = _error(capsys, "train", "--model", "ddpm", "--base", "12", "--out", out)
    assert "--base: expected a multiple of 8" in err
    assert not Path(out).exists()


def test_train_batch_size_and_per_class_reach_config_card_and_command(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --per-class sets simtuar's training windows per class and subject (a stand-in for
    # simulate records the call; the held-out subjects depend on the subjects only)
    import polyfold.eeg.simtuar

    calls: list[dict[str, object]] = []

    def fake_simulate(**kwargs: object) -> Windows:
        calls.append(kwargs)
        return Windows.load(data)

    monkeypatch.setattr(polyfold.eeg.simtuar, "simulate", fake_simulate)
    out = tmp_path / "ddpm"
    args = ("--seconds", "0.4", "--per-class", "7", "--batch-size", "4", "--base", "8")
    args += ("--steps", "1")
    assert _run("train", "--model", "ddpm", *args, "--out", str(out), "-q") == 0
    assert calls[0]["windows_per_class"] == 7
    assert calls[0]["seconds"] == 0.4
    model = json.loads((out / "model.json").read_text())
    assert model["config"]["batch_size"] == 4
    assert model["config"]["base"] == 8
    assert model["card"]["data_source"]["train_windows_per_class"] == 7
    assert "--per-class 7 --batch-size 4 --base 8" in model["card"]["command"]


def test_generate_writes_npy_npz_and_edf(run: Path, tmp_path: Path) -> None:
    import mne

    out = tmp_path / "gen"
    code = _run(
        "generate",
        "--model",
        str(run / "model"),
        "--class",
        "eyem,chew",
        "-n",
        "3",
        "--out",
        str(out),
        "-q",
    )
    assert code == 0
    assert np.load(out / "eyem.npy").shape == (3, 8, 100)
    w = Windows.load(out / "synthetic.npz")
    assert w.counts()["chew"] == 3
    raw = mne.io.read_raw_edf(out / "synthetic.edf", verbose="error")
    assert raw.ch_names == list(w.channels)
    # EDF records are whole seconds: MNE marks the padding after the last window BAD_ACQ_SKIP
    labels = [d for d in raw.annotations.description if not d.startswith("BAD_")]
    assert labels == ["eyem"] * 3 + ["chew"] * 3
    # microvolts round trip through the EDF (volts inside; 16-bit resolution)
    edf = raw.get_data()[:, :100] * 1e6
    assert np.allclose(edf, w.x[0], atol=np.abs(w.x).max() * 1e-3)


def test_generate_bad_input(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(run / "model")
    out = tmp_path / "g"
    err = _error(capsys, "generate", "--model", model, "--class", "blink", "--out", str(out))
    assert "--class: unknown class 'blink'; expected one of eyem, musc, elec, chew, shiv" in err
    assert "-n: expected an integer >= 1, got 0" in _error(
        capsys, "generate", "--model", model, "-n", "0", "--out", str(out)
    )
    err = _error(capsys, "generate", "--model", str(tmp_path / "none"), "--out", str(out))
    assert "no model file" in err
    err = _error(capsys, "generate", "--model", model, "--steps", "5", "--out", str(out))
    assert "takes no sampler options" in err
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    err = _error(capsys, "generate", "--model", model, "-n", "1", "--out", str(out))
    assert "folder is not empty" in err
    assert (out / "keep.txt").read_text() == "mine"
    assert _run("generate", "--model", model, "-n", "1", "--out", str(out), "--force", "-q") == 0
    assert (out / "keep.txt").read_text() == "mine"


def test_evaluate_uses_the_models_held_out_subjects(run: Path, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    assert _run("generate", "--model", str(run / "model"), "-n", "5", "--out", str(gen), "-q") == 0
    out = tmp_path / "metrics.json"
    assert _run("evaluate", str(gen / "synthetic.npz"), "--out", str(out), "-q") == 0
    result = json.loads(out.read_text())
    assert set(result["per_class"]) == {"eyem", "musc", "elec", "chew", "shiv"}
    assert 0.0 <= result["overall"]["c2st_accuracy"] <= 1.0
    assert "tstr_over_trtr" in result["overall"]
