"""polyfold-tabular's CLI: augment round trip, refusing to overwrite, evaluate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyfold.core.cli import run_app
from polyfold.tabular.cli import app


def _run(args: list[str]) -> int:
    try:
        run_app(app, [str(a) for a in args], prog_name="polyfold-tabular")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 30
    frame = pd.DataFrame(
        {
            "height": rng.normal(170, 10, n).round(1),
            "kind": np.where(np.arange(n) % 3 == 0, "oak", "pine"),
            "rings": rng.integers(5, 50, n),
            "healthy": np.where(np.arange(n) % 2 == 0, "yes", "no"),
        }
    )
    path = tmp_path / "trees.csv"
    frame.to_csv(path, index=False)
    return path


def test_augment_round_trip(csv_file: Path, tmp_path: Path) -> None:
    before = csv_file.read_bytes()
    out = tmp_path / "syn.csv"
    code = _run(
        ["augment", csv_file, "--target", "healthy", "--n-per-class", "7", "--out", out, "--quiet"]
    )
    assert code == 0
    assert csv_file.read_bytes() == before
    syn = pd.read_csv(out)
    real = pd.read_csv(csv_file)
    assert list(syn.columns) == list(real.columns)
    assert len(syn) == 14
    assert syn["healthy"].value_counts().to_dict() == {"no": 7, "yes": 7}
    assert set(syn["kind"]) <= {"oak", "pine"}
    assert syn["rings"].dtype == np.int64
    # --include-real puts the real rows first
    out2 = tmp_path / "both.csv"
    assert (
        _run(
            [
                "augment",
                csv_file,
                "--target",
                "healthy",
                "--n-per-class",
                "2",
                "--out",
                out2,
                "--include-real",
                "--quiet",
            ]
        )
        == 0
    )
    both = pd.read_csv(out2)
    assert len(both) == 34
    pd.testing.assert_frame_equal(both.iloc[:30], real)


def test_augment_never_overwrites_its_input(csv_file: Path, capsys) -> None:
    before = csv_file.read_bytes()
    for extra in ([], ["--force"]):
        code = _run(
            [
                "augment",
                csv_file,
                "--target",
                "healthy",
                "--n-per-class",
                "3",
                "--out",
                csv_file,
                *extra,
            ]
        )
        assert code == 2
        assert "is the input file" in capsys.readouterr().err
    link = csv_file.parent / "alias.csv"
    link.hardlink_to(csv_file)
    code = _run(
        ["augment", csv_file, "--target", "healthy", "--n-per-class", "3", "--out", link, "--force"]
    )
    assert code == 2
    assert "is the input file" in capsys.readouterr().err
    assert csv_file.read_bytes() == before


def test_augment_refuses_existing_out_without_force(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "keep.csv"
    out.write_text("mine\n")
    args = [
        "augment",
        csv_file,
        "--target",
        "healthy",
        "--n-per-class",
        "3",
        "--out",
        out,
        "--quiet",
    ]
    assert _run(args) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert _run([*args, "--force"]) == 0
    assert len(pd.read_csv(out)) == 6


@pytest.mark.parametrize(
    ("mutate", "args", "message"),
    [
        (None, ["--target", "nope"], "no column 'nope' for --target"),
        (
            lambda f: f.assign(height=f["height"].where(f.index != 4)),
            ["--target", "healthy"],
            "missing values in column(s) 'height' (1)",
        ),
        (
            lambda f: f.assign(healthy=["x"] + ["y"] * (len(f) - 1)),
            ["--target", "healthy"],
            "class(es) ['x'] have a single row",
        ),
        (None, ["--target", "healthy", "--backbone", "bogus"], "unknown name 'bogus'"),
    ],
)
def test_augment_bad_input_exits_2_with_message(
    csv_file: Path, tmp_path: Path, capsys, mutate, args, message
) -> None:
    if mutate is not None:
        mutate(pd.read_csv(csv_file)).to_csv(csv_file, index=False)
    code = _run(["augment", csv_file, *args, "--n-per-class", "3", "--out", tmp_path / "o.csv"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_augment_missing_file(tmp_path: Path, capsys) -> None:
    code = _run(
        [
            "augment",
            tmp_path / "none.csv",
            "--target",
            "y",
            "--n-per-class",
            "3",
            "--out",
            tmp_path / "o.csv",
        ]
    )
    assert code == 2
    assert "no such file" in capsys.readouterr().err


def test_evaluate_on_a_csv_writes_json(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    code = _run(
        [
            "evaluate",
            csv_file,
            "--target",
            "healthy",
            "--sizes",
            "12",
            "--seeds",
            "1",
            "--n-syn",
            "10",
            "--methods",
            "real,tabebm",
            "--out",
            out,
            "--quiet",
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    assert {r["method"] for r in payload["rows"]} == {"real", "tabebm"}
    assert all(0.0 <= r["bal_acc"] <= 1.0 for r in payload["rows"])
    assert set(payload["summary"]) >= {"win_rate_vs_real", "mean_gain_vs_real", "datasets"}
    assert "tabebm" in capsys.readouterr().out


def test_evaluate_needs_one_source(capsys) -> None:
    assert _run(["evaluate"]) == 2
    assert "either a CSV file" in capsys.readouterr().err
    assert _run(["evaluate", "--dataset", "nope"]) == 2
    assert "'nope' is not bundled" in capsys.readouterr().err


def test_datasets_lists_ids(capsys) -> None:
    assert _run(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("iris", "wine", "pima", "penguins"):
        assert name in out
