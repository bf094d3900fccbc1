"""polyfold-graph's quickstart: molecules and community graphs from the shipped GDSS checkpoints.

Registered in the ``polyfold.quickstart`` entry-point group. Samples QM9 molecules from the
shipped QM9 model and community-small graphs from the shipped community-small model (with a
fast core sampler so that it runs in seconds on one CPU thread, offline), scores them (validity
without correction, uniqueness, novelty against the QM9 training SMILES; degree / clustering /
orbit / spectral MMDs against the held-out community-small graphs) and writes ``report.html``
with the grid image of the molecules inline (one self-contained file); every metric shows
its direction, the GDSS paper's figure and, for the graph MMDs, the data's own floor.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rdkit import Chem

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report
from polyfold.graph.data import community_small, load_qm9_smiles, require_qm9
from polyfold.graph.evaluation import (
    molecule_grid_png,
    png_data_uri,
    samples_to_graphs,
    samples_to_mols,
    write_graphs,
    write_smiles,
)
from polyfold.graph.metrics import graph_mmds, novelty, uniqueness
from polyfold.graph.references import describe, graph_data_floor, reference_rows
from polyfold.graph.sampling import sample_graphs
from polyfold.graph.shipped import WEIGHTS, community_small_split
from polyfold.graph.training import load_model

__all__ = ["MARKER", "N_GRAPHS", "N_MOLECULES", "quickstart"]

MARKER = "graph-quickstart.json"
N_MOLECULES = 48
N_GRAPHS = 20
SAMPLER = "s4"  # GDSS's S4 solver: one network call per step
STEPS = {"qm9": 100, "community_small": 50}


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Sample from the shipped GDSS models; write ``out/report.html`` and return its path."""
    require_qm9("the graph quickstart (novelty against the QM9 training set)")
    out = Path(out)
    with quickstart_run("graph", out, quiet=quiet, marker=MARKER) as echo:
        t0 = time.perf_counter()
        qm9 = load_model(WEIGHTS / "qm9")
        echo(f"sampling {N_MOLECULES} QM9 molecules ({SAMPLER}, {STEPS['qm9']} steps)")
        res = sample_graphs(qm9, N_MOLECULES, sampler=SAMPLER, steps=STEPS["qm9"], seed=0)
        raw = samples_to_mols(res, correct=False)
        mols = samples_to_mols(res, correct=True)
        smiles = [s for s in (None if m is None else _smiles(m) for m in mols) if s]
        train = _train_canonical(load_qm9_smiles("train"), smiles)
        mol_metrics = {
            "validity_wo_correction": sum(m is not None for m in raw) / len(raw),
            "uniqueness": uniqueness(smiles) if smiles else 0.0,
            "novelty": novelty(smiles, train) if smiles else 0.0,
            "nfe": res.nfe,
            "seconds": res.seconds,
        }
        write_smiles(mols, out / "qm9_samples.smi")
        grid = molecule_grid_png(mols)

        cs = load_model(WEIGHTS / "community_small")
        steps = STEPS["community_small"]
        echo(f"sampling {N_GRAPHS} community-small graphs ({SAMPLER}, {steps} steps)")
        gres = sample_graphs(cs, N_GRAPHS, sampler=SAMPLER, steps=steps, seed=0)
        graphs = samples_to_graphs(gres)
        train_graphs, test = community_small_split(community_small)
        graph_metrics = {**graph_mmds(graphs, test), "nfe": gres.nfe, "seconds": gres.seconds}
        floor = graph_data_floor(train_graphs, test)
        write_graphs(graphs, out / "community_small_samples.json")

        report = Report("polyfold-graph: GDSS on QM9 and community-small")
        report.paragraph(
            "GDSS (score-based generation with a system of SDEs over node features and "
            f"adjacency) from the shipped checkpoints, sampled with GDSS's {SAMPLER} solver "
            f"({STEPS['qm9']} steps for QM9, {STEPS['community_small']} for community-small; "
            "the paper uses 1000). QM9 steps trained: "
            f"{qm9.meta.get('steps')}; community-small steps trained: {cs.meta.get('steps')}."
        )
        report.heading(f"QM9: {N_MOLECULES} molecules")
        report.table(*_metric_table(mol_metrics, "molecule", {}))
        report.image(png_data_uri(grid), "sampled molecules (after valency correction)")
        report.link("qm9_samples.smi", "SMILES")
        report.heading(f"Community-small: {N_GRAPHS} graphs vs the {len(test)} test graphs")
        report.table(*_metric_table(graph_metrics, "graph", floor))
        report.paragraph(
            f"Data floor: {len(test)} training graphs scored against the {len(test)} test graphs "
            "(what a perfect model scores at this sample size). The paper's figures are for its "
            "own draw of the data; see the model card."
        )
        report.link("community_small_samples.json", "graphs (JSON edge lists)")
        path = report.write(out / "report.html")
        summary = {
            "tool": "polyfold-graph quickstart",
            "qm9": mol_metrics,
            "community_small": graph_metrics,
            "community_small_data_floor": floor,
            "seconds": time.perf_counter() - t0,
        }
        (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        echo(f"report: {path}")
        return path


def _metric_table(
    metrics: dict[str, float], kind: str, floor: dict[str, float]
) -> tuple[list[str], list[list[object]]]:
    """Report rows: metric, value, direction, the paper's figure, the data floor."""
    refs = reference_rows(metrics, kind, floor)
    rows: list[list[object]] = []
    for name, value in metrics.items():
        ref = refs.get(name, {})
        rows.append([name, value, describe(name), ref.get("paper", ""), ref.get("data_floor", "")])
    return ["metric", "value", "direction", "GDSS paper", "data floor"], rows


def _smiles(mol: object) -> str:
    return str(Chem.MolToSmiles(mol))


def _canon(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    return smiles if mol is None else str(Chem.MolToSmiles(mol))


def _heavy_atoms(smiles: str) -> tuple[int, ...]:
    """Counts of C, N, O, F in a QM9 SMILES string (aromatic lower case included)."""
    s = smiles.replace("Cl", "")
    return tuple(s.count(a) + s.count(a.lower()) for a in "CNOF")


def _train_canonical(train: list[str], generated: list[str]) -> set[str]:
    """Canonical forms of the training SMILES that could equal a generated molecule (same heavy
    atom counts): exact novelty without canonicalising all ~118k training SMILES."""
    wanted = {_heavy_atoms(s) for s in generated}
    return {_canon(s) for s in train if _heavy_atoms(s) in wanted}
