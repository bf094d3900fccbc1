"""The samplers benchmark's domain section: USF on a flattened GDSS state is the graph package's
own UniPC when the schedule is UniPC's, masks per batch size, and the summary keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.samplers import get_sampler
from polyfold.core.samplers.usf import SolverSchedule, usf
from polyfold.graph.models import GDSSConfig, GDSSScore
from polyfold.graph.sampling import solve
from polyfold.graph.sde import PRESETS, prior_sample
from polyfold.graph.training import GraphModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps" / "bench"))
import _samplers_domains as D


@pytest.fixture
def gm() -> GraphModel:
    torch.manual_seed(0)
    cfg = GDSSConfig(
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
    meta = {"preset": "qm9", "kind": "molecule"}
    return GraphModel(GDSSScore(cfg).eval(), PRESETS["qm9"], [0, 0, 0, 2, 2, 2, 2], meta)


def _batch(gm: GraphModel, n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    mask = (
        torch.arange(6)[None]
        < torch.randint(2, 7, (n,), generator=torch.Generator().manual_seed(seed))[:, None]
    )
    return mask, prior_sample(gm.sde, mask, 4, generator=torch.Generator().manual_seed(seed))


def test_flat_state_round_trips(gm: GraphModel) -> None:
    flat = D.FlatGraph(gm)
    _, state = _batch(gm, 3, 0)
    back = flat.unflatten(flat.flatten(state))
    assert all(torch.equal(back[k], state[k]) for k in ("x", "adj"))


@pytest.mark.parametrize("sampler", ["unipc", "dpm_solver_pp"])
def test_a_core_sampler_on_the_flat_state_is_the_graph_packages_sampler(
    gm: GraphModel, sampler: str
) -> None:
    """Core's sampler on the flattened state, on the graph's grid, then the denoising call at
    its last time, lands where ``solve`` on the dict state does: USF's rows sample the model
    the graph package samples."""
    mask, init = _batch(gm, 5, 1)
    with torch.no_grad():
        want = solve(gm.model, gm.sde, init, mask, sampler=sampler, steps=5)
        flat = D.FlatGraph(gm).use(mask)
        grid = D.usf_grid(gm, 6)
        den = flat.denoiser()
        res = get_sampler(sampler, kind="gaussian")(den, flat.path, flat.flatten(init), grid[:-1])
        last = torch.full((5,), float(grid[-2]))
        got = flat.masked(flat.unflatten(den(res.x, last).x0))
    for k in ("x", "adj"):
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_the_usf_grid_spends_the_calls_of_the_plain_samplers(gm: GraphModel) -> None:
    mask, init = _batch(gm, 3, 4)
    flat = D.FlatGraph(gm).use(mask)
    grid = D.usf_grid(gm, 7)
    sched = SolverSchedule.default(flat.path, grid)
    with torch.no_grad():
        res = usf(flat.denoiser(), flat.path, flat.flatten(init), sched.grid, schedule=sched)
    assert res.nfe == 7
    assert D._solve(gm, mask, init, "unipc", D._plain_steps("unipc", 7))[1] == 7
    assert D._solve(gm, mask, init, "heun", D._plain_steps("heun", 7))[1] <= 7


def test_masks_are_told_apart_by_batch_size(gm: GraphModel) -> None:
    flat = D.FlatGraph(gm)
    m3, s3 = _batch(gm, 3, 2)
    m4, _ = _batch(gm, 4, 3)
    flat.use(m3, m4)
    assert torch.equal(flat.mask(4), m4)
    t = torch.full((3,), 0.5)
    out = flat.unflatten(flat(flat.flatten(s3), t))
    assert torch.all(out["x"][~m3] == 0)
    with pytest.raises(InputError, match="batch of 5"):
        flat.mask(5)
    with pytest.raises(InputError, match="distinct sizes"):
        flat.use(m3, m3)


def test_summary_keys() -> None:
    rows = [
        {
            "domain": "qm9",
            "calls": 10,
            "sampler": "unipc",
            "best_plain": True,
            "validity": 0.9,
            "uniqueness": 1.0,
            "fcd": 2.0,
            "ref_error": 0.1,
        },
        {"domain": "qm9", "calls": 10, "sampler": "deis", "validity": 0.1, "ref_error": 0.3},
        {
            "domain": "qm9",
            "calls": 10,
            "sampler": "usf+dc",
            "validity": 0.95,
            "uniqueness": 1.0,
            "fcd": 1.5,
            "ref_error": 0.05,
            "search_seconds": 3.0,
        },
        {"domain": "timeseries", "calls": 4, "sampler": "unipc", "best_plain": True, "crps": 0.2},
        {
            "domain": "timeseries",
            "calls": 4,
            "sampler": "teleport+usf+dc",
            "crps": 0.3,
            "search_seconds": 2.0,
            "skip_fraction": 0.25,
        },
    ]
    s = D.summarize_domains(rows)
    assert s["domain_qm9_validity_nfe10_best_plain"] == 0.9
    assert s["domain_qm9_validity_nfe10_usf"] == 0.95
    assert s["domain_qm9_best_plain_sampler_nfe10"] == "unipc"
    assert s["domain_qm9_usf_search_seconds_nfe10"] == 3.0
    assert s["domain_qm9_ref_error_nfe10_usf_over_best_plain"] == pytest.approx(0.5)
    assert s["domain_timeseries_crps_nfe4_teleport_usf_over_best_plain"] == pytest.approx(1.5)
    assert s["domain_timeseries_teleport_usf_search_seconds_nfe4"] == 2.0
    assert s["domain_timeseries_teleport_skip_fraction"] == 0.25
    assert "domain_qm9_teleport_skip_fraction" not in s
