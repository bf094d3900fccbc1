"""``polyfold-graph``: train GDSS, sample molecules or graphs, evaluate, quickstart.

    polyfold-graph train --dataset qm9 --run runs/qm9 --steps 4000 --export weights/qm9
    polyfold-graph sample --model qm9 -n 100 --out mols.smi            # + mols.png grid
    polyfold-graph sample --model community_small -n 20 --out graphs.json
    polyfold-graph evaluate --model qm9 -n 1000 --sampler pc --steps 1000
    polyfold-graph quickstart --out runs/graph

Also reachable as ``polyfold graph ...`` through the umbrella command.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError
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


def resolve_model(name: str) -> Path:
    """A shipped model name (``qm9``, ``community_small``) or a path to ``<name>.json``."""
    shipped = WEIGHTS / f"{name}.json"
    if shipped.is_file():
        return shipped.with_suffix("")
    p = Path(name)
    if p.with_suffix(".json").is_file():
        return p.with_suffix("")
    raise InputError(
        f"--model: {name!r} is neither a shipped model ({', '.join(DATASETS)}) nor a path to a "
        "<name>.json + <name>.safetensors pair"
    )


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="qm9 or community_small.")] = "qm9",
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
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train GDSS (both score networks) with polyfold's trainer."""
    from polyfold.graph.training import node_count_histogram, save_model, train_gdss

    _threads(threads)
    if dataset not in DATASETS:
        raise InputError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    if steps < 1:
        raise InputError(f"--steps: expected an integer >= 1, got {steps}")
    graphs = load_training_graphs(dataset, max_graphs=max_graphs)
    opts: dict[str, Any] = {}
    if batch_size is not None:
        opts["batch_size"] = batch_size
    if lr is not None:
        opts["lr"] = lr
    card = "qm9" if dataset == "qm9" else "community-small"
    t0 = time.perf_counter()
    trainer = train_gdss(
        graphs,
        run,
        preset=dataset,
        max_steps=steps,
        resume=resume,
        data_card=card,
        quiet=quiet,
        checkpoint_every=checkpoint_every,
        init=init,
        **opts,
    )
    seconds = time.perf_counter() - t0
    typer.echo(f"trained to step {trainer.step} in {seconds:.0f} s; run folder {run}")
    if export is not None:
        out = save_model(
            run,
            export,
            node_counts=node_count_histogram(graphs.mask),
            kind="molecule" if dataset == "qm9" else "graph",
            data_card=card,
            extra={"n_train_graphs": len(graphs.x)},
        )
        typer.echo(f"exported {out} and {out.with_suffix('.json')}")


SamplerOpt = Annotated[
    str | None,
    typer.Option(
        help="pc, reverse, euler_langevin, euler, s4 (GDSS) or heun, dpm_solver_pp, unipc, "
        "deis, euler_ode, ddpm, core_pc (core); default: the model's preset."
    ),
]


def _load(model: str, n: int, steps: int | None) -> Any:
    from polyfold.graph.training import load_model

    if n < 1:
        raise InputError(f"-n: expected an integer >= 1, got {n}")
    if steps is not None and steps < 2:
        raise InputError(f"--steps: expected an integer >= 2, got {steps}")
    return load_model(resolve_model(model))


def _sample(gm: Any, n: int, sampler: str | None, steps: int | None, seed: int) -> Any:
    from polyfold.graph.sampling import sample_graphs

    return sample_graphs(gm, n, sampler=sampler, steps=steps, seed=seed)


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help=".smi (molecules) or .json / .g6 (graphs).")],
    model: Annotated[str, typer.Option(help="Shipped model name or <path> of a model pair.")] = (
        "qm9"
    ),
    n: Annotated[int, typer.Option("-n", help="How many graphs.")] = 100,
    sampler: SamplerOpt = None,
    steps: Annotated[int | None, typer.Option(help="Solver steps (default 1000).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    correct: Annotated[bool, typer.Option(help="Valency correction (molecules).")] = True,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
) -> None:
    """Sample molecules (SMILES + a PNG grid beside them) or graphs (JSON / graph6)."""
    from polyfold.graph.evaluation import (
        draw_molecule_grid,
        samples_to_graphs,
        samples_to_mols,
        write_graphs,
        write_smiles,
    )

    _threads(threads)
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out}: is a folder; expected a file path")
    gm = _load(model, n, steps)
    if gm.kind == "molecule" and out.suffix not in (".smi", ".txt"):
        raise InputError(f"--out {out}: expected a .smi or .txt file for molecules")
    if gm.kind != "molecule" and out.suffix not in (".json", ".g6"):
        raise InputError(f"--out {out}: expected a .json or .g6 file for graphs")
    res = _sample(gm, n, sampler, steps, seed)
    if gm.kind == "molecule":
        mols = samples_to_mols(res, correct=correct)
        k = write_smiles(mols, out)
        msg = f"wrote {k} SMILES to {out}"
        if k:
            grid = draw_molecule_grid(mols, out.with_suffix(".png"))
            msg += f" and a grid image {grid}"
        typer.echo(msg + f" ({res.nfe} network calls, {res.seconds:.1f} s)")
    else:
        write_graphs(samples_to_graphs(res), out)
        typer.echo(f"wrote {n} graphs to {out} ({res.nfe} network calls, {res.seconds:.1f} s)")


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Shipped model name or <path> of a model pair.")] = (
        "qm9"
    ),
    n: Annotated[int, typer.Option("-n", help="How many graphs to sample.")] = 1000,
    sampler: SamplerOpt = None,
    steps: Annotated[int | None, typer.Option(help="Solver steps (default 1000).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fcd: Annotated[bool, typer.Option(help="Compute FCD (molecules).")] = True,
    out: Annotated[Path | None, typer.Option(help="Also write the metrics as JSON.")] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
) -> None:
    """Sample and score: GDSS's QM9 metrics, or the generic-graph MMDs (community-small)."""
    from polyfold.graph.evaluation import MoleculeEvaluator, evaluate_graph_samples

    _threads(threads)
    gm = _load(model, n, steps)
    res = _sample(gm, n, sampler, steps, seed)
    if gm.kind == "molecule":
        from polyfold.graph.data import load_qm9_smiles

        evaluator = MoleculeEvaluator(load_qm9_smiles("train"), load_qm9_smiles("test"))
        metrics = evaluator(res, fcd=fcd)
    else:
        from polyfold.graph.data import community_small

        _, test = community_small_split(community_small)
        metrics = evaluate_graph_samples(res, test)
    result = {
        "model": model,
        "n": n,
        "nfe": res.nfe,
        "seconds": res.seconds,
        **{k: float(v) for k, v in metrics.items()},
    }
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/graph-quickstart"),
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress messages.")] = False,
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
