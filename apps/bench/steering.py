"""Steering a trained model at inference time: FKC, DTS/DTS*, noise search vs best-of-N and plain
guidance, at equal network-call budgets (calls counted on single examples).

Exact test-beds (2-D Gaussian mixtures with exact denoisers, VP path):

- ``tilt``: ``p(x) exp(a.x)`` for ``p = sum_k w_k N(mu_k, S)``: the mixture of
  ``N(mu_k + S a, S)`` with weights ``~ w_k exp(a.mu_k + a.S a/2)`` (closed form). ``M`` output
  samples per method, scored by sliced W2 to exact tilted samples and the total-variation
  distance of mode weights (nearest tilted component). Best-of-N for a *sampling* target is
  its soft form: each output picks one of ``N`` base samples with probability ``~ exp(r)``
  (importance resampling; the argmax form converges to the maximum, not to the target). DTS grows
  one tree per run (``sharpness`` 1: the paper's value-guided growth; 0: uniform growth, whose
  tree estimates are unbiased) and draws the ``M`` outputs from it; FKC (:func:`reward_tilt`) runs
  ``M N`` particles and resamples ``M``; plain guidance shifts the score by ``grad r = a``.
  ``dts_calls_to_match_best_of_n``: the smallest budget fraction at which DTS's sliced W2 reaches
  best-of-N's at its largest ``N`` (a fraction of best-of-N's calls; ``null`` if none does).
- ``cfg``: CFG as the product ``p(x|c)^w p(x)^(1-w)`` (``w = 3``) on a labelled mixture; the
  reference is drawn exactly from the density on a fine 2-D grid. FKC (:func:`cfg_product`)
  against plain CFG with the same Euler-Maruyama sampler and the same calls.
  ``fkc_sw2_over_cfg_sw2``: their sliced-W2 ratio.

Real: the shipped GDSS QM9 model (S4 sampler, GDSS's node-count histogram) steered toward
RDKit's QED with validity (no correction) and uniqueness kept in view: best-of-N (random search,
argmax QED), zero-order and path search, DTS* per molecule (one tree per sampled node mask) and
FKC with the QED tilt (Euler-Maruyama), at equal calls per molecule.
``qm9_reward_gain_at_equal_calls``: the best method's mean QED minus best-of-N's (methods with
validity >= 0.95 only).

    python apps/bench/steering.py --quick --out runs/bench/steering.json

Gradients (section ``gradients``, :mod:`_steering_gradients`): gradient-free classifier
guidance against CFG, AdjointDPM against backpropagation through the sampler (accuracy, memory)
and AdjointDPM noise optimisation of a PaD-TS model toward a constraint.

``SECTIONS`` lists the section functions ``fn(quick) -> (rows, summary)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import _steering_gradients  # type: ignore[import-not-found]
import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]
from _steering_qm9 import qm9  # type: ignore[import-not-found]

from polyfold.core.denoiser import as_denoiser
from polyfold.core.guidance import cfg, classifier_guidance
from polyfold.core.metrics import sliced_wasserstein
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import get_sampler, uniform_t_grid, zero_time
from polyfold.core.steering import DiffusionTree, cfg_product, fkc, resample, reward_tilt
from polyfold.core.steering._common import Counted
from polyfold.core.testing import NULL_LABEL, GaussianMixture

F64 = torch.float64
PATH = VPLinear()
Section = Callable[[bool], tuple[list[dict[str, Any]], dict[str, Any]]]


def _grid(steps: int) -> torch.Tensor:
    return torch.cat([uniform_t_grid(PATH, steps), torch.tensor([zero_time(PATH)], dtype=F64)])


# -- exact tilted mixture ------------------------------------------------------------------------
MEANS = [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]]
WEIGHTS = [0.5, 0.3, 0.2]
STD = 0.4
A = torch.tensor([0.6, 0.5], dtype=F64)


def tilted() -> GaussianMixture:
    """``p exp(a.x)`` in closed form."""
    mu = torch.tensor(MEANS, dtype=F64)
    s = STD**2
    logw = torch.tensor(WEIGHTS, dtype=F64).log() + mu @ A + 0.5 * s * float(A @ A)
    return GaussianMixture(mu + s * A, stds=STD, weights=torch.softmax(logw, 0))


def _scores(x: torch.Tensor, ref: torch.Tensor, target: GaussianMixture) -> dict[str, float]:
    x = x.to(F64)
    comp = torch.cdist(x, target.means).argmin(1)
    freq = torch.bincount(comp, minlength=len(MEANS)).to(F64) / x.shape[0]
    return {
        "sw2": sliced_wasserstein(x, ref, n_proj=128),
        "mode_tv": 0.5 * float((freq - target.weights).abs().sum()),
        "mean_reward": float((x @ A).mean()),
    }


def exact_tilt(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Methods vs best-of-N and plain guidance on the closed-form tilted mixture."""
    base = GaussianMixture(MEANS, stds=STD, weights=WEIGHTS)
    target = tilted()
    gen = torch.Generator().manual_seed(0)
    ref = target.sample(20000, generator=gen, dtype=F64)
    grid = _grid(10)
    k = len(grid) - 1
    m = 200 if quick else 1000
    ns = [2, 4, 8] if quick else [2, 4, 8, 16, 32]
    model = base.model(PATH)
    den = as_denoiser(model, PATH, prediction="eps")

    def reward(x: torch.Tensor) -> torch.Tensor:
        return x.to(F64) @ A

    ddpm = get_sampler("ddpm")
    rows: list[dict[str, Any]] = []

    def row(method: str, n: float, calls: int, x: torch.Tensor, seconds: float) -> None:
        rows.append(
            {
                "section": "tilt",
                "method": method,
                "budget_n": n,
                "calls": calls,
                "calls_per_sample": calls / m,
                **_scores(x, ref, target),
                "seconds": seconds,
            }
        )

    t0 = time.perf_counter()
    plain = ddpm(den, PATH, torch.randn(m, 2, generator=gen, dtype=F64), grid, generator=gen).x
    row("plain", 1, m * k, plain, time.perf_counter() - t0)
    t0 = time.perf_counter()
    guided = classifier_guidance(den, lambda x, t: A.expand_as(x).to(x.dtype), 1.0, paths=PATH)
    gx = ddpm(guided, PATH, torch.randn(m, 2, generator=gen, dtype=F64), grid, generator=gen).x
    row("plain_guidance", 1, m * k, gx, time.perf_counter() - t0)
    bon: dict[int, float] = {}
    for n in ns:
        t0 = time.perf_counter()
        pool = ddpm(
            den, PATH, torch.randn(m * n, 2, generator=gen, dtype=F64), grid, generator=gen
        ).x
        r = reward(pool).reshape(n, m)
        pick = torch.multinomial(torch.softmax(r, 0).T, 1, generator=gen)[:, 0]
        out = pool.reshape(n, m, 2)[pick, torch.arange(m)]
        row("best_of_n", n, m * n * k, out, time.perf_counter() - t0)
        bon[n] = rows[-1]["sw2"]
        t0 = time.perf_counter()
        x0 = torch.randn(m * n, 2, generator=gen, dtype=F64)
        res = fkc(reward_tilt(den, reward), PATH, x0, grid, generator=gen, final_resample=False)
        out = res.x[resample(res.log_weights, "systematic", n=m, generator=gen)]
        row("fkc_reward", n, res.calls, out, time.perf_counter() - t0)
    top = m * ns[-1] * k
    fractions = [0.1, 0.2, 0.5, 1.0]
    match: dict[float, float | None] = {}
    for sharp in (1.0, 0.0):
        tree = DiffusionTree(
            den,
            PATH,
            torch.zeros(1, 2, dtype=F64),
            grid,
            reward,
            generator=gen,
            sharpness=sharp,
            wave=256,
        )
        match[sharp] = None
        t0 = time.perf_counter()
        for f in fractions:
            tree.grow(max(1, int(f * top) - tree.calls))
            row(
                f"dts_sharpness{sharp:g}",
                f * ns[-1],
                tree.calls,
                tree.sample(m),
                time.perf_counter() - t0,
            )
            if match[sharp] is None and rows[-1]["sw2"] <= bon[ns[-1]]:
                match[sharp] = tree.calls / top
    best = [v for v in match.values() if v is not None]
    fkc_rows = [r for r in rows if r["method"] == "fkc_reward"]
    return rows, {
        "dts_calls_to_match_best_of_n": min(best) if best else None,
        "dts_calls_to_match_best_of_n_paper_selection": match[1.0],
        "dts_calls_to_match_best_of_n_uniform_growth": match[0.0],
        "tilt_best_of_n_sw2_at_max": bon[ns[-1]],
        "tilt_fkc_reward_sw2_at_max": fkc_rows[-1]["sw2"],
        "tilt_plain_guidance_sw2": rows[1]["sw2"],
    }


# -- CFG as a product ------------------------------------------------------------------------------
def _grid_reference(
    logp: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    gen: torch.Generator,
    lo: float = -6.0,
    hi: float = 7.0,
    cells: int = 500,
) -> torch.Tensor:
    """``n`` draws of the 2-D density ``exp(logp)`` from a fine grid (cell, then uniform)."""
    edges = torch.linspace(lo, hi, cells + 1, dtype=F64)
    h = float(edges[1] - edges[0])
    c = edges[:-1] + h / 2
    pts = torch.cartesian_prod(c, c)
    w = torch.softmax(logp(pts), 0)
    idx = torch.multinomial(w, n, replacement=True, generator=gen)
    return pts[idx] + (torch.rand(n, 2, generator=gen, dtype=F64) - 0.5) * h


def exact_cfg(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """FKC's CFG product vs plain CFG on a labelled mixture (grid-exact reference)."""
    gmm = GaussianMixture(
        [[-2.0, 0.0], [2.0, 0.0], [0.5, 2.0]],
        stds=[0.6, 0.5, 0.7],
        weights=[0.4, 0.3, 0.3],
        labels=[0, 1, 1],
    )
    w, label = 3.0, 1
    gen = torch.Generator().manual_seed(1)

    def logp(x: torch.Tensor) -> torch.Tensor:
        return w * gmm.log_prob(x, cond=label) + (1 - w) * gmm.log_prob(x)

    ref = _grid_reference(logp, 20000, gen)
    m = 400 if quick else 2000
    grid = uniform_t_grid(PATH, 100 if quick else 200)
    model = gmm.model(PATH)
    cond = as_denoiser(model, PATH, prediction="eps", cond=label)
    uncond = as_denoiser(model, PATH, prediction="eps", cond=NULL_LABEL)
    rows = []
    for name in ("plain_cfg", "fkc_cfg"):
        x0 = torch.randn(m, 2, generator=gen, dtype=F64)
        t0 = time.perf_counter()
        if name == "plain_cfg":
            guided = Counted(cfg(cond, uncond, w, batch=False))
            x = get_sampler("euler_maruyama")(guided, PATH, x0, grid, generator=gen).x
            calls = 2 * guided.calls
            ess = float("nan")
        else:
            res = fkc(cfg_product(cond, uncond, w), PATH, x0, grid, generator=gen)
            x, calls, ess = res.x, res.calls, min(res.ess) / m
        rows.append(
            {
                "section": "cfg",
                "method": name,
                "calls": calls,
                "sw2": sliced_wasserstein(x.to(F64), ref, n_proj=128),
                "min_ess": ess,
                "seconds": time.perf_counter() - t0,
            }
        )
    return rows, {
        "fkc_sw2_over_cfg_sw2": rows[1]["sw2"] / rows[0]["sw2"],
        "cfg_plain_sw2": rows[0]["sw2"],
        "cfg_fkc_sw2": rows[1]["sw2"],
    }


def gradients(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """GFCG against CFG, AdjointDPM's accuracy and memory, and AdjointDPM noise optimisation of
    PaD-TS (:mod:`_steering_gradients`)."""
    rows, summary = _steering_gradients.run(quick)
    return rows, summary


SECTIONS: list[Section] = [exact_tilt, exact_cfg, gradients, qm9]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.split("\n", 1)[0], argv)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for section in SECTIONS:
        r, s = section(args.quick)
        print(f"\n== {section.__name__}")
        print_table(r)
        rows += r
        summary.update(s)
    print("\nsummary:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    write_json(args.out, rows, summary, quick=args.quick)


if __name__ == "__main__":
    main()
