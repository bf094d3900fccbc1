"""Wasserstein GAN losses with gradient penalty (WGAN-GP, Gulrajani et al. 2017).

The critic ``D`` scores a batch; conditional critics take a second argument that is passed
through unchanged (``critic(x, cond)``; ``critic(x)`` when ``cond`` is ``None``). The critic
minimises

    ``E[D(fake)] - E[D(real)] + lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]``

with ``x_hat = u * real + (1 - u) * fake``, ``u ~ U[0, 1]`` per example, and the generator
minimises ``-E[D(fake)]``. Any batch-first tensor shape works: the gradient norm is taken over
every non-batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = [
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "wgan_gp_critic_loss",
]

Critic = Callable[..., Tensor]


def _score(critic: Critic, x: Tensor, cond: Any) -> Tensor:
    out = critic(x) if cond is None else critic(x, cond)
    if not isinstance(out, Tensor) or out.ndim == 0 or out.shape[0] != x.shape[0]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InputError(f"critic output: expected one score per example ({x.shape[0]}), got {got}")
    return out.reshape(x.shape[0], -1).sum(dim=1)


def _check_pair(real: Tensor, fake: Tensor) -> None:
    for name, x in (("real", real), ("fake", fake)):
        if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
            raise InputError(f"{name}: expected a batch-first floating-point tensor")
    if real.shape != fake.shape:
        raise InputError(
            f"fake: expected the shape of real {tuple(real.shape)}, got {tuple(fake.shape)}"
        )


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean(fake_scores) - mean(real_scores)``: the critic's Wasserstein loss (no penalty)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-mean(fake_scores)``: the generator's Wasserstein loss."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    cond: Any = None,
    *,
    target: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``mean((||grad D(x_hat)||_2 - target)^2)`` over random interpolates of ``real`` and
    ``fake`` (unweighted; the graph is kept so the penalty trains the critic)."""
    _check_pair(real, fake)
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    u = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
    scores = _score(critic, x_hat, cond)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.reshape(grad.shape[0], -1).norm(dim=1)
    penalty: Tensor = ((norm - target) ** 2).mean()
    return penalty


def wgan_gp_critic_loss(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    cond: Any = None,
    *,
    gp_weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The critic's WGAN-GP loss on a batch (``fake`` is detached) and its parts:
    ``{"wasserstein": E[D(real)] - E[D(fake)], "gradient_penalty": ...}``."""
    if not (isinstance(gp_weight, int | float) and gp_weight >= 0):
        raise InputError(f"gp_weight: expected a number >= 0, got {gp_weight!r}")
    _check_pair(real, fake)
    real_s = _score(critic, real, cond)
    fake_s = _score(critic, fake.detach(), cond)
    gp = gradient_penalty(critic, real, fake, cond, generator=generator)
    loss = wgan_critic_loss(real_s, fake_s) + gp_weight * gp
    parts = {
        "wasserstein": float((real_s.mean() - fake_s.mean()).detach()),
        "gradient_penalty": float(gp.detach()),
    }
    return loss, parts
