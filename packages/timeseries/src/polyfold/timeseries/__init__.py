"""polyfold.timeseries: TSDiff and PaD-TS diffusion models for time series, on gluonts.

Submodules are imported lazily (``polyfold.timeseries.padts``, ``.tsdiff``, ``.data``,
``.metrics``) so that importing the package stays cheap.
"""

from polyfold.timeseries._version import __version__

__all__ = ["__version__"]
