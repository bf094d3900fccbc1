"""polyfold.eeg: ArtifactGen, label-aware EEG artifact synthesis with WGAN-GP and diffusion.

Submodules are imported lazily so that importing the package stays cheap.
"""

from polyfold.eeg._version import __version__

__all__ = ["__version__"]
