"""Forward paths: log-SNR inverses, derivatives, SDE consistency, exact DDPM schedules, PFGM++."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.paths import (
    EDM,
    VE,
    DiscreteDDPM,
    GaussianPath,
    LinearInterpolant,
    PFGMPath,
    TrigInterpolant,
    VPCosine,
    VPLinear,
)
from polyfold.core.testing import ks_critical, ks_statistic

F64 = torch.float64

PATHS = [
    VPLinear(),
    VPCosine(),
    DiscreteDDPM(n=50),
    DiscreteDDPM(kind="squaredcos_cap_v2", n=40),
    VE(),
    EDM(),
    LinearInterpolant(),
    TrigInterpolant(),
    PFGMPath(64),
]
IDS = [repr(p) for p in PATHS]
GAUSSIAN = [p for p in PATHS if p.gaussian]


def interior(path: GaussianPath, n: int = 97) -> torch.Tensor:
    lo, hi = path.t_min, path.t_max
    return torch.linspace(lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo), n, dtype=F64)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_log_snr_decreasing_and_inverse_round_trips(path: GaussianPath) -> None:
    t = interior(path)
    lam = path.log_snr(t)
    assert torch.isfinite(lam).all()
    assert (lam.diff() < 0).all()
    torch.testing.assert_close(path.t_from_log_snr(lam), t, atol=1e-10, rtol=0)
    # the other direction, over the whole log-SNR range of the path
    lam_grid = torch.linspace(float(lam[-1]), float(lam[0]), 57, dtype=F64)
    torch.testing.assert_close(path.log_snr(path.t_from_log_snr(lam_grid)), lam_grid)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_closed_form_inverse_matches_generic_bisection(path: GaussianPath) -> None:
    lam = path.log_snr(interior(path, 13))
    generic = GaussianPath._t_from_log_snr(path, lam)
    torch.testing.assert_close(path.t_from_log_snr(lam), generic, atol=1e-12, rtol=0)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_derivatives_match_autograd(path: GaussianPath) -> None:
    t = interior(path, 31).requires_grad_(True)
    for value, deriv in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        out = value(t) + 0 * t  # constant alpha (VE, EDM) still gets a graph
        (grad,) = torch.autograd.grad(out.sum(), t)
        torch.testing.assert_close(deriv(t.detach()), grad, rtol=1e-9, atol=1e-12)


def _rk4(fn, y0: torch.Tensor, t0: float, t1: float, steps: int) -> torch.Tensor:
    h, y, t = (t1 - t0) / steps, y0, t0
    for _ in range(steps):
        k1 = fn(t, y)
        k2 = fn(t + h / 2, y + h / 2 * k1)
        k3 = fn(t + h / 2, y + h / 2 * k2)
        k4 = fn(t + h, y + h * k3)
        y, t = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + h
    return y


@pytest.mark.parametrize("path", GAUSSIAN, ids=[repr(p) for p in GAUSSIAN])
def test_sde_matches_autograd_of_the_marginal(path: GaussianPath) -> None:
    # f = d log(alpha)/dt and g^2 = d(sigma^2)/dt - 2 f sigma^2, by autograd of alpha, sigma
    t = interior(path, 29).requires_grad_(True)
    (dlog_alpha,) = torch.autograd.grad((path.alpha(t).log() + 0 * t).sum(), t)
    (dvar,) = torch.autograd.grad((path.sigma(t) ** 2).sum(), t)
    f, g = path.sde(t.detach())
    torch.testing.assert_close(f, dlog_alpha, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g**2, dvar - 2 * dlog_alpha * path.sigma(t.detach()) ** 2)


SMOOTH = [p for p in GAUSSIAN if not isinstance(p, DiscreteDDPM)]


@pytest.mark.parametrize("path", SMOOTH, ids=[repr(p) for p in SMOOTH])
def test_sde_reproduces_marginal_mean_and_variance(path: GaussianPath) -> None:
    # mean coefficient m' = f m and variance v' = 2 f v + g^2 carry (alpha, sigma^2) at t0
    # to (alpha, sigma^2) at t1
    t0, t1 = 0.2, 0.8

    def rhs(t: float, y: torch.Tensor) -> torch.Tensor:
        f, g = path.sde(torch.tensor(t, dtype=F64))
        return torch.stack([f * y[0], 2 * f * y[1] + g**2])

    y0 = torch.stack([path.alpha(t0), path.sigma(t0) ** 2]).to(F64)
    y1 = _rk4(rhs, y0, t0, t1, steps=300)
    expected = torch.stack([path.alpha(t1), path.sigma(t1) ** 2]).to(F64)
    torch.testing.assert_close(y1, expected, rtol=1e-6, atol=1e-10)


def test_sde_closed_forms() -> None:
    f, g = VPLinear(0.1, 20.0).sde(torch.tensor([0.0, 0.5, 1.0], dtype=F64))
    torch.testing.assert_close(g**2, torch.tensor([0.1, 10.05, 20.0], dtype=F64))
    torch.testing.assert_close(f, -0.5 * g**2)
    ve = VE(0.01, 50.0)
    _, g = ve.sde(torch.tensor(0.3, dtype=F64))
    assert float(g**2) == pytest.approx(float(ve.sigma(0.3)) ** 2 * 2 * math.log(5000))
    with pytest.raises(NotImplementedError):
        PFGMPath(8).sde(0.5)


def test_vp_linear_matches_score_sde_marginal() -> None:
    path = VPLinear(0.1, 20.0)
    t = torch.linspace(0, 1, 11, dtype=F64)
    log_mean = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    torch.testing.assert_close(path.alpha(t), log_mean.exp())
    torch.testing.assert_close(path.sigma(t), (1 - (2 * log_mean).exp()).sqrt())
    assert path.t_min == 1e-3
    assert path.t_max == 1.0
    assert path.log_snr(0.0).item() == math.inf


def test_float64_internals_keep_tiny_t_accurate_in_float32() -> None:
    t = torch.tensor([1e-7, 1e-5], dtype=torch.float32)
    lam = VPLinear().log_snr(t)
    assert lam.dtype == torch.float32
    m = 0.1 * t.double() + 0.5 * 19.9 * t.double() ** 2
    expected = -torch.log(torch.expm1(m))
    torch.testing.assert_close(lam.double(), expected, rtol=1e-6, atol=0)
    assert VPLinear().alpha(0.5).dtype == torch.get_default_dtype()
    assert VPLinear().alpha(torch.tensor([1])).dtype == torch.get_default_dtype()


def test_vp_cosine_is_iddpm_and_clipped() -> None:
    path = VPCosine(s=0.008)
    t = torch.linspace(0, 1, 21, dtype=F64)
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(path.alpha(t) ** 2, f / f[0], atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(path.alpha(t) ** 2 + path.sigma(t) ** 2, torch.ones_like(t))
    assert path.log_snr(1.0).item() == -math.inf
    assert path.t_max == 0.9946
    assert -10.0 < path.log_snr(path.t_max).item() < -9.0
    # sigma at tiny t is computed without cancellation
    small = torch.tensor(1e-9, dtype=F64)
    expected = (
        1
        - (torch.cos((small + 0.008) / 1.008 * math.pi / 2) / math.cos(0.008 / 1.008 * math.pi / 2))
        ** 2
    )
    assert path.sigma(small).item() ** 2 == pytest.approx(expected.item(), rel=1e-5)


def test_interpolants_infinite_log_snr_at_the_ends() -> None:
    for path in (LinearInterpolant(), TrigInterpolant()):
        ends = torch.tensor([0.0, 1.0], dtype=F64)
        lam = path.log_snr(ends)
        assert lam.tolist() == [math.inf, -math.inf]
        assert path.t_from_log_snr(lam).tolist() == [0.0, 1.0]
        assert path.prior_sample((4000, 2), generator=torch.Generator().manual_seed(0)).std() == (
            pytest.approx(1.0, abs=0.05)
        )
    t = torch.rand(9, dtype=F64)
    lin = LinearInterpolant()
    torch.testing.assert_close(lin.alpha(t), 1 - t)
    torch.testing.assert_close(lin.sigma(t), t)


def test_ve_and_edm_schedules() -> None:
    ve = VE(0.01, 50.0)
    torch.testing.assert_close(
        ve.sigma(torch.tensor([0.0, 1.0], dtype=F64)), torch.tensor([0.01, 50.0], dtype=F64)
    )
    edm = EDM(0.002, 80.0, 7.0)
    n = 18
    i = torch.arange(n, dtype=F64)
    karras = (80.0 ** (1 / 7) + i / (n - 1) * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    torch.testing.assert_close(edm.sigma(torch.linspace(1, 0, n, dtype=F64)), karras)
    # below sigma_min the inverse extends below t = 0, down to sigma = 0
    t0 = edm.t_from_log_snr(torch.tensor(math.inf, dtype=F64))
    assert t0.item() < 0
    assert edm.sigma(t0).item() == pytest.approx(0.0, abs=1e-100)
    g = torch.Generator().manual_seed(1)
    assert edm.prior_sample((5000,), generator=g).std().item() == pytest.approx(80.0, rel=0.05)


def _betas_reference(kind: str, n: int) -> np.ndarray:
    if kind == "linear":
        return np.linspace(1e-4, 0.02, n)
    if kind == "scaled_linear":
        return np.linspace(1e-4**0.5, 0.02**0.5, n) ** 2
    f = np.cos((np.arange(n + 1) / n + 0.008) / 1.008 * np.pi / 2) ** 2
    return np.minimum(1 - f[1:] / f[:-1], 0.999)


@pytest.mark.parametrize("kind", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_ddpm_matches_the_beta_product(kind: str) -> None:
    n = 1000
    path = DiscreteDDPM(kind=kind, n=n, dtype=F64)
    abar = np.cumprod(1 - _betas_reference(kind, n))
    t = (torch.arange(n, dtype=F64) + 1) / n
    np.testing.assert_allclose((path.alpha(t) ** 2).numpy(), abar, rtol=1e-10, atol=1e-15)
    assert path.t_min == 1 / n
    assert path.index_of(t[7]).item() == pytest.approx(7.0)
    # float32 product as diffusers computes it: same to float32 precision
    path32 = DiscreteDDPM(kind=kind, n=n)
    np.testing.assert_allclose((path32.alpha(t) ** 2).numpy(), abar, rtol=2e-4, atol=1e-9)


@pytest.mark.parametrize("kind", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_ddpm_equals_diffusers_exactly(kind: str) -> None:
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=kind)
    path = DiscreteDDPM(kind=kind)
    assert torch.equal(path.alphas_cumprod, sched.alphas_cumprod)
    t = (torch.arange(1000, dtype=F64) + 1) / 1000
    assert torch.equal((path.alpha(t) ** 2).float(), sched.alphas_cumprod)


def test_discrete_ddpm_interpolation() -> None:
    betas = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    path = DiscreteDDPM(betas, dtype=F64)
    abar = torch.cumprod(1 - betas, 0)
    knots_lam = torch.log(abar / (1 - abar))
    t = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64) / 4
    torch.testing.assert_close(path.log_snr(t), knots_lam)
    mid = torch.tensor([1.5, 2.5, 3.5], dtype=F64) / 4
    torch.testing.assert_close(path.log_snr(mid), 0.5 * (knots_lam[1:] + knots_lam[:-1]))
    # before the first step sigma^2 grows linearly from 0 to beta_0
    early = torch.tensor([0.0, 0.05, 0.125], dtype=F64)
    torch.testing.assert_close(path.sigma(early) ** 2, early * 4 * 0.1)
    with pytest.raises(InputError, match="betas"):
        DiscreteDDPM([0.1, 1.0])
    with pytest.raises(InputError, match="kind"):
        DiscreteDDPM(kind="quadratic")  # type: ignore[arg-type]


def test_perturb_and_noise_are_reproducible() -> None:
    path = VPLinear()
    x0 = torch.randn(3, 4, 2)
    t = torch.tensor([0.1, 0.5, 0.9])
    noise = path.sample_noise(x0.shape, generator=torch.Generator().manual_seed(3))
    again = path.sample_noise(x0.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(noise, again)
    x_t = path.perturb(x0, t, noise)
    expected = path.alpha(t)[:, None, None] * x0 + path.sigma(t)[:, None, None] * noise
    torch.testing.assert_close(x_t, expected)


def test_invalid_parameters_raise_input_error() -> None:
    with pytest.raises(InputError, match="sigma_max"):
        VE(1.0, 0.5)
    with pytest.raises(InputError, match="rho"):
        EDM(rho=-1.0)
    with pytest.raises(InputError, match="D"):
        PFGMPath(0)


def _norm_cdf(x: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(x)


def test_pfgm_kernel_tends_to_gaussian_for_large_d() -> None:
    g = torch.Generator().manual_seed(0)
    eps = PFGMPath(1e7).sample_noise((4000, 3), generator=g, dtype=F64)
    assert ks_statistic(eps[:, 0], _norm_cdf) < ks_critical(4000)
    torch.testing.assert_close(eps.mean(0), torch.zeros(3, dtype=F64), atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(eps.T), torch.eye(3, dtype=F64), atol=0.08, rtol=0)
    # a small D is heavy-tailed: each coordinate is Student-t with D dof, P(|t_3| > 3) = 0.058
    assert (eps.abs() > 3).double().mean().item() < 0.006
    heavy = PFGMPath(3).sample_noise((4000, 3), generator=g, dtype=F64)
    assert (heavy.abs() > 3).double().mean().item() == pytest.approx(0.058, abs=0.012)


def test_pfgm_radius_and_direction_follow_the_paper() -> None:
    # N = 2 data dims, D = 4: R1 = R^2 / (R^2 + r^2) ~ Beta(1, 2), CDF 1 - (1 - x)^2;
    # the direction is uniform on the circle; x_t = x0 + sigma eps, r = sigma sqrt(D).
    path = PFGMPath(4)
    eps = path.sample_noise((6000, 2), generator=torch.Generator().manual_seed(5), dtype=F64)
    t = torch.tensor([0.3, 0.9], dtype=F64)
    torch.testing.assert_close(path.r(t), path.sigma(t) * 2.0)
    sigma = 1.7
    radius2, r2 = (sigma * eps).pow(2).sum(1), 4 * sigma**2
    beta = radius2 / (radius2 + r2)
    assert ks_statistic(beta, lambda x: 1 - (1 - x) ** 2) < ks_critical(6000)
    angle = torch.atan2(eps[:, 1], eps[:, 0])
    assert ks_statistic(angle, lambda a: (a + math.pi) / (2 * math.pi)) < ks_critical(6000)
    # multivariate t with D dof: E||eps||^2 = N D / (D - 2), = 2.4 for N = 2, D = 12
    eps12 = PFGMPath(12).sample_noise((6000, 2), generator=torch.Generator().manual_seed(6))
    assert eps12.pow(2).sum(1).mean().item() == pytest.approx(2.4, rel=0.06)
    assert not path.gaussian
    prior = path.prior_sample((8, 2), generator=torch.Generator().manual_seed(0))
    assert prior.shape == (8, 2)
