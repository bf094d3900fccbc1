"""polyfold.tabular: TabEBM class-specific energy-based augmentation for small labelled tables."""

from polyfold.tabular._version import __version__
from polyfold.tabular.backbones import (
    Backbone,
    LogisticBackbone,
    MLPEnsemble,
    TabPFNBackbone,
    default_backbone,
    energy_from_logits,
    get_backbone,
)
from polyfold.tabular.datasets import DATASETS, Table, load_dataset, read_csv
from polyfold.tabular.encoding import TableEncoder
from polyfold.tabular.pfn import PFNBackbone
from polyfold.tabular.tabebm import TABEBM_ALPHA, TabEBM, surrogate_negatives

__all__ = [
    "DATASETS",
    "TABEBM_ALPHA",
    "Backbone",
    "LogisticBackbone",
    "MLPEnsemble",
    "PFNBackbone",
    "TabEBM",
    "TabPFNBackbone",
    "Table",
    "TableEncoder",
    "__version__",
    "default_backbone",
    "energy_from_logits",
    "get_backbone",
    "load_dataset",
    "read_csv",
    "surrogate_negatives",
]
