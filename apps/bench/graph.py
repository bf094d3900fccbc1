"""GDSS on QM9 and community-small: the paper's metrics from the shipped checkpoints.

QM9: molecules from the shipped QM9 model with the paper's sampler (reverse-diffusion predictor +
Langevin corrector, 1000 steps, snr 0.2, scale_eps 0.7), scored as GDSS does (validity without
correction; uniqueness, novelty, NSPDK MMD and FCD after valency correction; NSPDK and FCD
against the QM9 test split), then the same model with fewer network calls: the paper's solver
at fewer steps, the S4 solver, core's stochastic samplers with GDSS's symmetric noise
(predictor-corrector, DDPM) and core's ODE samplers (DPM-Solver++(2M), UniPC, Heun).
Community-small: degree / clustering / orbit / spectral MMDs of generated graphs vs the 20
held-out graphs (GDSS's sampler: Euler predictor + Langevin corrector, snr 0.05).

Each dataset also gets a ``data`` row: as many training graphs, scored like the samples, the
floor a perfect model would reach at this sample size (FCD and the MMDs are biased upwards
for finite samples; with 20 graphs the community-small MMDs are mostly noise).

    python apps/bench/graph.py --quick --out runs/bench/graph.json

``--quick``: 200 molecules (10,000 otherwise), 100 with each faster sampler (1,000 otherwise),
no FCD for the faster samplers. Summary: ``qm9_validity_wo_correction, qm9_nspdk, qm9_fcd,
qm9_uniqueness, qm9_novelty, qm9_seconds_per_1k, qm9_nfe`` (the paper's sampler) and
``community_small_{degree,clustering,orbit,spectral}``; ``fast`` rows per sampler in ``rows``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]

from polyfold.graph.data import community_small, load_qm9_smiles
from polyfold.graph.evaluation import MoleculeEvaluator, evaluate_graph_samples
from polyfold.graph.metrics import graph_mmds
from polyfold.graph.sampling import sample_graphs
from polyfold.graph.shipped import WEIGHTS, community_small_split
from polyfold.graph.training import load_model

#: GDSS's QM9 row (Jo et al. 2022, Table 3).
PAPER_QM9 = {"validity_wo_correction": 0.957, "nspdk": 0.003, "fcd": 2.900}
#: GDSS's community-small row (Table 1).
PAPER_COMMUNITY = {"degree": 0.045, "clustering": 0.086, "orbit": 0.007}

FAST = (
    ("pc", 200),
    ("pc", 100),
    ("s4", 200),
    ("s4", 100),
    ("s4", 50),
    ("core_pc", 100),
    ("ddpm", 100),
    ("dpm_solver_pp", 20),
    ("dpm_solver_pp", 50),
    ("dpm_solver_pp", 100),
    ("unipc", 50),
    ("heun", 50),
    ("deis", 50),
)


def _qm9_row(
    gm: Any, n: int, sampler: str, steps: int, evaluator: MoleculeEvaluator, fcd: bool
) -> dict[str, Any]:
    res = sample_graphs(gm, n, sampler=sampler, steps=steps, seed=0, batch_size=1000)
    metrics = evaluator(res, fcd=fcd)
    return {
        "dataset": "qm9",
        "sampler": sampler,
        "steps": steps,
        "nfe": res.nfe,
        "n": n,
        "seconds_per_1k": res.seconds * 1000 / n,
        **{k: float(v) for k, v in metrics.items()},
    }


def _qm9_data_row(train_smiles: list[str], n: int, evaluator: MoleculeEvaluator) -> dict:
    """``n`` training molecules (a seeded draw) scored like samples: the finite-sample floor."""
    from rdkit import Chem

    pick = torch.randperm(len(train_smiles), generator=torch.Generator().manual_seed(0))[:n]
    mols = [Chem.MolFromSmiles(train_smiles[i]) for i in pick.tolist()]
    metrics = evaluator.score(mols, [m for m in mols if m is not None])
    return {
        "dataset": "qm9",
        "sampler": "data",
        "n": n,
        **{k: float(v) for k, v in metrics.items()},
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(1)
    n_main, n_fast = (200, 100) if args.quick else (10_000, 1_000)
    qm9 = load_model(WEIGHTS / "qm9")
    train_smiles = load_qm9_smiles("train")
    refs = MoleculeEvaluator(train_smiles, load_qm9_smiles("test"))
    rows = [_qm9_data_row(train_smiles, n_main, refs)]
    t0 = time.perf_counter()
    main_row = _qm9_row(qm9, n_main, "pc", 1000, refs, fcd=True)
    rows.append(main_row)
    print_table(rows)
    for sampler, steps in FAST:
        rows.append(_qm9_row(qm9, n_fast, sampler, steps, refs, fcd=not args.quick))
        print(f"  {sampler} {steps} steps done ({time.perf_counter() - t0:.0f} s)", flush=True)

    cs = load_model(WEIGHTS / "community_small")
    train, test = community_small_split(community_small)
    floor = graph_mmds(train[: len(test)], test)
    rows.append({"dataset": "community_small", "sampler": "data", "n": len(test), **floor})
    res = sample_graphs(cs, len(test), seed=0)
    mmd = evaluate_graph_samples(res, test)
    rows.append(
        {
            "dataset": "community_small",
            "sampler": "euler_langevin",
            "steps": 1000,
            "nfe": res.nfe,
            "n": len(test),
            "seconds_per_1k": res.seconds * 1000 / len(test),
            **{k: float(v) for k, v in mmd.items()},
        }
    )
    cols = [
        "dataset",
        "sampler",
        "steps",
        "nfe",
        "n",
        "seconds_per_1k",
        "validity_wo_correction",
        "uniqueness",
        "novelty",
        "nspdk",
        "fcd",
        "degree",
        "clustering",
        "orbit",
        "spectral",
    ]
    print_table(rows, cols)
    print("paper (GDSS): QM9", PAPER_QM9, "community-small", PAPER_COMMUNITY)
    summary = {
        "qm9_data_nspdk": rows[0]["nspdk"],
        "qm9_data_fcd": rows[0]["fcd"],
        "qm9_validity_wo_correction": main_row["validity_wo_correction"],
        "qm9_nspdk": main_row["nspdk"],
        "qm9_fcd": main_row["fcd"],
        "qm9_uniqueness": main_row["uniqueness"],
        "qm9_novelty": main_row["novelty"],
        "qm9_seconds_per_1k": main_row["seconds_per_1k"],
        "qm9_nfe": main_row["nfe"],
        **{f"community_small_{k}": float(v) for k, v in mmd.items()},
    }
    print(summary)
    write_json(
        args.out,
        rows,
        summary,
        paper={"qm9": PAPER_QM9, "community_small": PAPER_COMMUNITY},
        quick=args.quick,
        qm9_steps_trained=qm9.meta.get("steps"),
        community_small_steps_trained=cs.meta.get("steps"),
    )


if __name__ == "__main__":
    main()
