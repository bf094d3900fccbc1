"""polyfold.speech: ProDiff and CoMoSpeech text-to-speech on polyfold's diffusion core.

Submodules are imported lazily so that importing the package stays cheap.
"""

from polyfold.speech._version import __version__

__all__ = ["__version__"]
