"""Sampling GDSS: the paper's solvers of the reverse system of SDEs, core's fast ODE samplers,
node masks drawn from the training node counts, and the final quantisation.

GDSS's solvers (``N`` = ``steps``, times ``linspace(1, eps, N)``, ``eps = 1e-4``; every random
draw masked, adjacency draws symmetric with zero diagonal; one network call evaluates both
scores on the same state, so each solver step below costs the stated number of calls):

- ``"pc"``: reverse-diffusion predictor + Langevin corrector (2 calls/step). Corrector per key:
  ``e = 2 a (snr ||z|| / ||score||)^2`` (norms per graph, batch-averaged; ``a = 1 - beta_i`` for
  VP, 1 for VE), ``x <- x + e score + sqrt(2 e) scale_eps z``. Predictor: score_sde's
  reverse diffusion on the ``N``-step DDPM (VP) / SMLD (VE) chain.
- ``"reverse"``: the reverse-diffusion predictor alone (1 call/step).
- ``"euler_langevin"``: Euler-Maruyama predictor (``dt = -1/N``) + Langevin corrector (2/step),
  GDSS's community-small sampler; ``"euler"``: Euler-Maruyama alone (1/step).
- ``"s4"``: the S4 solver (1 call/step): a Langevin correction with the step's score, then the
  linear part of the SDE over half a step, the score drift ``-g^2 score dt`` over the full step,
  and the linear part over the second half (exact Gaussian transitions).

Core's deterministic samplers on the probability-flow ODE of the same system (both keys must
share one log-SNR schedule for the exponential integrators, true for the QM9 and
community-small presets): ``"heun"``, ``"dpm_solver_pp"`` (2M), ``"unipc"`` (bh2, order 2),
``"deis"``, ``"euler_ode"``. They keep the adjacency symmetric because every update is a linear
combination of the state and symmetric network outputs. Core's stochastic samplers draw GDSS's
noise (symmetric adjacency, masked) through their ``noise`` hook: ``"ddpm"`` (ancestral, 1
call/step) and ``"core_pc"`` (core's predictor-corrector: ancestral predictor, Langevin corrector
with the preset's ``snr`` and ``scale_eps``; 2 calls/step).

Every sampler returns the denoised mean of its last step (GDSS's ``noise_removal``); core's
samplers end with one more network call for it, the data prediction at the grid's last time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import NFECounter, as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers import (
    ddpm,
    deis,
    dpm_solver_pp,
    euler,
    heun,
    predictor_corrector,
    uniform_t_grid,
    unipc,
)
from polyfold.graph.sde import (
    ComponentSDE,
    GraphSDE,
    graph_noise,
    mask_adj,
    mask_x,
    prior_sample,
    state_masks,
)

__all__ = [
    "CORE_SAMPLERS",
    "GDSS_SAMPLERS",
    "SAMPLER_DEFAULTS",
    "GraphSamples",
    "quantize_adjacency",
    "quantize_nodes",
    "sample_graphs",
    "sample_masks",
    "solve",
]

GDSS_SAMPLERS = ("pc", "reverse", "euler_langevin", "euler", "s4")
_CORE_ODE: dict[str, Callable[..., Any]] = {
    "heun": heun,
    "dpm_solver_pp": dpm_solver_pp,
    "unipc": unipc,
    "deis": deis,
    "euler_ode": euler,
}
CORE_SAMPLERS = (*_CORE_ODE, "ddpm", "core_pc")

#: GDSS's sampler settings per preset (config/sample_qm9.yaml, config/community_small.yaml).
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "qm9": {"sampler": "pc", "snr": 0.2, "scale_eps": 0.7, "steps": 1000},
    "zinc250k": {"sampler": "pc", "snr": 0.2, "scale_eps": 0.9, "steps": 1000},
    "community_small": {"sampler": "euler_langevin", "snr": 0.05, "scale_eps": 0.7, "steps": 1000},
}

State = dict[str, Tensor]
ScoreFn = Callable[[State, Tensor], State]


def make_score_fn(model: Any, sde: GraphSDE, mask: Tensor, counter: NFECounter) -> ScoreFn:
    """``score(state, t)`` per key from GDSS's time-free networks (VP: ``-out/std``, VE: out)."""
    paths = sde.paths()

    def score(state: State, t: Tensor) -> State:
        out = model(state, t, mask)
        counter.add()
        res = {}
        for key in ("x", "adj"):
            comp = sde.component(key)
            if comp.kind == "VP":
                std = paths[key].sigma(t.double()).to(out[key].dtype)
                res[key] = -out[key] / std[:, None, None]
            else:
                res[key] = out[key]
        return res

    return score


def _mask_key(key: str, v: Tensor, mask: Tensor) -> Tensor:
    return mask_x(v, mask) if key == "x" else mask_adj(v, mask)


def _langevin(
    key: str,
    x: Tensor,
    score: Tensor,
    z: Tensor,
    comp: ComponentSDE,
    t: Tensor,
    snr: float,
    scale_eps: float,
) -> tuple[Tensor, Tensor]:
    grad_norm = torch.linalg.vector_norm(score.flatten(1), dim=1).mean()
    noise_norm = torch.linalg.vector_norm(z.flatten(1), dim=1).mean()
    alpha = comp.discrete_alpha(t)
    step = (snr * noise_norm / grad_norm.clamp_min(1e-12)) ** 2 * 2 * alpha
    mean = x + step[:, None, None] * score
    return mean + torch.sqrt(step * 2)[:, None, None] * z * scale_eps, mean


def solve(
    score_fn: ScoreFn,
    sde: GraphSDE,
    init: State,
    mask: Tensor,
    *,
    sampler: str = "pc",
    steps: int = 1000,
    snr: float = 0.2,
    scale_eps: float = 0.7,
    n_corrector: int = 1,
    generator: torch.Generator | None = None,
    callback: Callable[[int, State], None] | None = None,
) -> State:
    """Run one of GDSS's solvers from ``init`` (see the module docstring); returns the mean of
    the last step. ``callback(i, state)`` sees the state after every step."""
    if sampler not in GDSS_SAMPLERS:
        raise InputError(f"sampler: expected one of {', '.join(GDSS_SAMPLERS)}, got {sampler!r}")
    if not (isinstance(steps, int) and steps >= 2):
        raise InputError(f"steps: expected an integer >= 2, got {steps!r}")
    comps = {k: replace(sde.component(k), num_scales=steps) for k in ("x", "adj")}
    paths = sde.paths()
    state = {k: v.clone() for k, v in init.items()}
    mean = state
    b = mask.shape[0]
    ts = torch.linspace(1.0, sde.sample_eps, steps, dtype=torch.float64)
    dt = -1.0 / steps
    corrector = sampler in ("pc", "euler_langevin")
    for i in range(steps):
        t = torch.full((b,), float(ts[i]), dtype=torch.float64, device=mask.device)
        tf = t.float()
        if sampler == "s4":
            score = score_fn(state, tf)
            z = graph_noise(state, mask, generator=generator)
            new: State = {}
            for k in ("x", "adj"):
                comp = comps[k]
                g = paths[k].sde(t)[1].to(state[k].dtype)
                drift = -(g**2)[:, None, None] * score[k]
                corrected, _ = _langevin(k, state[k], score[k], z[k], comp, tf, snr, scale_eps)
                new[k] = corrected
                new[k + "_drift"] = drift
            z1 = graph_noise(state, mask, generator=generator)
            z2 = graph_noise(state, mask, generator=generator)
            nxt, mean = {}, {}
            for k in ("x", "adj"):
                comp = comps[k]
                m1, s1 = comp.transition(t, dt / 2)
                v = m1.float()[:, None, None] * new[k] + s1.float()[:, None, None] * z1[k]
                v = v + new[k + "_drift"] * dt
                m2, s2 = comp.transition(t + dt / 2, dt / 2)
                mean[k] = _mask_key(k, m2.float()[:, None, None] * v, mask)
                nxt[k] = _mask_key(k, mean[k] + s2.float()[:, None, None] * z2[k], mask)
            state = nxt
        else:
            if corrector:
                for _ in range(n_corrector):
                    score = score_fn(state, tf)
                    z = graph_noise(state, mask, generator=generator)
                    state = {
                        k: _mask_key(
                            k,
                            _langevin(k, state[k], score[k], z[k], comps[k], tf, snr, scale_eps)[0],
                            mask,
                        )
                        for k in ("x", "adj")
                    }
            score = score_fn(state, tf)
            z = graph_noise(state, mask, generator=generator)
            nxt, mean = {}, {}
            for k in ("x", "adj"):
                if sampler in ("pc", "reverse"):
                    a, bb, g = (c.float() for c in comps[k].reverse_step(tf))
                    mk = a[:, None, None] * state[k] + bb[:, None, None] * score[k]
                    nk = mk + g[:, None, None] * z[k]
                else:  # Euler-Maruyama on the reverse SDE, dt = -1/N
                    f, g = (c.to(state[k].dtype) for c in paths[k].sde(t))
                    drift = f[:, None, None] * state[k] - (g**2)[:, None, None] * score[k]
                    mk = state[k] + drift * dt
                    nk = mk + g[:, None, None] * math.sqrt(-dt) * z[k]
                mean[k], nxt[k] = _mask_key(k, mk, mask), _mask_key(k, nk, mask)
            state = nxt
        if callback is not None:
            callback(i, state)
    return mean


def sample_masks(
    node_counts: list[int], n: int, max_nodes: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` node masks ``(n, max_nodes)`` whose sizes follow the histogram ``node_counts``."""
    probs = torch.tensor(node_counts[: max_nodes + 1], dtype=torch.float64)
    if probs.sum() <= 0:
        raise InputError("node_counts: expected a histogram with at least one graph")
    sizes = torch.multinomial(probs, n, replacement=True, generator=generator)
    return torch.arange(max_nodes)[None, :] < sizes[:, None]


def quantize_adjacency(adj: Tensor, mask: Tensor, *, molecule: bool, scale: float) -> Tensor:
    """Symmetric discrete adjacency in the data API's units.

    Molecules: GDSS's ``quantize_mol`` in bond-order units (thresholds 0.5, 1.5, 2.5) then
    divided by ``scale``; graphs: ``adj > 0.5``. Diagonal and padding are zero.
    """
    a = 0.5 * (adj + adj.transpose(-1, -2))
    if molecule:
        q = torch.bucketize(a, torch.tensor([0.5, 1.5, 2.5], dtype=a.dtype)).to(a.dtype) / scale
    else:
        q = (a > 0.5).to(a.dtype)
    eye = torch.eye(a.shape[-1], dtype=torch.bool)
    return mask_adj(q.masked_fill(eye, 0.0), mask)


def quantize_nodes(x: Tensor, mask: Tensor) -> Tensor:
    """One-hot node types (argmax) on valid nodes, zero on padding."""
    return mask_x(torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype), mask)


@dataclass
class GraphSamples:
    """Sampled graphs: quantised ``x``, ``adj`` (data units), ``mask``; the continuous final
    state ``raw``; network calls ``nfe`` (per batch of graphs) and wall time ``seconds``."""

    x: Tensor
    adj: Tensor
    mask: Tensor
    raw: State
    nfe: int
    seconds: float


def _run_core(
    name: str,
    model: Any,
    sde: GraphSDE,
    init: State,
    mask: Tensor,
    steps: int,
    counter: NFECounter,
    *,
    snr: float,
    scale_eps: float,
    n_corrector: int,
    generator: torch.Generator,
) -> State:
    paths = sde.paths()
    den = as_denoiser(model, paths, prediction=sde.predictions(), cond=mask, counter=counter)
    t_end = max(sde.sample_eps, *(p.t_min for p in paths.values()))  # VPLinear: 1e-3
    grid = uniform_t_grid(paths["adj"], steps, t_start=1.0, t_end=t_end)
    masks = state_masks(mask)

    def noise(state: Any, gen: torch.Generator | None) -> State:
        return graph_noise(state, mask, generator=gen)

    if name == "ddpm":
        res = ddpm(den, paths, init, grid, mask=masks, generator=generator, noise=noise)
    elif name == "core_pc":
        res = predictor_corrector(
            den,
            paths,
            init,
            grid,
            snr=snr,
            scale_eps=scale_eps,
            n_corrector=n_corrector,
            predictor="ancestral",
            mask=masks,
            generator=generator,
            noise=noise,
        )
    else:
        res = _CORE_ODE[name](den, paths, init, grid, mask=masks)
    # GDSS's noise removal: the denoised prediction at the last time (one more network call;
    # the VE paths of QM9 end at sigma_min = 0.1, not at the data)
    t = torch.full((mask.shape[0],), float(grid[-1]), device=mask.device)
    out = den(res.x, t).x0
    assert isinstance(out, dict)
    return {"x": mask_x(out["x"], mask), "adj": mask_adj(out["adj"], mask)}


def sample_graphs(
    gm: Any,
    n: int,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    snr: float | None = None,
    scale_eps: float | None = None,
    n_corrector: int = 1,
    batch_size: int = 1024,
    seed: int = 0,
    mask: Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GraphSamples:
    """Sample ``n`` graphs from a loaded :class:`~polyfold.graph.training.GraphModel`.

    Defaults come from the model's preset (:data:`SAMPLER_DEFAULTS`). ``mask`` fixes the node
    masks (default: drawn from the training node counts). ``nfe`` counts network calls for one
    batch (every batch takes the same number).
    """
    preset = str(gm.meta.get("preset") or "qm9")
    d = SAMPLER_DEFAULTS.get(preset, SAMPLER_DEFAULTS["qm9"])
    sampler = sampler or d["sampler"]
    steps = steps or d["steps"]
    snr = d["snr"] if snr is None else snr
    scale_eps = d["scale_eps"] if scale_eps is None else scale_eps
    if sampler not in GDSS_SAMPLERS + CORE_SAMPLERS:
        raise InputError(
            f"sampler: expected one of {', '.join(GDSS_SAMPLERS + CORE_SAMPLERS)}, got {sampler!r}"
        )
    if not (isinstance(n, int) and n >= 1):
        raise InputError(f"n: expected an integer >= 1, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    if mask is None:
        mask = sample_masks(gm.node_counts, n, gm.max_nodes, generator=gen)
    elif mask.shape != (n, gm.max_nodes) or mask.dtype != torch.bool:
        raise InputError(f"mask: expected a bool tensor of shape ({n}, {gm.max_nodes})")
    model, sde = gm.model, gm.sde
    molecule = gm.kind == "molecule"
    xs, adjs, raws_x, raws_a = [], [], [], []
    nfe = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = mask[start : start + batch_size]
            init = prior_sample(sde, m, gm.n_features, generator=gen)
            counter = NFECounter()
            if sampler in GDSS_SAMPLERS:
                out = solve(
                    make_score_fn(model, sde, m, counter),
                    sde,
                    init,
                    m,
                    sampler=sampler,
                    steps=steps,
                    snr=snr,
                    scale_eps=scale_eps,
                    n_corrector=n_corrector,
                    generator=gen,
                )
            else:
                out = _run_core(
                    sampler,
                    model,
                    sde,
                    init,
                    m,
                    steps,
                    counter,
                    snr=snr,
                    scale_eps=scale_eps,
                    n_corrector=n_corrector,
                    generator=gen,
                )
            nfe = counter.count
            raws_x.append(out["x"])
            raws_a.append(out["adj"])
            xs.append(quantize_nodes(out["x"], m))
            adjs.append(quantize_adjacency(out["adj"], m, molecule=molecule, scale=sde.adj_scale))
            if progress is not None:
                progress(min(start + batch_size, n), n)
    seconds = time.perf_counter() - t0
    return GraphSamples(
        torch.cat(xs),
        torch.cat(adjs),
        mask,
        {"x": torch.cat(raws_x), "adj": torch.cat(raws_a)},
        nfe,
        seconds,
    )
