"""polyfold.graph: GDSS score-based graph and molecule generation with a system of SDEs.

Modules: :mod:`~polyfold.graph.sde` (the system of SDEs), :mod:`~polyfold.graph.models`
(ScoreNetworkX / ScoreNetworkA), :mod:`~polyfold.graph.training` (DSM with node masks through
core's trainer, model files), :mod:`~polyfold.graph.sampling` (GDSS's solvers and core's fast
samplers), :mod:`~polyfold.graph.chem` (rdkit encoding/decoding), :mod:`~polyfold.graph.data`
(QM9, ZINC250k, community-small, grid, ego-small, ENZYMES), :mod:`~polyfold.graph.metrics`.
"""

from polyfold.graph._version import __version__
from polyfold.graph.models import GDSSConfig, GDSSScore, ScoreNetworkA, ScoreNetworkX
from polyfold.graph.sampling import GraphSamples, sample_graphs
from polyfold.graph.sde import PRESETS, ComponentSDE, GraphSDE
from polyfold.graph.training import GraphModel, load_model, save_model, train_gdss

__all__ = [
    "PRESETS",
    "ComponentSDE",
    "GDSSConfig",
    "GDSSScore",
    "GraphModel",
    "GraphSDE",
    "GraphSamples",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "__version__",
    "load_model",
    "sample_graphs",
    "save_model",
    "train_gdss",
]
