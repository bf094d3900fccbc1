"""polyfold.motion: text-to-motion data, representation, text encoder and evaluation on a
15-joint humanoid (the DeepMimic clips that ship with pybullet), shared by the motion models.

Submodules are imported lazily so that importing the package stays cheap.
"""

from polyfold.motion._version import __version__

__all__ = ["__version__"]
