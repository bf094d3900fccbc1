"""What the steering methods share: counted calls, batch indexing of states, rewards, steps.

Compute is counted in *network calls on one example* (``calls``): a denoiser call on a batch
of ``B`` examples costs ``B``. One sample of a ``K``-step one-call-per-step sampler costs ``K``,
so a budget of ``N K`` buys ``N`` samples whatever the batching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import Wrapper, check_denoiser, denoise, leaves
from polyfold.core.paths import Paths
from polyfold.core.samplers.registry import get_sampler
from polyfold.core.state import Mask, State, map_state, randn_like, tree_map

#: ``reward(x) -> (B,)``: a verifier scoring a batch of final states (higher is better).
Reward = Callable[[State], Tensor]


class Counted(Wrapper):
    """A denoiser counting network calls on single examples (``calls``, a batch of B costs B)."""

    def __init__(self, denoiser: Denoiser, name: str = "denoiser") -> None:
        check_denoiser(denoiser, name)
        self.inner, self.calls = denoiser, 0

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        self.calls += batch_size(x)
        return denoise(self.inner, x, t, levels)


def batch_size(x: State) -> int:
    """The batch size of a state."""
    return int(leaves(x)[0].shape[0])


def take(x: Any, idx: Tensor) -> Any:
    """Rows ``idx`` of a state or mask (``None`` and ``None`` leaves stay ``None``)."""
    if x is None:
        return None
    return tree_map(lambda v: None if v is None else v[idx.to(v.device)], x)


def cat(parts: Sequence[Any]) -> Any:
    """States (or masks) concatenated along the batch."""
    if parts[0] is None:
        return None
    if isinstance(parts[0], dict):
        return {
            k: None if parts[0][k] is None else torch.cat([p[k] for p in parts]) for k in parts[0]
        }
    return torch.cat(list(parts))


def check_budget(budget: object, name: str = "budget", least: int = 1) -> int:
    """``budget`` as an int ``>= least`` (network calls), else an :class:`InputError`."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < least:
        raise InputError(
            f"{name}: expected an integer number of network calls >= {least}, got {budget!r}"
        )
    return budget


def check_reward(reward: object, name: str = "reward") -> None:
    """:class:`InputError` unless ``reward`` is callable."""
    if not callable(reward):
        raise InputError(f"{name}: expected a callable reward(x) -> (B,) tensor, got {reward!r}")


def evaluate(reward: Reward, x: State, where: str, name: str = "reward") -> Tensor:
    """``reward(x)`` as a float64 ``(B,)`` CPU tensor; NaN/inf or a wrong shape is an
    :class:`InputError` naming the reward and ``where`` (the step) it happened."""
    b = batch_size(x)
    r = reward(x)
    if not isinstance(r, Tensor):
        r = torch.as_tensor(r)
    r = r.detach().to(device="cpu", dtype=F64).reshape(-1)
    if r.numel() != b:
        raise InputError(
            f"{name}: expected one value per example ({b}) at {where}, got {r.numel()}"
        )
    if not bool(torch.isfinite(r).all()):
        bad = r[~torch.isfinite(r)][0].item()
        raise InputError(f"{name}: returned {bad} at {where}; expected finite values")
    return r


def run_segment(
    sampler: str,
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    times: Sequence[float],
    *,
    mask: Mask = None,
    generator: torch.Generator | None = None,
    noise: Any = None,
    options: dict[str, Any] | None = None,
) -> tuple[State, State | None]:
    """Run the registered sampler ``sampler`` over ``times`` (a piece of a grid); returns the
    new state and the model's data estimate of the last step."""
    last: list[State | None] = [None]

    def keep_x0(step: int, t: float, xi: State, x0: State | None) -> None:
        last[0] = x0

    res = get_sampler(sampler, kind="gaussian")(
        denoiser,
        paths,
        x,
        torch.tensor(list(times), dtype=F64),
        generator=generator,
        mask=mask,
        noise=noise,
        callback=keep_x0,
        **(options or {}),
    )
    return res.x, last[0]


def prior_like(x: State, paths: Paths, t: float, noise: Any, generator: Any) -> State:
    """A fresh draw of the prior at time ``t``: ``sigma(t) z`` per key (``alpha(t) x0`` is
    taken as negligible, as for the initial states every sampler is given)."""
    z = noise(x, generator) if noise is not None else randn_like(x, generator=generator)
    tt = torch.tensor([t], dtype=F64)
    return map_state(lambda zi, p: zi * float(p.sigma(tt)[0]), z, paths)
