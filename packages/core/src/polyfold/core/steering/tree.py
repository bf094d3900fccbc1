r"""Diffusion Tree Sampling (DTS) and Diffusion Tree Search (DTS*) (Jain et al., "Diffusion Tree
Sampling: Scalable inference-time alignment of diffusion models").

The tree lives on the discretised reverse chain ``x_{t_0} -> x_{t_1} -> ... -> x_{t_K}`` of a
grid: a node at level ``k`` is a partial trajectory ending in a state at ``t_k``; the root's
children are draws of the prior at ``t_0`` (no network call), every other child is drawn from
the base reverse kernel (one step of the registered sampler ``sampler``, e.g. ``"ddpm"``).
Each rollout descends from the root by the selection rule below. The root gains a new child
(a prior draw) whenever it has fewer than ``max(branching, rollouts^widening)``. A node created
by a rollout is a *chain node* with one child; the first time a selection reaches it, it is
expanded: ``branching`` fresh children are drawn from the base kernel and each is rolled out to
a leaf, and the chain child is retired from the node's estimate (the decision to expand looked
at it; values from the fresh children alone keep ``exp v`` unbiased, where widening a node
because its first children looked good would bias every value low). Nodes one step before a
grid's data point keep one child (that step is deterministic). Each leaf's reward ``r`` is
backed up along its path:

- DTS (soft values, sampling ``p(x) exp(r(x)/lam)``): ``v(leaf) = r/lam`` and
  ``v(node) = log mean_c exp(v(c))``, the soft Bellman backup: since children are draws of the
  base kernel, ``exp v(node)`` estimates ``E[exp(r(x_0)/lam) | node]``. Selection at a full node
  draws a child with probability ``~ exp(v(c))``, the target's transition given those children.
  :meth:`DiffusionTree.sample` descends the same way and returns leaves: asymptotically exact
  draws of the tilted target as rollouts grow.
- DTS* (max values, searching for the maximum reward): ``v(node) = max_c v(c)``; selection
  maximises ``v(c)/lam + c_uct sqrt(log N(node) / N(c))`` (UCT); :meth:`DiffusionTree.best`
  returns the highest-reward leaves.

Rollouts run in waves of up to ``wave`` chains whose network calls are batched level by level;
the budget counts network calls on single examples (a chain from level ``k`` costs ``K - k``
calls of a one-call-per-step sampler). Growing again continues the same tree (anytime).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import check_scale
from polyfold.core.paths import Paths
from polyfold.core.samplers._core import NoiseFn
from polyfold.core.samplers.grids import check_grid, zero_time
from polyfold.core.state import Mask, State, keep_padding
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

__all__ = ["DiffusionTree", "dts", "dts_star"]


def _path_list(paths: Paths) -> list[Any]:
    return list(paths.values()) if isinstance(paths, dict) else [paths]


class DiffusionTree:
    """A search tree over the diffusion chain, grown by :meth:`grow` (see the module doc).

    Args:
        denoiser, paths, grid, mask, noise, generator: as every sampler; ``x`` is one example
            (batch 1) giving the state's structure at ``grid[0]`` (its values are not used: the
            root's children are fresh prior draws); ``mask`` (batch 1) is every node's mask.
        reward: ``reward(x) -> (B,)`` on final states.
        lam: the reward temperature (target ``p exp(r/lam)``).
        greedy: DTS* (max backup, UCT selection) instead of DTS.
        branching: children of an expanded node.
        widening: the root has ``max(branching, rollouts^widening)`` children (prior draws).
        exploration: DTS*'s UCT constant.
        sampler: the registered Gaussian sampler whose single steps are the base kernel, with
            ``options``.
        wave: rollouts batched together.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        paths: Paths,
        x: State,
        grid: Tensor | Sequence[float],
        reward: Reward,
        *,
        lam: float = 1.0,
        greedy: bool = False,
        branching: int = 4,
        widening: float = 0.7,
        exploration: float = 1.0,
        sharpness: float = 1.0,
        sampler: str = "ddpm",
        options: dict[str, Any] | None = None,
        wave: int = 64,
        mask: Mask = None,
        noise: NoiseFn | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        check_reward(reward)
        if batch_size(x) != 1:
            raise InputError(
                f"x: expected one example (batch 1) as the tree's template, "
                f"got a batch of {batch_size(x)}"
            )
        self.den = Counted(denoiser)
        self.paths, self.reward, self.mask = paths, reward, mask
        self.times: list[float] = check_grid(grid, paths).tolist()
        self.depth = len(self.times) - 1
        self.lam = check_scale(lam, "lam", 1e-12)
        self.greedy = bool(greedy)
        self.branching = check_budget(branching, "branching", 1)
        self.widening = check_scale(widening, "widening", 0.0, 1.0)
        self.final_deterministic = self.times[-1] == min(zero_time(p) for p in _path_list(paths))
        self.exploration = check_scale(exploration, "exploration", 0.0)
        self.sharpness = check_scale(sharpness, "sharpness", 0.0, 1.0)
        self.wave = check_budget(wave, "wave", 1)
        self.sampler, self.options = sampler, dict(options or {})
        self.noise, self.generator, self.template = noise, generator, x
        # node 0 is the root (level -1); parallel lists per node
        self.level: list[int] = [-1]
        self.parent: list[int] = [-1]
        self.children: list[list[int]] = [[]]
        self.state: list[State | None] = [None]
        self.value: list[float] = [math.nan]
        self.visits: list[int] = [0]
        self.expanded: list[bool] = [True]
        self.retired: list[int] = []
        self.rewards: dict[int, float] = {}
        self.rollouts = 0
        self._per_step = 1  # calls per example per step, measured on the first step

    @property
    def calls(self) -> int:
        """Network calls on single examples spent so far."""
        return self.den.calls

    @property
    def leaves(self) -> list[int]:
        """Leaf node ids (final states), in creation order."""
        return list(self.rewards)

    def _new(self, parent: int, state: State | None) -> int:
        i = len(self.level)
        self.level.append(self.level[parent] + 1)
        self.parent.append(parent)
        self.children.append([])
        self.state.append(state)
        self.value.append(math.nan)
        self.visits.append(0)
        self.expanded.append(False)
        self.children[parent].append(i)
        return i

    def _select_child(self, node: int) -> int | None:
        kids = [c for c in self.children[node] if not math.isnan(self.value[c])]
        if not kids:
            return None
        v = torch.tensor([self.value[c] for c in kids], dtype=F64)
        if self.greedy:
            n = torch.tensor([max(self.visits[c], 1) for c in kids], dtype=F64)
            bonus = self.exploration * torch.sqrt(math.log(max(self.visits[node], 1)) / n)
            return kids[int(torch.argmax(v / self.lam + bonus))]
        p = torch.softmax(v * self.sharpness, 0)
        return kids[int(torch.multinomial(p, 1, generator=self.generator))]

    def _expandable(self, node: int) -> bool:
        """A chain node (one child, never expanded) above the last random step."""
        last = self.depth - 1 if self.final_deterministic else self.depth
        return node != 0 and not self.expanded[node] and self.level[node] < last

    def _descend(self) -> tuple[str, int]:
        """Where the next rollout starts: ``("root", 0)`` (a new prior draw), ``("expand",
        node)``, ``("leaf", node)`` (reached through full nodes) or ``("blocked", node)``
        (every child of ``node`` is still pending in this wave)."""
        node = 0
        while True:
            if node == 0:
                room = max(self.branching, int(self.visits[0] ** self.widening))
                if len(self.children[0]) < room:
                    return "root", 0
            elif self._expandable(node):
                return "expand", node
            if self.level[node] == self.depth:
                return "leaf", node
            nxt = self._select_child(node)
            if nxt is None:
                return "blocked", node
            node = nxt

    def grow(self, budget: int) -> DiffusionTree:
        """Run rollouts until about ``budget`` more network calls (single examples) are
        spent (a rollout that would exceed it is not started); returns ``self``."""
        check_budget(budget)
        stop = self.calls + budget
        while True:
            starts: list[tuple[int, int]] = []
            planned = idle = 0
            while len(starts) < self.wave and idle < 10 * self.wave:
                kind, node = self._descend()
                if kind in ("leaf", "blocked"):
                    if kind == "leaf":
                        self._backup(node)  # a free revisit
                    idle += 1
                    continue
                width = 1 if kind == "root" else self.branching
                cost = width * (self.depth - max(self.level[node], 0)) * self._per_step
                if self.calls + planned + cost > stop:
                    break
                planned += cost
                if kind == "expand":  # B fresh children replace the chain child
                    self.expanded[node] = True
                    self.retired.extend(self.children[node])
                    self.children[node] = []
                starts += [(node, self._new(node, None)) for _ in range(width)]
            if not starts:
                return self
            self._run_wave(starts)

    def _run_wave(self, starts: list[tuple[int, int]]) -> None:
        """Simulate each reserved child and its chain to a leaf, batching calls by level."""
        pending = [c for _, c in starts]
        cur = []
        for s, c in starts:
            if s == 0:  # a root child: a prior draw, no network call
                draw = prior_like(
                    self.template, self.paths, self.times[0], self.noise, self.generator
                )
                self.state[c] = (
                    draw if self.mask is None else keep_padding(draw, self.template, self.mask)
                )
                cur.append(c)
            else:
                cur.append(s)
        for lev in range(self.depth):
            todo = [j for j, node in enumerate(cur) if self.level[node] == lev]
            if not todo:
                continue
            x = cat([self.state[cur[j]] for j in todo])
            mask = None if self.mask is None else cat([self.mask] * len(todo))
            before = self.calls
            new, _ = run_segment(
                self.sampler,
                self.den,
                self.paths,
                x,
                self.times[lev : lev + 2],
                mask=mask,
                generator=self.generator,
                noise=self.noise,
                options=self.options,
            )
            self._per_step = max(1, (self.calls - before) // len(todo))
            for row, j in enumerate(todo):
                st = take(new, torch.tensor([row]))
                if self.state[pending[j]] is None:
                    self.state[pending[j]] = st
                    cur[j] = pending[j]
                else:
                    cur[j] = self._new(cur[j], st)
        final = cat([self.state[e] for e in cur])
        r = evaluate(self.reward, final, f"the leaves of rollout wave at {self.rollouts}")
        for e, ri in zip(cur, r.tolist(), strict=True):
            self.rewards[e] = ri
            self.value[e] = ri if self.greedy else ri / self.lam
            self._backup(e)
            self.rollouts += 1

    def _backup(self, leaf: int) -> None:
        node = leaf
        while node >= 0:
            self.visits[node] += 1
            if node != leaf:
                vals = [self.value[c] for c in self.children[node] if not math.isnan(self.value[c])]
                if vals:
                    if self.greedy:
                        self.value[node] = max(vals)
                    else:
                        t = torch.tensor(vals, dtype=F64)
                        self.value[node] = float(torch.logsumexp(t, 0) - math.log(len(vals)))
            node = self.parent[node]

    def sample(self, n: int) -> State:
        """``n`` leaves drawn by descending with probabilities ``~ exp(v(child))`` (DTS's
        draws of the tilted target; repeats are possible)."""
        check_budget(n, "n")
        if not self.rewards:
            raise InputError("sample: the tree has no leaves yet; call grow(budget) first")
        out = []
        for _ in range(n):
            node = 0
            while self.level[node] < self.depth:
                kids = [c for c in self.children[node] if not math.isnan(self.value[c])]
                v = torch.tensor([self.value[c] for c in kids], dtype=F64)
                if self.greedy:
                    v = v / self.lam
                p = torch.softmax(v, 0)
                node = kids[int(torch.multinomial(p, 1, generator=self.generator))]
            out.append(self.state[node])
        res: State = cat(out)
        return res

    def best(self, n: int = 1) -> tuple[State, Tensor]:
        """The ``n`` highest-reward leaves and their rewards."""
        check_budget(n, "n")
        if not self.rewards:
            raise InputError("best: the tree has no leaves yet; call grow(budget) first")
        ids = sorted(self.rewards, key=self.rewards.__getitem__, reverse=True)[:n]
        return cat([self.state[i] for i in ids]), torch.tensor(
            [self.rewards[i] for i in ids], dtype=F64
        )


def dts(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    reward: Reward,
    *,
    budget: int,
    n: int,
    lam: float = 1.0,
    **options: Any,
) -> tuple[State, DiffusionTree]:
    """Diffusion Tree Sampling: grow a tree with ``budget`` network calls, return ``n`` draws of
    ``p exp(r/lam)`` and the tree (grow it further for better draws). ``options``: the
    :class:`DiffusionTree` keywords."""
    tree = DiffusionTree(denoiser, paths, x, grid, reward, lam=lam, **options).grow(budget)
    return tree.sample(n), tree


def dts_star(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    reward: Reward,
    *,
    budget: int,
    n: int = 1,
    lam: float = 1.0,
    **options: Any,
) -> tuple[State, Tensor, DiffusionTree]:
    """Diffusion Tree Search: grow a greedy tree with ``budget`` calls, return the ``n`` best
    leaves, their rewards and the tree."""
    tree = DiffusionTree(denoiser, paths, x, grid, reward, lam=lam, greedy=True, **options).grow(
        budget
    )
    best, r = tree.best(n)
    return best, r, tree
