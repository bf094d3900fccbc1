"""The ``polyfold-timeseries`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from polyfold.timeseries.cli import app
from polyfold.timeseries.data import SeriesData

runner = CliRunner()
TINY = ["--steps", "20", "--hidden", "8", "--blocks", "1", "--quiet"]


def _run(*args: str) -> int:
    from polyfold.core.cli import exit_status

    return exit_status(app, args, "polyfold-timeseries")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    res = runner.invoke(
        app, ["train", "--dataset", "airline", "--holdout", "1", "--out", str(out), *TINY]
    )
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_model(trained: Path) -> None:
    assert (trained / "tsdiff.safetensors").is_file()
    meta = json.loads((trained / "tsdiff.json").read_text())
    assert meta["card"]["trained_steps"] == 20
    assert meta["config"]["prediction_length"] == 12


def test_forecast_csv_in_quantiles_samples_plot_out(
    trained: Path, csv_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fc"
    res = runner.invoke(
        app, ["forecast", str(trained), str(csv_file), "--out", str(out), "--samples", "4"]
    )
    assert res.exit_code == 0, res.output
    q = pd.read_csv(out / "quantiles.csv")
    assert list(q.columns[:3]) == ["item_id", "timestamp", "q0.1"]
    assert len(q) == 2 * 12
    # the series ends in 1960-12: the forecast carries the next year's months
    assert list(q["timestamp"][:12]) == [f"1961-{m:02d}" for m in range(1, 13)]
    assert set(q["item_id"]) == {"a", "b"}
    assert (q["q0.1"] <= q["q0.9"]).all()
    s = pd.read_csv(out / "samples.csv")
    assert len(s) == 2 * 4
    assert "h11" in s.columns
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 2
    assert "<h3>a</h3>" in html  # titles sit above the charts, not inside them
    assert "to 1961-12" in html  # the x axis is named with its timestamps


def test_forecast_jsonl_needs_freq(trained: Path, tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"start": "2000-01", "target": list(range(1, 61))}) + "\n")
    out = tmp_path / "fc"
    res = runner.invoke(
        app, ["forecast", str(trained), str(p), "--out", str(out), "--samples", "2"]
    )
    assert res.exit_code == 0, res.output  # the model's frequency is used
    assert _run("forecast", str(trained), str(p), "--freq", "monthly", "--out", str(out)) == 2


def test_refine_from_snaive_and_from_samples(trained: Path, csv_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref"
    res = runner.invoke(
        app,
        [
            "refine",
            str(trained),
            str(csv_file),
            "--out",
            str(out),
            "--samples",
            "3",
            "--steps",
            "2",
            "--season",
            "12",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "refine",
            str(trained),
            str(csv_file),
            "--out",
            str(tmp_path / "r2"),
            "--base",
            str(out / "samples.csv"),
            "--method",
            "ml",
            "--steps",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "r2" / "samples.csv")) == 2 * 3


def test_evaluate_json(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app, ["evaluate", str(trained), "--dataset", "airline", "--samples", "4", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["tsdiff"]["CRPS"] > 0
    assert data["seasonal_naive"]["CRPS"] > 0
    assert data["settings"]["season"] == 12  # monthly data: a yearly season
    assert data["directions"]["CRPS"].startswith("lower is better")
    assert "lower is better" in res.output
    assert "seasonal naive with season 12" in res.output


def test_generate_padts_on_sines(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    res = runner.invoke(
        app,
        [
            "generate",
            "--dataset",
            "sines",
            "--seq-len",
            "8",
            "--steps",
            "3",
            "--n",
            "16",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    syn = pd.read_csv(out / "synthetic.csv")
    assert len(syn) == 16 * 8
    assert list(syn.columns) == ["window", "step"] + [f"sine{c}" for c in range(5)]
    html = (out / "report.html").read_text()
    assert "data floor (real vs real)" in html
    assert "lower is better" in html


def test_bad_inputs_exit_2_with_a_message(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,v\n2020-01-01,1\n2020-02-01,nan\n2020-03-01,2\n")
    assert _run("train", str(bad), "--out", str(tmp_path / "m"), "--freq", "M", *TINY) == 2
    assert "NaN" in capsys.readouterr().err
    assert _run("train", "--dataset", "nope", "--out", str(tmp_path / "m")) == 2
    assert "unknown" in capsys.readouterr().err
    assert _run("forecast", str(tmp_path), "--dataset", "airline") == 2
    assert "tsdiff.json" in capsys.readouterr().err
    assert _run("train", str(bad), "--dataset", "airline") == 2


def test_datasets_lists_everything() -> None:
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0
    for name in ("taylor", "sunspots", "co2", "airline", "eustocks", "elecdemand", "sines"):
        assert name in res.output


# -- outputs are never overwritten ----------------------------------------------------------------
def test_forecast_refine_refuse_a_non_empty_out_unless_force(
    trained: Path, csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fc"
    out.mkdir()
    (out / "quantiles.csv").write_text("the user's file\n")
    args = [str(trained), str(csv_file), "--out", str(out), "--samples", "2", "--quiet"]
    assert _run("forecast", *args) == 2
    assert "folder is not empty" in capsys.readouterr().err
    assert _run("refine", *args, "--steps", "1", "--season", "12") == 2
    assert (out / "quantiles.csv").read_text() == "the user's file\n"
    assert _run("forecast", *args, "--force") == 0
    assert (out / "quantiles.csv").read_text().startswith("item_id,timestamp")


def test_evaluate_and_generate_refuse_existing_outputs(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "eval.json"
    target.write_text("{}")
    assert _run("evaluate", str(trained), "--dataset", "airline", "--out", str(target)) == 2
    assert "--force" in capsys.readouterr().err
    assert target.read_text() == "{}"
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert _run("generate", "--dataset", "sines", "--out", str(folder), "--quiet") == 2
    assert "folder is not empty" in capsys.readouterr().err


# -- no tracebacks for what a user can cause ------------------------------------------------------
def test_unwritable_out_fails_before_work(
    trained: Path, csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = str(blocker / "sub")
    assert _run("forecast", str(trained), str(csv_file), "--out", bad, "--quiet") == 2
    assert "cannot write there" in capsys.readouterr().err
    assert _run("train", "--dataset", "airline", "--out", bad, *TINY) == 2
    assert "cannot write there" in capsys.readouterr().err
    ev = ["evaluate", str(trained), "--dataset", "airline", "--out", bad + "/e.json"]
    assert _run(*ev) == 2
    assert "cannot write there" in capsys.readouterr().err
    assert _run("generate", "--dataset", "sines", "--out", bad, "--quiet") == 2
    assert "cannot write there" in capsys.readouterr().err


def test_empty_binary_and_malformed_files_are_input_errors(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty, binary, jsonl = tmp_path / "e.csv", tmp_path / "b.csv", tmp_path / "b.jsonl"
    empty.write_text("")
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00")
    jsonl.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00")
    out = str(tmp_path / "o")
    assert _run("generate", str(empty), "--out", out, "--quiet") == 2
    assert "e.csv: cannot parse it" in capsys.readouterr().err
    assert _run("generate", str(binary), "--out", out, "--quiet") == 2
    assert "b.csv: not a UTF-8 text file" in capsys.readouterr().err
    assert _run("forecast", str(trained), str(jsonl), "--out", out, "--quiet") == 2
    assert "b.jsonl: not a UTF-8 text file" in capsys.readouterr().err


def test_refine_rejects_a_negative_step_size(
    trained: Path, csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(trained), str(csv_file), "--out", str(tmp_path / "r"), "--step-size", "-1"]
    assert _run("refine", *args) == 2
    assert "--step-size: expected a finite number > 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# -- training work is kept ------------------------------------------------------------------------
def test_train_checkpoints_and_resumes_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--dataset", "airline", "--checkpoint-every", "10", *TINY]
    assert _run("train", *args, "--out", str(a)) == 0
    assert (a / "run" / "step_00000010").is_dir()
    assert (a / "run" / "step_00000020").is_dir()
    # an interrupted run: only the step-10 checkpoint made it to disk
    shutil.copytree(a / "run", b / "run")
    shutil.rmtree(b / "run" / "step_00000020")
    (b / "run" / "latest").unlink(missing_ok=True)
    capsys.readouterr()
    assert _run("train", *args, "--out", str(b), "--resume") == 0
    assert "resuming from step 10" in capsys.readouterr().err
    assert (a / "tsdiff.safetensors").read_bytes() == (b / "tsdiff.safetensors").read_bytes()
    # a finished folder: the error names the CLI option, not a Python argument
    assert _run("train", *args, "--out", str(a)) == 2
    err = capsys.readouterr().err
    assert "pass --resume to continue it" in err
    assert "resume=True" not in err
    assert _run("train", *args, "--out", str(a), "--resume") == 2
    assert "pass a larger --steps" in capsys.readouterr().err
    assert _run("train", "--dataset", "airline", "--out", str(tmp_path / "c"), "--resume") == 2
    assert "holds no checkpoint" in capsys.readouterr().err


# -- strict parsing -------------------------------------------------------------------------------
def _monthly_csv(
    tmp_path: Path, airline: SeriesData, cells: dict[int, str] | None = None, freq: str = "MS"
) -> Path:
    y = airline.values[0]
    stamps = pd.date_range("1949-01-01", periods=len(y), freq=freq)
    rows = [f"{s.date()},{v}" for s, v in zip(stamps, y, strict=True)]
    for i, text in (cells or {}).items():
        rows[i] = text
    path = tmp_path / "m.csv"
    path.write_text("date,passengers\n" + "\n".join(rows) + "\n")
    return path


def test_text_cell_frequency_mismatch_and_irregular_stamps(
    trained: Path, tmp_path: Path, airline: SeriesData, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "o"), "--samples", "2", "--quiet"]
    text_cell = _monthly_csv(tmp_path, airline, {5: "1949-06-01,lots"})
    assert _run("forecast", str(trained), str(text_cell), *out) == 2
    assert "line 7, column 'passengers': 'lots' is not a number" in capsys.readouterr().err
    daily = _monthly_csv(tmp_path, airline, freq="D")
    assert _run("forecast", str(trained), str(daily), *out) == 2
    assert "frequency 'D' but the model was trained on 'M'" in capsys.readouterr().err
    gap = _monthly_csv(tmp_path, airline, {40: "1952-07-01,200"})
    assert _run("forecast", str(trained), str(gap), *out) == 2
    assert "line 42, column 'date': timestamp 1952-07-01" in capsys.readouterr().err


def test_zero_lengths_and_counts_are_rejected_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    assert _run("train", "--dataset", "airline", "--prediction-length", "0", "--out", str(out)) == 2
    assert "--prediction-length: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert _run("generate", "--dataset", "sines", "--n", "0", "--out", str(out)) == 2
    assert "--n: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert not out.exists()  # nothing trained, nothing written


# -- wrong results are errors, evaluation is honest -----------------------------------------------
def test_diverging_guidance_is_an_error(
    trained: Path, csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fc"
    args = [str(trained), str(csv_file), "--out", str(out), "--samples", "2", "--quiet"]
    assert _run("forecast", *args, "--guidance", "mse", "--scale", "1e6") == 2
    assert "error: --scale: sampling diverged" in capsys.readouterr().err
    assert not (out / "quantiles.csv").exists()


def test_evaluate_refuses_windows_the_model_trained_on(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("evaluate", str(trained), "--dataset", "airline", "--windows", "2") == 2
    assert "train with --holdout 2" in capsys.readouterr().err


def test_evaluate_season_defaults_to_the_frequency(
    trained: Path, tmp_path: Path, airline: SeriesData
) -> None:
    csv = _monthly_csv(tmp_path, airline)
    for extra, season in (([], 12), (["--season", "3"], 3)):
        out = tmp_path / f"e{season}.json"
        res = runner.invoke(
            app, ["evaluate", str(trained), str(csv), "--samples", "2", "--out", str(out), *extra]
        )
        assert res.exit_code == 0, res.output
        assert json.loads(out.read_text())["settings"]["season"] == season


def test_forecast_shows_progress_unless_quiet(
    trained: Path, csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(trained), str(csv_file), "--samples", "2"]
    assert _run("forecast", *args, "--out", str(tmp_path / "a")) == 0
    assert "forecast: " in capsys.readouterr().err
    assert _run("forecast", *args, "--out", str(tmp_path / "b"), "--quiet") == 0
    assert "forecast: " not in capsys.readouterr().err


def test_generate_keeps_column_names_and_units(tmp_path: Path) -> None:
    t = np.arange(120)
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=120, freq="h").astype(str),
            "load_mw": 1000 + 200 * np.sin(t / 4),
            "temp_c": 15 + 5 * np.cos(t / 6),
        }
    )
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "gen"
    res = runner.invoke(
        app,
        [
            "generate",
            str(path),
            "--seq-len",
            "8",
            "--steps",
            "3",
            "--n",
            "8",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    syn = pd.read_csv(out / "synthetic.csv")
    assert list(syn.columns) == ["window", "step", "load_mw", "temp_c"]
    assert syn["load_mw"].between(700, 1300).all()  # megawatts, not min-max scaled values
    assert syn["temp_c"].between(5, 25).all()
