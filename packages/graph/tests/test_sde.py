"""The system of SDEs: presets, symmetric masked noise, GDSS's discretisations, the DSM loss."""

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.graph.sde import (
    PRESETS,
    ComponentSDE,
    GraphSDE,
    graph_noise,
    mask_adj,
    prior_sample,
    symmetric_noise,
)
from polyfold.graph.training import gdss_loss


def test_presets_follow_the_official_configs():
    qm9, cs = PRESETS["qm9"], PRESETS["community_small"]
    assert (qm9.x.kind, qm9.x.lo, qm9.x.hi, qm9.adj.kind, qm9.adj.lo, qm9.adj.hi) == (
        "VE",
        0.1,
        1.0,
        "VE",
        0.1,
        1.0,
    )
    assert qm9.adj_scale == 3.0
    assert qm9.predictions() == {"x": "score", "adj": "score"}
    assert (cs.x.kind, cs.adj.kind) == ("VP", "VP")
    assert cs.predictions()["adj"] == "eps"
    paths = qm9.paths()
    assert float(paths["adj"].sigma(1.0)) == pytest.approx(1.0)
    assert float(paths["adj"].sigma(0.0)) == pytest.approx(0.1)
    assert GraphSDE.from_dict(qm9.to_dict()) == qm9
    with pytest.raises(InputError, match="kind"):
        ComponentSDE("XY", 0.1, 1.0)  # type: ignore[arg-type]


def test_symmetric_noise_is_symmetric_masked_with_zero_diagonal():
    mask = torch.arange(7)[None] < torch.tensor([4, 7])[:, None]
    z = symmetric_noise((2, 7, 7), mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, z.transpose(1, 2))
    assert torch.all(z.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(z[0, 4:] == 0)
    assert torch.all(z[0, :, 4:] == 0)
    big = symmetric_noise((200, 30, 30), generator=torch.Generator().manual_seed(1))
    upper = big[:, *torch.triu_indices(30, 30, 1)]
    assert upper.std().item() == pytest.approx(1.0, abs=0.02)


def test_graph_noise_and_prior_respect_masks():
    mask = torch.tensor([[True, True, False]])
    state = {"x": torch.zeros(1, 3, 2), "adj": torch.zeros(1, 3, 3)}
    z = graph_noise(state, mask, generator=torch.Generator().manual_seed(0))
    assert torch.all(z["x"][0, 2] == 0)
    assert torch.all(z["adj"][0, 2] == 0)
    p = prior_sample(PRESETS["qm9"], mask, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(p["adj"], mask_adj(p["adj"], mask))
    assert torch.equal(p["adj"], p["adj"].transpose(1, 2))


@pytest.mark.parametrize("preset", ["qm9", "community_small"])
def test_dsm_loss_vanishes_for_the_exact_conditional_score(preset):
    """An oracle that knows x0 predicts GDSS's target exactly: the loss is ~0 (the weighting
    and prediction types match ``|| std * score + z ||^2``) and positive for a zero model."""
    sde = PRESETS[preset]
    paths = sde.paths()
    mask = torch.arange(5)[None] < torch.tensor([3, 5, 4])[:, None]
    g = torch.Generator().manual_seed(0)
    x0 = {
        "x": torch.randn(3, 5, 4, generator=g) * mask[:, :, None],
        "adj": mask_adj(symmetric_noise((3, 5, 5), generator=g).abs(), mask),
    }

    def oracle(state, t, cond):
        out = {}
        for k in ("x", "adj"):
            p = paths[k]
            a = p.alpha(t.double()).float()[:, None, None]
            s = p.sigma(t.double()).float()[:, None, None]
            eps = (state[k] - a * x0[k]) / s
            out[k] = eps if sde.component(k).kind == "VP" else -eps / s
            out[k] = out[k] * (
                mask[:, :, None] if k == "x" else mask_adj(torch.ones_like(eps), cond)
            )
        return out

    batch = {**x0, "mask": mask}
    loss = gdss_loss(oracle, batch, torch.Generator().manual_seed(3), sde)
    assert float(loss) < 1e-8
    zero = gdss_loss(
        lambda s, t, c: {k: torch.zeros_like(v) for k, v in s.items()},
        batch,
        torch.Generator().manual_seed(3),
        sde,
    )
    assert float(zero) > 0.5
