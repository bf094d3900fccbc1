"""Steering a trained model at inference time: spend more compute, get samples that score
better under a reward, or that follow a composed target exactly.

- :mod:`~polyfold.core.steering.fkc`: Feynman-Kac correctors with SMC resampling for annealed
  (``q^beta``), product-of-experts and CFG-as-a-product targets, and a model tilted by a reward;
- :mod:`~polyfold.core.steering.tree`: Diffusion Tree Sampling (DTS: draws of
  ``p exp(r/lam)``) and Diffusion Tree Search (DTS*: maximum reward) over the reverse chain;
- :mod:`~polyfold.core.steering.search`: noise search with verifiers (random, zero-order and
  path search);
- :mod:`~polyfold.core.steering.resampling`: multinomial, systematic, stratified and residual
  resampling, effective sample size.

Every method takes a denoiser, paths, a state (tensor or dict, with masks) and a grid like
core's samplers; compute is counted in network calls on single examples.
"""

from polyfold.core.steering.fkc import (
    FKCResult,
    FKCTarget,
    anneal,
    cfg_product,
    fkc,
    product,
    reward_tilt,
)
from polyfold.core.steering.resampling import (
    RESAMPLING_SCHEMES,
    effective_sample_size,
    resample,
)
from polyfold.core.steering.search import (
    SearchResult,
    path_search,
    random_search,
    zero_order_search,
)
from polyfold.core.steering.tree import DiffusionTree, dts, dts_star

__all__ = [
    "RESAMPLING_SCHEMES",
    "DiffusionTree",
    "FKCResult",
    "FKCTarget",
    "SearchResult",
    "anneal",
    "cfg_product",
    "dts",
    "dts_star",
    "effective_sample_size",
    "fkc",
    "path_search",
    "product",
    "random_search",
    "resample",
    "reward_tilt",
    "zero_order_search",
]
