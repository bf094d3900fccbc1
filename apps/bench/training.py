"""Training objectives on the Gaussian-mixture test-bed, with trained (not exact) networks:
SlimFlow and guided-model distillation (section ``flows``, :mod:`_training_flows`, with its
PaD-TS domain row), Score Implicit Matching against VSD, CDRL against DRL, Fokker-Planck
regularisation.

The data is :mod:`distill`'s 2-D mixture of ``K = 8`` Gaussians (std 0.2) on a circle of radius
2; quality is the sliced W2 (``polyfold.core.metrics.sliced_wasserstein``) to 4000 exact draws.

- ``sim``: one teacher, an eps-network trained by DSM on mixture draws (VP cosine path). Two
  one-step generators ``z -> x`` (same MLP, same init, optimiser, step count, batch and online
  network: the teacher plus a zero-initialised residual MLP fitted by DSM to the generator's
  samples) are distilled with no data by SIM (:mod:`polyfold.core.distill.sim`, L2 distance,
  weighting ``sigma^2 / alpha``), by SIM with the pseudo-Huber distance (same weighting) and by
  VSD (SwiftBrush, ``one_step_distillation_step``, its ``sigma^2`` weighting). Summary
  ``sim_1step_sw2_over_vsd_1step_sw2`` (goal <= 1) and
  ``sim_huber_1step_sw2_over_vsd_1step_sw2``; the teacher's own 50-step DDIM is a row beside.
- ``cdrl``: EBMs on ``L`` noise levels (one energy MLP conditioned on the level time, its
  output in units of the level's recovery variance ``V_k``, as DRL's ``f / s^2``) trained by
  recovery likelihood with the same number of Langevin steps per level, with an initializer
  network (CDRL) and without (DRL: chains start at ``x_{k+1} / a_k``); samples by each one's
  chain, with the EMA weights. Both share the stabilisers that keep long runs from diverging
  (``energy_reg``, gradient clipping, EMA; the two lowest, sharpest levels trained twice as
  often) and, per seed, the energy init, data draws and sampling noise; three seeds. Summary
  ``cdrl_sw2_over_drl_sw2`` (ratio of the seed means, goal < 1) with the per-seed ratios' range
  ``_min`` / ``_max``; the goal is defined on the full run (6400 steps): quick's 800 cannot
  train the EBMs sharp enough for the initializer to learn from them.
  ``cdrl_no_data_noise_sw2_over_drl_sw2``: CDRL's data level started at its initializer's mean
  (``data_noise=False``); ``cdrl_floor_sw2``: 2000 exact draws' sliced W2 (the metric's floor).
  Diagnostic ``cdrl_exact_init_sw2_over_drl_sw2``: CDRL's chain with the initializer replaced by
  its target, the mixture's exact ``E[x_k | x_{k+1}]`` (the EBM still trained), so a loss of
  CDRL's can be told apart: its learned initializer, or its chain.
- ``fp``: two eps-networks from the same init and data draws, one by DSM and one by DSM plus
  ``lambda`` times the score Fokker-Planck residual (:func:`~polyfold.core.losses.
  fokker_planck_loss`, exact divergence). For each: the exact empirical W2 between its
  probability-flow ODE samples (Heun in log-SNR) and its reverse-SDE samples (Euler-Maruyama),
  same start, same grid; the SDE and ODE samples' sliced W2 to the data; the W2 between two SDE
  runs (the two-sample noise floor of the gap). Summary ``fp_ode_sde_gap_ratio`` (with over
  without, goal < 1) with ``fp_sde_sw2_with`` and ``fp_sde_sw2_without`` beside it.

Summary keys of ``flows``: see :mod:`_training_flows`.

Run: ``python apps/bench/training.py [--quick] [--out FILE]``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import _training_flows  # type: ignore[import-not-found]
import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]
from distill import TimeMLP, coverage, mixture, sw  # type: ignore[import-not-found]
from torch import Tensor, nn

from polyfold.core.cdrl import CDRL
from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.distill import one_step_distillation_step, sim_distillation_step
from polyfold.core.losses import dsm_loss, empirical_w2, fokker_planck_loss, ode_sde_gap
from polyfold.core.paths import VPCosine
from polyfold.core.samplers import get_sampler, uniform_t_grid
from polyfold.core.train.ema import EMA

Rows = list[dict[str, Any]]
Section = Callable[[bool], tuple[Rows, dict[str, Any]]]
PATH = VPCosine()
STEP_SCALE = 0.2  # CDRL/DRL Langevin step, a fraction of the recovery conditional's variance
#: (quick, full) sizes: sim (teacher steps, generator steps), cdrl (steps, Langevin steps per
#: level, learning rate), fp (training steps, samples, grid points, regulariser weight)
SIZES: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "sim": ((1000, 600), (2000, 1200)),
    "cdrl": ((800, 3, 1e-3), (6400, 3, 3e-4)),
    "fp": ((500, 1000, 60, 0.1), (1000, 2000, 120, 0.1)),
}


@functools.cache
def reference() -> Tensor:
    return mixture().sample(4000, generator=torch.Generator().manual_seed(1))


def train_score(steps: int, fp_weight: float = 0.0, seed: int = 0) -> TimeMLP:
    """An eps-network trained by DSM on mixture draws (plus ``fp_weight`` times the
    Fokker-Planck regulariser)."""
    torch.manual_seed(seed)
    net = TimeMLP(64)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g, data = torch.Generator().manual_seed(seed + 1), mixture()
    for _ in range(steps):
        x0 = data.sample(256, generator=g)
        loss = dsm_loss(net, x0, path=PATH, generator=g)
        if fp_weight > 0:
            loss = loss + fp_weight * fokker_planck_loss(net, x0[:64], path=PATH, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.requires_grad_(False)


@functools.cache
def teacher(steps: int) -> TimeMLP:
    return train_score(steps)


# --------------------------------------------------------------------------------------------
# SIM against VSD
# --------------------------------------------------------------------------------------------


class TeacherPlusResidual(nn.Module):
    """The online score network: the frozen teacher's eps plus a zero-initialised residual,
    differentiable in its input (SIM backpropagates through it)."""

    def __init__(self, prior: Denoiser) -> None:
        super().__init__()
        self.prior = prior
        self.res = TimeMLP(64, out_scale=0.0)

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        e = self.prior(x, t).eps
        assert isinstance(e, Tensor)
        out: Tensor = e + self.res(x, t)
        return out


def sim_weight(alpha: Tensor, sigma: Tensor) -> Tensor:
    """SIM's ``w(t) = sigma^2 / alpha``: SIM's gradient carries a factor ``alpha J_eps`` (about
    ``alpha`` at high noise), so this gives it VSD's ``sigma^2`` scale across ``t``."""
    return sigma**2 / alpha


def sim_section(quick: bool) -> tuple[Rows, dict[str, Any]]:
    teacher_steps, iters = SIZES["sim"][not quick]
    ref = reference()
    prior = as_denoiser(teacher(teacher_steps), PATH, prediction="eps")
    rows: Rows = []
    sw2 = {}
    for name, distance in (("sim", "l2"), ("sim_huber", "pseudo_huber"), ("vsd", "")):
        torch.manual_seed(30)
        student = nn.Sequential(
            nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2)
        )
        opt = torch.optim.Adam(student.parameters(), lr=1e-3)
        aux = TeacherPlusResidual(prior)
        aux_opt = torch.optim.Adam(aux.res.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(31)
        start = time.perf_counter()
        for _ in range(iters):
            if name.startswith("sim"):
                sim_distillation_step(
                    student,
                    prior,
                    opt,
                    score_model=aux,
                    score_opt=aux_opt,
                    path=PATH,
                    batch_size=256,
                    noise_shape=(2,),
                    score_steps=2,
                    distance=distance,  # type: ignore[arg-type]
                    weighting=sim_weight,
                    generator=gen,
                )
            else:
                one_step_distillation_step(
                    student,
                    prior,
                    opt,
                    path=PATH,
                    batch_size=256,
                    noise_shape=(2,),
                    aux_model=aux,
                    aux_opt=aux_opt,
                    aux_steps=2,
                    generator=gen,
                )
        seconds = time.perf_counter() - start
        with torch.no_grad():
            x = student(torch.randn(ref.shape[0], 2, generator=torch.Generator().manual_seed(32)))
        sw2[name] = sw(x, ref)
        rows.append(
            {
                "section": "sim",
                "method": f"{name}_one_step",
                "steps": iters,
                "sw2": sw2[name],
                "coverage": coverage(x, mixture()),
                "seconds": seconds,
            }
        )
    with torch.no_grad():
        z = PATH.prior_sample((ref.shape[0], 2), generator=torch.Generator().manual_seed(33))
        t_x = get_ddim(prior, z, 50)
    rows.append({"section": "sim", "method": "teacher_ddim", "steps": 50, "sw2": sw(t_x, ref)})
    return rows, {
        "sim_1step_sw2_over_vsd_1step_sw2": sw2["sim"] / sw2["vsd"],
        "sim_huber_1step_sw2_over_vsd_1step_sw2": sw2["sim_huber"] / sw2["vsd"],
        "sim_1step_sw2": sw2["sim"],
        "vsd_1step_sw2": sw2["vsd"],
    }


def get_ddim(den: Denoiser, z: Tensor, steps: int) -> Tensor:
    x = get_sampler("ddim")(den, PATH, z, uniform_t_grid(PATH, steps)).x
    assert isinstance(x, Tensor)
    return x


# --------------------------------------------------------------------------------------------
# CDRL against DRL
# --------------------------------------------------------------------------------------------


def level_of(model: CDRL, t: Tensor) -> Tensor:
    """``(B,)`` level index ``k`` of the level times ``t`` (``tau_k``, or ``tau_{k+1}``)."""
    k = torch.searchsorted(model.times.to(t.dtype), t.detach())
    return k.clamp_max(model.levels - 1)


class Energy(nn.Module):
    """``E(x, t) = f(x, t) / V_k + |x|^2 / 8``: an MLP ``f`` on ``x`` and Fourier features of
    ``t`` in units of the level's recovery variance ``V_k`` (as DRL's ``f / s^2``: an ``O(1)``
    output gives the level's conditional an ``O(1)`` change of shape), plus a weak confinement."""

    def __init__(self, model: list[CDRL]) -> None:
        super().__init__()
        self.body = TimeMLP(128)
        self.body.net[-1] = nn.Linear(128, 1)
        self.owner = model

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        m = self.owner[0]
        var = m.recovery_var.to(x.dtype)[level_of(m, t)]
        out: Tensor = self.body(x, t)[:, 0] / var + x.pow(2).sum(1) / 8
        return out


class Initializer(nn.Module):
    """``y -> y / a + residual(y, t)``: starts as DRL's ``x_{k+1} / a_k``."""

    def __init__(self, model: list[CDRL]) -> None:
        super().__init__()
        self.res = TimeMLP(64, out_scale=0.0)
        self.owner = model

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        m = self.owner[0]
        a = m.a.to(y.dtype)[level_of(m, t)][:, None]
        out: Tensor = y / a + self.res(y, t)
        return out


class ExactEps(nn.Module):
    """The mixture's exact ``E[eps | x_t = y]``: with ``init_prediction="eps"`` CDRL proposes
    the exact ``E[x_k | x_{k+1}]``, the cooperative initializer's target (diagnostic only)."""

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        a, s = PATH.alpha(t)[:, None], PATH.sigma(t)[:, None]
        out: Tensor = (y - a * mixture().x0_mean(y, t, PATH)) / s
        return out


CDRL_TIMES = [0.2, 0.4, 0.6, 0.8, 0.9]
CDRL_SEEDS = (0, 1, 2)
#: training stabilisers, the same for CDRL and DRL: without them both diverge by 3200 steps
CDRL_ENERGY_REG, CDRL_CLIP, CDRL_EMA = 0.01, 1.0, 0.999
#: the levels' training order: the two lowest (the sharpest EBMs) twice as often
CDRL_LEVEL_ORDER = (0, 0, 1, 1, 2, 3, 4)


def train_cdrl(name: str, seed: int, iters: int, mcmc: int, lr: float) -> tuple[CDRL, float]:
    """A CDRL (``"cdrl"``; ``"cdrl_exact_init"``: its initializer fixed at the exact
    conditional mean) or DRL (``"drl"``) model trained for ``iters`` steps at learning rate
    ``lr`` (one level per step, cycling through :data:`CDRL_LEVEL_ORDER`; energy regulariser
    :data:`CDRL_ENERGY_REG`, gradient norm clipped at :data:`CDRL_CLIP`), returned with the EMA
    weights (:data:`CDRL_EMA`) loaded; and the training seconds. All share the energy's init,
    the data draws and the optimiser for a given ``seed``."""
    torch.manual_seed(40 + 10 * seed)
    owner: list[CDRL] = []
    energy = Energy(owner)
    pred = "eps" if name == "cdrl_exact_init" else "mean"
    model = CDRL(
        energy,
        None,
        path=PATH,
        times=CDRL_TIMES,
        mcmc_steps=mcmc,
        step_scale=STEP_SCALE,
        init_prediction=pred,
        energy_reg=CDRL_ENERGY_REG,
    )
    owner.append(model)
    if name != "drl":
        model.initializer = ExactEps() if pred == "eps" else Initializer(owner)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    ema = EMA(model, max_decay=CDRL_EMA)
    gen, data = torch.Generator().manual_seed(41 + 10 * seed), mixture()
    start = time.perf_counter()
    for i in range(iters):
        level = CDRL_LEVEL_ORDER[i % len(CDRL_LEVEL_ORDER)]
        parts = model.losses(data.sample(256, generator=gen), gen, level=level)
        opt.zero_grad()
        (parts["ebm"] + parts["init"]).backward()
        nn.utils.clip_grad_norm_(model.parameters(), CDRL_CLIP)
        opt.step()
        ema.update(model)
    ema.copy_to(model)
    return model, time.perf_counter() - start


def sample_cdrl(model: CDRL, seed: int, *, data_noise: bool) -> Tensor:
    """2000 samples of ``model``'s chain (the same noise for every model of a ``seed``)."""
    g = torch.Generator().manual_seed(42 + seed)
    return model.sample(2000, (2,), generator=g, data_noise=data_noise)


def cdrl_section(quick: bool) -> tuple[Rows, dict[str, Any]]:
    iters, mcmc, lr = SIZES["cdrl"][not quick]
    ref = reference()
    rows: Rows = []
    sw2: dict[str, list[float]] = {"cdrl": [], "drl": [], "cdrl_exact_init": []}
    no_noise: list[float] = []  # CDRL's data level started at its initializer's mean
    for seed in CDRL_SEEDS:
        for name in sw2:
            model, seconds = train_cdrl(name, seed, iters, mcmc, lr)
            x = sample_cdrl(model, seed, data_noise=True)
            sw2[name].append(sw(x, ref))
            if name == "cdrl":
                no_noise.append(sw(sample_cdrl(model, seed, data_noise=False), ref))
            rows.append(
                {
                    "section": "cdrl",
                    "method": name,
                    "seed": seed,
                    "steps": iters,
                    "mcmc_steps": mcmc,
                    "lr": lr,
                    "levels": len(CDRL_TIMES),
                    "sw2": sw2[name][-1],
                    "coverage": coverage(x, mixture()),
                    "seconds": seconds,
                }
            )
    ratios = [c / d for c, d in zip(sw2["cdrl"], sw2["drl"], strict=True)]
    floor = [  # exact draws, as many as the chains': the sliced W2's two-sample floor
        sw(mixture().sample(2000, generator=torch.Generator().manual_seed(100 + s)), ref)
        for s in CDRL_SEEDS
    ]
    mean = {n: sum(v) / len(v) for n, v in sw2.items()}
    return rows, {
        "cdrl_sw2_over_drl_sw2": mean["cdrl"] / mean["drl"],
        "cdrl_sw2_over_drl_sw2_min": min(ratios),
        "cdrl_sw2_over_drl_sw2_max": max(ratios),
        "cdrl_seeds": len(CDRL_SEEDS),
        "cdrl_sw2": mean["cdrl"],
        "drl_sw2": mean["drl"],
        "cdrl_exact_init_sw2_over_drl_sw2": mean["cdrl_exact_init"] / mean["drl"],
        "cdrl_no_data_noise_sw2_over_drl_sw2": sum(no_noise) / len(no_noise) / mean["drl"],
        "cdrl_floor_sw2": sum(floor) / len(floor),
    }


# --------------------------------------------------------------------------------------------
# Fokker-Planck regularisation and the ODE-SDE gap
# --------------------------------------------------------------------------------------------


def fp_section(quick: bool) -> tuple[Rows, dict[str, Any]]:
    steps, n, grid_n, weight = SIZES["fp"][not quick]
    ref = reference()
    rows: Rows = []
    out: dict[str, dict[str, float]] = {}
    grid = uniform_t_grid(PATH, grid_n)
    for name, w in (("without", 0.0), ("with", weight)):
        start = time.perf_counter()
        net = train_score(steps, fp_weight=w, seed=50)
        seconds = time.perf_counter() - start
        den = as_denoiser(net, PATH, prediction="eps")
        z = PATH.prior_sample((n, 2), generator=torch.Generator().manual_seed(51))
        gap = ode_sde_gap(
            den,
            PATH,
            z,
            grid,
            ode="heun",
            ode_options={"variable": "sigma"},
            generator=torch.Generator().manual_seed(52),
        )
        again = get_sampler("euler_maruyama")(
            den, PATH, z, grid, generator=torch.Generator().manual_seed(53)
        ).x
        out[name] = {
            "gap_w2": gap.w2,
            "sde_floor_w2": empirical_w2(gap.sde, again),
            "ode_sw2": sw(gap.ode, ref),
            "sde_sw2": sw(gap.sde, ref),
        }
        row = {"section": "fp", "method": f"dsm_{name}_fp", "steps": steps, "fp_weight": w}
        rows.append({**row, **out[name], "seconds": seconds})
    return rows, {
        "fp_ode_sde_gap_ratio": out["with"]["gap_w2"] / out["without"]["gap_w2"],
        "fp_gap_w2_with": out["with"]["gap_w2"],
        "fp_gap_w2_without": out["without"]["gap_w2"],
        "fp_sde_sw2_with": out["with"]["sde_sw2"],
        "fp_sde_sw2_without": out["without"]["sde_sw2"],
        "fp_ode_sw2_with": out["with"]["ode_sw2"],
        "fp_ode_sw2_without": out["without"]["ode_sw2"],
    }


def flows_section(quick: bool) -> tuple[Rows, dict[str, Any]]:
    """SlimFlow and guided-model distillation, and their PaD-TS row (:mod:`_training_flows`)."""
    rows, summary = _training_flows.run(quick)
    return rows, summary


SECTIONS: list[Section] = [flows_section, sim_section, cdrl_section, fp_section]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "training", argv)
    torch.set_num_threads(1)
    rows: Rows = []
    summary: dict[str, Any] = {}
    seconds = {}
    for section in SECTIONS:
        start = time.perf_counter()
        r, s = section(args.quick)
        seconds[section.__name__] = round(time.perf_counter() - start, 1)
        rows += r
        summary.update(s)
        print_table(r)
        print()
    print(summary)
    print(seconds)
    write_json(args.out, rows, summary, quick=args.quick, seconds=seconds)


if __name__ == "__main__":
    main()
