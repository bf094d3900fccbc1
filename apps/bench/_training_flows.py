"""Training objectives, part one: SlimFlow one-step students and guided-model distillation.

Everything is trained here (no exact networks): on core's Gaussian-mixture test-bed (``K = 8``
Gaussians, std 0.2, on a circle of radius 2; :func:`distill.mixture`) and on one domain model.

- **SlimFlow vs progressive distillation**, same one-step student (``TimeMLP(60)``, 4.9k
  parameters, 0.26x the teacher's 19.2k): the teacher is a velocity network on the rectified-flow
  path trained by flow matching. SlimFlow draws pairs ``(z, ODE(z))`` with the teacher's Heun
  ODE (16 steps), trains the small student by Annealing Reflow (randomness annealed 1 -> 0 over
  the first half) and then by Flow-Guided Distillation (guide: the small 2-rectified flow).
  Progressive distillation (x0 target, truncated SNR) starts the same small network by flow
  matching on the data for as many steps as the reflow stage, then distils the teacher's 8
  DDIM (= Euler) steps to 4, 2 and 1, each round as long as the FGD stage. Metric: sliced W2
  (``polyfold.core.metrics.sliced_wasserstein``) of one-step samples to exact samples.
- **Guided distillation**: the same mixture with two classes (alternate modes); the teacher is
  a class-conditional v-network on the VP cosine path trained with 15% label dropout. Stage one
  distils its CFG output (core's ``cfg``, conditional + unconditional pass) into a student with a
  ``w`` embedding (initialised from the teacher, zero-initialised ``w`` branch), ``w ~ U[0, 8]``;
  stage two halves the student's DDIM steps 8 -> 4 -> 2 with core's progressive distillation. At
  each ``w`` in {1, 2, 4, 8}: the mean over classes of the sliced W2 to that class's exact data,
  for the teacher's CFG DDIM at 8 steps (16 network evaluations) and the student at 8 steps
  (8 evaluations: half the teacher's calls), 4 and 2 steps. ``sw2_to_teacher`` is the student's
  distance to the teacher's 64-step CFG samples (a student that ignored ``w`` would show here).
- **Domain row** (polyfold-timeseries PaD-TS on EuStockMarkets windows of 24, its FDDS metric):
  the trained PaD-TS teacher (DDIM, 50 steps) against a SlimFlow one-step student with a quarter
  of its width (``d_model`` 32 vs 64), trained on 50-step DDIM pairs, and the teacher's own DDIM
  at 1 step.

Summary: ``slimflow_1step_sw2_over_pd_1step_sw2`` (goal < 1),
``guided_distill_sw2_over_cfg_teacher_sw2`` (dict by ``w``, goal <= 1.2 at every ``w``) and its
maximum, ``guided_distill_quarter_calls_sw2_over_cfg_teacher_sw2`` (4 steps), and the domain
row's ``padts_slimflow_1step_fdds`` beside ``padts_teacher_fdds`` / ``padts_teacher_1step_fdds``.

Run alone: ``python apps/bench/_training_flows.py [--quick] [--out FILE]``.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]
from distill import TimeMLP, mixture, sw  # type: ignore[import-not-found]
from torch import Tensor, nn
from torch.utils.data import Dataset

from polyfold.core.denoiser import as_denoiser
from polyfold.core.distill import (
    annealing_reflow_trainer,
    flow_guided_distillation_trainer,
    guidance_embedding,
    guided_denoiser,
    guided_distillation_trainer,
    guided_progressive_distillation,
    one_step_sample,
    pd_grid,
    progressive_distillation_loss,
    progressive_schedule,
    reflow_pairs,
)
from polyfold.core.guidance import cfg
from polyfold.core.losses import cfm_loss, dsm_loss
from polyfold.core.paths import LinearInterpolant, VPCosine
from polyfold.core.samplers import ddim
from polyfold.core.testing import NULL_LABEL, GaussianMixture
from polyfold.core.train import Trainer

TEACHER_H, STUDENT_H = 128, 60
WEIGHTS = (1.0, 2.0, 4.0, 8.0)


class Rows(Dataset[Any]):
    """A map-style dataset over the rows of one or more tensors; ``__getitems__`` fetches a
    whole batch by fancy indexing (used with :data:`OPTS`'s pass-through ``collate_fn``)."""

    def __init__(self, *tensors: Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> Any:
        items = tuple(t[i] for t in self.tensors)
        return items[0] if len(items) == 1 else items

    def __getitems__(self, idx: list[int]) -> Any:
        return self[torch.as_tensor(idx)]  # type: ignore[index]


def _batch(b: Any) -> Any:
    return b


OPTS: dict[str, Any] = {
    "device": "cpu",
    "quiet": True,
    "tensorboard": False,
    "log_every": 1000,
    "collate_fn": _batch,
}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def fit(trainer: Trainer, model: nn.Module) -> nn.Module:
    """Run ``trainer`` and leave its EMA weights (when it keeps an EMA) in ``model``."""
    trainer.fit()
    if trainer.ema is not None:
        trainer.ema.copy_to(model)
    return model


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any, torch.Generator], Tensor],
    data: Dataset[Any],
    steps: int,
    lr: float,
    **options: Any,
) -> nn.Module:
    with tempfile.TemporaryDirectory() as tmp:
        opts = {"batch_size": 256, "ema_decay": 0.999, **OPTS, **options}
        trainer = Trainer(model, loss_fn, data, out_dir=tmp, max_steps=steps, lr=lr, **opts)
        return fit(trainer, model)


# --- SlimFlow against progressive distillation ---------------------------------------------------


def run_slimflow(quick: bool, rows: list[dict[str, Any]]) -> dict[str, Any]:
    teacher_steps, reflow_steps, fgd_steps = (1500, 800, 500) if quick else (8000, 5000, 3000)
    n_pairs = 6000 if quick else 30000
    g = mixture()
    ref = g.sample(4000, generator=torch.Generator().manual_seed(1))
    data = Rows(g.sample(20000, generator=torch.Generator().manual_seed(2)))
    path = LinearInterpolant()
    z_eval = torch.randn(4000, 2, generator=torch.Generator().manual_seed(3))

    torch.manual_seed(10)
    teacher = TimeMLP(TEACHER_H)
    train(
        teacher,
        lambda m, x, gen: cfm_loss(m, x, path=path, generator=gen),
        data,
        teacher_steps,
        2e-3,
    )
    teacher.requires_grad_(False).eval()
    t_den = as_denoiser(teacher, path, prediction="velocity")
    with torch.no_grad():
        t16 = reflow_pairs(t_den, path, z_eval, sampler="heun", steps=16).x
        t1 = one_step_sample(t_den, z_eval)
    rows.append(
        {
            "part": "slimflow",
            "method": "teacher_heun",
            "steps": 16,
            "params": n_params(TimeMLP(TEACHER_H)),
            "sw2": sw(t16, ref),
        }
    )
    rows.append(
        {
            "part": "slimflow",
            "method": "teacher_euler",
            "steps": 1,
            "params": n_params(TimeMLP(TEACHER_H)),
            "sw2": sw(t1, ref),
        }
    )

    # SlimFlow: teacher pairs, Annealing Reflow from scratch, Flow-Guided Distillation
    z = torch.randn(n_pairs, 2, generator=torch.Generator().manual_seed(4))
    made = reflow_pairs(t_den, path, z, sampler="heun", steps=16)
    pairs = Rows(made.z, made.x)
    torch.manual_seed(11)
    student = TimeMLP(STUDENT_H)
    with tempfile.TemporaryDirectory() as tmp:
        opts = {"batch_size": 256, "ema_decay": 0.999, **OPTS}
        fit(
            annealing_reflow_trainer(
                student,
                pairs,
                out_dir=f"{tmp}/r",
                anneal_steps=reflow_steps // 2,
                max_steps=reflow_steps,
                lr=2e-3,
                **opts,
            ),
            student,
        )
        s_den = as_denoiser(student, path, prediction="velocity")
        with torch.no_grad():
            reflowed = one_step_sample(s_den, z_eval)
        fit(
            flow_guided_distillation_trainer(
                student, pairs, out_dir=f"{tmp}/f", max_steps=fgd_steps, lr=5e-4, **opts
            ),
            student,
        )
    with torch.no_grad():
        slim = one_step_sample(s_den, z_eval)
    rows.append(
        {
            "part": "slimflow",
            "method": "annealing_reflow",
            "steps": 1,
            "params": n_params(student),
            "sw2": sw(reflowed, ref),
        }
    )
    slim_sw = sw(slim, ref)
    rows.append(
        {
            "part": "slimflow",
            "method": "slimflow_fgd",
            "steps": 1,
            "params": n_params(student),
            "sw2": slim_sw,
        }
    )

    # progressive distillation of the same teacher into the same small network
    torch.manual_seed(11)
    pd_net = TimeMLP(STUDENT_H)
    train(
        pd_net, lambda m, x, gen: cfm_loss(m, x, path=path, generator=gen), data, reflow_steps, 2e-3
    )
    pd_den = as_denoiser(pd_net, path, prediction="velocity")
    state: dict[str, Any] = {"teacher": t_den}
    gen = torch.Generator().manual_seed(12)
    opt = [torch.optim.Adam(pd_net.parameters(), lr=5e-4)]

    def pd_step(n: int, _: int) -> float:
        x0 = g.sample(256, generator=gen)
        loss = progressive_distillation_loss(
            pd_den, state["teacher"], x0, path=path, student_steps=n, generator=gen
        )
        opt[0].zero_grad()
        loss.backward()
        opt[0].step()
        return float(loss.detach())

    def pd_end(n: int) -> None:
        frozen = copy.deepcopy(pd_net).requires_grad_(False)
        state["teacher"] = as_denoiser(frozen, path, prediction="velocity")
        opt[0] = torch.optim.Adam(pd_net.parameters(), lr=5e-4)
        with torch.no_grad():
            x = ddim(pd_den, path, z_eval, pd_grid(path, n)).x
        assert isinstance(x, Tensor)
        rows.append(
            {
                "part": "slimflow",
                "method": "progressive",
                "steps": n,
                "params": n_params(pd_net),
                "sw2": sw(x, ref),
            }
        )

    progressive_schedule(pd_step, teacher_steps=8, iterations=fgd_steps, on_stage_end=pd_end)
    pd1 = float(rows[-1]["sw2"])
    return {
        "slimflow_1step_sw2_over_pd_1step_sw2": slim_sw / pd1,
        "slimflow_student_over_teacher_params": n_params(student) / n_params(TimeMLP(TEACHER_H)),
    }


# --- guided-model distillation ----------------------------------------------------------------


class CondMLP(nn.Module):
    """``net(x, t, cond)``: Fourier time features and a label embedding (0, 1, or
    :data:`NULL_LABEL`); with ``guided`` also ``w`` branches into both hidden layers
    (zero-initialised, so a student
    loaded from the teacher starts as the teacher's conditional model). ``cond`` is the label
    tensor, or ``{"cond": labels, "w": w}`` for the guided student."""

    def __init__(self, h: int = 128, guided: bool = False) -> None:
        super().__init__()
        self.freqs = nn.Parameter(torch.arange(1, 9, dtype=torch.float32), requires_grad=False)
        self.label = nn.Embedding(3, 16)
        self.inp = nn.Linear(2 + 16 + 16, h)
        self.mid = nn.Linear(h, h)
        self.out = nn.Linear(h, 2)
        self.w_in = nn.Linear(16, h) if guided else None
        self.w_mid = nn.Linear(16, h) if guided else None
        for layer in (self.w_in, self.w_mid):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        b = x.shape[0]
        w = None
        if isinstance(cond, dict):
            cond, w = cond["cond"], cond["w"]
        lab = torch.as_tensor(cond, device=x.device).long().reshape(-1).expand(b)
        lab = torch.where(lab == NULL_LABEL, torch.full_like(lab, 2), lab)
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(b, 1) * self.freqs
        h = self.inp(torch.cat([x, torch.sin(tt), torch.cos(tt), self.label(lab)], dim=1))
        e = None if w is None else guidance_embedding(w, b, 16).to(x.dtype)
        if self.w_in is not None and e is not None:
            h = h + self.w_in(e)
        h = self.mid(torch.nn.functional.silu(h))
        if self.w_mid is not None and e is not None:
            h = h + self.w_mid(e)
        out: Tensor = self.out(torch.nn.functional.silu(h))
        return out


def two_class_mixture() -> GaussianMixture:
    g = mixture()
    return GaussianMixture(g.means, stds=0.2, labels=[k % 2 for k in range(len(g.means))])


def per_class_sw(x: Tensor, labels: Tensor, refs: list[Tensor]) -> float:
    return float(np.mean([sw(x[labels == c], refs[c]) for c in range(len(refs))]))


def run_guided(quick: bool, rows: list[dict[str, Any]]) -> dict[str, Any]:
    teacher_steps, stage1_steps, round_steps = (1200, 800, 250) if quick else (6000, 4000, 1500)
    g = two_class_mixture()
    path = VPCosine()
    gen = torch.Generator().manual_seed(20)
    labels = torch.arange(2).repeat_interleave(10000)
    x = torch.cat([g.sample(10000, cond=c, generator=gen) for c in (0, 1)])
    data = Rows(x, labels)
    refs = [g.sample(2000, cond=c, generator=torch.Generator().manual_seed(21 + c)) for c in (0, 1)]
    eval_labels = torch.arange(2).repeat_interleave(2000)
    x_T = path.prior_sample((4000, 2), generator=torch.Generator().manual_seed(23))

    def teacher_loss(m: nn.Module, batch: Any, g_: torch.Generator) -> Tensor:
        x0, c = batch
        drop = torch.rand(c.shape[0], generator=g_, device=c.device) < 0.15
        c = torch.where(drop, torch.full_like(c, NULL_LABEL), c)
        return dsm_loss(m, x0, path=path, prediction="v", cond=c, generator=g_)

    torch.manual_seed(24)
    teacher = CondMLP(TEACHER_H)
    train(teacher, teacher_loss, data, teacher_steps, 2e-3)
    teacher.requires_grad_(False).eval()

    student = CondMLP(TEACHER_H, guided=True)
    student.load_state_dict(teacher.state_dict(), strict=False)
    kw: dict[str, Any] = {"path": path, "prediction": "v", "null_cond": NULL_LABEL}
    opts = {"batch_size": 256, "ema_decay": 0.999, **OPTS}
    with tempfile.TemporaryDirectory() as tmp:
        fit(
            guided_distillation_trainer(
                student,
                teacher,
                data,
                out_dir=f"{tmp}/s1",
                w_range=(0.0, 8.0),
                max_steps=stage1_steps,
                lr=1e-3,
                **kw,
                **opts,
            ),
            student,
        )
    stage1 = copy.deepcopy(student)
    samples: dict[tuple[str, int], Callable[[float], Tensor]] = {}

    def student_sampler(net: nn.Module, n: int) -> Callable[[float], Tensor]:
        def draw(w: float) -> Tensor:
            den = guided_denoiser(net, path, prediction="v", cond=eval_labels, w=w)
            out = ddim(den, path, x_T, pd_grid(path, n)).x
            assert isinstance(out, Tensor)
            return out

        return draw

    samples[("stage1", 8)] = student_sampler(stage1, 8)
    snapshots: dict[int, nn.Module] = {}
    with tempfile.TemporaryDirectory() as tmp:
        guided_progressive_distillation(
            student,
            data,
            out_dir=tmp,
            path=path,
            prediction="v",
            teacher_steps=8,
            final_steps=2,
            steps_per_round=round_steps,
            w_range=(0.0, 8.0),
            on_round_end=lambda n: snapshots.__setitem__(n, copy.deepcopy(student)),
            lr=2e-4,
            **opts,
        )
    for n, net in snapshots.items():
        samples[("progressive", n)] = student_sampler(net, n)

    ratios: dict[str, float] = {}
    quarter: dict[str, float] = {}
    t_den = as_denoiser(teacher, path, prediction="v", cond=eval_labels)
    with torch.no_grad():
        for w in WEIGHTS:
            guided = cfg(t_den, NULL_LABEL, w)
            t8, t64 = (ddim(guided, path, x_T, pd_grid(path, n)).x for n in (8, 64))
            assert isinstance(t8, Tensor)
            assert isinstance(t64, Tensor)
            t_sw = per_class_sw(t8, eval_labels, refs)
            rows.append(
                {
                    "part": "guided",
                    "method": "cfg_teacher",
                    "w": w,
                    "steps": 8,
                    "calls": 16,
                    "sw2": t_sw,
                    "sw2_to_teacher": sw(t8, t64),
                }
            )
            for (name, n), draw in samples.items():
                xs = draw(w)
                s_sw = per_class_sw(xs, eval_labels, refs)
                rows.append(
                    {
                        "part": "guided",
                        "method": f"student_{name}",
                        "w": w,
                        "steps": n,
                        "calls": n,
                        "sw2": s_sw,
                        "sw2_to_teacher": sw(xs, t64),
                        "ratio": s_sw / t_sw,
                    }
                )
                if name == "progressive" and n == 8 // 2:
                    quarter[str(w)] = s_sw / t_sw
                if name == "stage1":
                    ratios[str(w)] = s_sw / t_sw
    return {
        "guided_distill_sw2_over_cfg_teacher_sw2": ratios,
        "guided_distill_sw2_over_cfg_teacher_sw2_max": max(ratios.values()),
        "guided_distill_quarter_calls_sw2_over_cfg_teacher_sw2": quarter,
    }


# --- domain row: PaD-TS (polyfold-timeseries) -------------------------------------------------


def run_domain(quick: bool, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from polyfold.timeseries.data import load_multivariate, windows
    from polyfold.timeseries.metrics import fdds, vds
    from polyfold.timeseries.padts import PaDTS, PaDTSConfig, train_padts

    teacher_steps, reflow_steps, fgd_steps = (200, 200, 100) if quick else (1000, 1200, 500)
    n_pairs = 512 if quick else 2048
    table = load_multivariate("eustocks")
    real = windows(table, 24, stride=4 if quick else 2)
    cfg_t = PaDTSConfig(
        seq_len=24, n_features=real.shape[2], steps=teacher_steps, data_card="eustocks"
    )
    teacher = train_padts(real, cfg_t, quiet=True)
    n_eval = min(len(real), 500)
    gen = torch.Generator().manual_seed(30)
    t50 = teacher.sample(n_eval, sampler="ddim", steps=50, generator=gen)
    t1 = teacher.sample(
        n_eval, sampler="ddim", steps=1, generator=torch.Generator().manual_seed(30)
    )

    # SlimFlow: 50-step DDIM pairs of the teacher, a quarter-width student on the linear path
    teacher.clip_output = cfg_t.clip
    t_den = as_denoiser(teacher, teacher.path, prediction="x0")
    z = teacher.path.prior_sample(
        (n_pairs, 24, real.shape[2]), generator=torch.Generator().manual_seed(31)
    )
    made = reflow_pairs(t_den, teacher.path, z, sampler="ddim", steps=50)
    teacher.clip_output = False
    pairs = Rows(made.z, made.x.clamp(-1.0, 1.0))
    torch.manual_seed(32)
    student = PaDTS(PaDTSConfig(seq_len=24, n_features=real.shape[2], d_model=32))
    opts = {"batch_size": 64, "ema_decay": 0.995, **OPTS}
    with tempfile.TemporaryDirectory() as tmp:
        fit(
            annealing_reflow_trainer(
                student,
                pairs,
                out_dir=f"{tmp}/r",
                prediction="x0",
                anneal_steps=reflow_steps // 2,
                max_steps=reflow_steps,
                lr=1e-3,
                **opts,
            ),
            student,
        )
        fit(
            flow_guided_distillation_trainer(
                student,
                pairs,
                out_dir=f"{tmp}/f",
                prediction="x0",
                max_steps=fgd_steps,
                lr=3e-4,
                **opts,
            ),
            student,
        )
    student.eval()
    z_eval = torch.randn(n_eval, 24, real.shape[2], generator=torch.Generator().manual_seed(33))
    with torch.no_grad():
        one = one_step_sample(as_denoiser(student, LinearInterpolant(), prediction="x0"), z_eval)
    s1 = teacher.denormalize(one.clamp(-1.0, 1.0)).float()
    fakes = {"teacher": (t50, 50), "teacher_1step": (t1, 1), "slimflow_1step": (s1, 1)}
    params = {"teacher": n_params(teacher), "student": n_params(student)}
    summary: dict[str, Any] = {}
    for name, (fake, steps) in fakes.items():
        f, v = fdds(real, fake), vds(real, fake)
        who = "student" if name.startswith("slimflow") else "teacher"
        rows.append(
            {
                "part": "domain_padts",
                "method": name,
                "steps": steps,
                "params": params[who],
                "fdds": f,
                "vds": v,
            }
        )
        summary[f"padts_{name}_fdds"] = f
        summary[f"padts_{name}_vds"] = v
    summary["padts_student_over_teacher_params"] = params["student"] / params["teacher"]
    return summary


COLUMNS = ["part", "method", "w", "steps", "calls", "params", "sw2", "sw2_to_teacher", "ratio"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "training flows", argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows, summary = run(args.quick, verbose=True)
    print_table(rows, [*COLUMNS, "fdds", "vds"])
    print(summary)
    print(f"{time.perf_counter() - start:.1f} s")
    write_json(args.out, rows, summary, quick=args.quick)


def run(quick: bool, verbose: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and summary of this benchmark (``quick``: small sizes); ``verbose`` prints
    each part's rows and summary as it ends."""
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    timings: dict[str, float] = {}
    parts = (("guided", run_guided), ("slimflow", run_slimflow), ("domain", run_domain))
    for name, part in parts:
        t0 = time.perf_counter()
        first = len(rows)
        found = part(quick, rows)
        summary.update(found)
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        if verbose:
            print_table(rows[first:], [*COLUMNS, "fdds", "vds"])
            print({**found, "seconds": timings[f"{name}_s"]}, flush=True)
    summary["seconds"] = timings
    return rows, summary


if __name__ == "__main__":
    main()
