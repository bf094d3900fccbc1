"""GAN losses: Wasserstein with gradient penalty (WGAN-GP, Gulrajani et al. 2017) and the
non-saturating logistic loss with the R1 penalty (Goodfellow et al. 2014; Mescheder et al. 2018),
the objective of denoising diffusion GANs (DDGAN, Xiao et al. 2022) and EMDM.

The critic ``D`` scores a batch; conditional critics take a second argument that is passed
through unchanged (``critic(x, cond)``; ``critic(x)`` when ``cond`` is ``None``).

WGAN-GP: the critic minimises

    ``E[D(fake)] - E[D(real)] + lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]``

with ``x_hat = u * real + (1 - u) * fake``, ``u ~ U[0, 1]`` per example, and the generator
minimises ``-E[D(fake)]``.

Non-saturating with R1: ``D`` returns logits; the critic (discriminator) minimises

    ``E[softplus(-D(real))] + E[softplus(D(fake))] + gamma / 2 * E[||grad_x D(real)||_2^2]``

(the binary cross-entropy of real against fake plus R1, a penalty on real samples only), and the
generator minimises ``E[softplus(-D(fake))] = -E[log sigmoid(D(fake))]``. In a conditional GAN
the gradient is taken with respect to the sample only, the condition held fixed.

Any batch-first tensor shape works: gradient norms are taken over every non-batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = [
    "gradient_penalty",
    "nonsaturating_critic_loss",
    "nonsaturating_generator_loss",
    "nonsaturating_r1_critic_loss",
    "r1_penalty",
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


def nonsaturating_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean(softplus(-real_scores)) + mean(softplus(fake_scores))``: the discriminator's
    logistic (binary cross-entropy) loss on logits, real labelled 1 and fake 0 (no penalty)."""
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def nonsaturating_generator_loss(fake_scores: Tensor) -> Tensor:
    """``mean(softplus(-fake_scores))``: the generator's non-saturating loss,
    ``-E[log sigmoid(D(fake))]``."""
    return F.softplus(-fake_scores).mean()


def _check_real(real: Tensor) -> None:
    if not isinstance(real, Tensor) or real.ndim < 1 or not real.is_floating_point():
        raise InputError("real: expected a batch-first floating-point tensor")


def _check_gamma(r1_gamma: float) -> None:
    if isinstance(r1_gamma, bool) or not (
        isinstance(r1_gamma, int | float) and 0 <= r1_gamma < float("inf")
    ):
        raise InputError(f"r1_gamma: expected a finite number >= 0, got {r1_gamma!r}")


def _real_scores_and_r1(critic: Critic, real: Tensor, cond: Any) -> tuple[Tensor, Tensor]:
    x = real.detach().requires_grad_(True)
    scores = _score(critic, x, cond)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    penalty: Tensor = grad.reshape(grad.shape[0], -1).pow(2).sum(dim=1).mean()
    return scores, penalty


def r1_penalty(critic: Critic, real: Tensor, cond: Any = None) -> Tensor:
    """``mean(||grad_x D(real)||_2^2)``: the R1 penalty on real samples (unweighted: the loss
    adds ``gamma / 2`` of it; the graph is kept so the penalty trains the critic). ``cond`` is
    passed to the critic and not differentiated."""
    _check_real(real)
    return _real_scores_and_r1(critic, real, cond)[1]


def nonsaturating_r1_critic_loss(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    cond: Any = None,
    *,
    r1_gamma: float,
) -> tuple[Tensor, dict[str, float]]:
    """The critic's non-saturating loss with R1 on a batch (``fake`` is detached):
    ``mean(softplus(-D(real))) + mean(softplus(D(fake))) + r1_gamma / 2 * r1_penalty``, and its
    parts ``{"d_real": mean(softplus(-D(real))), "d_fake": mean(softplus(D(fake))),
    "r1": r1_penalty}``. ``r1_gamma = 0`` skips the penalty and its double backward (``r1`` is
    then reported as 0): DDGAN's lazy regularisation applies R1 only every k-th step."""
    _check_gamma(r1_gamma)
    _check_pair(real, fake)
    if r1_gamma > 0:
        real_s, r1 = _real_scores_and_r1(critic, real, cond)
    else:
        real_s, r1 = _score(critic, real, cond), torch.zeros((), device=real.device)
    fake_s = _score(critic, fake.detach(), cond)
    d_real, d_fake = F.softplus(-real_s).mean(), F.softplus(fake_s).mean()
    loss = d_real + d_fake + (r1_gamma / 2) * r1
    parts = {
        "d_real": float(d_real.detach()),
        "d_fake": float(d_fake.detach()),
        "r1": float(r1.detach()),
    }
    return loss, parts
