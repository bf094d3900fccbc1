"""How to read each graph metric: its direction and its references.

Every metric a polyfold-graph command reports comes with whether lower or higher is better, the
GDSS paper's figure for the same setting where it has one (Jo et al. 2022, Tables 2 and 3, as
quoted in ``weights/MODEL_CARD.md``) and, where it can be computed from the data alone, the
data's own finite-sample floor: the same metric for real graphs drawn like the samples (e.g. 20
training graphs against the 20 test graphs), below which no model can be expected to go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DIRECTION", "PAPER", "PAPER_SETTING", "describe", "graph_data_floor", "reference_rows"]

#: ``"lower"`` or ``"higher"`` is better, per metric name.
DIRECTION: dict[str, str] = {
    "validity": "higher",
    "validity_wo_correction": "higher",
    "uniqueness": "higher",
    "novelty": "higher",
    "nspdk": "lower",
    "fcd": "lower",
    "degree": "lower",
    "clustering": "lower",
    "orbit": "lower",
    "spectral": "lower",
}

#: The GDSS paper's figures (PC sampler, 1000 steps; QM9 at 10,000 molecules, community-small
#: at 20 graphs against the 20 test graphs).
PAPER: dict[str, dict[str, float]] = {
    "molecule": {"validity_wo_correction": 0.957, "nspdk": 0.003, "fcd": 2.90},
    "graph": {"degree": 0.045, "clustering": 0.086, "orbit": 0.007},
}


#: The setting of the paper's figures (NSPDK and FCD shrink as the number of samples grows, so
#: only as many samples compare).
PAPER_SETTING: dict[str, str] = {
    "molecule": "10,000 molecules",
    "graph": "20 graphs vs the 20 test graphs of the paper's draw of the data",
}


def describe(metric: str) -> str:
    """``lower is better`` / ``higher is better`` ('' for a metric without a direction)."""
    d = DIRECTION.get(metric)
    return f"{d} is better" if d else ""


def graph_data_floor(train: Sequence[Any], test: Sequence[Any]) -> dict[str, float]:
    """The generic-graph MMDs of as many training graphs as there are test graphs against the
    test graphs: what a perfect model scores at that sample size (the data's floor)."""
    from polyfold.graph.metrics import graph_mmds

    k = min(len(train), len(test))
    return {name: float(v) for name, v in graph_mmds(list(train[:k]), list(test)).items()}


def reference_rows(
    metrics: Mapping[str, float], kind: str, floor: Mapping[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """Per reported metric: its value, direction, the paper's figure and the data floor (where
    known), as a JSON-ready mapping."""
    paper = PAPER.get(kind, {})
    out: dict[str, dict[str, Any]] = {}
    for name, value in metrics.items():
        if name not in DIRECTION:
            continue
        row: dict[str, Any] = {
            "value": None if math.isnan(float(value)) else float(value),
            "better": DIRECTION[name],
        }
        if name in paper:
            row["paper"] = paper[name]
            row["paper_setting"] = PAPER_SETTING[kind]
        if floor and name in floor:
            row["data_floor"] = float(floor[name])
        out[name] = row
    return out
