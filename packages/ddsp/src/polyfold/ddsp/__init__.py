"""polyfold.ddsp: differentiable harmonic-plus-noise synthesis (DDSP), timbre transfer and the
fluid-solo instrument data.

Processors keep controls apart from signal: ``*_controls`` turn network outputs into synthesiser
parameters, the synthesis functions turn parameters into audio. Submodules are imported lazily.
"""

from polyfold.ddsp._version import __version__

__all__ = ["__version__"]
