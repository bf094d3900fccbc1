"""Sampling GDSS: its solvers and core's fast samplers by name, node masks drawn from the training
node counts, and the final quantisation.

Every sampler is a core sampler (:func:`polyfold.core.samplers.get_sampler`) run on the system of
SDEs (one path per key), with GDSS's noise through the ``noise`` hook (node noise masked,
adjacency noise symmetric with zero diagonal) and the node mask; one network call evaluates both
scores on the same state. :data:`GRAPH_SAMPLERS` maps the CLI's names to core samplers:

- GDSS's (``N`` = ``steps``; a grid of ``N`` times ``linspace(1, t_end, N)``, ``t_end`` GDSS's
  ``sample.eps = 1e-4`` or the paths' ``t_min`` if larger, then the data point):
  ``"pc"``: reverse-diffusion predictor + Langevin corrector with the preset's ``snr`` and
  ``scale_eps`` (core ``reverse_diffusion_pc``, 2 calls/step); ``"reverse"``: the predictor
  alone (``reverse_diffusion``, 1/step); ``"euler_langevin"``: Euler-Maruyama + Langevin
  (``predictor_corrector``, 2/step, GDSS's community-small sampler); ``"euler"``:
  Euler-Maruyama (``euler_maruyama``, 1/step); ``"s4"``: the S4 solver (``s4``, 1/step, ``N``
  uniform steps from 1 to ``t_end``). Each returns its last step's mean (GDSS's
  ``noise_removal``); where the keys' paths do not share a data point (ZINC250k: VP nodes, VE
  adjacency) the grid ends at ``t_end`` instead.
- core's, on a uniform grid from 1 to ``t_end`` followed by one more network call for the
  denoised prediction at ``t_end`` (QM9's VE paths end at ``sigma_min = 0.1``): the
  probability-flow ODE solvers ``"heun"``, ``"dpm_solver_pp"`` (2M), ``"unipc"`` (bh2),
  ``"deis"``, ``"euler_ode"`` (both keys must share one log-SNR schedule for the exponential
  integrators, true for the QM9 and community-small presets; every update is a linear
  combination of symmetric tensors, so the adjacency stays symmetric), ``"ddpm"`` (ancestral)
  and ``"core_pc"`` (ancestral predictor + Langevin corrector, 2 calls/step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import NFECounter, as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.samplers import StepCallback, get_sampler, uniform_t_grid, zero_time
from polyfold.graph.sde import (
    GraphSDE,
    graph_noise,
    mask_adj,
    mask_x,
    prior_sample,
    state_masks,
)

__all__ = [
    "GRAPH_SAMPLERS",
    "SAMPLER_DEFAULTS",
    "GraphSampler",
    "GraphSamples",
    "quantize_adjacency",
    "quantize_nodes",
    "sample_graphs",
    "sample_masks",
    "solve",
]


@dataclass(frozen=True)
class GraphSampler:
    """A graph sampler name: the core sampler it runs, its fixed ``options``, which of the
    preset's Langevin settings (``snr``, ``scale_eps``, ``n_corrector``) it takes, and its grid:
    GDSS's (``"gdss"``: ``N`` times then the data point), uniform steps to ``t_end`` (``"to_end"``),
    or uniform steps plus a final denoising call (``"denoise"``)."""

    core: str
    langevin: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    grid: str = "denoise"


_LANGEVIN = ("snr", "scale_eps", "n_corrector")
GRAPH_SAMPLERS: dict[str, GraphSampler] = {
    "pc": GraphSampler("reverse_diffusion_pc", _LANGEVIN, grid="gdss"),
    "reverse": GraphSampler("reverse_diffusion", grid="gdss"),
    "euler_langevin": GraphSampler(
        "predictor_corrector", _LANGEVIN, {"predictor": "euler_maruyama"}, grid="gdss"
    ),
    "euler": GraphSampler("euler_maruyama", grid="gdss"),
    "s4": GraphSampler("s4", ("snr", "scale_eps"), grid="to_end"),
    "heun": GraphSampler("heun"),
    "dpm_solver_pp": GraphSampler("dpm_solver_pp"),
    "unipc": GraphSampler("unipc"),
    "deis": GraphSampler("deis"),
    "euler_ode": GraphSampler("euler"),
    "ddpm": GraphSampler("ddpm"),
    "core_pc": GraphSampler("predictor_corrector", _LANGEVIN, {"predictor": "ancestral"}),
}

#: GDSS's sampler settings per preset (config/sample_qm9.yaml, config/community_small.yaml).
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "qm9": {"sampler": "pc", "snr": 0.2, "scale_eps": 0.7, "steps": 1000},
    "zinc250k": {"sampler": "pc", "snr": 0.2, "scale_eps": 0.9, "steps": 1000},
    "community_small": {"sampler": "euler_langevin", "snr": 0.05, "scale_eps": 0.7, "steps": 1000},
}

State = dict[str, Tensor]


def _grid(kind: str, sde: GraphSDE, steps: int) -> Tensor:
    paths = sde.paths()
    t_end = max(sde.sample_eps, *(p.t_min for p in paths.values()))  # VPLinear: 1e-3
    zeros = {zero_time(p) for p in paths.values()}
    if kind == "gdss" and len(zeros) == 1:
        times = torch.linspace(1.0, t_end, steps, dtype=torch.float64)
        return torch.cat([times, torch.tensor(list(zeros), dtype=torch.float64)])
    return uniform_t_grid(paths["adj"], steps, t_start=1.0, t_end=t_end)


def solve(
    model: Any,
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
    counter: NFECounter | None = None,
    callback: StepCallback | None = None,
) -> State:
    """Run the graph sampler ``sampler`` (:data:`GRAPH_SAMPLERS`) from ``init`` with the network
    ``model(state, t, mask)``; returns the final (masked) state. ``counter`` counts network
    calls; ``callback(step, t, state, x0)`` sees every step."""
    spec = GRAPH_SAMPLERS.get(sampler)
    if spec is None:
        raise InputError(f"sampler: expected one of {', '.join(GRAPH_SAMPLERS)}, got {sampler!r}")
    if not (isinstance(steps, int) and steps >= 2):
        raise InputError(f"steps: expected an integer >= 2, got {steps!r}")
    paths = sde.paths()
    den = as_denoiser(model, paths, prediction=sde.predictions(), cond=mask, counter=counter)
    grid = _grid(spec.grid, sde, steps)
    settings = {"snr": snr, "scale_eps": scale_eps, "n_corrector": n_corrector}

    def noise(state: Any, gen: torch.Generator | None) -> State:
        return graph_noise(state, mask, generator=gen)

    res = get_sampler(spec.core, kind="gaussian")(
        den,
        paths,
        init,
        grid,
        generator=generator,
        mask=state_masks(mask),
        noise=noise,
        callback=callback,
        **spec.options,
        **{k: settings[k] for k in spec.langevin},
    )
    out = res.x
    if spec.grid == "denoise":  # GDSS's noise removal: the data prediction at the last time
        t = torch.full((mask.shape[0],), float(grid[-1]), device=mask.device)
        out = den(res.x, t).x0
    assert isinstance(out, dict)
    return {"x": mask_x(out["x"], mask), "adj": mask_adj(out["adj"], mask)}


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
    callback: StepCallback | None = None,
) -> GraphSamples:
    """Sample ``n`` graphs from a loaded :class:`~polyfold.graph.training.GraphModel`.

    Defaults come from the model's preset (:data:`SAMPLER_DEFAULTS`). ``mask`` fixes the node
    masks (default: drawn from the training node counts). ``nfe`` counts network calls for one
    batch (every batch takes the same number). ``progress(done, n)`` is called after each batch;
    ``callback(step, t, state, x0)`` after every sampler step of every batch (``steps`` calls
    per batch of ``batch_size`` graphs: a per-step progress bar).
    """
    preset = str(gm.meta.get("preset") or "qm9")
    d = SAMPLER_DEFAULTS.get(preset, SAMPLER_DEFAULTS["qm9"])
    sampler = sampler or d["sampler"]
    steps = steps or d["steps"]
    snr = d["snr"] if snr is None else snr
    scale_eps = d["scale_eps"] if scale_eps is None else scale_eps
    if sampler not in GRAPH_SAMPLERS:
        raise InputError(f"sampler: expected one of {', '.join(GRAPH_SAMPLERS)}, got {sampler!r}")
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
            out = solve(
                model,
                sde,
                init,
                m,
                sampler=sampler,
                steps=steps,
                snr=snr,
                scale_eps=scale_eps,
                n_corrector=n_corrector,
                generator=gen,
                counter=counter,
                callback=callback,
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
