"""The real section of ``steering.py``: the shipped GDSS QM9 model steered toward RDKit's QED.

Every method runs core's steering code on GDSS's dict state ``{"x", "adj"}`` with the S4
sampler (GDSS's QM9 settings; validity ~0.97 at 100 steps). Molecules of different sizes share
batches: the node mask is read from the state (padding stays exactly zero under every
sampler), so the network, the noise and the decoding follow any reordering of rows.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import QED

from polyfold.core.denoiser import as_denoiser
from polyfold.core.steering import (
    DiffusionTree,
    fkc,
    path_search,
    random_search,
    resample,
    reward_tilt,
    zero_order_search,
)
from polyfold.graph.chem import tensors_to_mols
from polyfold.graph.sampling import _grid, quantize_adjacency, sample_masks
from polyfold.graph.sde import graph_noise, prior_sample, state_masks
from polyfold.graph.shipped import WEIGHTS
from polyfold.graph.training import load_model

RDLogger.DisableLog("rdApp.*")


#: ``quick -> (steps, molecules, candidates per molecule)``.
SIZES = {True: (50, 12, 4), False: (100, 64, 8)}


def _mask_of(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return state["x"].abs().sum(-1) > 0


def qm9(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """QED steering at equal calls per molecule; validity and uniqueness in view."""
    gm = load_model(WEIGHTS / "qm9")
    sde = gm.sde
    paths = sde.paths()
    steps, n_mol, n_cand = SIZES[quick]
    grid = _grid("to_end", sde, steps)
    k = len(grid) - 1
    budget = n_cand * k
    gen = torch.Generator().manual_seed(0)
    masks = sample_masks(gm.node_counts, n_mol, gm.max_nodes, generator=gen)
    init = prior_sample(sde, masks, gm.n_features, generator=gen)

    def net(x: Any, t: torch.Tensor, cond: Any) -> Any:
        with torch.no_grad():
            return gm.model(x, t, _mask_of(x))

    den = as_denoiser(net, paths, prediction=sde.predictions())

    def noise(state: Any, g: torch.Generator | None) -> Any:
        return graph_noise(state, _mask_of(state), generator=g)

    def mols(state: dict[str, torch.Tensor]) -> list[Any]:
        m = _mask_of(state)
        adj = quantize_adjacency(state["adj"], m, molecule=True, scale=sde.adj_scale)
        return tensors_to_mols(state["x"], adj, m, correct=False)

    def qed(state: Any) -> torch.Tensor:
        out = []
        for mol in mols(state):
            try:
                out.append(QED.qed(mol) if mol is not None else 0.0)
            except (ValueError, RuntimeError):  # rdkit rejects a few odd graphs
                out.append(0.0)
        return torch.tensor(out, dtype=torch.float64)

    s4 = {"snr": 0.2, "scale_eps": 0.7}  # GDSS's QM9 Langevin settings
    common = {"sampler": "s4", "options": s4, "noise": noise, "mask": state_masks(masks)}
    rows: list[dict[str, Any]] = []

    def row(method: str, state: Any, calls: float, seconds: float) -> None:
        ms = mols(state)
        valid = [m for m in ms if m is not None]
        smiles = {Chem.MolToSmiles(m) for m in valid}
        q = qed(state)
        rows.append(
            {
                "section": "qm9",
                "method": method,
                "calls_per_mol": calls,
                "mean_qed": float(q.mean()),
                "mean_qed_valid": float(q[q > 0].mean()) if bool((q > 0).any()) else math.nan,
                "validity_wo_correction": len(valid) / len(ms),
                "uniqueness": len(smiles) / max(1, len(valid)),
                "seconds": seconds,
            }
        )

    t0 = time.perf_counter()
    res = random_search(den, paths, init, grid, qed, budget=k, generator=gen, **common)
    row("plain", res.x, res.calls, time.perf_counter() - t0)
    for name, fn in (
        ("best_of_n", random_search),
        ("zero_order", zero_order_search),
        ("path_search", path_search),
    ):
        t0 = time.perf_counter()
        res = fn(den, paths, init, grid, qed, budget=budget, generator=gen, **common)
        row(name, res.x, res.calls, time.perf_counter() - t0)
    t0 = time.perf_counter()
    best, calls = [], 0
    for i in range(n_mol):
        one = {key: v[i : i + 1] for key, v in init.items()}
        tree = DiffusionTree(
            den,
            paths,
            one,
            grid,
            qed,
            lam=0.05,
            greedy=True,
            branching=2,
            sampler="s4",
            options=s4,
            noise=noise,
            generator=gen,
            mask=state_masks(masks[i : i + 1]),
            wave=8,
        ).grow(budget)
        best.append(tree.best(1)[0])
        calls += tree.calls
    row(
        "dts_star",
        {key: torch.cat([b[key] for b in best]) for key in init},
        calls / n_mol,
        time.perf_counter() - t0,
    )
    t0 = time.perf_counter()
    big = prior_sample(sde, masks.repeat(n_cand, 1), gm.n_features, generator=gen)
    out = fkc(
        reward_tilt(den, qed, lam=0.05),
        paths,
        big,
        grid,
        generator=gen,
        mask=state_masks(masks.repeat(n_cand, 1)),
        noise=noise,
        final_resample=False,
    )
    pick = resample(out.log_weights, "systematic", n=n_mol, generator=gen)
    row(
        "fkc_reward",
        {key: v[pick] for key, v in out.x.items()},
        out.calls / n_mol,
        time.perf_counter() - t0,
    )
    base = rows[1]
    ok = [r for r in rows[2:] if r["validity_wo_correction"] >= 0.95]
    gain = max((r["mean_qed"] for r in ok), default=math.nan) - base["mean_qed"]
    return rows, {
        "qm9_reward_gain_at_equal_calls": gain,
        "qm9_best_of_n_mean_qed": base["mean_qed"],
        "qm9_plain_mean_qed": rows[0]["mean_qed"],
        "qm9_calls_per_mol": budget,
    }
