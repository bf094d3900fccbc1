"""Steering by a classifier without gradients (GFCG) and by adjoint gradients (AdjointDPM).

The part of ``steering.py`` for issue 26 items 4-5; ``run(quick)`` returns ``(rows, summary)``.
Run alone: ``python apps/bench/_steering_gradients.py --quick --out runs/bench/grad.json``.

- GFCG, class-conditional test-bed: a 4-class Gaussian mixture (means on a cross, std 0.8);
  the "trained" model is the exact model of the same mixture with std 1.3 (too diverse, as an
  under-guided network), the classifier the Bayes classifier of the true mixture (run without
  gradients). Class accuracy (that classifier's argmax equals the requested class) for the
  conditional model, CFG at scale ``1 + s``, GFCG alone at scale ``s`` and CFG(``1 + s``) with
  GFCG(``s``), on the same noise with DPM-Solver++(2M).
  ``gfcg_class_accuracy_gain_over_cfg``: CFG + GFCG minus CFG alone at the same scales.
- AdjointDPM accuracy: a small conditional MLP (float64, VP linear path); gradients of a
  quadratic loss with respect to the noise, the condition and every parameter, against
  back-propagation through the same solver (``pf_ode_sample``) and, for ``order=1``, through
  core's DDIM sampler. ``adjoint_grad_rel_error``: the largest relative error (Euclidean norm)
  of the default solver (``order=2``) at about 100 network calls.
- AdjointDPM memory: peak CPU memory of one gradient evaluation (an MLP of width 256 on a batch
  of 256), measured with torch's CPU memory profiler (``torch.profiler`` with
  ``profile_memory=True``: the running sum of allocation events, peak over the call), at 10 and
  100 network calls of the forward solve, for AdjointDPM and for back-propagation through the
  sampler. ``adjoint_memory_growth``: AdjointDPM's peak at NFE 100 over NFE 10.
- Time series: PaD-TS (polyfold-timeseries) trained here on the sines benchmark (no trained
  time-series model ships with the package), steered to a mean level over the last 8 steps of
  channel 0 (reward ``-(mean - target)^2``) by optimising the initial noise through AdjointDPM
  (Adam, noise kept on the sphere of radius ``sqrt(d)``), against best-of-N on the same budget of
  network calls (a vector-Jacobian product counted as two calls); the samples' quality is the
  package's VDS and FDDS against real windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from polyfold.core.adjoint import adjoint_gradients, pf_ode_sample
from polyfold.core.denoiser import as_denoiser
from polyfold.core.guidance import cfg, gfcg
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import get_sampler, log_snr_grid, uniform_t_grid
from polyfold.core.testing import NULL_LABEL, GaussianMixture

F64 = torch.float64

# --- GFCG ------------------------------------------------------------------------------------

MEANS = [[-1.5, 0.0], [1.5, 0.0], [0.0, 2.0], [0.0, -2.0]]


def gfcg_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    true = GaussianMixture(MEANS, stds=0.8, labels=[0, 1, 2, 3])
    path = VPLinear()
    model = GaussianMixture(MEANS, stds=1.3, labels=[0, 1, 2, 3]).model(path, "eps")

    def classifier(x0: Tensor) -> Tensor:
        return torch.stack([true.log_prob(x0, cond=k) for k in range(4)], 1)

    n, steps = (400, 12) if quick else (4000, 25)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (n,), generator=g)
    x = path.prior_sample((n, 2), generator=g, dtype=F64)
    grid = log_snr_grid(path, steps, append_zero=True)
    sampler = get_sampler("dpm_solver_pp")
    den = as_denoiser(model, path, prediction="eps", cond=labels)

    def acc(d: Any) -> float:
        out = sampler(d, path, x, grid).x
        return float((classifier(out).argmax(1) == labels).double().mean())

    rows: list[dict[str, Any]] = []
    base = acc(den)
    for s in (0.5, 1.0) if quick else (0.25, 0.5, 1.0, 2.0):
        row = {
            "part": "gfcg",
            "setting": f"scale s={s}",
            "acc_conditional": base,
            "acc_cfg": acc(cfg(den, NULL_LABEL, 1.0 + s)),
            "acc_gfcg": acc(gfcg(den, classifier, s)),
            "acc_cfg_gfcg": acc(gfcg(den, classifier, s, uncond=NULL_LABEL, cfg_scale=1.0 + s)),
        }
        rows.append(row)
    ref = next(r for r in rows if r["setting"] == "scale s=0.5")
    summary = {
        "gfcg_class_accuracy_gain_over_cfg": ref["acc_cfg_gfcg"] - ref["acc_cfg"],
        "gfcg_alone_minus_cfg": ref["acc_gfcg"] - ref["acc_cfg"],
    }
    return rows, summary


# --- AdjointDPM: accuracy ----------------------------------------------------------------------


class CondMLP(nn.Module):
    """``(x, t, cond) -> eps`` for ``(B, d)`` states and a ``(1, c)`` condition vector."""

    def __init__(self, d: int, c: int, width: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Linear(d + 1 + c, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, d),
        )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        parts = [x, t[:, None].to(x.dtype)]
        if cond is not None:
            parts.append(cond.expand(x.shape[0], -1))
        out: Tensor = self.f(torch.cat(parts, 1))
        return out


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def adjoint_accuracy_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    torch.manual_seed(0)
    net = CondMLP(2, 3, 32).to(F64)
    path = VPLinear()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 2, generator=g, dtype=F64)
    cond = torch.randn(1, 3, generator=g, dtype=F64)

    def loss(y: Tensor) -> Tensor:
        return (y**2).sum() + (y[:, 0] * y[:, 1]).sum()

    rows: list[dict[str, Any]] = []
    worst_default = math.nan
    configs = [(2, 11, 0), (2, 51, 0), (1, 100, 0), (1, 100, 2)]
    if not quick:
        configs += [(2, 201, 0), (1, 400, 0)]
    for order, steps, refine in configs:
        grid = log_snr_grid(path, steps, append_zero=True)
        res = adjoint_gradients(
            net, path, x, grid, loss, prediction="eps", cond=cond, order=order, refine=refine
        )
        xr, cr = x.clone().requires_grad_(True), cond.clone().requires_grad_(True)
        if order == 1:  # back-propagation through core's DDIM, the same discretisation
            den = as_denoiser(net, path, prediction="eps", cond=cr)
            out = get_sampler("ddim")(den, path, xr, grid).x
            reference = "ddim sampler"
        else:
            out = pf_ode_sample(net, path, xr, grid, prediction="eps", cond=cr, order=order)
            reference = "pf_ode_sample"
        grads = torch.autograd.grad(loss(out), [xr, cr, *net.parameters()])
        errs = {
            "rel_err_noise": _rel(res.grad_x, grads[0]),
            "rel_err_cond": _rel(res.grad_cond, grads[1]),
            "rel_err_params": max(
                _rel(a, b) for a, b in zip(res.grad_params, grads[2:], strict=True)
            ),
        }
        rows.append(
            {
                "part": "adjoint_accuracy",
                "setting": f"order={order} refine={refine} vs {reference}",
                "nfe": res.nfe_forward,
                "nfe_backward": res.nfe_backward,
                **errs,
            }
        )
        if order == 2 and steps == 51:
            worst_default = max(errs.values())
    return rows, {"adjoint_grad_rel_error": worst_default, "adjoint_grad_nfe": 2 * 50 + 1}


# --- AdjointDPM: memory ------------------------------------------------------------------------


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """Peak of live CPU allocations during ``fn()``: torch's profiler with ``profile_memory``,
    allocation and free events summed in time order."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    assert prof.profiler is not None
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def adjoint_memory_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    torch.manual_seed(0)
    net = CondMLP(32, 0, 256)
    path = VPLinear()
    x = torch.randn(128 if quick else 256, 32, generator=torch.Generator().manual_seed(2))

    def loss(y: Tensor) -> Tensor:
        return (y**2).mean()

    peaks: dict[tuple[str, int], int] = {}
    rows: list[dict[str, Any]] = []
    for nfe in (10, 100):
        grid = log_snr_grid(path, nfe // 2 + 1, append_zero=True)  # Heun: 2 calls a step, 1 last

        def adjoint(grid: Tensor = grid) -> None:
            adjoint_gradients(net, path, x, grid, loss, prediction="eps")

        def backprop(grid: Tensor = grid) -> None:
            xr = x.clone().requires_grad_(True)
            out = pf_ode_sample(net, path, xr, grid, prediction="eps")
            torch.autograd.grad(loss(out), [xr, *net.parameters()])

        for name, fn in (("adjoint", adjoint), ("backprop", backprop)):
            t0 = time.perf_counter()
            peaks[name, nfe] = peak_cpu_bytes(fn)
            rows.append(
                {
                    "part": "adjoint_memory",
                    "setting": f"{name} nfe={nfe}",
                    "nfe": nfe,
                    "peak_mib": peaks[name, nfe] / 2**20,
                    "seconds": time.perf_counter() - t0,
                }
            )
    summary = {
        "adjoint_memory_growth": peaks["adjoint", 100] / peaks["adjoint", 10],
        "backprop_memory_growth": peaks["backprop", 100] / peaks["backprop", 10],
        "memory_measured_with": "torch.profiler CPU memory events (profile_memory=True)",
    }
    return rows, summary


# --- time series: PaD-TS steered by noise optimisation ----------------------------------------


def timeseries_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from polyfold.timeseries.metrics import fdds, vds
    from polyfold.timeseries.padts import PaDTSConfig, train_padts
    from polyfold.timeseries.sines import sines

    seq_len, feats = 24, 2
    real = sines(256 if quick else 2000, seq_len, feats, generator=0)
    config = PaDTSConfig(  # quick: a short plain x0-MSE run (the population loss costs more)
        seq_len=seq_len,
        n_features=feats,
        alpha=0.0 if quick else 0.3,
        steps=40 if quick else 1500,
        d_model=16 if quick else 32,
        n_layers=1 if quick else 2,
        diffusion_steps=50 if quick else 100,
        batch_size=32 if quick else 64,
        warmup_steps=10 if quick else 100,
    )
    t0 = time.perf_counter()
    model = train_padts(real, config, quiet=True)
    train_s = time.perf_counter() - t0
    for p in model.parameters():
        p.requires_grad_(False)
    path = model.path
    steps, batch, iters = (8, 8, 4) if quick else (20, 32, 10)
    grid = uniform_t_grid(path, steps, append_zero=True)
    target = 0.5  # the level asked of channel 0 over the last 8 steps (data in [0, 1])

    def reward(xn: Tensor) -> Tensor:
        x = model.denormalize(xn)
        return -((x[:, -8:, 0].mean(1) - target) ** 2)

    def sample(z: Tensor) -> Tensor:
        with torch.no_grad():
            return pf_ode_sample(model, path, z, grid, prediction="x0", order=1)

    g = torch.Generator().manual_seed(0)
    z = path.prior_sample((batch, seq_len, feats), generator=g)
    radius = math.sqrt(seq_len * feats)
    plain = sample(z)
    calls = 0
    zo = z.clone()
    opt = torch.optim.Adam([zo], lr=0.3)
    for _ in range(iters):
        res = adjoint_gradients(
            model, path, zo, grid, lambda x: -reward(x).sum(), prediction="x0", params=[], order=1
        )
        calls += res.nfe_forward + res.nfe_backward + 2 * steps  # a VJP counted as two calls
        opt.zero_grad()
        zo.grad = res.grad_x  # type: ignore[assignment]
        opt.step()
        with torch.no_grad():  # back onto the Gaussian shell
            zo.mul_(radius / zo.flatten(1).norm(dim=1)[:, None, None])
    steered = sample(zo)
    calls += steps
    m = max(1, calls // steps)  # best-of-N candidates on the same budget
    cands = path.prior_sample((batch * m, seq_len, feats), generator=g)
    cands[:batch] = z
    pool = sample(cands)
    r = reward(pool).reshape(m, batch)
    best = pool.reshape(m, batch, seq_len, feats)[r.argmax(0), torch.arange(batch)]

    def quality(xn: Tensor) -> dict[str, float]:
        fake = model.denormalize(xn).numpy()
        return {"vds": vds(real[:256], fake), "fdds": fdds(real[:256], fake)}

    rows = []
    for name, xs, budget in (
        ("plain", plain, steps),
        ("adjoint noise opt", steered, calls),
        (f"best-of-{m}", best, m * steps),
    ):
        rows.append(
            {
                "part": "timeseries",
                "setting": f"PaD-TS sines, {name}",
                "nfe": budget,
                "reward_mean": float(reward(xs).mean()),
                "level_mean": float(model.denormalize(xs)[:, -8:, 0].mean()),
                **quality(xs),
            }
        )
    summary = {
        "ts_reward_plain": rows[0]["reward_mean"],
        "ts_reward_adjoint": rows[1]["reward_mean"],
        "ts_reward_best_of_n": rows[2]["reward_mean"],
        "ts_adjoint_minus_best_of_n": rows[1]["reward_mean"] - rows[2]["reward_mean"],
        "ts_calls_per_sample": calls,
        "ts_padts_train_s": train_s,
    }
    return rows, summary


# --- all ---------------------------------------------------------------------------------------


def run(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every part above: ``(rows, summary)``."""
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for part in (gfcg_rows, adjoint_accuracy_rows, adjoint_memory_rows, timeseries_rows):
        t0 = time.perf_counter()
        r, s = part(quick)
        for row in r:
            row.setdefault("part_seconds", time.perf_counter() - t0)
        rows += r
        summary.update(s)
    return rows, summary


def main() -> None:
    args = parse_args(__doc__.split("\n", 1)[0])
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    rows, summary = run(args.quick)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    print_table(rows, columns)
    for k, v in summary.items():
        print(f"{k}: {v}")
    write_json(args.out, rows, summary, quick=args.quick)


if __name__ == "__main__":
    main()
