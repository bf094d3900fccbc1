"""Distillation on the Gaussian-mixture test-bed: progressive distillation, consistency
distillation, and a VSD one-step student against SDS.

The target is a 2-D mixture of ``K = 8`` Gaussians (std 0.2) on a circle of radius 2; every
teacher is its exact denoiser (:mod:`polyfold.core.testing`), so the distilled students are
compared with the teacher's own few-step samples, side by side, on the same noise.

- Progressive distillation (VP cosine path, x0 students, truncated-SNR weighting): the exact
  teacher at 8 DDIM steps -> 4 -> 2 -> 1 (each round's student initialised from the previous
  one and then frozen as the next teacher). Row per round: student sliced W2 at its step count,
  and the teacher's DDIM at the same count.
- Consistency distillation (EDM path, sigma in [0.002, 40], N = 18 Karras levels, Heun teacher
  steps, EMA target 0.95, squared L2): one-step samples ``f(sigma_max z)`` against the exact
  teacher's one-step DDIM from the same ``z`` (its x0 estimate at sigma_max).
- One-step generators ``z -> x`` trained with no data: VSD (SwiftBrush; the auxiliary network is
  the prior plus a zero-initialised MLP residual, LoRA's starting point, fitted by DSM to the
  student's samples) and SDS, same student, optimiser, step count and time draws.

Metrics: sliced W2 (``polyfold.core.metrics.sliced_wasserstein``) to 4000 exact samples; mode
coverage = fraction of the K modes receiving at least 1/(4K) of the samples, a sample counting for
its nearest mode when within 4 std (0.8) of it; for the one-step students also the samples' mean
distance from the origin (the modes lie at 2).

Summary: ``pd_1step_sw2_over_teacher_1step_sw2``, ``cd_1step_sw2_over_ddim_1step_sw2`` (goal
<= 1/3 each), ``vsd_mode_coverage`` (goal 1.0) and ``sds_mode_coverage``.

Run: ``python apps/bench/distill.py [--quick] [--out FILE]``.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]
from torch import Tensor, nn

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.distill import (
    ConsistencyModel,
    consistency_distillation_loss,
    ema_update,
    karras_sigmas,
    one_step_distillation_step,
    pd_grid,
    progressive_distillation_loss,
    progressive_schedule,
)
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.paths import EDM, GaussianPath, VPCosine
from polyfold.core.samplers import ddim
from polyfold.core.testing import GaussianMixture

K, RADIUS, STD = 8, 2.0, 0.2


def mixture() -> GaussianMixture:
    angles = [2 * math.pi * k / K for k in range(K)]
    return GaussianMixture([[RADIUS * math.cos(a), RADIUS * math.sin(a)] for a in angles], stds=STD)


class TimeMLP(nn.Module):
    """``net(x, t, cond)`` with Fourier features of a scalar time input."""

    def __init__(self, h: int = 64, out_scale: float = 1.0) -> None:
        super().__init__()
        self.freqs = nn.Parameter(torch.arange(1, 9, dtype=torch.float32), requires_grad=False)
        last = nn.Linear(h, 2)
        with torch.no_grad():
            last.weight.mul_(out_scale)
            last.bias.mul_(out_scale)
        self.net = nn.Sequential(nn.Linear(2 + 16, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), last)

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        f = tt * self.freqs[None, :]
        out: Tensor = self.net(torch.cat([x, torch.sin(f), torch.cos(f)], dim=1))
        return out


class IsoTeacher:
    """The mixture's exact prediction as a network ``model(x_t, t, cond)``, in closed form for
    isotropic components (checked against :class:`GaussianMixture` in :func:`main`): with
    ``c = alpha^2 std^2 + sigma^2``, ``E[x0 | x] = sum_k r_k (mu_k + alpha std^2 (x - alpha
    mu_k) / c)``, ``r = softmax_k(-|x - alpha mu_k|^2 / (2c))``."""

    def __init__(self, g: GaussianMixture, path: GaussianPath, prediction: str) -> None:
        self.mu, self.path, self.prediction = g.means, path, prediction

    def __call__(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        t64 = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        a, s = self.path.alpha(t64)[:, None], self.path.sigma(t64)[:, None]
        xd = x.double()
        c = a * a * STD**2 + s * s
        diff = xd[:, None, :] - a[:, :, None] * self.mu[None]  # (B, K, 2)
        r = torch.softmax(-diff.pow(2).sum(-1) / (2 * c), dim=1)  # (B, K)
        post = self.mu[None] + (a * STD**2 / c)[:, :, None] * diff
        x0 = (r[:, :, None] * post).sum(1)
        out = x0 if self.prediction == "x0" else (xd - a * x0) / s
        return out.to(x.dtype)


def coverage(x: Tensor, g: GaussianMixture) -> float:
    d = torch.cdist(x.double(), g.means)
    near, idx = d.min(dim=1)
    counts = torch.bincount(idx[near < 4 * STD], minlength=K)
    return float((counts >= x.shape[0] / (4 * K)).double().mean())


def sw(x: Tensor, ref: Tensor) -> float:
    return sliced_wasserstein(x, ref, n_proj=64)


def run_pd(g: GaussianMixture, ref: Tensor, iters: int, rows: list[dict[str, Any]]) -> float:
    path = VPCosine()
    exact = as_denoiser(IsoTeacher(g, path, "x0"), path, prediction="x0")
    gen = torch.Generator().manual_seed(10)
    x_T = path.prior_sample((ref.shape[0], 2), generator=torch.Generator().manual_seed(11))
    net = TimeMLP()
    state: dict[str, Any] = {"teacher": exact}

    def new_opt() -> torch.optim.Optimizer:
        return torch.optim.Adam(net.parameters(), lr=2e-3)

    state["opt"] = new_opt()
    student = as_denoiser(net, path, prediction="x0")

    def step(n: int, i: int) -> float:
        loss = progressive_distillation_loss(
            student,
            state["teacher"],
            g.sample(256, generator=gen),
            path=path,
            student_steps=n,
            generator=gen,
        )
        state["opt"].zero_grad()
        loss.backward()
        state["opt"].step()
        return float(loss.detach())

    def end(n: int) -> None:
        with torch.no_grad():
            s_x = ddim(student, path, x_T, pd_grid(path, n)).x
            t_x = ddim(exact, path, x_T, pd_grid(path, n)).x
        assert isinstance(s_x, Tensor)
        assert isinstance(t_x, Tensor)
        rows.append(
            {
                "method": "progressive",
                "steps": n,
                "student_sw2": sw(s_x, ref),
                "teacher_sw2": sw(t_x, ref),
                "coverage": coverage(s_x, g),
            }
        )
        frozen = copy.deepcopy(net).requires_grad_(False)
        state["teacher"] = as_denoiser(frozen, path, prediction="x0")
        state["opt"] = new_opt()

    progressive_schedule(step, teacher_steps=8, iterations=iters, on_stage_end=end)
    with torch.no_grad():
        t8 = ddim(exact, path, x_T, pd_grid(path, 8)).x
    assert isinstance(t8, Tensor)
    rows.append({"method": "teacher_ddim", "steps": 8, "teacher_sw2": sw(t8, ref)})
    return float(rows[-2]["student_sw2"]) / float(rows[-2]["teacher_sw2"])


class Raw(nn.Module):
    """Raw consistency network ``F(y_in, c_noise, cond)``."""

    def __init__(self, h: int = 64) -> None:
        super().__init__()
        self.inner = TimeMLP(h)

    def forward(self, y: Tensor, c_noise: Tensor, cond: object = None) -> Tensor:
        out: Tensor = self.inner(y, c_noise, cond)
        return out


def run_cd(g: GaussianMixture, ref: Tensor, iters: int, rows: list[dict[str, Any]]) -> float:
    sigma_max = 40.0
    path = EDM(sigma_min=0.002, sigma_max=sigma_max)
    teacher = as_denoiser(IsoTeacher(g, path, "eps"), path, prediction="eps")
    sigma_data = float(g.moments()[1].diagonal().mean().sqrt())
    model = ConsistencyModel(Raw(), path=path, sigma_data=sigma_data, sigma_min=0.002)
    target = copy.deepcopy(model).requires_grad_(False)
    sig = karras_sigmas(18, 0.002, sigma_max)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(20)
    for _ in range(iters):
        loss = consistency_distillation_loss(
            model,
            target,
            teacher,
            g.sample(256, generator=gen),
            path=path,
            sigmas=sig,
            solver="heun",
            metric="l2",
            generator=gen,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(target, model, 0.95)
    z = torch.randn(ref.shape[0], 2, generator=torch.Generator().manual_seed(21))
    t1 = torch.ones(ref.shape[0])
    with torch.no_grad():
        one = target(sigma_max * z, t1)
        ddim1 = teacher(sigma_max * z, t1).x0
    assert isinstance(ddim1, Tensor)
    a, b = sw(one, ref), sw(ddim1, ref)
    rows.append(
        {
            "method": "consistency",
            "steps": 1,
            "student_sw2": a,
            "teacher_sw2": b,
            "coverage": coverage(one, g),
        }
    )
    return a / b


class PriorPlusResidual(nn.Module):
    """VSD's auxiliary eps-model: the prior's eps plus a zero-initialised MLP residual."""

    def __init__(self, prior: Denoiser) -> None:
        super().__init__()
        self.prior = prior
        self.res = TimeMLP(64, out_scale=0.0)

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        with torch.no_grad():
            e = self.prior(x, t).eps
        assert isinstance(e, Tensor)
        out: Tensor = e + self.res(x, t)
        return out


def run_one_step(
    g: GaussianMixture, ref: Tensor, iters: int, rows: list[dict[str, Any]]
) -> tuple[float, float]:
    path = VPCosine()
    prior = as_denoiser(IsoTeacher(g, path, "eps"), path, prediction="eps")
    result = {}
    for name in ("vsd", "sds"):
        torch.manual_seed(30)
        student = nn.Sequential(
            nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2)
        )
        opt = torch.optim.Adam(student.parameters(), lr=1e-3)
        aux = PriorPlusResidual(prior) if name == "vsd" else None
        aux_opt = torch.optim.Adam(aux.res.parameters(), lr=1e-3) if aux is not None else None
        gen = torch.Generator().manual_seed(31)
        for _ in range(iters):
            one_step_distillation_step(
                student,
                prior,
                opt,
                path=path,
                batch_size=256,
                noise_shape=(2,),
                aux_model=aux,
                aux_opt=aux_opt,
                aux_steps=2,
                generator=gen,
            )
        with torch.no_grad():
            x = student(torch.randn(ref.shape[0], 2, generator=torch.Generator().manual_seed(32)))
        cov = coverage(x, g)
        rows.append(
            {
                "method": f"{name}_one_step",
                "steps": 1,
                "student_sw2": sw(x, ref),
                "coverage": cov,
                "mean_radius": float(x.norm(dim=1).mean()),
            }
        )
        result[name] = cov
    return result["vsd"], result["sds"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "distill", argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = mixture()
    ref = g.sample(4000, generator=torch.Generator().manual_seed(1))
    for path in (VPCosine(), EDM(sigma_max=40.0)):  # the fast teacher is the exact one
        xt, tt = 3 * ref[:256], torch.rand(256)
        fast = IsoTeacher(g, path, "eps")(xt.double(), tt)
        torch.testing.assert_close(fast, g.predict(xt.double(), tt, path, "eps"))
    pd_iters, cd_iters, sd_iters = (1500, 4000, 4000) if args.quick else (5000, 15000, 15000)
    rows: list[dict[str, Any]] = []
    timings = {}
    start = time.perf_counter()
    pd = run_pd(g, ref, pd_iters, rows)
    timings["pd_s"] = time.perf_counter() - start
    start = time.perf_counter()
    cd = run_cd(g, ref, cd_iters, rows)
    timings["cd_s"] = time.perf_counter() - start
    start = time.perf_counter()
    vsd, sds = run_one_step(g, ref, sd_iters, rows)
    timings["one_step_s"] = time.perf_counter() - start
    print_table(rows, ["method", "steps", "student_sw2", "teacher_sw2", "coverage", "mean_radius"])
    summary = {
        "pd_1step_sw2_over_teacher_1step_sw2": pd,
        "cd_1step_sw2_over_ddim_1step_sw2": cd,
        "vsd_mode_coverage": vsd,
        "sds_mode_coverage": sds,
    }
    print(summary)
    print({k: round(v, 1) for k, v in timings.items()})
    write_json(
        args.out,
        rows,
        summary,
        quick=args.quick,
        iterations={"pd_per_round": pd_iters, "cd": cd_iters, "one_step": sd_iters},
        seconds=timings,
    )


if __name__ == "__main__":
    main()
