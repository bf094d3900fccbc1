"""PaD-TS: population-aware diffusion for time-series generation (Li et al., AAAI 2025).

Example::

    from polyfold.timeseries.padts import PaDTS, PaDTSConfig, train_padts
    from polyfold.timeseries.sines import sines

    windows = sines(2000, 24, 5)
    model = train_padts(windows, PaDTSConfig(seq_len=24, n_features=5, steps=2000))
    fake = model.sample(500)                     # (500, 24, 5), the windows' scale
    model.save("runs/padts"); PaDTS.load("runs/padts")
"""

from polyfold.timeseries.padts.ablation import ablation
from polyfold.timeseries.padts.config import SAMPLERS, PaDTSConfig
from polyfold.timeseries.padts.loss import population_loss, same_step_times
from polyfold.timeseries.padts.model import PaDTS, train_padts
from polyfold.timeseries.padts.network import AdaLNZeroBlock, DualChannelEncoder

__all__ = [
    "SAMPLERS",
    "AdaLNZeroBlock",
    "DualChannelEncoder",
    "PaDTS",
    "PaDTSConfig",
    "ablation",
    "population_loss",
    "same_step_times",
    "train_padts",
]
