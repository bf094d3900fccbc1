"""The cached molecule evaluator agrees with metrics.molecule_metrics; files and grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import pytest
from rdkit import Chem

from polyfold.core.errors import InputError
from polyfold.graph.chem import encode_smiles, tensors_to_mols
from polyfold.graph.data import load_qm9_smiles
from polyfold.graph.evaluation import (
    MoleculeEvaluator,
    draw_molecule_grid,
    samples_to_mols,
    write_graphs,
)
from polyfold.graph.metrics import molecule_metrics
from polyfold.graph.sampling import GraphSamples


def _samples(smiles: list[str]) -> GraphSamples:
    t = encode_smiles(smiles)
    return GraphSamples(t.x, t.adj, t.mask, {"x": t.x, "adj": t.adj}, nfe=0, seconds=0.0)


def test_cached_evaluator_matches_molecule_metrics() -> None:
    smiles = load_qm9_smiles("train", limit=60)
    train, test = smiles[:30], smiles[30:]
    gen = _samples(smiles[20:45])  # 10 seen in training, 15 from the test list
    ours = MoleculeEvaluator(train, test)(gen, fcd=False)
    ref = molecule_metrics(
        samples_to_mols(gen, correct=False),
        train,
        test,
        corrected=samples_to_mols(gen, correct=True),
        fcd=False,
    )
    for key in ("validity_wo_correction", "uniqueness", "novelty", "nspdk"):
        assert ours[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    assert ours["validity_wo_correction"] == 1.0
    assert ours["novelty"] == pytest.approx(15 / 25)
    assert math.isnan(ours["fcd"])
    assert len(tensors_to_mols(gen.x, gen.adj, gen.mask, correct=False)) == 25


def test_evaluator_scores_decoded_molecules_and_refuses_none() -> None:
    smiles = load_qm9_smiles("train", limit=40)
    evaluator = MoleculeEvaluator(smiles[:20], smiles[20:])
    mols = [Chem.MolFromSmiles(s) for s in smiles[:10]]
    row = evaluator.score([*mols, None], mols, fcd=False)
    assert row["validity_wo_correction"] == pytest.approx(10 / 11)
    assert row["novelty"] == 0.0
    assert row["uniqueness"] == 1.0
    with pytest.raises(InputError, match="raw"):
        evaluator.score([], [], fcd=False)


def test_grid_and_graph_files(tmp_path: Path) -> None:
    mols = samples_to_mols(_samples(["CCO", "c1ccccc1", "CC#N"]), correct=True)
    png = draw_molecule_grid(mols, tmp_path / "grid.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="no valid molecule"):
        draw_molecule_grid([None], tmp_path / "none.png")
    graphs = [nx.path_graph(3), nx.cycle_graph(4)]
    write_graphs(graphs, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())["graphs"]
    assert [g["n_nodes"] for g in data] == [3, 4]
    assert len(data[1]["edges"]) == 4
    write_graphs(graphs, tmp_path / "g.g6")
    back = [nx.from_graph6_bytes(line.encode()) for line in (tmp_path / "g.g6").read_text().split()]
    assert all(nx.is_isomorphic(a, b) for a, b in zip(graphs, back, strict=True))
    with pytest.raises(InputError, match=r"\.json or \.g6"):
        write_graphs(graphs, tmp_path / "g.txt")
