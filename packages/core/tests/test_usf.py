"""USF: the default schedule is UniPC; the search lowers the error; schedules round-trip."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPCosine, VPLinear
from polyfold.core.samplers.compensation import _reference
from polyfold.core.samplers.teleport import GaussianScore
from polyfold.core.samplers.usf import (
    SolverSchedule,
    load_schedule,
    schedule_error,
    search_schedule,
    usf,
)
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()
MIX = GaussianMixture(
    [[-2.0, 0.0, 1.0], [2.0, 0.5, -1.0], [0.0, -2.0, 0.0]],
    stds=[0.3, 0.5, 0.4],
    weights=[0.3, 0.4, 0.3],
)
DEN = as_denoiser(MIX.model(PATH, "eps"), PATH, prediction="eps")


def _noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


@pytest.mark.parametrize("zero", [True, False])
def test_default_schedule_is_unipc(zero: bool) -> None:
    grid = S.uniform_t_grid(PATH, 6, append_zero=zero)
    sched = SolverSchedule.default(PATH, grid)
    x = _noise(32, 0)
    plain = S.unipc(DEN, PATH, x, grid)
    out = usf(DEN, PATH, x, sched.grid, schedule=sched)
    torch.testing.assert_close(out.x, plain.x, rtol=0.0, atol=1e-12)
    assert out.nfe == plain.nfe == 6


def test_corrector_off_and_eps_prediction_are_unip_eps() -> None:
    grid = S.uniform_t_grid(PATH, 5, t_end=1e-3)
    base = SolverSchedule.default(PATH, grid)
    sched = SolverSchedule(base.path, base.times, base.orders, ("eps",) * 5, (False,) * 5)
    x = _noise(16, 1)
    plain = S.unipc(DEN, PATH, x, grid, prediction="eps", corrector=False)
    torch.testing.assert_close(usf(DEN, PATH, x, grid, schedule=sched).x, plain.x)


def test_search_beats_the_default_on_held_out_noise(tmp_path) -> None:
    found = search_schedule(DEN, PATH, _noise(32, 2), 5, rounds=1)
    assert found.error < 0.7 * found.default_error
    assert found.evaluations > 10
    sched = found.schedule
    x = _noise(256, 3)
    g0 = S.uniform_t_grid(PATH, 5, append_zero=True)
    ref = _reference(DEN, PATH, x, g0, 32)[-1]
    default = usf(DEN, PATH, x, g0, schedule=SolverSchedule.default(PATH, g0)).x
    searched = usf(DEN, PATH, x, sched.grid, schedule=sched).x
    assert _rms(searched, ref) < 0.8 * _rms(default, ref)
    # saved and loaded by name, next to another NFE
    sched.save("mix", tmp_path)
    SolverSchedule.default(PATH, S.uniform_t_grid(PATH, 4, append_zero=True)).save("mix", tmp_path)
    assert load_schedule("mix", nfe=5, path=PATH, directory=tmp_path) == sched
    assert load_schedule(tmp_path / "mix.json", nfe=4, path=PATH).nfe == 4
    assert set(json.loads((tmp_path / "mix.json").read_text())["schedules"]) == {"4", "5"}


def test_bad_input(tmp_path) -> None:
    grid = S.uniform_t_grid(PATH, 4, append_zero=True)
    sched = SolverSchedule.default(PATH, grid)
    sched.save("s", tmp_path)
    with pytest.raises(InputError, match=r"no schedule for NFE 6 \(searched NFEs: 4\)"):
        load_schedule("s", nfe=6, path=PATH, directory=tmp_path)
    with pytest.raises(InputError, match="searched for path VPLinear"):
        load_schedule("s", nfe=4, path=VPCosine(), directory=tmp_path)
    with pytest.raises(InputError, match="no file"):
        load_schedule("missing", nfe=4, path=PATH, directory=tmp_path)
    with pytest.raises(InputError, match="holds schedules for"):
        SolverSchedule.default(VPCosine(), S.uniform_t_grid(VPCosine(), 4)).save("s", tmp_path)
    with pytest.raises(InputError, match="fixes its times"):
        usf(DEN, PATH, _noise(4, 0), S.uniform_t_grid(PATH, 4), schedule=sched)
    with pytest.raises(InputError, match="searched for path"):
        usf(DEN, VPCosine(), _noise(4, 0), grid, schedule=sched)
    with pytest.raises(InputError, match="orders"):
        SolverSchedule(sched.path, sched.times, (1, 2, 4, 1), sched.predictions, sched.correctors)


GAUSS = GaussianMixture([[0.5, -1.0, 1.5]], stds=[[0.8, 0.4, 0.6]])
GDEN = as_denoiser(GAUSS.model(PATH, "eps"), PATH, prediction="eps")


def _gaussian() -> GaussianScore:
    return GaussianScore.from_moments(GAUSS.means[0], GAUSS.covs[0])


def test_teleport_at_the_start_time_is_the_plain_schedule() -> None:
    grid = S.uniform_t_grid(PATH, 5, append_zero=True)
    plain = SolverSchedule.default(PATH, grid)
    tele = replace(plain, teleport_from=float(grid[0]))
    x = _noise(16, 4)
    out = usf(DEN, PATH, x, grid, schedule=tele, approx=_gaussian())
    torch.testing.assert_close(out.x, usf(DEN, PATH, x, grid, schedule=plain).x, rtol=0, atol=0)
    assert out.nfe == 5


def test_search_with_teleport_on_a_gaussian_target(tmp_path) -> None:
    """From a hand-over at 0.6 (the Gaussian's flow is exact, no call), the search lowers the
    error to the exact endpoint; the teleporting schedule round-trips through JSON."""
    x = _noise(64, 5)
    hand = S.uniform_t_grid(PATH, 4, t_start=0.6, append_zero=True)
    found = search_schedule(
        GDEN, PATH, x, 4, grid=hand, rounds=1, sub=128, approx=_gaussian(), t_start=1.0
    )
    sched = found.schedule
    assert sched.teleport_from == 1.0
    assert found.error < 0.3 * found.default_error
    sched.save("g", tmp_path)
    assert load_schedule("g", nfe=4, path=PATH, directory=tmp_path) == sched
    exact = _gaussian().flow(x, PATH, 1.0, 0.0)  # the Gaussian's flow is closed-form
    start = replace(SolverSchedule.default(PATH, hand), teleport_from=1.0)
    out = usf(GDEN, PATH, x, sched.grid, schedule=sched, approx=_gaussian()).x
    base = usf(GDEN, PATH, x, hand, schedule=start, approx=_gaussian()).x
    assert _rms(out, exact) < 0.3 * _rms(base, exact)


def test_teleport_bad_input() -> None:
    grid = S.uniform_t_grid(PATH, 4, append_zero=True)
    sched = SolverSchedule.default(PATH, grid)
    with pytest.raises(InputError, match="approx: expected the data's approximation"):
        usf(DEN, PATH, _noise(4, 0), grid, schedule=replace(sched, teleport_from=1.0))
    with pytest.raises(InputError, match="approx: expected the data's approximation"):
        usf(DEN, PATH, _noise(4, 0), grid, schedule=sched, approx=_gaussian())
    with pytest.raises(InputError, match="teleport_from: expected a time >="):
        replace(sched, teleport_from=0.5)
    with pytest.raises(InputError, match="t_start: expected grid"):
        search_schedule(DEN, PATH, _noise(4, 0), 4, grid=grid, t_start=1.2)
    with pytest.raises(InputError, match="rounds"):
        search_schedule(DEN, PATH, _noise(4, 0), 4, rounds=-1)


def test_schedule_error_ranks_held_out_noise_as_the_search_measures() -> None:
    """The held-out error of a schedule is the search's own error measure on other noise."""
    grid = S.uniform_t_grid(PATH, 4, append_zero=True)
    x = _noise(32, 6)
    found = search_schedule(DEN, PATH, x, 4, grid=grid, rounds=0)
    default = SolverSchedule.default(PATH, grid)
    assert schedule_error(DEN, PATH, x, default) == found.default_error == found.error
    held = _noise(64, 7)
    ref = _reference(DEN, PATH, held, grid, 16)[-1]
    assert schedule_error(DEN, PATH, held, default) == pytest.approx(
        _rms(usf(DEN, PATH, held, grid, schedule=default).x, ref), rel=1e-12
    )


def test_compensation_ratios_in_a_schedule() -> None:
    """Ratios of one are the plain schedule; on UniPC's default schedule they are UniPC's DC."""
    grid = S.uniform_t_grid(PATH, 6, append_zero=True)
    sched = SolverSchedule.default(PATH, grid)
    x = _noise(16, 8)
    plain = usf(DEN, PATH, x, grid, schedule=sched).x
    ones = usf(DEN, PATH, x, grid, schedule=replace(sched, ratios=(1.0,) * 6)).x
    torch.testing.assert_close(ones, plain, rtol=0, atol=0)
    ratios = (1.0, 0.9, 1.1, 0.95, 1.05, 1.0)
    dc = usf(DEN, PATH, x, grid, schedule=replace(sched, ratios=ratios)).x
    torch.testing.assert_close(dc, S.unipc(DEN, PATH, x, grid, ratios=ratios).x)
    assert _rms(dc, plain) > 1e-4
    with pytest.raises(InputError, match=r"schedule\.ratios"):
        replace(sched, ratios=(1.0,) * 5)
    found = search_schedule(DEN, PATH, _noise(32, 9), 4, rounds=1, compensation=True)
    assert found.schedule.ratios is not None
    assert len(found.schedule.ratios) == 4
    assert found.error < 0.7 * found.default_error


def test_bh1_variant_schedule_is_unipc_bh1() -> None:
    grid = S.uniform_t_grid(PATH, 6, append_zero=True)
    sched = replace(SolverSchedule.default(PATH, grid), variants=("bh1",) * 6)
    x = _noise(16, 10)
    out = usf(DEN, PATH, x, grid, schedule=sched).x
    torch.testing.assert_close(out, S.unipc(DEN, PATH, x, grid, variant="bh1").x)
    with pytest.raises(InputError, match=r"schedule\.variants"):
        replace(sched, variants=("bh3",) * 6)


@pytest.mark.parametrize("order", [2, 3])
def test_final_step_of_higher_order_integrates_a_polynomial_noise_exactly(order: int) -> None:
    """To the data point, order k integrates ``eps`` as a polynomial of degree k - 1 in
    ``s = sigma/alpha`` from the last state: exact for such a model, ``x0`` itself for k = 1."""
    coef = (0.3, -0.8, 0.5)[:order]

    def s_of(t: torch.Tensor) -> torch.Tensor:
        return PATH.sigma(t) / PATH.alpha(t)

    def model(x: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        s = s_of(t.to(F64))[:, None]
        return sum(c * s**k for k, c in enumerate(coef)) * torch.ones_like(x)

    den = as_denoiser(model, PATH, prediction="eps")
    grid = S.uniform_t_grid(PATH, 5, append_zero=True)
    base = SolverSchedule.default(PATH, grid)
    sched = replace(base, orders=(*base.orders[:-1], order), correctors=(False,) * 5)
    states: dict[int, torch.Tensor] = {}
    x = _noise(8, 11)
    out = usf(
        den, PATH, x, grid, schedule=sched, callback=lambda i, t, xs, x0: states.update({i: xs})
    )
    t_last, t_zero = grid[-2:-1], grid[-1:]
    s = float(s_of(t_last))
    integral = sum(c * s ** (k + 1) / (k + 1) for k, c in enumerate(coef))
    y = states[3] / PATH.alpha(t_last) - integral
    torch.testing.assert_close(out.x, PATH.alpha(t_zero) * y, rtol=1e-10, atol=1e-10)
    assert out.nfe == 5
    # the same schedule with order 1 at the end is the denoised x0 at the last point
    first = usf(den, PATH, x, grid, schedule=replace(sched, orders=(*sched.orders[:-1], 1)))
    x0 = (states[3] - PATH.sigma(t_last) * model(states[3], t_last)) / PATH.alpha(t_last)
    torch.testing.assert_close(first.x, PATH.alpha(t_zero) * x0, rtol=1e-10, atol=1e-10)


def test_respaced_grids_keep_the_end_points() -> None:
    """The search's other spacings: the first and last noisy points and the data point kept,
    the points between uniform in log-SNR (rho = inf) or in ``(sigma/alpha)^(1/rho)``."""
    from polyfold.core.samplers.usf import _respaced

    times = tuple(S.uniform_t_grid(PATH, 6, t_end=0.05, append_zero=True).tolist())
    out = _respaced(times, PATH, math.inf)
    assert out[0] == times[0]
    assert out[-2:] == times[-2:]
    lam = PATH.log_snr(torch.tensor(out[:-1], dtype=F64))
    torch.testing.assert_close(lam.diff(), torch.full((5,), float(lam.diff()[0]), dtype=F64))
    s = (-PATH.log_snr(torch.tensor(_respaced(times, PATH, 3.0)[:-1], dtype=F64)) / 6).exp()
    torch.testing.assert_close(s.diff(), torch.full((5,), float(s.diff()[0]), dtype=F64))
    assert _respaced(times[-3:], PATH, 2.0) == times[-3:]  # nothing between to respace


def test_schedule_error_with_a_shared_reference() -> None:
    """One reference solve serves every schedule with the same start and end."""
    from polyfold.core.samplers.usf import reference_end

    grid = S.uniform_t_grid(PATH, 4, append_zero=True)
    sched = SolverSchedule.default(PATH, grid)
    x = _noise(16, 12)
    ref = reference_end(DEN, PATH, x, grid)
    assert schedule_error(DEN, PATH, x, sched, reference=ref) == schedule_error(DEN, PATH, x, sched)
    with pytest.raises(InputError, match="reference: expected the end points of x"):
        schedule_error(DEN, PATH, x, sched, reference=ref[:4])
    with pytest.raises(InputError, match="sub: expected"):
        reference_end(DEN, PATH, x, grid, sub=1)
