"""Distillation losses: fixed points, formulas and gradient directions (polyfold.core.distill)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from scipy.stats import norm  # type: ignore[import-untyped]
from torch import Tensor, nn

from polyfold.core.denoiser import Denoised, as_denoiser
from polyfold.core.distill import (
    ConsistencyModel,
    LoRALinear,
    add_lora,
    boundary_coefficients,
    consistency_distillation_loss,
    consistency_sample,
    consistency_training_loss,
    ema_update,
    ict_huber_c,
    ict_level_probs,
    ict_num_levels,
    ism_gradient,
    ism_loss,
    karras_sigmas,
    lora_parameters,
    one_step_distillation_step,
    pd_grid,
    progressive_distillation_loss,
    progressive_distillation_target,
    progressive_schedule,
    pseudo_huber,
    sds_gradient,
    sds_loss,
    surrogate_loss,
    tsm_gradient,
    tsm_loss,
    vsd_aux_loss,
    vsd_gradient,
)
from polyfold.core.errors import InputError
from polyfold.core.paths import EDM, VPCosine
from polyfold.core.samplers import ddim, rk4
from polyfold.core.testing import GaussianMixture

F64 = torch.float64


def gmm() -> GaussianMixture:
    return GaussianMixture([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]], stds=[0.3, 0.5, 0.4])


def gaussian(mean: tuple[float, float] = (1.0, -0.5), std: float = 0.7) -> GaussianMixture:
    return GaussianMixture([list(mean)], stds=std)


class MLP(nn.Module):
    def __init__(self, d: int = 2, h: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d + 1, h), nn.SiLU(), nn.Linear(h, d))

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        out: Tensor = self.net(torch.cat([x, tt], dim=1))
        return out


# -- progressive distillation -------------------------------------------------------------


@pytest.mark.parametrize("path", [VPCosine(), EDM(sigma_max=20.0)], ids=["vpcos", "edm"])
def test_pd_target_is_two_teacher_ddim_steps(path: VPCosine | EDM) -> None:
    g = gmm()
    teacher = as_denoiser(g.model(path, "eps"), path, prediction="eps")
    t, t_mid, s = 0.8, 0.55, 0.3
    x_t = path.perturb(g.sample(64, dtype=F64), t, torch.randn(64, 2, dtype=F64))
    reference = ddim(teacher, path, x_t, [t, t_mid, s]).x  # core's sampler, two steps
    assert isinstance(reference, Tensor)
    tt = torch.full((64,), t, dtype=F64)
    for target in ("x0", "eps", "v"):
        tgt = progressive_distillation_target(teacher, x_t, t, t_mid, s, path=path, target=target)
        student_pair = as_denoiser(lambda x, tq, c, y=tgt: y, path, prediction=target)(x_t, tt)
        x0_hat, eps_hat = student_pair.x0, student_pair.eps
        assert isinstance(x0_hat, Tensor)
        assert isinstance(eps_hat, Tensor)
        one_step = path.alpha(s) * x0_hat + path.sigma(s) * eps_hat
        torch.testing.assert_close(one_step, reference, rtol=1e-6, atol=1e-6)
    # one teacher step is not two: the target is a real correction
    one_teacher = ddim(teacher, path, x_t, [t, s]).x
    assert isinstance(one_teacher, Tensor)
    assert (one_teacher - reference).abs().max() > 1e-2


class TwoStepStudent:
    """A student that IS the teacher's two-step map (per example, any times)."""

    def __init__(self, teacher: Any, path: VPCosine, grid: Tensor) -> None:
        self.teacher, self.path, self.grid = teacher, path, grid

    def __call__(self, x: Any, t: Tensor) -> Denoised:
        t64 = t.to(F64)
        i = torch.argmin((self.grid[None, :] - t64[:, None]).abs(), dim=1)
        x0 = progressive_distillation_target(
            self.teacher,
            x,
            t64,
            self.grid[i + 1],
            self.grid[i + 2],
            path=self.path,
        )
        a, s = self.path.alpha(t64)[:, None], self.path.sigma(t64)[:, None]
        return Denoised(x0, (x - a * x0) / s)


@pytest.mark.parametrize("target", ["x0", "eps", "v"])
def test_pd_loss_zero_for_two_step_student(target: Any) -> None:
    path = VPCosine()
    g = gmm()
    teacher = as_denoiser(g.model(path, "x0"), path, prediction="x0")
    grid = pd_grid(path, 8)
    x0 = g.sample(128, dtype=F64)
    student = TwoStepStudent(teacher, path, grid)
    gen = torch.Generator().manual_seed(1)
    loss = progressive_distillation_loss(
        student,
        teacher,
        x0,
        path=path,
        student_steps=4,
        target=target,
        generator=gen,
    )
    assert float(loss) < 1e-12
    # the teacher itself (one step where two are expected) has a clearly positive loss
    gen = torch.Generator().manual_seed(1)
    bad = progressive_distillation_loss(
        teacher,
        teacher,
        x0,
        path=path,
        student_steps=4,
        target=target,
        generator=gen,
    )
    assert float(bad) > 1e-4


def test_pd_truncated_snr_weighting_and_errors() -> None:
    path = VPCosine()
    g = gmm()
    teacher = as_denoiser(g.model(path, "x0"), path, prediction="x0")
    zero = as_denoiser(lambda x, t, c: torch.zeros_like(x), path, prediction="x0")
    x0 = g.sample(16, dtype=F64)
    noise = torch.randn(16, 2, dtype=F64)
    idx = torch.full((16,), 3)
    kw = {"path": path, "student_steps": 4, "index": idx, "noise": noise, "reduction": "none"}
    w_trunc = progressive_distillation_loss(zero, teacher, x0, **kw)  # type: ignore[arg-type]
    w_unif = progressive_distillation_loss(zero, teacher, x0, weighting="uniform", **kw)  # type: ignore[arg-type]
    t = pd_grid(path, 8)[6]
    snr = float(torch.exp(path.log_snr(t)))
    torch.testing.assert_close(w_trunc, w_unif * max(snr, 1.0))
    with pytest.raises(InputError, match="target"):
        progressive_distillation_loss(zero, teacher, x0, path=path, student_steps=4, target="q")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="grid"):
        progressive_distillation_loss(
            zero, teacher, x0, path=path, student_steps=4, grid=[1.0, 0.5]
        )
    with pytest.raises(InputError, match="t_mid"):
        progressive_distillation_target(teacher, x0, 0.5, 0.6, 0.1, path=path)


def test_progressive_schedule_halves_and_validates() -> None:
    seen: list[tuple[int, int]] = []
    ends: list[int] = []

    def step(n: int, i: int) -> float:
        seen.append((n, i))
        return float(n)

    logs = progressive_schedule(
        step,
        teacher_steps=8,
        iterations=lambda n: n,
        on_stage_end=ends.append,
    )
    assert [(lg.teacher_steps, lg.student_steps) for lg in logs] == [(8, 4), (4, 2), (2, 1)]
    assert ends == [4, 2, 1]
    assert seen == [(4, 0), (4, 1), (4, 2), (4, 3), (2, 0), (2, 1), (1, 0)]
    assert logs[0].values == [4.0] * 4
    with pytest.raises(InputError, match="teacher_steps"):
        progressive_schedule(lambda n, i: 0.0, teacher_steps=6, iterations=1)


# -- consistency ---------------------------------------------------------------------------


class ExactConsistency(nn.Module):
    """The exact probability-flow ODE map to ``sigma_min`` (600-step RK4 in sigma)."""

    def __init__(self, g: GaussianMixture, path: EDM) -> None:
        super().__init__()
        self.den = as_denoiser(g.model(path, "eps"), path, prediction="eps")
        self.path = path

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        t0 = float(t.reshape(-1)[0])
        assert torch.all(t == t0)
        grid = torch.linspace(t0, 0.0, 300, dtype=F64)
        out: Tensor = rk4(self.den, self.path, x, grid, variable="sigma").x  # type: ignore[assignment]
        return out


def test_cd_loss_zero_for_exact_ode_map() -> None:
    path = EDM(sigma_max=10.0)
    g = gmm()
    teacher = as_denoiser(g.model(path, "eps"), path, prediction="eps")
    exact = ExactConsistency(g, path)
    sig = karras_sigmas(40, 0.002, 10.0)
    x0 = g.sample(32, dtype=F64)
    noise = torch.randn(32, 2, dtype=F64)
    idx = torch.full((32,), 25)
    kw = {"path": path, "sigmas": sig, "index": idx, "noise": noise}
    heun = consistency_distillation_loss(exact, exact, teacher, x0, solver="heun", **kw)  # type: ignore[arg-type]
    euler = consistency_distillation_loss(exact, exact, teacher, x0, solver="euler", **kw)  # type: ignore[arg-type]
    # a consistency function that is off the ODE: the denoiser (one-step x0 estimate)
    den = g.model(path, "x0")
    wrong = consistency_distillation_loss(den, den, teacher, x0, solver="heun", **kw)  # type: ignore[arg-type]
    assert float(heun) < 1e-5
    assert float(heun) < 0.1 * float(euler)  # second order beats first
    assert float(wrong) > 1e4 * float(heun)


def test_consistency_model_boundary_condition() -> None:
    path = EDM()
    net = nn.Sequential(nn.Linear(2, 2))

    class Raw(nn.Module):
        def forward(self, y: Tensor, c: Tensor, cond: object = None) -> Tensor:
            out: Tensor = net(y) + c[:, None]
            return out

    f = ConsistencyModel(Raw(), path=path, sigma_min=0.002)
    x = torch.randn(8, 2)
    torch.testing.assert_close(f(x, torch.zeros(8)), x)  # t = 0 is sigma_min on EDM
    assert (f(x, torch.full((8,), 0.5)) - x).abs().max() > 1e-3
    c_skip, c_out = boundary_coefficients(torch.tensor([0.002, 80.0], dtype=F64))
    assert float(c_skip[0]) == 1.0
    assert float(c_out[0]) == 0.0
    assert float(c_skip[1]) < 1e-4
    assert abs(float(c_out[1]) - 0.5) < 1e-3


def test_ict_curriculum_formula() -> None:
    total = 800  # K' = floor(800 / (log2(128) + 1)) = 100
    assert ict_num_levels(0, total) == 11
    assert ict_num_levels(99, total) == 11
    assert ict_num_levels(100, total) == 21
    assert ict_num_levels(350, total) == 81
    assert ict_num_levels(700, total) == 1281
    assert ict_num_levels(10_000, total) == 1281
    with pytest.raises(InputError, match="step"):
        ict_num_levels(-1, total)


def test_ict_lognormal_level_distribution() -> None:
    s = karras_sigmas(81)
    p = ict_level_probs(s)
    ref = norm.cdf((s[1:].log() - -1.1) / 2.0) - norm.cdf((s[:-1].log() - -1.1) / 2.0)
    ref = torch.as_tensor(ref / ref.sum())
    torch.testing.assert_close(p, ref)
    assert abs(float(p.sum()) - 1.0) < 1e-12
    # half the mass lies below the lognormal's median exp(-1.1) (up to the pair containing it)
    below = float(p[s[1:] <= math.exp(-1.1)].sum())
    assert 0.4 < below <= 0.5


def test_pseudo_huber_vs_l2() -> None:
    c = ict_huber_c(4)
    assert abs(c - 0.00108) < 1e-12
    a = torch.zeros(3, 4)
    small = torch.full((3, 4), 1e-5)
    big = torch.full((3, 4), 10.0)
    d2 = (small**2).sum(1)
    torch.testing.assert_close(pseudo_huber(small, a, c), d2 / (2 * c), rtol=1e-3, atol=0.0)
    torch.testing.assert_close(
        pseudo_huber(big, a, c), torch.full((3,), 20.0 - c), rtol=1e-5, atol=0
    )
    x = big.clone().requires_grad_(True)
    pseudo_huber(x, a, c).sum().backward()
    assert x.grad is not None
    assert float(x.grad.norm(dim=1).max()) <= 1.0 + 1e-6  # bounded, unlike L2 (norm 40)


def test_ct_loss_pairs_adjacent_levels_with_inverse_spacing_weight() -> None:
    path = EDM()

    class Identity(nn.Module):  # f(x_t) = x_t: d = (s_{i+1} - s_i) z, squared
        def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
            return x

    x0 = torch.zeros(256, 3, dtype=F64)
    z = torch.randn(256, 3, dtype=F64)
    gen = torch.Generator().manual_seed(3)
    loss = consistency_training_loss(
        Identity(),
        x0,
        path=path,
        step=0,
        total_steps=800,
        metric="l2",
        noise=z,
        generator=gen,
        reduction="none",
    )
    gaps = (loss / (z**2).sum(1)).to(F64)  # = (s_{i+1} - s_i)^2 / (s_{i+1} - s_i)
    s = karras_sigmas(11)
    diffs = s[1:] - s[:-1]
    nearest = (gaps[:, None] - diffs[None, :]).abs().min(1).values
    assert float(nearest.max()) < 1e-9 * float(diffs.max())
    # constant functions are trivially consistent (the collapse CT must avoid by design)
    const = consistency_training_loss(
        lambda x, t, c: torch.zeros_like(x),
        x0 + 1,
        path=path,
        step=5,
        total_steps=800,
    )
    assert float(const) == 0.0


def test_ema_update() -> None:
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    ema_update(a, b, 0.9)
    torch.testing.assert_close(a.weight.detach(), 0.9 * wa + 0.1 * wb)
    ema_update(a, b, 0.0)
    torch.testing.assert_close(a.weight.detach(), wb)
    with pytest.raises(InputError, match="decay"):
        ema_update(a, b, 1.5)


# -- score distillation --------------------------------------------------------------------


def antithetic(n: int, d: int = 2) -> Tensor:
    e = torch.randn(n, d, dtype=F64)
    return torch.cat([e, -e])


def test_sds_zero_at_gaussian_mode_and_points_to_it() -> None:
    path = VPCosine()
    prior_g = gaussian()
    prior = as_denoiser(prior_g.model(path, "eps"), path, prediction="eps")
    m = prior_g.means[0]
    eps = antithetic(200)
    t = torch.rand(200, dtype=F64).repeat(2) * 0.9 + 0.05
    at_mode = m.expand(400, 2).clone()
    g0 = sds_gradient(at_mode, prior, path=path, t=t, noise=eps)
    assert float(g0.mean(0).abs().max()) < 1e-12
    x = (m + torch.tensor([1.5, -1.0], dtype=F64)).expand(400, 2).clone()
    g1 = sds_gradient(x, prior, path=path, t=t, noise=eps).mean(0)
    d = (x[0] - m) / (x[0] - m).norm()
    assert float(g1 @ d) > 0  # descent moves toward the mode
    assert float((g1 - (g1 @ d) * d).norm()) < 1e-9 * float(g1.norm())  # and straight at it


def test_surrogate_loss_gradient() -> None:
    x = torch.randn(5, 3, requires_grad=True)
    g = torch.randn(5, 3)
    surrogate_loss(x, g).backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, g / 5)
    path = VPCosine()
    prior = as_denoiser(gaussian().model(path, "eps"), path, prediction="eps")
    y = torch.randn(6, 2, dtype=F64, requires_grad=True)
    noise, t = torch.randn(6, 2, dtype=F64), torch.full((6,), 0.4, dtype=F64)
    sds_loss(y, prior, path=path, t=t, noise=noise).backward()
    assert y.grad is not None
    torch.testing.assert_close(y.grad, sds_gradient(y, prior, path=path, t=t, noise=noise) / 6)


def test_vsd_zero_when_aux_is_prior_and_for_prior_samples() -> None:
    path = VPCosine()
    g = gmm()
    prior = as_denoiser(g.model(path, "eps"), path, prediction="eps")
    x = torch.randn(64, 2, dtype=F64)
    assert float(vsd_gradient(x, prior, prior, path=path).abs().max()) == 0.0
    # samples from the prior: the ideal auxiliary denoiser (of the samples' law) is the prior's
    aux = as_denoiser(gmm().model(path, "eps"), path, prediction="eps")
    xs = g.sample(64, dtype=F64)
    assert float(vsd_gradient(xs, prior, aux, path=path).abs().max()) < 1e-12
    # a shifted generator: the gradient pushes its samples toward the prior
    p, q = gaussian((0.0, 0.0)), gaussian((1.0, 1.0))
    prior_p = as_denoiser(p.model(path, "eps"), path, prediction="eps")
    aux_q = as_denoiser(q.model(path, "eps"), path, prediction="eps")
    xq = q.sample(512, dtype=F64)
    grad = vsd_gradient(xq, prior_p, aux_q, path=path).mean(0)
    assert float(grad @ torch.tensor([1.0, 1.0], dtype=F64)) > 0
    # SDS on the same samples does not vanish even when they follow the prior
    assert float(sds_gradient(xs, prior, path=path).abs().mean()) > 1e-3


def test_lora_starts_as_identity_and_trains_only_adapters() -> None:
    net = MLP()
    aux = copy.deepcopy(net)
    made = add_lora(aux, rank=2, generator=torch.Generator().manual_seed(0))
    assert len(made) == 2
    assert all(isinstance(m, LoRALinear) for m in made)
    x, t = torch.randn(16, 2), torch.rand(16)
    torch.testing.assert_close(aux(x, t), net(x, t))
    trainable = [p for p in aux.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(aux)}
    path = VPCosine()
    opt = torch.optim.Adam(lora_parameters(aux), lr=1e-2)
    loss = vsd_aux_loss(aux, torch.randn(32, 2), path=path, generator=torch.Generator())
    loss.backward()
    opt.step()
    assert (aux(x, t) - net(x, t)).abs().max() > 1e-5
    with pytest.raises(InputError, match="module"):
        add_lora(nn.Linear(2, 2))


@pytest.mark.parametrize("fn", [ism_gradient, tsm_gradient], ids=["ism", "tsm"])
def test_interval_losses_zero_at_mode_and_point_to_it(fn: object) -> None:
    path = VPCosine()
    pg = gaussian()
    prior = as_denoiser(pg.model(path, "eps"), path, prediction="eps")
    m = pg.means[0]
    t = torch.linspace(0.2, 0.9, 32, dtype=F64)
    g0 = fn(m.expand(32, 2).clone(), prior, path=path, t=t)  # type: ignore[operator]
    assert float(g0.abs().max()) < 1e-9
    off = (m + torch.tensor([1.0, 0.5], dtype=F64)).expand(32, 2).clone()
    g1 = fn(off, prior, path=path, t=t, delta_t=0.1, inversion_steps=32)  # type: ignore[operator]
    assert bool(((g1 @ torch.tensor([1.0, 0.5], dtype=F64)) > 0).all())
    # the matching surrogate loss back-propagates exactly that gradient, over the batch size
    loss_fn = {ism_gradient: ism_loss, tsm_gradient: tsm_loss}[fn]  # type: ignore[index]
    y = off.clone().requires_grad_(True)
    loss_fn(y, prior, path=path, t=t, delta_t=0.1, inversion_steps=32).backward()
    assert y.grad is not None
    torch.testing.assert_close(y.grad, g1 / 32)


def test_one_step_step_updates_student_and_aux() -> None:
    path = VPCosine()
    prior = as_denoiser(gmm().model(path, "eps"), path, prediction="eps")
    student = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 2)).double()
    aux = MLP().double()
    s0 = [p.detach().clone() for p in student.parameters()]
    a0 = [p.detach().clone() for p in aux.parameters()]
    opt_s = torch.optim.Adam(student.parameters(), lr=1e-3)
    opt_a = torch.optim.Adam(aux.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    out = one_step_distillation_step(
        student,
        prior,
        opt_s,
        path=path,
        batch_size=32,
        noise_shape=(2,),
        aux_model=aux,
        aux_opt=opt_a,
        generator=gen,
    )
    assert set(out) == {"student", "aux"}
    assert any((p - q).abs().max() > 0 for p, q in zip(student.parameters(), s0, strict=True))
    assert any((p - q).abs().max() > 0 for p, q in zip(aux.parameters(), a0, strict=True))
    out = one_step_distillation_step(
        student, prior, opt_s, path=path, batch_size=8, noise_shape=(2,), generator=gen
    )
    assert set(out) == {"student"}
    with pytest.raises(InputError, match="aux_opt"):
        one_step_distillation_step(
            student, prior, opt_s, path=path, batch_size=8, noise_shape=(2,), aux_model=aux
        )


def test_consistency_sample_one_step_and_multistep() -> None:
    path = EDM(sigma_max=10.0)
    seen: list[Tensor] = []

    def model(x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        seen.append(t.clone())
        return 0.5 * x

    z = torch.randn(4, 2, dtype=F64)
    out = consistency_sample(model, z, path=path, sigmas=torch.tensor([10.0], dtype=F64))
    torch.testing.assert_close(out, 0.5 * 10.0 * z)
    torch.testing.assert_close(seen[0], torch.ones(4, dtype=F64))  # sigma_max is t = 1
    gen = torch.Generator().manual_seed(0)
    two = consistency_sample(
        model, z, path=path, sigmas=torch.tensor([10.0, 1.0], dtype=F64), generator=gen
    )
    assert len(seen) == 3
    assert two.shape == z.shape
    with pytest.raises(InputError, match="sigmas"):
        consistency_sample(model, z, path=path, sigmas=torch.tensor([1.0, 2.0]))


def test_input_errors_name_the_argument() -> None:
    path = VPCosine()
    prior = as_denoiser(gmm().model(path, "eps"), path, prediction="eps")
    x = torch.randn(4, 2, dtype=F64)
    with pytest.raises(InputError, match="weighting"):
        sds_gradient(x, prior, path=path, weighting="bogus")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="t_range"):
        sds_gradient(x, prior, path=path, t_range=(0.5, 0.2))
    with pytest.raises(InputError, match="noise"):
        sds_gradient(x, prior, path=path, noise=torch.randn(3, 2))
    with pytest.raises(InputError, match="delta_t"):
        ism_gradient(x, prior, path=path, delta_t=-1.0)
    with pytest.raises(InputError, match="path"):
        sds_gradient(x, prior, path="vp")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="metric"):
        consistency_training_loss(
            lambda y, t, c: y,
            x,
            path=EDM(),
            step=0,
            total_steps=10,
            metric="l1",  # type: ignore[arg-type]
        )
    with pytest.raises(InputError, match="sigmas"):
        consistency_distillation_loss(
            lambda y, t, c: y, lambda y, t, c: y, prior, x, path=path, sigmas=torch.ones(3)
        )
    with pytest.raises(InputError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0)


def test_ct_default_metric_is_pseudo_huber_with_ict_constant() -> None:
    path = EDM()
    x0 = torch.zeros(128, 6, dtype=F64)
    z = torch.randn(128, 6, dtype=F64)
    loss = consistency_training_loss(
        lambda x, t, c: x,
        x0,
        path=path,
        step=0,
        total_steps=800,
        noise=z,
        generator=torch.Generator().manual_seed(4),
        reduction="none",
    )
    c = 0.00054 * math.sqrt(6)
    s = karras_sigmas(11)
    gaps = (s[1:] - s[:-1])[None, :]
    norms = z.norm(dim=1)[:, None]
    candidates = (torch.sqrt((gaps * norms) ** 2 + c * c) - c) / gaps  # (B, pairs)
    err = (loss[:, None] - candidates).abs().min(1).values
    assert float((err / loss).max()) < 1e-9
