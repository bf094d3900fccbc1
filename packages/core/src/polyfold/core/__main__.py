"""``python -m polyfold.core`` is the ``polyfold`` command."""

from polyfold.core.cli import main

main()
