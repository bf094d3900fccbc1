"""The ``polyfold-timeseries`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from polyfold.timeseries.cli import app

runner = CliRunner()
TINY = ["--steps", "20", "--hidden", "8", "--blocks", "1", "--quiet"]


def _run(*args: str) -> object:
    from polyfold.core.cli import run_app

    try:
        run_app(app, list(args), prog_name="polyfold-timeseries")
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    res = runner.invoke(app, ["train", "--dataset", "airline", "--out", str(out), *TINY])
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
    assert list(q.columns[:3]) == ["item_id", "step", "q0.1"]
    assert len(q) == 2 * 12
    assert set(q["item_id"]) == {"a", "b"}
    assert (q["q0.1"] <= q["q0.9"]).all()
    s = pd.read_csv(out / "samples.csv")
    assert len(s) == 2 * 4
    assert "h11" in s.columns
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 2


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
    assert syn.shape[1] == 2 + 5
    assert (out / "report.html").is_file()


def test_bad_inputs_exit_2_with_a_message(trained: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
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
