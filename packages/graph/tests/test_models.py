"""ScoreNetworkX / ScoreNetworkA: permutation equivariance, masks, symmetric adjacency scores."""

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.graph.models import (
    PRESET_MODELS,
    GDSSScore,
    GraphAttention,
    ScoreNetworkA,
    ScoreNetworkX,
    adjacency_powers,
)


def _permute(x, adj, mask, perm):
    return x[:, perm], adj[:, perm][:, :, perm], mask[:, perm]


def test_both_networks_are_permutation_equivariant(tiny_model, random_graphs):
    x, adj, mask = random_graphs
    out = tiny_model({"x": x, "adj": adj}, None, mask)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    px, padj, pmask = _permute(x, adj, mask, perm)
    pout = tiny_model({"x": px, "adj": padj}, None, pmask)
    torch.testing.assert_close(pout["x"], out["x"][:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pout["adj"], out["adj"][:, perm][:, :, perm], atol=1e-5, rtol=1e-5)


def test_outputs_are_masked_symmetric_and_zero_diagonal(tiny_model, random_graphs):
    x, adj, mask = random_graphs
    out = tiny_model({"x": x, "adj": adj}, None, mask)
    assert out["x"].shape == x.shape
    assert out["adj"].shape == adj.shape
    assert torch.equal(out["adj"], out["adj"].transpose(1, 2))
    assert torch.all(out["adj"].diagonal(dim1=1, dim2=2) == 0)
    pad = ~mask
    assert torch.all(out["x"][pad] == 0)
    assert torch.all(out["adj"][pad] == 0)
    assert torch.all(out["adj"].transpose(1, 2)[pad] == 0)
    assert out["x"][mask].abs().sum() > 0
    assert out["adj"].abs().sum() > 0


def test_padding_content_does_not_leak_into_valid_nodes(tiny_model, random_graphs):
    x, adj, mask = random_graphs
    out = tiny_model({"x": x, "adj": adj}, None, mask)
    x2, adj2 = x.clone(), adj.clone()
    x2[~mask] = 5.0  # garbage on padded nodes (their adjacency rows stay zero)
    out2 = tiny_model({"x": x2, "adj": adj2}, None, mask)
    torch.testing.assert_close(out2["x"], out["x"])
    torch.testing.assert_close(out2["adj"], out["adj"])


def test_adjacency_powers():
    a = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    p = adjacency_powers(a, 3)
    assert p.shape == (1, 3, 2, 2)
    torch.testing.assert_close(p[0, 1], torch.eye(2))
    torch.testing.assert_close(p[0, 2], a[0])


def test_attention_matrix_is_symmetric_with_heads_averaged():
    att = GraphAttention(3, 8, 5, num_heads=4)
    x, adj = torch.randn(2, 4, 3), torch.rand(2, 4, 4)
    v, a = att(x, adj + adj.transpose(1, 2))
    assert v.shape == (2, 4, 5)
    assert a.shape == (2, 4, 4)
    torch.testing.assert_close(a, a.transpose(1, 2))
    assert a.abs().max() <= 1.0  # mean of tanh values


def test_paper_sizes_and_errors():
    qm9 = PRESET_MODELS["qm9"]
    assert (qm9.depth, qm9.nhid, qm9.adim, qm9.num_layers, qm9.c_init, qm9.c_hid, qm9.c_final) == (
        2,
        16,
        16,
        3,
        2,
        8,
        4,
    )
    model = GDSSScore(qm9)
    assert isinstance(model.net_x, ScoreNetworkX)
    assert isinstance(model.net_adj, ScoreNetworkA)
    assert len(model.net_adj.layers) == 3
    assert len(model.net_x.convs) == 2
    with pytest.raises(InputError, match="num_heads"):
        GraphAttention(3, 6, 5, num_heads=4)
    with pytest.raises(InputError, match="node mask"):
        model({"x": torch.zeros(1, 9, 4), "adj": torch.zeros(1, 9, 9)}, None, None)


def test_batched_attention_layer_matches_the_per_channel_loop(tiny_model, random_graphs):
    x, adj, mask = random_graphs
    layer = tiny_model.net_adj.layers[0]
    a = adjacency_powers(adj, 2)
    fast = layer(x, a, mask)
    ref = layer.forward_reference(x, a, mask)
    torch.testing.assert_close(fast[0], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[1], ref[1], atol=1e-5, rtol=1e-5)
