"""Sampler time grids: spacing, ends, the data point, validation and the time-shift rule."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import (
    EDM,
    VE,
    DiscreteDDPM,
    GaussianPath,
    LinearInterpolant,
    VPCosine,
    VPLinear,
)
from polyfold.core.samplers import (
    TimeShift,
    check_grid,
    ddim,
    karras_grid,
    log_snr_grid,
    quadratic_grid,
    uniform_t_grid,
    zero_time,
)
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATHS = [VPLinear(), VPCosine(), DiscreteDDPM(n=200), VE(), EDM()]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _lam(path: GaussianPath, t: torch.Tensor) -> torch.Tensor:
    return path.log_snr(t)


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_grids_are_decreasing_with_the_requested_spacing(path: GaussianPath) -> None:
    n = 12
    t = uniform_t_grid(path, n)
    assert t.dtype == F64
    assert t.shape == (n + 1,)
    assert t[0] == path.t_max
    assert t[-1] == path.t_min
    torch.testing.assert_close(t.diff(), torch.full((n,), t.diff()[0].item(), dtype=F64))

    lam = _lam(path, log_snr_grid(path, n))
    torch.testing.assert_close(lam.diff(), torch.full((n,), lam.diff()[0].item(), dtype=F64))

    rho = 5.0
    g = karras_grid(path, n, rho=rho)
    s = torch.exp(-0.5 * _lam(path, g)) ** (1.0 / rho)  # (sigma/alpha)^(1/rho) is linear
    torch.testing.assert_close(s.diff(), torch.full((n,), s.diff()[0].item(), dtype=F64))
    assert g[0] == path.t_max
    assert g[-1] == path.t_min

    q = quadratic_grid(path, n)
    u = ((q - path.t_min) / (path.t_max - path.t_min)).sqrt()
    torch.testing.assert_close(u.diff(), torch.full((n,), -1.0 / n, dtype=F64))
    for grid in (t, g, q, lam):
        assert bool((grid.diff() < 0).all()) or grid is lam


def test_quadratic_grid_is_dense_near_the_data() -> None:
    q = quadratic_grid(VPLinear(), 10)
    steps = -q.diff()
    assert bool((steps.diff() < 0).all())  # shrinking steps towards t_min


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_append_zero_ends_at_the_data_point(path: GaussianPath) -> None:
    g = karras_grid(path, 8, append_zero=True)
    assert g.shape == (9,)
    assert g[-1] == zero_time(path)
    assert g[-2] == path.t_min
    assert float(path.sigma(g[-1:]).abs()) < 1e-12 or g[-1] == -math.inf
    check_grid(g, path)  # valid
    assert uniform_t_grid(path, 1, append_zero=True).tolist() == [path.t_max, zero_time(path)]


def test_zero_time_of_each_path() -> None:
    assert zero_time(VPLinear()) == 0.0
    assert zero_time(LinearInterpolant()) == 0.0
    assert zero_time(VE()) == -math.inf
    edm = EDM()
    assert zero_time(edm) < 0
    assert float(edm.sigma(torch.tensor(zero_time(edm), dtype=F64))) < 1e-100


def test_karras_grid_sigma_bounds_and_log_snr_limits() -> None:
    path = EDM()
    g = karras_grid(path, 5, sigma_min=0.01, sigma_max=10.0)
    sig = path.sigma(g)
    torch.testing.assert_close(sig[[0, -1]], torch.tensor([10.0, 0.01], dtype=F64))
    flow = LinearInterpolant()
    with pytest.raises(InputError, match="t_start"):
        log_snr_grid(flow, 4)  # lambda(1) = -inf
    g = log_snr_grid(flow, 4, t_start=0.99, t_end=0.01)
    assert g[0] == 0.99
    assert g[-1] == 0.01


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ([0.1, 0.5, 0.9], "decreasing"),
        ([0.9, 0.9, 0.1], "decreasing"),
        ([1.5, 0.5, 0.1], "t_min, t_max"),
        ([0.9, 0.5, 1e-4], "t_min, t_max"),
        ([0.9, float("nan"), 0.1], "finite"),
        ([0.9], "at least 2"),
        ([[0.9, 0.1]], "at least 2"),
        ("abc", "1-D sequence"),
    ],
)
def test_bad_grids_raise_input_error(grid: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_grid(grid, VPLinear())  # type: ignore[arg-type]


def test_bad_grid_is_refused_by_samplers() -> None:
    path = VPLinear()
    gmm = GaussianMixture([[0.0, 0.0]])
    den = as_denoiser(gmm.model(path, "eps"), path, prediction="eps")
    x = torch.zeros(3, 2)
    with pytest.raises(InputError, match="decreasing"):
        ddim(den, path, x, [0.1, 0.5, 1.0])
    with pytest.raises(InputError, match="t_min, t_max"):
        ddim(den, path, x, [1.0, 0.5, 0.0001])
    # the data point is only allowed last, and must be shared by every key's path
    with pytest.raises(InputError):
        ddim(den, path, x, [1.0, 0.0, -0.1])
    with pytest.raises(InputError, match="t_min, t_max"):
        check_grid([1.0, 0.5, 0.0], {"a": VPLinear(), "b": VE()})


def test_grid_builders_validate_arguments() -> None:
    path = VPLinear()
    with pytest.raises(InputError, match="n:"):
        uniform_t_grid(path, 0)
    with pytest.raises(InputError, match="t_start, t_end"):
        uniform_t_grid(path, 4, t_start=0.2, t_end=0.5)
    with pytest.raises(InputError, match="rho"):
        karras_grid(path, 4, rho=-1.0)
    with pytest.raises(InputError, match="append_zero"):
        uniform_t_grid(LinearInterpolant(), 4, append_zero=True)  # t_min is already the data


# -- the time-shift rule ------------------------------------------------------------------


def test_time_shift_candidates_window_and_bounds() -> None:
    path = DiscreteDDPM(n=1000)
    ts = TimeShift(window=6, cutoff=0.2)
    c = ts.candidates(path, 0.5, 0.4)
    torch.testing.assert_close(c, 0.5 + torch.arange(-3, 4, dtype=F64) / 1000)
    c = ts.candidates(path, 0.999, 0.9)  # clipped at t_max = 1
    assert float(c.max()) <= 1.0
    assert 0.999 in c.tolist()
    c = ts.candidates(path, 0.5, 0.4985)  # never at or below the next grid time
    assert float(c.min()) > 0.4985
    assert TimeShift(window=0, cutoff=0.0).candidates(path, 0.5, 0.4).tolist() == [0.5]


def test_time_shift_selects_the_closest_noise_variance() -> None:
    path = VPLinear()
    ts = TimeShift(window=10, cutoff=0.0, step=0.01)
    cands = ts.candidates(path, 0.5, 0.2)
    var = path.sigma(torch.tensor([0.47, 0.53, 0.3], dtype=F64)) ** 2
    picked = ts.select(var, path, cands)
    torch.testing.assert_close(picked, torch.tensor([0.47, 0.53, 0.45], dtype=F64))
    with_data = TimeShift(window=10, cutoff=0.0, step=0.01, data_var=1.0)
    # for VP with unit data variance every candidate matches variance 1 equally: argmin ties
    target = path.sigma(cands) ** 2 + path.alpha(cands) ** 2
    torch.testing.assert_close(target, torch.ones_like(target))
    assert with_data.select(var, path, cands).shape == (3,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window": -1, "cutoff": 0.1}, "window"), ({"window": 2, "cutoff": math.nan}, "cutoff")],
)
def test_time_shift_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        TimeShift(**kwargs)


def _shift_setup(n: int = 20):
    path = DiscreteDDPM(n=1000)
    gmm = GaussianMixture(torch.randn(3, 16, generator=torch.Generator().manual_seed(0)), stds=0.5)
    den = as_denoiser(gmm.model(path, "eps"), path, prediction="eps")
    x = path.prior_sample((32, 16), generator=torch.Generator().manual_seed(1), dtype=F64)
    return path, den, x, uniform_t_grid(path, n, append_zero=True)


def test_time_shift_sampler_shifts_per_example_within_window_above_cutoff() -> None:
    path, den, x, grid = _shift_setup()
    ts = TimeShift(window=20, cutoff=0.4)
    res = ddim(den, path, x, grid, time_shift=ts)
    plain = ddim(den, path, x, grid)
    assert res.times is not None
    assert res.times.shape == (20, 32)
    assert res.nfe == plain.nfe == 20
    nominal = grid[:-1, None].expand(-1, 32)
    shift = (res.times - nominal).abs()
    assert float(shift.max()) <= 10 / 1000 + 1e-12
    # steps starting at or below the cutoff, and the first, are never shifted
    unshifted = (grid[:-1] <= 0.4) | (torch.arange(20) == 0)
    assert float(shift[unshifted].max()) == 0.0
    assert float(shift[~unshifted].max()) > 0  # some shift happened
    assert len({tuple(row) for row in res.times.T.tolist()}) > 1  # per example
    assert not torch.equal(res.x, plain.x)
    assert plain.times is None


def test_time_shift_start_time_matches_the_sample_variance() -> None:
    path, den, x, _ = _shift_setup()
    grid = torch.tensor([1.0, 0.6, 0.3], dtype=F64)
    res = ddim(den, path, x, grid, time_shift=TimeShift(window=40, cutoff=0.1))
    x1 = ddim(den, path, x, grid[:2]).x  # the first step is never shifted
    cands = 0.6 + torch.arange(-20, 21, dtype=F64) / 1000
    gap = (x1.var(dim=1)[:, None] - path.sigma(cands)[None, :] ** 2).abs()
    assert res.times is not None
    torch.testing.assert_close(res.times[1], cands[gap.argmin(dim=1)])
    torch.testing.assert_close(res.times[0], torch.ones(32, dtype=F64))


def test_time_shift_without_window_or_above_cutoff_is_plain_ddim() -> None:
    path, den, x, grid = _shift_setup(10)
    plain = ddim(den, path, x, grid).x
    torch.testing.assert_close(ddim(den, path, x, grid, time_shift=TimeShift(0, 0.0)).x, plain)
    torch.testing.assert_close(ddim(den, path, x, grid, time_shift=TimeShift(8, 1.0)).x, plain)


def test_time_shift_refuses_dict_states() -> None:
    path, den, x, grid = _shift_setup(4)
    with pytest.raises(InputError, match="time_shift"):
        ddim(den, {"a": path}, {"a": x}, grid, time_shift=TimeShift(4, 0.1))


def test_a_grid_of_python_floats_keeps_float64_precision():
    g = check_grid([0.9, 0.6, 0.3], VPLinear())
    assert g.dtype == torch.float64
    assert g.tolist() == [0.9, 0.6, 0.3]  # not 0.8999999761581421 (a float32 round trip)
