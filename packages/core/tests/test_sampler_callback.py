"""Every Gaussian sampler reports each step to ``callback(step, t, x, x0)``."""

from __future__ import annotations

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import available_samplers, get_sampler
from polyfold.core.testing import GaussianMixture

PATH = VPLinear()
GMM = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]], stds=[0.6, 0.8], weights=[0.4, 0.6])


def _den():
    return as_denoiser(GMM.model(PATH, "eps"), PATH, prediction="eps")


def _run(name, grid, callback=None):
    x = PATH.prior_sample((32, 2), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    return get_sampler(name)(_den(), PATH, x, grid, generator=gen, callback=callback)


@pytest.mark.parametrize("name", available_samplers("gaussian"))
@pytest.mark.parametrize("end", ["zero", "t_min"])
def test_callback_once_per_step_at_the_grid_times(name, end):
    # the ODE solvers in t (infinite d_sigma of VP) and s4 (half steps) stop before the data
    zero = end == "zero" and name not in ("euler", "heun", "midpoint", "rk4", "s4")
    grid = S.uniform_t_grid(PATH, 6, append_zero=zero)
    calls = []

    def cb(step, t, x, x0):
        calls.append((step, t, x.clone(), None if x0 is None else x0.clone()))

    res = _run(name, grid, cb)
    assert [c[0] for c in calls] == list(range(len(res.grid) - 1))
    assert [c[1] for c in calls] == res.grid[1:].tolist()
    assert all(isinstance(c[1], float) for c in calls)
    assert torch.equal(calls[-1][2], res.x)
    assert all(c[3] is not None and c[3].shape == res.x.shape for c in calls)
    # the callback observes and changes nothing
    plain = _run(name, grid)
    assert torch.equal(plain.x, res.x)
    assert plain.nfe == res.nfe


def test_callback_sees_dict_states_and_intermediate_states_differ():
    paths = {"a": PATH, "b": PATH}
    x = {"a": torch.randn(8, 3), "b": torch.randn(8, 2)}

    den = as_denoiser(
        lambda s, t, c=None: {k: 0.5 * v for k, v in s.items()}, paths, prediction="eps"
    )
    seen = []
    grid = S.uniform_t_grid(PATH, 4, t_end=PATH.t_min)
    res = S.ddim(den, paths, x, grid, callback=lambda i, t, xs, x0: seen.append((xs, x0)))
    assert len(seen) == 4
    assert set(seen[0][0]) == {"a", "b"}
    assert set(seen[0][1]) == {"a", "b"}
    assert not torch.equal(seen[0][0]["a"], seen[1][0]["a"])
    assert all(torch.equal(seen[-1][0][k], res.x[k]) for k in x)


def test_a_callback_that_is_not_callable_is_refused():
    with pytest.raises(InputError, match="callback must be callable"):
        S.heun(_den(), PATH, torch.zeros(2, 2), S.uniform_t_grid(PATH, 3), callback=3)
