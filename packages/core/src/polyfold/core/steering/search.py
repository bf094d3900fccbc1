r"""Search over sampling noise with verifiers (Ma et al., "Inference-Time Scaling for Diffusion
Models beyond Scaling Denoising Steps").

A *verifier* is any reward ``verifier(x) -> (B,)`` (higher is better). Each example of the
batch ``x`` (initial states at ``grid[0]``) is searched on its own, with a ``budget`` of network
calls *per example* (one sample of a ``K``-step one-call-per-step sampler costs ``K``):

- :func:`random_search`: best-of-N over initial noises (``x`` itself is the first candidate,
  then fresh prior draws ``sigma(t_0) z``);
- :func:`zero_order_search`: neighbours of a pivot noise ``n`` are
  ``sqrt(1 - rho^2) n + rho sigma(t_0) z`` (the prior is preserved); the pivot moves to the best
  neighbour when it beats the pivot's reward;
- :func:`path_search`: search over paths: ``width`` chains run to the first checkpoint; at each
  checkpoint ``t_k`` every chain is re-noised ``back`` grid steps up,
  ``x' = (alpha_j/alpha_k) x + sqrt(sigma_j^2 - (alpha_j sigma_k/alpha_k)^2) z``, into
  ``branches`` copies that are sampled on to the next checkpoint; the verifier on their data
  estimates keeps the best ``width``; the final states are verified and the best returned.

With a budget of a single sample every method returns exactly the plain sampler's output (same
generator draws).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import check_scale
from polyfold.core.paths import Paths
from polyfold.core.samplers._core import NoiseFn
from polyfold.core.samplers.grids import check_grid
from polyfold.core.state import Mask, State, keep_padding, randn_like, tree_map
from polyfold.core.steering._common import (
    Counted,
    Reward,
    batch_size,
    cat,
    check_budget,
    check_reward,
    evaluate,
    prior_like,
    run_segment,
    take,
)

__all__ = ["SearchResult", "path_search", "random_search", "zero_order_search"]


@dataclass
class SearchResult:
    """The best state per example ``x``, its verifier score ``reward`` ``(B,)``, the network
    calls spent per example ``calls`` and the candidates verified per example."""

    x: State
    reward: Tensor
    calls: float
    candidates: int


class _Search:
    """Shared set-up: validated arguments, counted calls, segment runs over rows."""

    def __init__(
        self,
        denoiser: Denoiser,
        paths: Paths,
        x: State,
        grid: Tensor | Sequence[float],
        verifier: Reward,
        budget: int,
        sampler: str,
        options: dict[str, Any] | None,
        mask: Mask,
        noise: NoiseFn | None,
        generator: torch.Generator | None,
        chunk: int,
    ) -> None:
        check_reward(verifier, "verifier")
        self.budget = check_budget(budget)
        self.den = Counted(denoiser)
        self.paths, self.x, self.verifier, self.mask = paths, x, verifier, mask
        self.grid = check_grid(grid, paths)
        self.times: list[float] = self.grid.tolist()
        self.sampler, self.options = sampler, options
        self.noise, self.generator = noise, generator
        self.chunk = check_budget(chunk, "chunk")
        self.b = batch_size(x)

    @property
    def spent(self) -> float:
        """Calls per example so far."""
        return self.den.calls / self.b

    def run(self, x: State, rows: Tensor, a: int, b: int) -> tuple[State, State | None]:
        """Sample rows (of examples ``rows``) from grid index ``a`` to ``b``, in chunks."""
        outs, x0s = [], []
        n = batch_size(x)
        for lo in range(0, n, self.chunk):
            idx = torch.arange(lo, min(n, lo + self.chunk))
            out, x0 = run_segment(
                self.sampler,
                self.den,
                self.paths,
                take(x, idx),
                self.times[a : b + 1],
                mask=take(self.mask, rows[idx]),
                generator=self.generator,
                noise=self.noise,
                options=self.options,
            )
            outs.append(out)
            x0s.append(x0)
        return cat(outs), None if x0s[0] is None else cat(x0s)

    def plain(self) -> tuple[State, float]:
        """The plain sampler on ``x`` and its cost per example."""
        out, _ = run_segment(
            self.sampler,
            self.den,
            self.paths,
            self.x,
            self.times,
            mask=self.mask,
            generator=self.generator,
            noise=self.noise,
            options=self.options,
        )
        cost = self.spent
        if cost > self.budget:
            raise InputError(
                f"budget: expected at least the {cost:g} network calls of one sample, "
                f"got {self.budget}"
            )
        return out, cost

    def prior(self, rows: Tensor) -> State:
        """Fresh prior draws for examples ``rows`` (padding kept from ``x``)."""
        x = take(self.x, rows)
        return self.keep(prior_like(x, self.paths, self.times[0], self.noise, self.generator), rows)

    def keep(self, new: State, rows: Tensor) -> State:
        """``new`` with the padding of ``x``'s examples ``rows``."""
        if self.mask is None:
            return new
        return keep_padding(new, take(self.x, rows), take(self.mask, rows))

    def score(self, x: State, where: str) -> Tensor:
        return evaluate(self.verifier, x, where, "verifier")


def _better(best_r: Tensor, cand_r: Tensor, b: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per example, the best candidate row (rows ``j b + i`` are example ``i``), whether it
    beats ``best_r``, and the new best rewards."""
    top, arg = cand_r.reshape(-1, b).max(0)
    better = top > best_r
    return arg * b + torch.arange(b), better, torch.where(better, top, best_r)


def _choose(old: State, cand: State, pick: Tensor, better: Tensor) -> State:
    """Per example ``cand[pick]`` where ``better``, else ``old``."""

    def one(o: Tensor, c: Tensor) -> Tensor:
        m = better.to(o.device).reshape(-1, *([1] * (o.ndim - 1)))
        return torch.where(m, c[pick.to(o.device)], o)

    out: State = tree_map(one, old, cand)
    return out


def _repeat(x: Any, m: int) -> Any:
    """Rows ``x`` repeated ``m`` times (row ``j b + i`` is example ``i``)."""
    return None if x is None else cat([x] * m)


def random_search(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    verifier: Reward,
    *,
    budget: int,
    sampler: str = "ddim",
    options: dict[str, Any] | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> SearchResult:
    """Best-of-N over initial noises within ``budget`` calls per example (see module doc).

    ``sampler``/``options``: the registered Gaussian sampler and its options; ``chunk``: rows
    per batched sampler run. Other arguments as every sampler.
    """
    s = _Search(
        denoiser, paths, x, grid, verifier, budget, sampler, options, mask, noise, generator, chunk
    )
    best, cost = s.plain()
    best_r = s.score(best, "candidate 0")
    n = int(budget // cost)
    left = n - 1
    rows = torch.arange(s.b)
    while left > 0:
        m = max(1, min(left, s.chunk // s.b))
        rr = rows.repeat(m)
        cand, _ = s.run(s.prior(rr), rr, 0, len(s.times) - 1)
        pick, better, best_r = _better(best_r, s.score(cand, f"candidates {n - left}+"), s.b)
        best = _choose(best, cand, pick, better)
        left -= m
    return SearchResult(best, best_r, s.spent, n)


def zero_order_search(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    verifier: Reward,
    *,
    budget: int,
    neighbors: int = 4,
    radius: float = 0.5,
    sampler: str = "ddim",
    options: dict[str, Any] | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> SearchResult:
    """Zero-order search around a pivot noise (``x``), ``neighbors`` per iteration at
    ``radius`` ``rho`` in (0, 1]; arguments otherwise as :func:`random_search`."""
    rho = check_scale(radius, "radius", 1e-12, 1.0)
    check_budget(neighbors, "neighbors")
    s = _Search(
        denoiser, paths, x, grid, verifier, budget, sampler, options, mask, noise, generator, chunk
    )
    best, cost = s.plain()
    best_r = s.score(best, "the pivot")
    pivot, n, it = x, 1, 0
    rows = torch.arange(s.b)
    while (m := min(neighbors, int(budget // cost) - n)) > 0:  # the last round may be smaller
        rr = rows.repeat(m)
        z = s.prior(rr)
        cand_x = s.keep(
            tree_map(
                lambda p, zi: math.sqrt(1 - rho * rho) * p + rho * zi,
                _repeat(pivot, m),
                z,
            ),
            rr,
        )
        cand, _ = s.run(cand_x, rr, 0, len(s.times) - 1)
        pick, better, best_r = _better(best_r, s.score(cand, f"iteration {it}"), s.b)
        best, pivot = _choose(best, cand, pick, better), _choose(pivot, cand_x, pick, better)
        n, it = n + m, it + 1
    return SearchResult(best, best_r, s.spent, n)


def path_search(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    verifier: Reward,
    *,
    budget: int,
    branches: int = 2,
    back: int = 2,
    checkpoints: Sequence[int] | None = None,
    sampler: str = "ddim",
    options: dict[str, Any] | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> SearchResult:
    """Search over paths (see module doc): the ``width`` that fits ``budget`` per example.

    Args:
        branches: re-noised copies per chain at each checkpoint.
        back: grid steps to re-noise up by (``>= 1``).
        checkpoints: increasing grid indices in ``(back, K)`` where chains branch (default
            ``K/4, K/2, 3K/4``).
        Others as :func:`random_search`; a budget too small for ``width = 2`` gives the plain
        sampler (or random search) instead.
    """
    check_budget(branches, "branches")
    check_budget(back, "back")
    s = _Search(
        denoiser, paths, x, grid, verifier, budget, sampler, options, mask, noise, generator, chunk
    )
    k = len(s.times) - 1
    ck = (
        sorted(set(checkpoints))
        if checkpoints is not None
        else sorted({max(back + 1, k * j // 4) for j in (1, 2, 3)} - {k})
    )
    if any(not (isinstance(c, int) and back < c < k) for c in ck) or not ck:
        raise InputError(f"checkpoints: expected grid indices in ({back}, {k}), got {ck}")
    ends = [*ck[1:], k]
    steps = ck[0] + sum(branches * (e - c + back) for c, e in zip(ck, ends, strict=True))
    if budget < 2 * steps:  # the calls of 2 paths at one call per step
        return random_search(
            denoiser,
            paths,
            x,
            grid,
            verifier,
            budget=budget,
            sampler=sampler,
            options=options,
            mask=mask,
            noise=noise,
            generator=generator,
            chunk=chunk,
        )
    first, _ = s.run(x, torch.arange(s.b), 0, ck[0])
    width = int(budget // (steps * s.spent / ck[0]))
    if width < 2:
        raise InputError(
            f"budget: {budget} calls per example cannot pay for 2 paths of "
            f"this sampler ({steps * s.spent / ck[0]:g} calls each)"
        )
    rows = torch.arange(s.b).repeat(width)
    more, _ = s.run(s.prior(rows[s.b :]), rows[s.b :], 0, ck[0])
    cur = cat([first, more])
    best = best_r = None
    for j, (c, e) in enumerate(zip(ck, ends, strict=True)):
        a = c - back
        lv = [
            tree_map(
                lambda p, t=t: (
                    float(p.alpha(torch.tensor([t], dtype=F64))[0]),
                    float(p.sigma(torch.tensor([t], dtype=F64))[0]),
                ),
                paths,
            )
            for t in (s.times[a], s.times[c])
        ]
        rr = rows.repeat(branches)
        rep = _repeat(cur, branches)
        z = (
            s.noise(rep, s.generator)
            if s.noise is not None
            else randn_like(rep, generator=s.generator)
        )

        def renoise(xi: Tensor, zi: Tensor, up: Any, now: Any) -> Tensor:
            ratio = float(up[0] / now[0])
            return ratio * xi + math.sqrt(max(up[1] ** 2 - (ratio * now[1]) ** 2, 0.0)) * zi

        cand, x0 = s.run(tree_map(renoise, rep, z, lv[0], lv[1]), rr, a, e)
        scored = cand if e == k or x0 is None else x0
        r = s.score(scored, f"checkpoint {j} (grid index {c})")
        if e == k:
            pick, _, best_r = _better(torch.full((s.b,), -math.inf, dtype=F64), r, s.b)
            best = take(cand, pick)
            break
        keep = r.reshape(branches * width, s.b).topk(width, dim=0).indices  # (width, b)
        pick = (keep * s.b + torch.arange(s.b)).reshape(-1)
        cur = take(cand, pick)
    assert best is not None
    assert best_r is not None
    return SearchResult(best, best_r, s.spent, width * branches)
