"""CDRL: recovery likelihood with the exact Gaussian energy, the MCMC revision against the exact
conditional, training by the Trainer, the cooperative chain, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from polyfold.core.cdrl import CDRL, cdrl_loss
from polyfold.core.errors import InputError
from polyfold.core.paths import VPCosine
from polyfold.core.train import Trainer

PATH = VPCosine()
TIMES = [0.2, 0.45, 0.7]
MU, VAR = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.25


class GaussEnergy(nn.Module):
    """The exact energy family of N(mu, v I) data at every level: ||x - a mu||^2 / (2 c)."""

    def __init__(self, mu: Tensor, var: float) -> None:
        super().__init__()
        self.mu = nn.Parameter(mu.clone())
        self.log_var = nn.Parameter(torch.tensor(math.log(var), dtype=mu.dtype))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        a, s = PATH.alpha(t)[:, None], PATH.sigma(t)[:, None]
        a = torch.where(t[:, None] == 0, torch.ones_like(a), a)
        s = torch.where(t[:, None] == 0, torch.zeros_like(s), s)
        c = a * a * self.log_var.exp() + s * s
        return ((x - a * self.mu) ** 2 / (2 * c)).sum(1)


class ExactInit(nn.Module):
    """The exact conditional mean E[x_k | x_{k+1} = y] of the Gaussian data."""

    def __init__(self, model: CDRL) -> None:
        super().__init__()
        self.model = [model]

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        m = self.model[0]
        k = int((m.times == float(t[0])).nonzero()[0, 0])
        return conditional(m, k, y)[0]


def conditional(m: CDRL, k: int, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and precision of p(x_k | x_{k+1} = y) for N(MU, VAR I) data."""
    al, sg, a, s = (float(v[k]) for v in (m.alpha, m.sigma, m.a, m.s))
    c = al * al * VAR + sg * sg
    prec = 1 / c + a * a / (s * s)
    return (al * MU / c + a * y / (s * s)) / prec, torch.tensor(prec)


def data(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + math.sqrt(VAR) * torch.randn(n, 2, generator=g, dtype=torch.float64)


def test_refine_samples_the_exact_recovery_conditional() -> None:
    m = CDRL(GaussEnergy(MU, VAR), None, path=PATH, times=TIMES, mcmc_steps=150, step_scale=0.05)
    g = torch.Generator().manual_seed(0)
    for k in range(m.levels):
        y = torch.full((5000, 2), 0.3, dtype=torch.float64)
        x = m.refine(m.proposal(y, k), y, k, g)
        mean, prec = conditional(m, k, y[:1])
        torch.testing.assert_close(x.mean(0), mean[0], atol=0.02, rtol=0)
        v, step = 1 / float(prec), float(m.step_sizes[k])
        ula_var = v / (1 - step / (2 * v))  # unadjusted Langevin's exact stationary variance
        assert abs(float(x.var(0).mean()) / ula_var - 1) < 0.03


def test_recovery_likelihood_gradient_vanishes_at_the_exact_energy() -> None:
    def grads(mu: Tensor) -> Tensor:
        energy = GaussEnergy(mu, VAR)
        m = CDRL(energy, None, path=PATH, times=TIMES, mcmc_steps=100, step_scale=0.05)
        m.initializer = ExactInit(m)
        loss = m.losses(data(8192, 1), torch.Generator().manual_seed(2))["ebm"]
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, energy.parameters())])

    at_truth, off = grads(MU), grads(MU + torch.tensor([0.5, 0.0], dtype=torch.float64))
    assert off.norm() > 0.3
    assert at_truth.norm() < 0.15 * off.norm()
    assert off[0] > 0  # descent moves mu back towards the truth


class Init(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2).double()

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        return y + self.lin(torch.cat([y, t[:, None]], 1))


def test_trainer_steps_fit_energy_and_initializer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    energy = GaussEnergy(MU + torch.tensor([0.8, -0.6], dtype=torch.float64), VAR)
    model = CDRL(energy, Init(), path=PATH, times=TIMES, mcmc_steps=5, step_scale=0.2)
    gap0 = float((energy.mu.detach() - MU).norm())
    batch = data(512, 3)
    init0 = float(model.losses(batch, torch.Generator().manual_seed(4))["init"].detach())
    Trainer(
        model,
        cdrl_loss,
        torch.utils.data.TensorDataset(data(4096, 5)),
        out_dir=tmp_path,
        max_steps=40,
        batch_size=128,
        lr=0.05,
        warmup_steps=0,
        quiet=True,
        device="cpu",
        checkpoint_every=1000,
    ).fit()
    assert float((energy.mu.detach() - MU).norm()) < 0.3 * gap0
    init1 = float(model.losses(batch, torch.Generator().manual_seed(4))["init"].detach())
    assert init1 < 0.5 * init0


def test_cooperative_chain_samples_the_gaussian() -> None:
    times = [*TIMES, 0.99]  # the chain starts from N(0, sigma^2): alpha(0.99) ~ 0.016
    m = CDRL(GaussEnergy(MU, VAR), None, path=PATH, times=times, mcmc_steps=40, step_scale=0.05)
    m.initializer = ExactInit(m)
    x = m.sample(8000, (2,), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert x.shape == (8000, 2)
    torch.testing.assert_close(x.mean(0), MU, atol=0.05, rtol=0)
    assert abs(float(x.var(0).mean()) / VAR - 1) < 0.1


class ExactEps(nn.Module):
    """E[eps | x_t = y] of N(MU, VAR I) data: sigma (y - alpha MU) / (alpha^2 VAR + sigma^2)."""

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        a, s = PATH.alpha(t)[:, None], PATH.sigma(t)[:, None]
        return s * (y - a * MU) / (a * a * VAR + s * s)


def test_eps_initializer_proposes_the_exact_conditional_mean() -> None:
    # the posterior mean is linear in x0, so plugging in E[x0 | y] gives E[x_k | y] exactly
    m = CDRL(GaussEnergy(MU, VAR), ExactEps(), path=PATH, times=TIMES, init_prediction="eps")
    y = data(64, 8) * 0.7 + 0.2
    for k in range(m.levels):
        torch.testing.assert_close(m.proposal(y, k), conditional(m, k, y)[0])
    al, sg = m.alpha, m.sigma
    post = m.s**2 * sg[:-1] ** 2 / sg[1:] ** 2  # Var(x_k | x_0, x_{k+1})
    torch.testing.assert_close(m.posterior_var, post)
    torch.testing.assert_close(m.init_log_var[1:].detach().exp().double(), post[1:])
    x0 = data(64, 9)
    k = 1  # the posterior mean of x_k from x0 and y = x_{k+1}, by completing the square
    w = (al[k] * x0 / sg[k] ** 2 + m.a[k] * y / m.s[k] ** 2) / (
        1 / sg[k] ** 2 + m.a[k] ** 2 / m.s[k] ** 2
    )
    torch.testing.assert_close(m.posterior_mean(x0, y, k), w)


def test_initializer_variance_is_learned_when_attached_later() -> None:
    m = CDRL(GaussEnergy(MU, VAR), None, path=PATH, times=TIMES, mcmc_steps=2)
    m.initializer = Init()  # attached after construction, as an initializer needing m does
    m.losses(data(64, 0), torch.Generator().manual_seed(1))["init"].backward()
    assert m.init_log_var.grad is not None
    assert float(m.init_log_var.grad.abs().sum()) > 0
    drl = CDRL(GaussEnergy(MU, VAR), None, path=PATH, times=TIMES, mcmc_steps=2)
    assert float(drl.losses(data(64, 0), torch.Generator().manual_seed(1))["init"]) == 0


def test_posterior_init_var_is_fixed_and_zero_at_the_data_level() -> None:
    m = CDRL(GaussEnergy(MU, VAR), Init(), path=PATH, times=TIMES, init_var="posterior")
    assert not m.init_log_var.requires_grad
    assert [m.init_variance(k) for k in range(m.levels)] == m.posterior_var.tolist()
    assert m.init_variance(0) == 0.0
    assert m.init_variance(1) > 0
    mean = data(16, 3)
    assert torch.equal(m._start(mean, 0, torch.Generator().manual_seed(0)), mean)
    m.losses(data(64, 0), torch.Generator().manual_seed(1))["init"].backward()
    assert m.init_log_var.grad is None


@pytest.mark.parametrize("target", ["revised", "displacement"])
def test_init_loss_at_the_exact_initializer_matches_the_ula_closed_form(target: str) -> None:
    # Exact Gaussian conditional (precision P, mean m) and ULA with step h: after n steps from
    # start = m + sqrt(v) z, x - m = r^n sqrt(v) z + noise, r = 1 - h P, noise variance
    # 2h sum_j r^2j. The revised target's error is x - m; the displacement target's is
    # x - start = (r^n - 1) sqrt(v) z + noise: the start's noise drops out as r^n -> 1.
    k, n = 1, 3
    m = CDRL(GaussEnergy(MU, VAR), None, path=PATH, times=TIMES, mcmc_steps=n, step_scale=0.3)
    m.init_var, m.init_target = "posterior", target
    m.initializer = ExactInit(m)
    x0 = data(40000, 11)
    loss = float(m.losses(x0, torch.Generator().manual_seed(12), level=k)["init"])
    h, v = float(m.step_sizes[k]), float(m.posterior_var[k])
    r = 1 - h * float(conditional(m, k, x0[:1])[1])
    noise = 2 * h * sum(r ** (2 * j) for j in range(n))
    start_part = r ** (2 * n) if target == "revised" else (1 - r**n) ** 2
    assert loss == pytest.approx(start_part * v + noise, rel=0.03)


def test_displacement_target_fits_the_same_variance() -> None:
    def grads(target: str) -> tuple[Tensor, Tensor]:
        torch.manual_seed(0)
        init = Init()
        m = CDRL(GaussEnergy(MU, VAR), init, path=PATH, times=TIMES, init_target=target)
        m.losses(data(256, 0), torch.Generator().manual_seed(1))["init"].backward()
        assert m.init_log_var.grad is not None
        assert init.lin.weight.grad is not None
        return m.init_log_var.grad, init.lin.weight.grad

    (v_rev, w_rev), (v_disp, w_disp) = grads("revised"), grads("displacement")
    torch.testing.assert_close(v_disp, v_rev)  # v_k is the revised samples' spread either way
    assert not torch.allclose(w_disp, w_rev)  # the mean's target differs


def test_sampling_without_data_noise_starts_at_the_initializer_mean() -> None:
    m = CDRL(GaussEnergy(MU, VAR), Init(), path=PATH, times=[0.9], mcmc_steps=4)
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mean = m.proposal(z * float(m.sigma[-1]), 0).detach()

    def draw(log_v: float, noise: bool) -> Tensor:
        with torch.no_grad():
            m.init_log_var.fill_(log_v)
        g = torch.Generator().manual_seed(3)
        return m.sample(64, (2,), generator=g, steps=0, dtype=torch.float64, data_noise=noise)

    torch.testing.assert_close(draw(0.0, False), mean)
    torch.testing.assert_close(draw(2.0, False), mean)  # v_0 plays no part
    assert not torch.allclose(draw(0.0, True), mean)


def test_energy_reg_adds_the_mean_squared_energies_of_both_samples() -> None:
    """With no MCMC steps DRL's revised samples are ``x_{k+1} / a_k``: the regulariser is
    ``reg * mean(E(x_k)^2 + E(x_{k+1} / a_k)^2)`` on top of the unregularised loss."""
    x0, k, reg = data(32, 8), 1, 0.3

    def ebm(weight: float) -> Tensor:
        e = GaussEnergy(MU, VAR)
        m = CDRL(e, None, path=PATH, times=TIMES, mcmc_steps=0, energy_reg=weight)
        return m.losses(x0, torch.Generator().manual_seed(2), level=k)["ebm"], m

    (plain, m), (regularised, _) = ebm(0.0), ebm(reg)
    g = torch.Generator().manual_seed(2)
    e1, e2 = (torch.randn(x0.shape, generator=g, dtype=x0.dtype) for _ in range(2))
    x_k = float(m.alpha[k]) * x0 + float(m.sigma[k]) * e1
    y = float(m.a[k]) * x_k + float(m.s[k]) * e2
    sq = m.energy_at(x_k, k).pow(2) + m.energy_at(y / float(m.a[k]), k).pow(2)
    torch.testing.assert_close(regularised - plain, reg * sq.mean())


def test_cdrl_bad_input() -> None:
    e = GaussEnergy(MU, VAR)
    with pytest.raises(InputError, match="mcmc_steps"):
        CDRL(e, None, path=PATH, times=TIMES, mcmc_steps=-1)
    with pytest.raises(InputError, match="step_scale"):
        CDRL(e, None, path=PATH, times=TIMES, step_scale=-0.1)
    with pytest.raises(InputError, match="init_prediction: expected 'mean' or 'eps'"):
        CDRL(e, None, path=PATH, times=TIMES, init_prediction="x0")
    with pytest.raises(InputError, match="init_var: expected 'learned' or 'posterior'"):
        CDRL(e, None, path=PATH, times=TIMES, init_var="fixed")
    with pytest.raises(InputError, match="init_target: expected 'revised' or 'displacement'"):
        CDRL(e, None, path=PATH, times=TIMES, init_target="x0")
    with pytest.raises(InputError, match="energy_reg"):
        CDRL(e, None, path=PATH, times=TIMES, energy_reg=-1.0)
    with pytest.raises(InputError, match="times"):
        CDRL(e, None, path=PATH, times=[0.5, 0.3])
    wrong = CDRL(e, nn.Linear(2, 3).double(), path=PATH, times=TIMES)
    wrong.initializer = _Wrong()
    with pytest.raises(InputError, match=r"initializer: expected an output of shape \(\d, 2\)"):
        wrong.losses(data(4, 0), torch.Generator())
    flat = CDRL(_FlatEnergy(), None, path=PATH, times=TIMES)
    with pytest.raises(InputError, match="energy: expected an output of shape"):
        flat.losses(data(4, 0), torch.Generator())
    with pytest.raises(InputError, match="level: expected an integer < 3"):
        CDRL(e, None, path=PATH, times=TIMES).losses(data(4, 0), torch.Generator(), level=3)
    with pytest.raises(InputError, match="CDRL"):
        cdrl_loss(nn.Linear(2, 2), data(4, 0), torch.Generator())


class _Wrong(nn.Module):
    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        return y[:, :1]


class _FlatEnergy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2, dtype=torch.float64))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x * self.w
