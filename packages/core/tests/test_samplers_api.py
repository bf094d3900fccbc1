"""Sampler contracts: model calls, masks, dict states, generators, errors, and identities."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from polyfold.core import samplers as S
from polyfold.core.denoiser import Denoised, as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VE, GaussianPath, LinearInterpolant, PFGMPath, VPLinear
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
GMM = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]], stds=[0.6, 0.8], weights=[0.4, 0.6])
GMM3 = GaussianMixture([[0.5, -1.0, 1.0], [-0.5, 1.0, 0.0]], stds=[0.7, 0.5])
PATH = VPLinear()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


Call = Callable[..., S.SampleResult]

# name: (call(den, paths, x, grid, gen, **kw), stochastic, NFE for N steps (zero end?))
SAMPLERS: dict[str, tuple[Call, bool, Callable[[int, bool], int]]] = {
    "euler_t": (lambda d, p, x, g, r, **k: S.euler(d, p, x, g, **k), False, lambda n, z: n),
    "heun_t": (lambda d, p, x, g, r, **k: S.heun(d, p, x, g, **k), False, lambda n, z: 2 * n),
    "heun_sigma": (
        lambda d, p, x, g, r, **k: S.heun(d, p, x, g, variable="sigma", **k),
        False,
        lambda n, z: 2 * n - z,
    ),
    "midpoint_t": (
        lambda d, p, x, g, r, **k: S.midpoint(d, p, x, g, **k),
        False,
        lambda n, z: 2 * n,
    ),
    "rk4_sigma": (
        lambda d, p, x, g, r, **k: S.rk4(d, p, x, g, variable="sigma", **k),
        False,
        lambda n, z: 4 * n - 3 * z,
    ),
    "ddim": (lambda d, p, x, g, r, **k: S.ddim(d, p, x, g, **k), False, lambda n, z: n),
    "ddim_eta": (
        lambda d, p, x, g, r, **k: S.ddim(d, p, x, g, eta=0.7, generator=r, **k),
        True,
        lambda n, z: n,
    ),
    "ddpm": (
        lambda d, p, x, g, r, **k: S.ddpm(d, p, x, g, variance="large", generator=r, **k),
        True,
        lambda n, z: n,
    ),
    "euler_maruyama": (
        lambda d, p, x, g, r, **k: S.euler_maruyama(d, p, x, g, generator=r, **k),
        True,
        lambda n, z: n,
    ),
    "predictor_corrector": (
        lambda d, p, x, g, r, **k: S.predictor_corrector(
            d, p, x, g, n_corrector=2, generator=r, **k
        ),
        True,
        lambda n, z: 3 * n,
    ),
    "dpm_solver_3s": (
        lambda d, p, x, g, r, **k: S.dpm_solver(d, p, x, g, order=3, **k),
        False,
        lambda n, z: 3 * n - 2 * z,
    ),
    "dpm_solver_2m": (
        lambda d, p, x, g, r, **k: S.dpm_solver(d, p, x, g, method="multistep", **k),
        False,
        lambda n, z: n,
    ),
    "dpm_solver_pp_2s": (
        lambda d, p, x, g, r, **k: S.dpm_solver_pp(d, p, x, g, method="singlestep", **k),
        False,
        lambda n, z: 2 * n - z,
    ),
    "dpm_solver_pp_3m": (
        lambda d, p, x, g, r, **k: S.dpm_solver_pp(d, p, x, g, order=3, **k),
        False,
        lambda n, z: n,
    ),
    "sde_dpm_solver_pp_2m": (
        lambda d, p, x, g, r, **k: S.sde_dpm_solver_pp_2m(d, p, x, g, generator=r, **k),
        True,
        lambda n, z: n,
    ),
    "unipc": (lambda d, p, x, g, r, **k: S.unipc(d, p, x, g, order=3, **k), False, lambda n, z: n),
    "deis": (lambda d, p, x, g, r, **k: S.deis(d, p, x, g, **k), False, lambda n, z: n),
    "pndm": (lambda d, p, x, g, r, **k: S.pndm(d, p, x, g, **k), False, lambda n, z: n + 9),
    "ipndm": (
        lambda d, p, x, g, r, **k: S.pndm(d, p, x, g, variant="ipndm", **k),
        False,
        lambda n, z: n,
    ),
    "edm_heun": (
        lambda d, p, x, g, r, **k: S.edm_heun(d, p, x, g, s_churn=5.0, generator=r, **k),
        True,
        lambda n, z: 2 * n - z,
    ),
}
# the variable='t' ODE solvers integrate to the data point only on paths with finite d_sigma there
NO_ZERO_END = {"euler_t", "heun_t", "midpoint_t"}


def _den(path: GaussianPath = PATH, gmm: GaussianMixture = GMM, pred: str = "eps"):
    return as_denoiser(gmm.model(path, pred), path, prediction=pred)  # type: ignore[arg-type]


def _x(n: int = 16, d: int = 2, seed: int = 1, path: GaussianPath = PATH) -> Tensor:
    return path.prior_sample((n, d), generator=_gen(seed), dtype=F64)


@pytest.mark.parametrize(
    ("name", "zero"),
    [(n, False) for n in SAMPLERS] + [(n, True) for n in SAMPLERS if n not in NO_ZERO_END],
)
def test_nfe_is_counted(name: str, zero: bool) -> None:
    call, _, nfe = SAMPLERS[name]
    model = GMM.model(PATH, "eps")
    den = as_denoiser(model, PATH, prediction="eps")
    n = 6
    grid = S.log_snr_grid(PATH, n, append_zero=zero)
    res = call(den, PATH, _x(), grid, _gen())
    assert res.nfe == nfe(n, zero) == model.nfe == den.nfe
    assert torch.equal(res.grid, S.check_grid(grid, PATH))


def test_nfe_of_the_dpm_solver_fast_schedule() -> None:
    for nfe, order in [(10, 3), (11, 3), (12, 3), (7, 2), (8, 2), (5, 1)]:
        orders = S.singlestep_orders(nfe, order)
        assert sum(orders) == nfe
        assert max(orders) == order
        res = S.dpm_solver(_den(), PATH, _x(), S.log_snr_grid(PATH, len(orders)), orders=orders)
        assert res.nfe == nfe
    assert S.singlestep_orders(9, 3) == [3, 3, 2, 1]
    assert S.singlestep_orders(10, 3) == [3, 3, 3, 1]
    assert S.singlestep_orders(11, 3) == [3, 3, 3, 2]


def test_variable_t_takes_the_last_step_to_a_data_point_as_the_final_denoise() -> None:
    # VP's d_sigma is infinite at t = 0: the last step is x = alpha x0, one call (EDM's rule)
    grid = S.uniform_t_grid(PATH, 4, append_zero=True)
    seen: list[Tensor] = []
    res = S.heun(_den(), PATH, _x(), grid, callback=lambda i, t, x, x0: seen.append(x0))
    assert res.nfe == 2 * 4 - 1
    assert torch.isfinite(res.x).all()
    assert torch.equal(res.x, seen[-1])


# -- masks ----------------------------------------------------------------------------------


def _positionwise_model(path: GaussianPath) -> Callable[[Tensor, Tensor, Any], Tensor]:
    """The exact eps of GMM applied to every position of a (B, L, 2) state independently."""

    def model(x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        b, length, c = x.shape
        flat = GMM.predict(x.reshape(b * length, c), t.repeat_interleave(length), path, "eps")
        return flat.reshape(x.shape)

    return model


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_masked_entries_stay_untouched(name: str) -> None:
    call, _, _ = SAMPLERS[name]
    den = as_denoiser(_positionwise_model(PATH), PATH, prediction="eps")
    x = PATH.prior_sample((4, 5, 2), generator=_gen(3), dtype=F64)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]] * 2)
    grid = S.log_snr_grid(PATH, 5, append_zero=name not in NO_ZERO_END)
    masked = call(den, PATH, x, grid, _gen(), mask=mask).x
    assert torch.equal(masked[~mask], x[~mask])
    assert torch.isfinite(masked).all()
    if name != "predictor_corrector":  # its step size depends on the valid entries' norms
        free = call(den, PATH, x, grid, _gen()).x
        torch.testing.assert_close(masked[mask], free[mask], rtol=1e-10, atol=1e-10)


def test_bad_mask_raises_input_error() -> None:
    with pytest.raises(InputError, match="mask"):
        S.ddim(
            _den(), PATH, _x(), S.log_snr_grid(PATH, 3), mask=torch.ones(16, 3, dtype=torch.bool)
        )
    with pytest.raises(InputError, match="bool"):
        S.ddim(_den(), PATH, _x(), S.log_snr_grid(PATH, 3), mask=torch.ones(16))


# -- dict states ----------------------------------------------------------------------------


def _dict_setup(paths: dict[str, GaussianPath]):
    gmms = {"a": GMM, "b": GMM3}

    def model(x: dict[str, Tensor], t: Tensor, cond: Any = None) -> dict[str, Tensor]:
        return {k: gmms[k].predict(x[k], t, paths[k], "eps") for k in x}

    den = as_denoiser(model, paths, prediction="eps")
    x = {"a": _x(8, 2, 1, paths["a"]), "b": _x(8, 3, 2, paths["b"])}
    singles = {
        k: (as_denoiser(gmms[k].model(paths[k], "eps"), paths[k], prediction="eps")) for k in x
    }
    return den, x, singles


# samplers whose keys evolve independently given the time grid (multi-path dict states)
PER_KEY = [
    "euler_t",
    "heun_t",
    "midpoint_t",
    "ddim",
    "dpm_solver_2m",
    "dpm_solver_pp_3m",
    "unipc",
    "deis",
    "pndm",
    "ipndm",
]


@pytest.mark.parametrize("name", PER_KEY)
def test_dict_state_with_a_path_per_key(name: str) -> None:
    paths = {"a": VPLinear(), "b": VE()}
    den, x, singles = _dict_setup(paths)
    grid = torch.tensor([0.95, 0.7, 0.5, 0.3, 0.15, 0.05], dtype=F64)
    call, _, _ = SAMPLERS[name]
    joint = call(den, paths, x, grid, _gen())
    assert set(joint.x) == {"a", "b"}
    for k in x:
        alone = call(singles[k], paths[k], x[k], grid, _gen()).x
        torch.testing.assert_close(joint.x[k], alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["heun_sigma", "rk4_sigma", "dpm_solver_3s", "dpm_solver_pp_2s"])
def test_dict_state_with_a_shared_path(name: str) -> None:
    paths = {"a": PATH, "b": PATH}
    den, x, singles = _dict_setup(paths)
    grid = S.log_snr_grid(PATH, 5, append_zero=True)
    call, _, _ = SAMPLERS[name]
    joint = call(den, PATH, x, grid, _gen()).x
    for k in x:
        torch.testing.assert_close(joint[k], call(singles[k], PATH, x[k], grid, _gen()).x)


def test_sigma_variable_needs_one_log_snr_schedule() -> None:
    paths = {"a": VPLinear(), "b": VE()}
    den, x, _ = _dict_setup(paths)
    grid = torch.tensor([0.9, 0.5, 0.1], dtype=F64)
    with pytest.raises(InputError, match="log-SNR"):
        S.heun(den, paths, x, grid, variable="sigma")
    with pytest.raises(InputError, match="log-SNR"):
        S.edm_heun(den, paths, x, grid)


def test_dict_state_key_mismatch_raises() -> None:
    den, x, _ = _dict_setup({"a": PATH, "b": PATH})
    with pytest.raises(InputError, match="keys"):
        S.ddim(den, {"a": PATH}, x, S.log_snr_grid(PATH, 3))
    with pytest.raises(InputError, match="dict"):
        S.ddim(den, {"a": PATH, "b": PATH}, x["a"], S.log_snr_grid(PATH, 3))


# -- generators and determinism -------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_generator_same_output(name: str) -> None:
    call, stochastic, _ = SAMPLERS[name]
    grid = S.log_snr_grid(PATH, 5, append_zero=name not in NO_ZERO_END)
    a = call(_den(), PATH, _x(), grid, _gen(11)).x
    b = call(_den(), PATH, _x(), grid, _gen(11)).x
    assert torch.equal(a, b)
    c = call(_den(), PATH, _x(), grid, _gen(12)).x
    assert torch.equal(a, c) != stochastic


def test_initial_state_is_not_modified_and_dtype_is_kept() -> None:
    x = _x().float()
    before = x.clone()
    for name, (call, _, _) in SAMPLERS.items():
        grid = S.log_snr_grid(PATH, 4, append_zero=name not in NO_ZERO_END)
        out = call(_den(), PATH, x, grid, _gen()).x
        assert out.dtype == torch.float32, name
        assert torch.isfinite(out).all(), name
    assert torch.equal(x, before)


# -- custom noise --------------------------------------------------------------------------------

NOISY = [
    "ddim_eta",
    "ddpm",
    "euler_maruyama",
    "predictor_corrector",
    "sde_dpm_solver_pp_2m",
    "edm_heun",
]
SYM = GaussianMixture(
    [[0.5, -1.0, 0.2, -1.0, 1.0, 0.3, 0.2, 0.3, -0.4]], stds=0.6, event_shape=(3, 3)
)


def _symmetric_noise(x: Tensor, g: torch.Generator | None) -> Tensor:
    z = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return (z + z.transpose(-1, -2)) / math.sqrt(2.0)


@pytest.mark.parametrize("name", NOISY)
def test_noise_fn_keeps_a_symmetric_state_symmetric(name: str) -> None:
    call, _, _ = SAMPLERS[name]
    den = _den(gmm=SYM)
    x = _symmetric_noise(torch.empty(8, 3, 3, dtype=F64), _gen(3))
    grid = torch.tensor([0.9, 0.6, 0.3, 0.1], dtype=F64)
    sym = call(den, PATH, x, grid, _gen(5), noise=_symmetric_noise).x
    torch.testing.assert_close(sym, sym.transpose(-1, -2), rtol=0, atol=1e-12)
    iid = call(den, PATH, x, grid, _gen(5)).x
    assert (iid - iid.transpose(-1, -2)).abs().max() > 1e-2


@pytest.mark.parametrize("name", NOISY)
def test_default_noise_is_iid_from_the_generator(name: str) -> None:
    call, _, _ = SAMPLERS[name]
    grid = S.log_snr_grid(PATH, 4)

    def iid(x: Tensor, g: torch.Generator | None) -> Tensor:
        return torch.randn(x.shape, generator=g, dtype=x.dtype)

    a = call(_den(), PATH, _x(), grid, _gen(7)).x
    b = call(_den(), PATH, _x(), grid, _gen(7), noise=iid).x
    assert torch.equal(a, b)


def test_corrector_noise_is_scaled_by_scale_eps() -> None:
    """With a Gaussian target (a linear denoiser) and fixed noise, one corrector-predictor step
    is affine in ``scale_eps``; ``scale_eps = 0`` leaves only the predictor's noise."""
    gauss = GaussianMixture([[0.3, -0.2]], stds=0.7)
    den, x = _den(gmm=gauss), _x()
    z = torch.randn(x.shape, generator=_gen(9), dtype=F64)
    grid = torch.tensor([0.6, 0.5], dtype=F64)

    def run(scale: float) -> Tensor:
        return S.predictor_corrector(
            den, PATH, x, grid, scale_eps=scale, noise=lambda xi, g: z.clone()
        ).x

    a, b, h = run(0.0), run(1.0), run(0.5)
    torch.testing.assert_close(h, 0.5 * (a + b), rtol=1e-12, atol=1e-12)
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(
        run(1.0), S.predictor_corrector(den, PATH, x, grid, noise=lambda xi, g: z.clone()).x
    )


# -- identities between samplers --------------------------------------------------------------


def test_first_order_solvers_coincide() -> None:
    den, x = _den(), _x()
    grid = S.log_snr_grid(PATH, 7, append_zero=True)
    ref = S.ddim(den, PATH, x, grid).x
    for out in (
        S.dpm_solver(den, PATH, x, grid, order=1).x,
        S.dpm_solver_pp(den, PATH, x, grid, order=1).x,
        S.deis(den, PATH, x, grid, order=1).x,
        S.euler(den, PATH, x, grid, variable="sigma").x,
        S.unipc(den, PATH, x, grid, order=1, corrector=False).x,
    ):
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_known_equivalences() -> None:
    den, x = _den(), _x()
    grid = S.log_snr_grid(PATH, 9, append_zero=True)
    # DDPM's posterior variance is DDIM with eta = 1
    torch.testing.assert_close(
        S.ddpm(den, PATH, x, grid, generator=_gen(4)).x,
        S.ddim(den, PATH, x, grid, eta=1.0, generator=_gen(4)).x,
    )
    # UniP-2 with B(h) = e^{hh} - 1 is DPM-Solver++(2M)
    torch.testing.assert_close(
        S.unipc(den, PATH, x, grid, corrector=False).x, S.dpm_solver_pp(den, PATH, x, grid).x
    )
    # EDM without churn is Heun in sigma/alpha
    torch.testing.assert_close(
        S.edm_heun(den, PATH, x, grid).x, S.heun(den, PATH, x, grid, variable="sigma").x
    )


def test_lower_order_final_on_short_grids_only() -> None:
    den, x = _den(), _x()
    short, long = S.log_snr_grid(PATH, 8), S.log_snr_grid(PATH, 16)
    for solver in (S.dpm_solver_pp, S.deis):
        a = solver(den, PATH, x, short, order=3).x
        b = solver(den, PATH, x, short, order=3, lower_order_final=False).x
        assert not torch.allclose(a, b)
        a = solver(den, PATH, x, long, order=3).x
        assert torch.equal(a, solver(den, PATH, x, long, order=3, lower_order_final=False).x)


class _Fixed:
    """A denoiser returning a fixed (possibly inconsistent, CFG++-like) pair."""

    def __init__(self, x0: Tensor, eps: Tensor) -> None:
        self.x0, self.eps = x0, eps

    def __call__(self, x: Tensor, t: Tensor) -> Denoised:
        return Denoised(self.x0, self.eps)


def test_each_sampler_reads_the_prediction_its_update_uses() -> None:
    g = _gen(9)
    x, x2 = torch.randn(4, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)
    a, a2 = torch.randn(4, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)
    e, e2 = torch.randn(4, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)
    grid = torch.tensor([0.8, 0.5], dtype=F64)
    alpha_t, sigma_t = float(PATH.alpha(0.5)), float(PATH.sigma(0.5))

    def run(fn: Call, den: _Fixed, state: Tensor = x) -> Tensor:
        return fn(den, PATH, state, grid, None).x

    ddim = SAMPLERS["ddim"][0]
    # DDIM re-noises: alpha_t x0 + sigma_t eps, whatever the state (CFG++'s rule)
    torch.testing.assert_close(run(ddim, _Fixed(a, e)), alpha_t * a + sigma_t * e)
    torch.testing.assert_close(run(ddim, _Fixed(a, e), x2), run(ddim, _Fixed(a, e)))
    data_only = [SAMPLERS[n][0] for n in ("dpm_solver_pp_3m", "dpm_solver_pp_2s", "unipc")]
    noise_only = [SAMPLERS[n][0] for n in ("dpm_solver_3s", "deis", "pndm", "rk4_sigma")]
    for fn in data_only:
        torch.testing.assert_close(run(fn, _Fixed(a, e)), run(fn, _Fixed(a, e2)))
        assert not torch.allclose(run(fn, _Fixed(a, e)), run(fn, _Fixed(a2, e)))
    for fn in noise_only:
        torch.testing.assert_close(run(fn, _Fixed(a, e)), run(fn, _Fixed(a2, e)))
        assert not torch.allclose(run(fn, _Fixed(a, e)), run(fn, _Fixed(a, e2)))
    # the flow velocity of variable='t' uses both
    euler = SAMPLERS["euler_t"][0]
    assert not torch.allclose(run(euler, _Fixed(a, e)), run(euler, _Fixed(a2, e)))
    assert not torch.allclose(run(euler, _Fixed(a, e)), run(euler, _Fixed(a, e2)))


# -- errors -----------------------------------------------------------------------------------


def test_bad_arguments_raise_input_error() -> None:
    den, x, grid = _den(), _x(), S.log_snr_grid(PATH, 4)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: S.dpm_solver(den, PATH, x, grid, order=4), "order"),
        (lambda: S.dpm_solver(den, PATH, x, grid, method="adaptive"), "method"),  # type: ignore[arg-type]
        (lambda: S.dpm_solver(den, PATH, x, grid, orders=[3, 3]), "orders"),
        (lambda: S.unipc(den, PATH, x, grid, variant="bh3"), "variant"),  # type: ignore[arg-type]
        (lambda: S.unipc(den, PATH, x, grid, prediction="v"), "prediction"),  # type: ignore[arg-type]
        (lambda: S.deis(den, PATH, x, grid, basis="rho"), "basis"),  # type: ignore[arg-type]
        (lambda: S.pndm(den, PATH, x, grid, variant="spndm"), "variant"),  # type: ignore[arg-type]
        (lambda: S.ddim(den, PATH, x, grid, eta=-1.0), "eta"),
        (lambda: S.ddpm(den, PATH, x, grid, variance="fixed"), "variance"),  # type: ignore[arg-type]
        (lambda: S.predictor_corrector(den, PATH, x, grid, snr=0.0), "snr"),
        (lambda: S.predictor_corrector(den, PATH, x, grid, scale_eps=-1.0), "scale_eps"),
        (lambda: S.ddpm(den, PATH, x, grid, noise="gaussian"), "noise must be callable"),  # type: ignore[arg-type]
        (lambda: S.ddpm(den, PATH, x, grid, noise=lambda xi, g: xi[:1]), "noise returned"),
        (
            lambda: S.euler_maruyama(den, PATH, x, grid, noise=lambda xi, g: {"x": xi}),
            "noise returned",
        ),
        (lambda: S.euler(den, PATH, x, grid, variable="lambda"), "variable"),  # type: ignore[arg-type]
        (lambda: S.edm_heun(den, PATH, x, grid, s_churn=-1.0), "s_churn"),
        (lambda: S.ddim(lambda x, t: x, PATH, x, grid), "Denoised"),  # type: ignore[arg-type,return-value]
        (lambda: S.ddim(den, PATH, x.long(), grid), "floating"),
        (lambda: S.ddim(den, "vp", x, grid), "GaussianPath"),  # type: ignore[arg-type]
    ]
    for fn, match in cases:
        with pytest.raises(InputError, match=match):
            fn()


def test_path_restrictions() -> None:
    flow = LinearInterpolant()
    den = _den(flow, pred="velocity")
    x, grid = _x(path=flow), S.uniform_t_grid(flow, 4)  # starts at alpha = 0
    for fn in (S.dpm_solver, S.deis, S.pndm):
        with pytest.raises(InputError, match="alpha > 0"):
            fn(den, flow, x, grid)
    with pytest.raises(InputError, match="alpha > 0"):
        S.heun(den, flow, x, grid, variable="sigma")
    assert math.isfinite(float(S.dpm_solver_pp(den, flow, x, grid).x.sum()))  # x0 frame is fine
    pfgm = PFGMPath(8.0)
    den = as_denoiser(lambda xt, t, c: xt, pfgm, prediction="x0")
    for fn in (S.euler_maruyama, S.predictor_corrector, S.sde_dpm_solver_pp_2m):
        with pytest.raises(InputError, match="SDE"):
            fn(den, pfgm, _x(path=pfgm), S.uniform_t_grid(pfgm, 3))
    S.ddim(den, pfgm, _x(path=pfgm), S.uniform_t_grid(pfgm, 3))  # deterministic samplers run


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_states_use_the_fused_update(dtype: torch.dtype) -> None:
    den = _den()
    grid = S.log_snr_grid(PATH, 12, append_zero=True)
    for fn in (S.ddim, S.dpm_solver_pp, S.unipc):
        ref = fn(den, PATH, _x(), grid).x
        out = fn(den, PATH, _x().to(dtype), grid).x
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.05)
