"""The single source of polyfold-text's version (read by the build backend and at run time)."""

__version__ = "0.1.0"
