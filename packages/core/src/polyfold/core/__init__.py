"""polyfold.core: the diffusion/flow core shared by every polyfold package."""

from polyfold.core._version import __version__
from polyfold.core.errors import InputError, PolyfoldError

__all__ = ["InputError", "PolyfoldError", "__version__"]
