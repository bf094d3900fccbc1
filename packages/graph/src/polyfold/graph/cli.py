"""``polyfold-graph``: train GDSS, sample molecules or graphs, evaluate, quickstart.

    polyfold-graph train --dataset qm9 --run runs/qm9 --steps 4000 --export weights/qm9
    polyfold-graph train --smiles my.smi --run runs/mine --steps 2000  # your own molecules
    polyfold-graph sample --model qm9 -n 100 --out mols.sdf            # + mols.png grid
    polyfold-graph sample --run runs/mine -n 100 --out mine.smi        # no export step
    polyfold-graph sample --model community_small -n 20 --out graphs.json
    polyfold-graph evaluate --model qm9 -n 1000 --sampler pc --steps 1000
    polyfold-graph score my.smi                                        # score your SMILES
    polyfold-graph quickstart --out runs/graph

Outputs are never replaced without ``--force`` and are written atomically; unwritable paths
fail before any work. Long work shows a progress bar on stderr (``--quiet``: none).

Also reachable as ``polyfold graph ...`` through the umbrella command.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_int, reading
from polyfold.core.outputs import Force, check_output_file, prepare_output_dir, probe_writable
from polyfold.core.progress import Progress, Quiet, checkpoint_step, resuming_line
from polyfold.graph.shipped import WEIGHTS, community_small_split

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-graph", "GDSS: score-based generation of graphs and molecules with a system of SDEs."
)

DATASETS = ("qm9", "community_small")


@app.callback()
def _root() -> None:
    """GDSS: score-based generation of graphs and molecules with a system of SDEs."""


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise InputError(f"--threads: expected an integer >= 1, got {n}")
    torch.set_num_threads(n)


def load_training_graphs(dataset: str, *, max_graphs: int | None = None, seed: int = 0) -> Any:
    """The training graphs of ``dataset`` as tensors (community-small: degree features)."""
    if dataset == "qm9":
        from polyfold.graph.data import load_qm9

        graphs = load_qm9(split="train")
    elif dataset == "community_small":
        from polyfold.graph.data import community_small, graphs_to_tensors

        train, _ = community_small_split(community_small, seed=seed)
        graphs = graphs_to_tensors(train, max_nodes=20, max_feat=10)
    else:
        raise InputError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    if max_graphs is not None:
        if max_graphs < 1:
            raise InputError(f"--max-graphs: expected an integer >= 1, got {max_graphs}")
        graphs = replace(
            graphs,
            x=graphs.x[:max_graphs],
            adj=graphs.adj[:max_graphs],
            mask=graphs.mask[:max_graphs],
        )
    return graphs


def resolve_model(name: str, option: str = "--model") -> Path:
    """A shipped model name (``qm9``, ``community_small``) or a path to ``<name>.json``."""
    shipped = WEIGHTS / f"{name}.json"
    if shipped.is_file():
        return shipped.with_suffix("")
    p = Path(name)
    if p.with_suffix(".json").is_file():
        return p.with_suffix("")
    raise InputError(
        f"{option}: {name!r} is neither a shipped model ({', '.join(DATASETS)}) nor a path to a "
        "<name>.json + <name>.safetensors pair"
    )


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="qm9 or community_small.")] = "qm9",
    smiles: Annotated[
        Path | None,
        typer.Option(help="Train on your own molecules: a SMILES file, one per line (QM9 preset)."),
    ] = None,
    run: Annotated[Path, typer.Option(help="Run folder (checkpoints, metrics.csv).")] = Path(
        "runs/gdss"
    ),
    steps: Annotated[int, typer.Option(help="Optimizer steps to train to.")] = 4000,
    batch_size: Annotated[int | None, typer.Option(help="Default: the paper's.")] = None,
    lr: Annotated[float | None, typer.Option(help="Default: the paper's.")] = None,
    max_graphs: Annotated[int | None, typer.Option(help="Use only the first N graphs.")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Write <export>.safetensors + .json when done.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run folder's checkpoint.")] = True,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 200,
    init: Annotated[
        Path | None, typer.Option(help="Start from the weights of a model pair <init>.json.")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Train GDSS (both score networks) with polyfold's trainer. Rerunning the command on the
    same --run folder resumes it from its newest checkpoint."""
    from polyfold.graph.training import node_count_histogram, save_model, train_gdss

    _threads(threads)
    if dataset not in DATASETS:
        raise InputError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    if smiles is not None and dataset != "qm9":
        raise InputError("--smiles: trains a molecule model (the qm9 preset); drop --dataset")
    check_int("--steps", steps)
    check_int("--checkpoint-every", checkpoint_every)
    if export is not None:
        for suffix in (".json", ".safetensors"):
            check_output_file(export.with_suffix(suffix), force=force, option="--export")
    if smiles is None and dataset == "qm9":
        from polyfold.graph.data import require_qm9

        require_qm9("train --dataset qm9")
    done = _check_run_folder(run, steps, resume=resume, force=force, preset=dataset)
    if init is not None:
        init = resolve_model(str(init), option="--init")
    graphs = (
        _smiles_graphs(smiles, max_graphs)
        if smiles is not None
        else load_training_graphs(dataset, max_graphs=max_graphs)
    )
    opts: dict[str, Any] = {}
    if batch_size is not None:
        opts["batch_size"] = check_int("--batch-size", batch_size)
    if lr is not None:
        if not (math.isfinite(lr) and lr > 0):
            raise InputError(f"--lr: expected a positive number, got {lr}")
        opts["lr"] = lr
    card = "qm9" if dataset == "qm9" else "community-small"
    if smiles is not None:
        card = f"user SMILES file {smiles.name}"
    kind = "molecule" if dataset == "qm9" else "graph"
    counts = node_count_histogram(graphs.mask)
    t0 = time.perf_counter()
    with Progress(steps, "train", quiet=quiet) as bar:
        bar.update(done or 0)
        trainer = train_gdss(
            graphs,
            run,
            preset=dataset,
            max_steps=steps,
            resume=resume,
            data_card=card,
            quiet=True,
            checkpoint_every=checkpoint_every,
            init=init,
            progress=bar.trainer_update,
            run_info={"node_counts": counts, "kind": kind, "data_card": card},
            **opts,
        )
    seconds = time.perf_counter() - t0
    typer.echo(f"trained to step {trainer.step} in {seconds:.0f} s; run folder {run}")
    if export is not None:
        out = save_model(
            run,
            export,
            node_counts=counts,
            kind=kind,
            data_card=card,
            extra={"n_train_graphs": len(graphs.x)},
        )
        typer.echo(f"exported {out} and {out.with_suffix('.json')}")


def _check_run_folder(
    run: Path, steps: int, *, resume: bool, force: bool, preset: str
) -> int | None:
    """``--run`` before any work: a new (or empty) folder, or a run to resume; prints the
    "resuming" line. Returns the run's step (``None``: a new run)."""
    if run.exists() and not run.is_dir():
        raise InputError(f"--run {run}: exists and is not a folder")
    done = checkpoint_step(run) if run.is_dir() else None
    if done is None:
        prepare_output_dir(run, force=force, option="--run")
        return None
    probe_writable(run, "--run")
    if not resume:
        raise InputError(
            f"--run {run}: holds a run at step {done}; drop --no-resume to continue it, or "
            "choose a new --run folder to start over"
        )
    from polyfold.graph.training import run_config

    _, mcfg, _ = run_config(run)
    if mcfg.get("preset") != preset:
        raise InputError(
            f"--run {run}: holds a {mcfg.get('preset')} run, not {preset}; pass --dataset "
            f"{mcfg.get('preset')} to continue it, or choose a new --run folder"
        )
    if done > steps:
        raise InputError(
            f"--steps {steps}: the run in {run} is already at step {done}; pass --steps above "
            f"{done} to train further, or choose a new --run folder to start over"
        )
    typer.echo(resuming_line(done, steps, run), err=True)
    if done == steps:
        typer.echo(
            f"the run in {run} is finished ({done} of {steps} steps); raise --steps to train "
            "further, or choose a new --run folder to start over",
            err=True,
        )
    return done


def _smiles_graphs(path: Path, max_graphs: int | None) -> Any:
    """``--smiles``: the user's molecules as QM9-preset tensors (C, N, O, F; 9 heavy atoms)."""
    from polyfold.graph.chem import QM9_ATOMS
    from polyfold.graph.data import QM9_MAX_NODES
    from polyfold.graph.smiles_files import encode_smiles_file

    graphs = encode_smiles_file(path, QM9_ATOMS, QM9_MAX_NODES, option="--smiles")
    if max_graphs is not None:
        check_int("--max-graphs", max_graphs)
        graphs = replace(
            graphs,
            x=graphs.x[:max_graphs],
            adj=graphs.adj[:max_graphs],
            mask=graphs.mask[:max_graphs],
        )
    return graphs


SamplerOpt = Annotated[
    str | None,
    typer.Option(
        help="pc, reverse, euler_langevin, euler, s4 (GDSS) or heun, dpm_solver_pp, unipc, "
        "deis, euler_ode, ddpm, core_pc (core); default: the model's preset."
    ),
]
ModelOpt = Annotated[str, typer.Option(help="Shipped model name or <path> of a model pair.")]
RunOpt = Annotated[
    Path | None,
    typer.Option(
        "--run", help="Sample from a training run folder (newest checkpoint, EMA weights)."
    ),
]


def _load(model: str, run: Path | None, n: int, steps: int | None) -> Any:
    from polyfold.graph.training import load_model, load_run

    check_int("-n", n)
    if steps is not None and steps < 2:
        raise InputError(f"--steps: expected an integer >= 2, got {steps}")
    if run is not None:
        if not run.is_dir():
            raise InputError(f"--run {run}: not a folder")
        with reading(run, "--run"):
            return load_run(run)
    path = resolve_model(model)
    with reading(path.with_suffix(".json"), "--model"):
        return load_model(path)


def _sample(gm: Any, n: int, sampler: str | None, steps: int | None, seed: int, quiet: bool) -> Any:
    """Sample with a progress bar over the sampler's steps (one tick per step per batch)."""
    from polyfold.graph.sampling import SAMPLER_DEFAULTS, sample_graphs

    preset = str(gm.meta.get("preset") or "qm9")
    n_steps = steps or SAMPLER_DEFAULTS.get(preset, SAMPLER_DEFAULTS["qm9"])["steps"]
    batch = 1024
    total = n_steps * math.ceil(n / batch)
    with Progress(total, "sample", quiet=quiet) as bar:
        res = sample_graphs(
            gm, n, sampler=sampler, steps=steps, seed=seed, batch_size=batch,
            callback=bar.step_callback(),
        )  # fmt: skip
        if bar.completed < total:  # samplers that report fewer steps than the grid
            bar.update(total)
    return res


@app.command()
def sample(
    out: Annotated[
        Path, typer.Option(help=".smi / .sdf / .json (molecules) or .json / .g6 (graphs).")
    ],
    model: ModelOpt = "qm9",
    run: RunOpt = None,
    n: Annotated[int, typer.Option("-n", help="How many graphs.")] = 100,
    sampler: SamplerOpt = None,
    steps: Annotated[int | None, typer.Option(help="Solver steps (default 1000).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    correct: Annotated[bool, typer.Option(help="Valency correction (molecules).")] = True,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Sample molecules (SMILES, SDF or JSON + a PNG grid beside them) or graphs (JSON /
    graph6)."""
    from polyfold.graph.evaluation import (
        draw_molecule_grid,
        samples_to_graphs,
        samples_to_mols,
        write_graphs,
    )
    from polyfold.graph.smiles_files import MOLECULE_SUFFIXES, write_molecules

    _threads(threads)
    check_output_file(out, force=force)
    gm = _load(model, run, n, steps)
    if gm.kind == "molecule":
        if out.suffix not in MOLECULE_SUFFIXES:
            raise InputError(
                f"--out {out}: expected a {', '.join(MOLECULE_SUFFIXES)} file for molecules"
            )
        check_output_file(out.with_suffix(".png"), force=force)
    elif out.suffix not in (".json", ".g6"):
        raise InputError(f"--out {out}: expected a .json or .g6 file for graphs")
    res = _sample(gm, n, sampler, steps, seed, quiet)
    if gm.kind == "molecule":
        mols = samples_to_mols(res, correct=correct)
        k = write_molecules(mols, out)
        msg = f"wrote {k} molecules to {out}"
        if k:
            grid = draw_molecule_grid(mols, out.with_suffix(".png"))
            msg += f" and a grid image {grid}"
        typer.echo(msg + f" ({res.nfe} network calls, {res.seconds:.1f} s)")
    else:
        write_graphs(samples_to_graphs(res), out)
        typer.echo(f"wrote {n} graphs to {out} ({res.nfe} network calls, {res.seconds:.1f} s)")


_SCORING = (
    "scoring against the QM9 training set (novelty) and test set (NSPDK, FCD): "
    "about a minute on one CPU"
)


def _explain(reference: dict[str, dict[str, Any]]) -> None:
    """One stderr line per metric: value, direction and references."""
    for name, row in reference.items():
        refs = [f"{row['better']} is better"]
        if "paper" in row:
            refs.append(f"GDSS paper {row['paper']:g} at {row['paper_setting']}")
        if "data_floor" in row:
            refs.append(f"data floor {row['data_floor']:.4g}")
        value = "n/a" if row["value"] is None else f"{row['value']:.4g}"
        typer.echo(f"{name}: {value} ({'; '.join(refs)})", err=True)


def _finite(value: Any) -> Any:
    """``value`` with NaN floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _emit(result: dict[str, Any], out: Path | None) -> None:
    from polyfold.core.outputs import write_text

    text = json.dumps(_finite(result), indent=2)
    typer.echo(text)
    if out is not None:
        write_text(out, text + "\n")


@app.command()
def evaluate(
    model: ModelOpt = "qm9",
    run: RunOpt = None,
    n: Annotated[int, typer.Option("-n", help="How many graphs to sample.")] = 1000,
    sampler: SamplerOpt = None,
    steps: Annotated[int | None, typer.Option(help="Solver steps (default 1000).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fcd: Annotated[bool, typer.Option(help="Compute FCD (molecules).")] = True,
    out: Annotated[Path | None, typer.Option(help="Also write the metrics as JSON.")] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Sample and score: GDSS's QM9 metrics, or the generic-graph MMDs (community-small), each
    with its direction, the paper's figure and (graphs) the data's own floor."""
    from polyfold.graph.evaluation import MoleculeEvaluator, evaluate_graph_samples
    from polyfold.graph.references import graph_data_floor, reference_rows

    _threads(threads)
    if out is not None:
        check_output_file(out, force=force)
    gm = _load(model, run, n, steps)
    if gm.kind == "molecule":
        from polyfold.graph.data import require_qm9

        require_qm9("evaluate (molecules are scored against QM9)")
    res = _sample(gm, n, sampler, steps, seed, quiet)
    floor: dict[str, float] = {}
    if gm.kind == "molecule":
        from polyfold.graph.data import load_qm9_smiles

        if not quiet:
            typer.echo(_SCORING, err=True)
        evaluator = MoleculeEvaluator(load_qm9_smiles("train"), load_qm9_smiles("test"))
        metrics = evaluator(res, fcd=fcd)
    else:
        from polyfold.graph.data import community_small

        train_graphs, test = community_small_split(community_small)
        metrics = evaluate_graph_samples(res, test)
        floor = graph_data_floor(train_graphs, test)
    reference = reference_rows(metrics, gm.kind, floor)
    if not quiet:
        _explain(reference)
    _emit(
        {
            "model": str(run) if run is not None else model,
            "n": n,
            "nfe": res.nfe,
            "seconds": res.seconds,
            **{k: float(v) for k, v in metrics.items()},
            "reference": reference,
        },
        out,
    )


@app.command()
def score(
    smiles: Annotated[Path, typer.Argument(help="SMILES file: one per line, optional header.")],
    fcd: Annotated[bool, typer.Option(help="Compute FCD.")] = True,
    out: Annotated[Path | None, typer.Option(help="Also write the metrics as JSON.")] = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Score your own molecules (a SMILES file) with GDSS's QM9 metrics against the QM9 test
    set: validity (invalid SMILES are listed with their line numbers), uniqueness, novelty
    against the QM9 training set, NSPDK MMD and FCD."""
    from polyfold.graph.data import load_qm9_smiles
    from polyfold.graph.evaluation import MoleculeEvaluator
    from polyfold.graph.references import reference_rows
    from polyfold.graph.smiles_files import parse_rows, read_smiles_file

    if out is not None:
        check_output_file(out, force=force)
    from polyfold.graph.data import require_qm9

    require_qm9("score (molecules are scored against QM9)")
    rows = read_smiles_file(smiles, "SMILES file")
    mols, bad = parse_rows(rows)
    for line, text in bad:
        typer.echo(f"{smiles} line {line}: invalid SMILES {text!r}", err=True)
    if not quiet:
        typer.echo(_SCORING, err=True)
    evaluator = MoleculeEvaluator(load_qm9_smiles("train"), load_qm9_smiles("test"))
    raw = evaluator.score(mols, [m for m in mols if m is not None], fcd=fcd)
    metrics = {"validity": raw.pop("validity_wo_correction"), **raw}
    reference = reference_rows(metrics, "molecule")
    if not quiet:
        _explain(reference)
    _emit(
        {
            "file": str(smiles),
            "n": len(rows),
            "invalid": [{"line": line, "smiles": text} for line, text in bad],
            **{k: float(v) for k, v in metrics.items()},
            "reference": reference,
        },
        out,
    )


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/graph-quickstart"),
    quiet: Quiet = False,
) -> None:
    """Sample molecules and community graphs from the shipped checkpoints; write a report."""
    from polyfold.graph.quickstart import quickstart as run_quickstart

    path = run_quickstart(out, quiet=quiet)
    typer.echo(f"report: {path}")


def main() -> None:
    """Entry point of the ``polyfold-graph`` script."""
    run_app(app)


if __name__ == "__main__":
    main()
