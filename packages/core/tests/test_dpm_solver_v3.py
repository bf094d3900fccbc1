"""DPM-Solver-v3: reduction to DPM-Solver(++) with trivial statistics, EMS estimation on exact
Gaussian models, and accuracy on a Gaussian mixture against DPM-Solver++ on the same grid."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import dpm_solver, dpm_solver_pp, log_snr_grid, unipc
from polyfold.core.samplers._core import levels
from polyfold.core.samplers._expint import frame, poly_weights
from polyfold.core.samplers.dpm_solver_v3 import EMS, compute_ems, dpm_solver_v3
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()


def mixture() -> GaussianMixture:
    return GaussianMixture([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.0]], stds=[0.4, 0.6, 0.3])


def denoiser(gmm: GaussianMixture):
    return as_denoiser(gmm.model(PATH, "eps"), PATH, prediction="eps")


def start(n: int = 128, seed: int = 0) -> torch.Tensor:
    return PATH.prior_sample((n, 2), generator=torch.Generator().manual_seed(seed), dtype=F64)


def exact_polynomial_multistep(
    den, x: torch.Tensor, grid: torch.Tensor, order: int
) -> torch.Tensor:
    """DPM-Solver++ integrating the polynomial through the last ``order`` x0 exactly."""
    lvs = levels(PATH, grid)
    hist: list[tuple[float, torch.Tensor]] = []
    for i in range(len(lvs) - 1):
        d = den(x, torch.full((x.shape[0],), lvs[i].t, dtype=F64))
        hist = [(lvs[i].ell, d.x0), *hist][:order]
        fr = frame("x0", lvs[i], lvs[i + 1])
        w = poly_weights(fr, [(e - lvs[i].ell) / fr.h for e, _ in hist])
        x = fr.a * x + sum(wj * m for wj, (_, m) in zip(w, hist, strict=True))
    return x


def test_trivial_statistics_reduce_to_dpm_solver_pp_and_dpm_solver() -> None:
    den = denoiser(mixture())
    x = start()
    grid = log_snr_grid(PATH, 8)
    v3 = dpm_solver_v3(den, PATH, x, grid, ems=EMS.trivial("x0"), order=1, corrector=False)
    torch.testing.assert_close(
        v3.x, dpm_solver_pp(den, PATH, x, grid, order=1).x, rtol=0, atol=1e-8
    )
    assert v3.nfe == 8
    v3 = dpm_solver_v3(
        den, PATH, x, grid, ems=EMS.trivial("x0"), order=3, corrector=False,
        lower_order_final=False,
    )  # fmt: skip
    ref = exact_polynomial_multistep(den, x, grid, 3)
    torch.testing.assert_close(v3.x, ref, rtol=0, atol=1e-7)
    # and the noise-prediction solver with l = 0, s = -1, b = 0
    eps = dpm_solver_v3(den, PATH, x, grid, ems=EMS.trivial("eps"), order=1, corrector=False)
    ref_eps = dpm_solver(den, PATH, x, grid, order=1, method="multistep").x
    torch.testing.assert_close(eps.x, ref_eps, rtol=0, atol=1e-7)


def test_ems_of_a_gaussian_match_the_closed_form() -> None:
    # data N(mu, diag(c^2)): eps = sigma (x - alpha mu)/(alpha^2 c^2 + sigma^2), so
    # l = sigma^2/(alpha^2 c^2 + sigma^2) = 1/(e^{2 ell} c^2 + 1), f = -l mu exactly (s = 0) and
    # f' = -l' mu, so b = -l' mu
    mu, c = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    gmm = GaussianMixture(mu[None], stds=c[None])
    den = denoiser(gmm)
    data = gmm.sample(64, generator=torch.Generator().manual_seed(0), dtype=F64)
    for diagonal in ("exact", "rademacher"):  # a diagonal Jacobian: the probe estimate is exact
        ems = compute_ems(
            den,
            PATH,
            data,
            n_knots=80,
            diagonal=diagonal,
            generator=torch.Generator().manual_seed(1),
        )
        e2 = torch.exp(2 * ems.ell)[:, None] * c**2
        l_exact = 1 / (e2 + 1)
        torch.testing.assert_close(ems.l, l_exact.to(F64), rtol=0, atol=1e-8)
    assert ems.l.shape == (80, 2)
    torch.testing.assert_close(ems.s, torch.zeros_like(ems.s), rtol=0, atol=1e-6)
    dl = -2 * e2 / (e2 + 1) ** 2
    torch.testing.assert_close(ems.b, (-dl * mu).to(F64), rtol=0, atol=2e-2)


def test_ems_are_nontrivial_on_a_mixture_and_bounded() -> None:
    gmm = mixture()
    ems = compute_ems(
        denoiser(gmm),
        PATH,
        gmm.sample(256, dtype=F64),
        n_knots=30,
        generator=torch.Generator().manual_seed(3),
    )
    assert ems.ell.shape == (30,)
    # l ~ 1 at high noise (eps ~ x/sigma), ~ 0 at low noise (eps ~ the data's fixed noise)
    assert float(ems.l[0].min()) > 0.95
    assert float(ems.l[-1].max()) < 0.05
    assert float(ems.s.abs().max()) > 0.1  # s, b fitted, not zero
    assert bool(torch.isfinite(ems.b).all())


@pytest.fixture(scope="module")
def mixture_setup():
    gmm = mixture()
    den = denoiser(gmm)
    data = gmm.sample(512, generator=torch.Generator().manual_seed(1), dtype=F64)
    ems = compute_ems(den, PATH, data, n_knots=60, generator=torch.Generator().manual_seed(2))
    x = start(256)
    ref = dpm_solver_pp(den, PATH, x, log_snr_grid(PATH, 300), order=3).x
    return den, ems, x, ref


def test_converges_on_the_mixture(mixture_setup) -> None:
    den, ems, x, ref = mixture_setup
    errs = []
    for n in (10, 20, 40):
        out = dpm_solver_v3(den, PATH, x, log_snr_grid(PATH, n), ems=ems)
        assert out.nfe == n
        errs.append((out.x - ref).norm(dim=1).mean().item())
    # measured 0.039, 0.0071, 0.00097: about third order
    assert errs[2] < 2e-3
    assert errs[1] < errs[0] / 4
    assert errs[2] < errs[1] / 5


def test_low_nfe_error_no_worse_than_dpm_solver_pp(mixture_setup) -> None:
    # measured (mean |x - x_ref|), 5/8/10 steps: v3 0.163/0.089/0.039,
    # DPM-Solver++(2M) 0.172/0.167/0.123, (3M) 0.313/0.341/0.086
    den, ems, x, ref = mixture_setup
    for n in (5, 8, 10):
        grid = log_snr_grid(PATH, n)
        err = {
            "v3": dpm_solver_v3(den, PATH, x, grid, ems=ems).x,
            "pp2": dpm_solver_pp(den, PATH, x, grid, order=2).x,
            "pp3": dpm_solver_pp(den, PATH, x, grid, order=3).x,
            "unipc": unipc(den, PATH, x, grid, order=2).x,
        }
        err = {k: (v - ref).norm(dim=1).mean().item() for k, v in err.items()}
        assert err["v3"] <= min(err["pp2"], err["pp3"]), (n, err)
        if n >= 8:
            assert err["v3"] < 0.75 * min(err["pp2"], err["pp3"], err["unipc"]), (n, err)


def test_final_denoising_step_and_masks(mixture_setup) -> None:
    den, ems, x, _ = mixture_setup
    xs = x[:8, None, :].expand(8, 3, 2).contiguous()  # (B, L, C) with padding
    mask = torch.tensor([True, True, False]).expand(8, 3)
    model = mixture().model(PATH, "eps")

    def seq_model(xt: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        return model(xt.reshape(-1, 2), t.repeat_interleave(3)).reshape(xt.shape)

    seq_den = as_denoiser(seq_model, PATH, prediction="eps")
    ems_seq = EMS(ems.ell, ems.l[:, None], ems.s[:, None], ems.b[:, None])  # (K, 1, 2)
    grid = log_snr_grid(PATH, 6, append_zero=True)
    out = dpm_solver_v3(seq_den, PATH, xs, grid, ems=ems_seq, mask=mask)
    assert out.nfe == 6
    assert torch.equal(out.x[:, 2], xs[:, 2])
    plain = dpm_solver_v3(den, PATH, x[:8], grid, ems=ems)
    torch.testing.assert_close(out.x[:, 0], plain.x, rtol=1e-10, atol=1e-10)


def test_dpm_solver_v3_rejects_bad_arguments(mixture_setup) -> None:
    den, ems, x, _ = mixture_setup
    grid = log_snr_grid(PATH, 4)
    with pytest.raises(InputError, match="order"):
        dpm_solver_v3(den, PATH, x, grid, ems=ems, order=4)
    with pytest.raises(InputError, match="event shape"):
        dpm_solver_v3(den, PATH, x, grid, ems=EMS.trivial(event_shape=(3,)))
    with pytest.raises(InputError, match="tensor state"):
        dpm_solver_v3(den, {"a": PATH}, {"a": x}, grid, ems=ems)
    with pytest.raises(InputError, match="increasing"):
        EMS(torch.tensor([1.0, 0.0]), *(torch.zeros(2, 2),) * 3)
    with pytest.raises(InputError, match="n_knots"):
        compute_ems(den, PATH, x, n_knots=1)
    assert math.isfinite(float(ems.at(100.0)[0].sum()))  # constant beyond the knots
