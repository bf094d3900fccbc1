"""polyfold.shape: Mosaic-SDF shapes (mesh <-> M-SDF, sparse evaluation) and a class-conditional
flow-matching model over the set of local grids.

Submodules are imported lazily so that importing the package stays cheap.
"""

from polyfold.shape._version import __version__

__all__ = ["__version__"]
