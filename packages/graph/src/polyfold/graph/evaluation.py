"""From sampled tensors to molecules, graphs, files and the GDSS metric tables."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
from rdkit import Chem
from rdkit.Chem import Draw

from polyfold.core.errors import InputError
from polyfold.core.outputs import write_bytes, write_text
from polyfold.graph.chem import tensors_to_mols
from polyfold.graph.data import tensors_to_graphs
from polyfold.graph.metrics import (
    frechet_chemnet_distance,
    graph_mmds,
    mols_to_nx,
    novelty,
    nspdk_features,
    uniqueness,
)
from polyfold.graph.sampling import GraphSamples

__all__ = [
    "MoleculeEvaluator",
    "draw_molecule_grid",
    "evaluate_graph_samples",
    "molecule_grid_png",
    "png_data_uri",
    "samples_to_graphs",
    "samples_to_mols",
    "write_graphs",
    "write_smiles",
]


def samples_to_mols(samples: GraphSamples, *, correct: bool) -> list[Any]:
    """Molecules of sampled QM9 tensors (GDSS's decoding: raw node features thresholded at 0.5,
    quantised bond orders; ``correct`` applies the valency correction)."""
    return tensors_to_mols(samples.raw["x"], samples.adj, samples.mask, correct=correct)


def samples_to_graphs(samples: GraphSamples) -> list[nx.Graph]:
    """networkx graphs of sampled adjacencies (isolated nodes removed, as GDSS)."""
    return tensors_to_graphs(samples.adj, samples.mask)


class MoleculeEvaluator:
    """GDSS's QM9 metrics with the reference statistics computed once (for many evaluations).

    The same numbers as :func:`polyfold.graph.metrics.molecule_metrics`: validity without
    correction on the raw decoding; uniqueness, novelty (vs ``train_smiles``), NSPDK MMD and
    FCD (vs ``test_smiles``) on the valid molecules after valency correction. The canonical
    training set, the mean NSPDK feature vector of the test molecules and (inside
    ``frechet_chemnet_distance``) the test ChemNet statistics are cached.
    """

    def __init__(self, train_smiles: Sequence[str], test_smiles: Sequence[str]) -> None:
        self.test_smiles = list(test_smiles)
        self.train = {_canonical(s) for s in train_smiles}
        test_mols = [m for m in (Chem.MolFromSmiles(s) for s in self.test_smiles) if m]
        self._test_phi = _mean_nspdk(mols_to_nx(test_mols))

    def __call__(self, samples: GraphSamples, *, fcd: bool = True) -> dict[str, float]:
        raw = samples_to_mols(samples, correct=False)
        fixed = [m for m in samples_to_mols(samples, correct=True) if m is not None]
        return self.score(raw, fixed, fcd=fcd)

    def score(
        self, raw: Sequence[Any], fixed: Sequence[Any], *, fcd: bool = True
    ) -> dict[str, float]:
        """The table for decoded molecules: ``raw`` without correction (``None`` where
        invalid), ``fixed`` the valid molecules after correction."""
        if not raw:
            raise InputError("raw: expected at least one decoded molecule")
        smiles = [Chem.MolToSmiles(m) for m in fixed]
        out = {
            "validity_wo_correction": sum(m is not None for m in raw) / len(raw),
            "uniqueness": uniqueness(smiles),
            "novelty": novelty(smiles, self.train),
        }
        graphs = [g for g in mols_to_nx(fixed) if g.number_of_nodes() > 0]
        if graphs:
            phi = _mean_nspdk(graphs)
            keys = set(phi) | set(self._test_phi)
            out["nspdk"] = float(
                sum((phi.get(k, 0.0) - self._test_phi.get(k, 0.0)) ** 2 for k in keys)
            )
        else:
            out["nspdk"] = math.nan
        ok = fcd and len(smiles) >= 2
        out["fcd"] = frechet_chemnet_distance(smiles, self.test_smiles) if ok else math.nan
        return out


def _canonical(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    return smiles if mol is None else str(Chem.MolToSmiles(mol))


def _mean_nspdk(graphs: Sequence[nx.Graph]) -> dict[int, float]:
    """Mean NSPDK feature vector (the linear-kernel MMD is the squared distance of means)."""
    mean: dict[int, float] = {}
    for g in graphs:
        for f, c in nspdk_features(g).items():
            mean[f] = mean.get(f, 0.0) + c
    return {f: c / len(graphs) for f, c in mean.items()}


def evaluate_graph_samples(
    samples: GraphSamples, reference: Sequence[nx.Graph]
) -> dict[str, float]:
    """Degree, clustering, orbit and spectral MMDs against ``reference``."""
    return graph_mmds(samples_to_graphs(samples), list(reference))


def molecule_grid_png(mols: Sequence[Any], *, per_row: int = 6, limit: int = 48) -> bytes:
    """A PNG grid of (up to ``limit``) molecules with their SMILES, by rdkit's ``Draw``."""
    shown = [m for m in mols if m is not None][:limit]
    if not shown:
        raise InputError("mols: no valid molecule to draw")
    img = Draw.MolsToGridImage(
        shown,
        molsPerRow=per_row,
        subImgSize=(200, 200),
        legends=[Chem.MolToSmiles(m) for m in shown],
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...``: an image a report carries inline."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def draw_molecule_grid(
    mols: Sequence[Any], path: Path, *, per_row: int = 6, limit: int = 48
) -> Path:
    """Write :func:`molecule_grid_png` to ``path`` (atomically)."""
    return write_bytes(path, molecule_grid_png(mols, per_row=per_row, limit=limit))


def write_smiles(mols: Sequence[Any], path: Path) -> int:
    """Canonical SMILES, one per line (``None`` entries skipped), written atomically; returns
    how many."""
    lines = [Chem.MolToSmiles(m) for m in mols if m is not None]
    write_text(path, "".join(s + "\n" for s in lines))
    return len(lines)


def write_graphs(graphs: Sequence[nx.Graph], path: Path) -> None:
    """Graphs as JSON edge lists (``.json``) or graph6 lines (``.g6``)."""
    if path.suffix == ".g6":
        lines = [nx.to_graph6_bytes(g, header=False).decode().strip() for g in graphs]
        write_text(path, "".join(s + "\n" for s in lines))
    elif path.suffix == ".json":
        data = [
            {"n_nodes": g.number_of_nodes(), "edges": [[int(a), int(b)] for a, b in g.edges()]}
            for g in graphs
        ]
        write_text(path, json.dumps({"graphs": data}) + "\n")
    else:
        raise InputError(f"--out {path}: expected a .json or .g6 file for graphs")
