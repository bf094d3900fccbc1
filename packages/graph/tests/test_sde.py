"""The system of SDEs: presets, symmetric masked noise, GDSS's discretisations, the DSM loss."""

import math

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


def test_ve_reverse_chain_telescopes_to_the_prior_variance():
    comp = ComponentSDE("VE", 0.1, 1.0, num_scales=50)
    ts = ((torch.arange(50, dtype=torch.float64) + 0.1) / 49).clamp(max=1.0)  # one t per step
    a, b, g = comp.reverse_step(ts)
    assert torch.all(a == 1)
    assert torch.allclose(b, g**2)
    assert float((g**2).sum()) == pytest.approx(1.0, rel=1e-5)  # sigma_max^2


def test_vp_reverse_step_and_corrector_alpha():
    comp = ComponentSDE("VP", 0.1, 1.0, num_scales=10)
    t = torch.tensor([1.0])
    beta = 1.0 / 10
    a, b, g = comp.reverse_step(t)
    assert float(a) == pytest.approx(2 - math.sqrt(1 - beta))
    assert float(b) == pytest.approx(beta)
    assert float(g) == pytest.approx(math.sqrt(beta))
    assert float(comp.discrete_alpha(t)) == pytest.approx(1 - beta)


@pytest.mark.parametrize("kind", ["VP", "VE"])
def test_transition_matches_the_path_marginals(kind):
    comp = ComponentSDE(kind, 0.1, 1.0)
    path = comp.path()
    t, dt = torch.tensor([0.7, 0.3], dtype=torch.float64), -0.05
    scale, std = comp.transition(t, dt)
    a_s, a_t = path.alpha(t), path.alpha(t + dt)
    s_s, s_t = path.sigma(t), path.sigma(t + dt)
    if kind == "VE":
        torch.testing.assert_close(scale, torch.ones_like(t))
        torch.testing.assert_close(std**2, s_s**2 - s_t**2)
    else:  # GDSS's VP transition: scale alpha(t+dt)/alpha(t), std^2 = 1 - 1/scale^2
        torch.testing.assert_close(scale, a_t / a_s)
        torch.testing.assert_close(std**2, 1 - (a_s / a_t) ** 2)


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
