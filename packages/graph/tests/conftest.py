"""polyfold-graph's tests: one torch thread, a fixed seed, tiny random graphs and a tiny model."""

import pytest
import torch

from polyfold.graph.models import GDSSConfig, GDSSScore
from polyfold.graph.sde import symmetric_noise


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> GDSSConfig:
    """A small GDSS network pair (2 GCN layers, 2 attention layers) on 6-node, 4-feature graphs."""
    return GDSSConfig(
        n_features=4,
        max_nodes=6,
        depth=2,
        nhid=8,
        adim=8,
        num_layers=2,
        num_linears=2,
        c_init=2,
        c_hid=4,
        c_final=2,
        num_heads=2,
    )


@pytest.fixture
def tiny_model(tiny_config: GDSSConfig) -> GDSSScore:
    return GDSSScore(tiny_config).eval()


@pytest.fixture
def random_graphs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x (5, 6, 4)``, symmetric ``adj (5, 6, 6)``, ``mask (5, 6)`` with 3..6 valid nodes."""
    g = torch.Generator().manual_seed(1)
    mask = torch.arange(6)[None] < torch.tensor([3, 4, 5, 6, 6])[:, None]
    x = torch.randn(5, 6, 4, generator=g) * mask[:, :, None]
    adj = symmetric_noise((5, 6, 6), mask, generator=g)
    return x, adj, mask
