"""Sampling: symmetric adjacency at every step, masks respected, solvers reach a known target."""

import math
from types import SimpleNamespace

import pytest
import torch

from polyfold.core.denoiser import NFECounter
from polyfold.core.errors import InputError
from polyfold.graph.sampling import (
    GRAPH_SAMPLERS,
    quantize_adjacency,
    sample_graphs,
    sample_masks,
    solve,
)
from polyfold.graph.sde import PRESETS, graph_noise, mask_adj, prior_sample
from polyfold.graph.training import GraphModel

MASK = torch.arange(6)[None] < torch.tensor([3, 6, 5])[:, None]


def _check_graph_state(state, mask):
    adj = state["adj"]
    assert torch.equal(adj, adj.transpose(1, 2))
    assert torch.all(adj.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(state["x"][~mask] == 0)
    assert torch.equal(adj, mask_adj(adj, mask))
    assert torch.isfinite(adj).all()
    assert torch.isfinite(state["x"]).all()


GDSS = ("pc", "reverse", "euler_langevin", "euler", "s4")


@pytest.mark.parametrize("sampler", GDSS)
@pytest.mark.parametrize("preset", ["qm9", "community_small"])
def test_gdss_solvers_keep_adjacency_symmetric_and_masks_at_every_step(tiny_model, sampler, preset):
    sde = PRESETS[preset]
    gen = torch.Generator().manual_seed(0)
    init = prior_sample(sde, MASK, 4, generator=gen)
    counter = NFECounter()
    seen = []

    def check(i, t, state, x0):
        _check_graph_state(state, MASK)
        seen.append(i)

    with torch.no_grad():
        out = solve(
            tiny_model,
            sde,
            init,
            MASK,
            sampler=sampler,
            steps=8,
            generator=gen,
            counter=counter,
            callback=check,
        )
    _check_graph_state(out, MASK)
    assert seen == list(range(8))
    assert counter.count == (16 if sampler in ("pc", "euler_langevin") else 8)


def _graph_model(model, preset, counts):
    return GraphModel(model, PRESETS[preset], counts, {"preset": preset, "kind": "molecule"})


def test_every_cli_name_runs_a_registered_core_sampler():
    from polyfold.core.samplers import available_samplers

    assert set(GDSS) < set(GRAPH_SAMPLERS)
    assert {s.core for s in GRAPH_SAMPLERS.values()} <= set(available_samplers("gaussian"))


@pytest.mark.parametrize("sampler", sorted(set(GRAPH_SAMPLERS) - set(GDSS)))
def test_core_samplers_keep_adjacency_symmetric_and_padding_zero(tiny_model, sampler):
    gm = _graph_model(tiny_model, "qm9", [0, 0, 0, 2, 2, 2, 2])
    res = sample_graphs(gm, 7, sampler=sampler, steps=6, seed=0)
    _check_graph_state(res.raw, res.mask)
    assert res.nfe >= 6
    assert set((res.adj * 3).round().unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert torch.equal(res.adj, res.adj.transpose(1, 2))


def test_same_seed_same_samples(tiny_model):
    gm = _graph_model(tiny_model, "qm9", [0, 0, 0, 1, 1, 1, 1])
    a = sample_graphs(gm, 4, sampler="s4", steps=5, seed=3)
    b = sample_graphs(gm, 4, sampler="s4", steps=5, seed=3)
    assert torch.equal(a.raw["adj"], b.raw["adj"])
    assert torch.equal(a.mask, b.mask)


def test_sample_graphs_forwards_the_step_callback_for_every_batch(tiny_model):
    gm = _graph_model(tiny_model, "qm9", [0, 0, 0, 1, 1, 1, 1])
    calls = []
    res = sample_graphs(
        gm, 5, sampler="pc", steps=4, batch_size=2, callback=lambda *a: calls.append(a)
    )
    assert [c[0] for c in calls] == [0, 1, 2, 3] * 3  # three batches of 4 steps
    assert [c[2]["adj"].shape[0] for c in calls[::4]] == [2, 2, 1]
    assert torch.equal(calls[-1][2]["adj"], res.raw["adj"][4:])


@pytest.mark.parametrize("sampler", ["pc", "s4", "euler_langevin", "reverse", "euler"])
@pytest.mark.parametrize("preset", ["qm9", "community_small"])
def test_solvers_with_the_exact_score_of_one_graph_recover_it(sampler, preset):
    """With data = one fixed graph the score is Gaussian and known; the solvers must end at it.

    (VP: checked one step before the end; the last step from t = 1e-4 overshoots for a score
    this stiff, ``beta dt / sigma^2 >> 1``, as GDSS's discretisation does.)"""
    sde = PRESETS[preset]
    mask = torch.ones(2, 4, dtype=torch.bool)
    adj0 = torch.tensor([[0, 1, 0, 2], [1, 0, 1, 0], [0, 1, 0, 0], [2, 0, 0, 0]], dtype=torch.float)
    x0 = {"x": torch.eye(4), "adj": adj0}

    gen = torch.Generator().manual_seed(0)
    init = prior_sample(sde, mask, 4, generator=gen)
    states = []
    out = solve(
        _GaussianModel(sde, x0, 0.0),
        sde,
        init,
        mask,
        sampler=sampler,
        steps=200,
        generator=gen,
        callback=lambda i, t, st, _x0: states.append(st),
    )
    if sde.x.kind == "VP":
        out = states[-2]
    q = quantize_adjacency(out["adj"], mask, molecule=True, scale=1.0)
    torch.testing.assert_close(q, x0["adj"].expand_as(q))
    assert (out["x"] - x0["x"]).abs().mean() < 0.15


def test_sample_masks_follow_the_histogram():
    masks = sample_masks([0, 0, 3, 0, 1], 400, 4, generator=torch.Generator().manual_seed(0))
    sizes = masks.sum(1)
    assert set(sizes.tolist()) == {2, 4}
    assert 0.65 < (sizes == 2).float().mean() < 0.85
    assert torch.all(masks[:, :2])
    with pytest.raises(InputError, match="node_counts"):
        sample_masks([0, 0], 3, 1)


def test_quantize_adjacency_thresholds():
    adj = torch.tensor([[[0.0, 0.4, 1.6], [0.4, 0.0, 2.7], [1.6, 2.7, 0.0]]])
    mask = torch.tensor([[True, True, True]])
    q = quantize_adjacency(adj, mask, molecule=True, scale=3.0)
    torch.testing.assert_close(q[0] * 3, torch.tensor([[0.0, 0, 2], [0, 0, 3], [2, 3, 0]]))
    g = quantize_adjacency(adj / 3, mask, molecule=False, scale=1.0)
    torch.testing.assert_close(g[0], torch.tensor([[0.0, 0, 1], [0, 0, 1], [1, 1, 0]]))


def test_bad_sampler_and_steps(tiny_model):
    gm = _graph_model(tiny_model, "qm9", [0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(InputError, match="sampler"):
        sample_graphs(gm, 2, sampler="nope")
    with pytest.raises(InputError, match="steps"):
        sample_graphs(gm, 2, sampler="pc", steps=1)


class _GaussianModel(torch.nn.Module):
    """The exact network output (VP: noise, VE: score) when the data is a fixed graph ``g``
    plus Gaussian noise of std ``tau`` (symmetric on the adjacency)."""

    def __init__(self, sde, g, tau):
        super().__init__()
        self.sde, self.g, self.tau, self.paths = sde, g, tau, sde.paths()
        self.config = SimpleNamespace(max_nodes=4, n_features=4)

    def forward(self, state, t, mask):
        out = {}
        for k in ("x", "adj"):
            a = self.paths[k].alpha(t.double()).float()[:, None, None]
            s = self.paths[k].sigma(t.double()).float()[:, None, None]
            score = -(state[k] - a * self.g[k]) / (a**2 * self.tau**2 + s**2)
            out[k] = -s * score if self.sde.component(k).kind == "VP" else score
        out["adj"] = mask_adj(out["adj"], mask)
        return out


@pytest.mark.parametrize("sampler", ["ddpm", "core_pc"])
@pytest.mark.parametrize("preset", ["qm9", "community_small"])
def test_core_stochastic_samplers_reach_a_gaussian_graph_distribution(sampler, preset):
    """Data: one graph ``g`` plus N(0, tau^2) (symmetric adjacency noise). Started from the exact
    marginal at t = 1 and run with the exact score, the samples after the final denoising have
    mean g and std a tau^2 / sqrt(a^2 tau^2 + sigma^2) at the grid's last time."""
    sde, tau, n = PRESETS[preset], 0.3, 500
    paths = sde.paths()
    adj0 = torch.tensor([[0, 1, 0, 2], [1, 0, 1, 0], [0, 1, 0, 0], [2, 0, 0, 0]], dtype=torch.float)
    g = {"x": torch.eye(4), "adj": adj0}
    mask = torch.ones(n, 4, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    z = graph_noise({"x": torch.empty(n, 4, 4), "adj": torch.empty(n, 4, 4)}, mask, generator=gen)
    one = torch.ones(1, dtype=torch.float64)
    init = {}
    for k in ("x", "adj"):
        a, s = float(paths[k].alpha(one)), float(paths[k].sigma(one))
        init[k] = a * g[k] + math.sqrt(a**2 * tau**2 + s**2) * z[k]
    counter = NFECounter()
    model = _GaussianModel(sde, g, tau)
    opts = {"snr": 0.1, "scale_eps": 1.0, "n_corrector": 1, "generator": gen}
    out = solve(model, sde, init, mask, sampler=sampler, steps=100, counter=counter, **opts)
    assert counter.count == (200 if sampler == "core_pc" else 100) + 1  # + the final denoising
    _check_graph_state(out, mask)
    t_end = max(sde.sample_eps, *(p.t_min for p in paths.values()))
    off = ~torch.eye(4, dtype=torch.bool)
    for k, sel in (("x", torch.ones(4, 4, dtype=torch.bool)), ("adj", off)):
        a, s = (
            float(f(torch.tensor([t_end], dtype=torch.float64)))
            for f in (paths[k].alpha, paths[k].sigma)
        )
        want = a * tau**2 / math.sqrt(a**2 * tau**2 + s**2)
        resid = (out[k] - g[k])[:, sel]
        assert resid.mean().abs() < 0.015, (k, float(resid.mean()))
        assert abs(float(resid.std()) / want - 1) < 0.05, (k, float(resid.std()), want)
