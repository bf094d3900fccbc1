"""Where the shipped GDSS models live, and the community-small split they were trained on."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["WEIGHTS", "community_small_split"]

#: The folder of the shipped model pairs ``<name>.safetensors`` + ``<name>.json``.
WEIGHTS = Path(__file__).parent / "weights"


def community_small_split(
    generate: Callable[..., Any], *, seed: int = 0
) -> tuple[list[Any], list[Any]]:
    """GDSS's community-small split: 100 graphs, shuffled, the first 20% held out as test."""
    graphs = list(generate(n_graphs=100, seed=seed))
    random.Random(42).shuffle(graphs)
    n_test = int(0.2 * len(graphs))
    return graphs[n_test:], graphs[:n_test]
