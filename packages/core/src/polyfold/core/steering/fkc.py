r"""Feynman-Kac correctors (Skreta et al., "Feynman-Kac Correctors in Diffusion"): weighted
SDE simulation with sequential Monte Carlo resampling for annealed, product and CFG targets.

Notation: the forward SDE ``dx = f x dt + g dW`` of a Gaussian path has marginals ``q_t``
with score ``s = -eps/sigma``. Time runs backwards (``tau = -t``). The target at time ``t`` is
the geometric product ``p_t ~ prod_j q_t^{(j)}(x)^{beta_j}`` of experts sharing the path
(``B = sum_j beta_j``). Particles follow the reverse SDE driven by the product's score
``S = sum_j beta_j s_j``

    dx = [f x - g^2 S] dt + g dW          (Euler-Maruyama, dt < 0)

and carry log-weights with ``d log w = G dtau`` where, from the Fokker-Planck equations of
the ``q^{(j)}`` and the Feynman-Kac formula,

    G = (B - 1) f d + g^2/2 (||S||^2 - sum_j beta_j ||s_j||^2)

(``d`` the number of valid entries; summed over the keys of a dict state, each with its own
``f``, ``g``, ``sigma``). This gives the paper's three cases:

- temperature annealing ``q^beta`` (:func:`anneal`): ``G = (beta-1) f d + g^2/2 beta(beta-1)
  ||s||^2``;
- product of experts ``q^{(1)} q^{(2)}`` (:func:`product`): ``G = f d + g^2 <s_1, s_2>``;
- CFG as the product ``q(x|c)^w q(x)^{1-w}`` (:func:`cfg_product`): ``S`` is the CFG score
  and ``G = g^2/2 w(w-1) ||s_c - s_u||^2``.

A reward ``r`` multiplies the target by ``exp(r/lam)`` (:func:`reward_tilt`, the product of a
model and a reward): the potential ``phi_i = r(x0_hat(x_i))/lam`` (the model's data estimate,
exactly ``r(x)/lam`` at the end) enters the weights as ``phi_i - phi_{i-1}`` (a twisted SMC
whose proposal is the base kernel; the intermediate potentials only change the variance).

The initial particles (drawn from the base prior, like every sampler's ``x``) are scaled by
``B^{-1/2}``: the prior ``N(0, sigma^2)`` raised to ``B``. Weights are resampled (scheme
``resampling``, see :mod:`~polyfold.core.steering.resampling`) whenever the effective sample
size drops below ``ess_threshold`` times the number of particles. All particles form one
population: the batch is the particle set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import check_scale
from polyfold.core.paths import Paths
from polyfold.core.samplers._core import Level, NoiseFn, smap, tmap
from polyfold.core.samplers.result import StepCallback
from polyfold.core.samplers.stochastic import _em_key, _sde_run
from polyfold.core.state import Mask, State, expand_mask, keep_padding
from polyfold.core.steering._common import Counted, Reward, check_reward, evaluate, take
from polyfold.core.steering.resampling import RESAMPLING_SCHEMES, effective_sample_size, resample

__all__ = ["FKCResult", "FKCTarget", "anneal", "cfg_product", "fkc", "product", "reward_tilt"]


@dataclass(frozen=True)
class FKCTarget:
    """``prod_j q^{(j)}^{beta_j} exp(r/lam)``: ``experts`` as ``(denoiser, beta)`` pairs, an
    optional ``reward`` and its temperature ``lam``."""

    experts: tuple[tuple[Denoiser, float], ...]
    reward: Reward | None = None
    lam: float = 1.0

    @property
    def total_beta(self) -> float:
        """``B = sum_j beta_j``."""
        return sum(b for _, b in self.experts)


def anneal(denoiser: Denoiser, beta: float) -> FKCTarget:
    """The temperature-annealed target ``q^beta`` (``beta > 0``; ``beta = 1`` is the model)."""
    return FKCTarget(((denoiser, check_scale(beta, "beta", 1e-12)),))


def product(first: Denoiser, second: Denoiser, betas: Sequence[float] = (1.0, 1.0)) -> FKCTarget:
    """The product of experts ``q1^b1 q2^b2`` of two denoisers on the same path."""
    if len(betas) != 2:
        raise InputError(f"betas: expected two exponents, got {betas!r}")
    b1, b2 = (check_scale(b, "betas") for b in betas)
    return FKCTarget(((first, b1), (second, b2)))


def cfg_product(cond: Denoiser, uncond: Denoiser, scale: float) -> FKCTarget:
    """Classifier-free guidance as the product ``q(x|c)^w q(x)^(1-w)`` (``w = scale``)."""
    w = check_scale(scale, "scale")
    return FKCTarget(((cond, w), (uncond, 1.0 - w)))


def reward_tilt(denoiser: Denoiser, reward: Reward, lam: float = 1.0) -> FKCTarget:
    """The model tilted by a reward, ``q(x) exp(r(x)/lam)`` (``lam > 0``)."""
    check_reward(reward)
    return FKCTarget(((denoiser, 1.0),), reward, check_scale(lam, "lam", 1e-12))


@dataclass
class FKCResult:
    """Particles ``x`` with normalised ``log_weights`` (uniform after a final resampling), the
    effective sample size before each step's resampling decision (``ess``, one per step plus
    the final one), the steps that resampled, ``nfe`` (batched network calls) and ``calls``
    (network calls on single examples)."""

    x: State
    log_weights: Tensor
    ess: list[float] = field(default_factory=list)
    resampled: list[int] = field(default_factory=list)
    nfe: int = 0
    calls: int = 0


def _sq_norm(v: Tensor, m: Tensor | None) -> Tensor:
    """Per example ``sum v^2`` over valid entries, float64 ``(B,)``."""
    v = v.to(F64)
    if m is not None:
        v = torch.where(expand_mask(m, v), v, 0.0)
    return (v * v).flatten(1).sum(1)


def _count(v: Tensor, m: Tensor | None) -> Tensor:
    """Per example number of valid entries, float64 ``(B,)``."""
    if m is None:
        return torch.full((v.shape[0],), float(v[0].numel()), dtype=F64, device=v.device)
    return expand_mask(m, v).expand_as(v).flatten(1).sum(1).to(F64)


def _weighted(betas: list[float], *eps: Tensor) -> Tensor:
    """``E = sum_j beta_j eps_j`` (``-sigma S``)."""
    out = betas[0] * eps[0]
    for b, e in zip(betas[1:], eps[1:], strict=True):
        out = out + b * e
    return out


def _x0(betas: list[float], x: Tensor, e: Tensor, s: Level, *x0s: Tensor) -> Tensor:
    """The target's data estimate ``(x - sigma E)/alpha`` (where ``alpha = 0``, the
    ``beta``-weighted mean of the experts' estimates)."""
    if s.alpha > 0:
        return (x - s.sigma * e) / s.alpha
    return _weighted([b / sum(betas) for b in betas], *x0s)


def _g_key(
    betas: list[float],
    i: int,
    e: Tensor,
    m: Tensor | None,
    s: Level,
    f_g: list[tuple[float, float]],
    *es: Tensor,
) -> Tensor:
    """One key's ``G = (B-1) f d + g^2/2 (||S||^2 - sum_j beta_j ||s_j||^2)`` ``(B,)``."""
    f, g = f_g[i]
    quad = _sq_norm(e, m)
    for b, ej in zip(betas, es, strict=True):
        quad = quad - b * _sq_norm(ej, m)
    return ((sum(betas) - 1.0) * f * _count(e, m) + 0.5 * g * g * quad / s.sigma**2).cpu()


def fkc(
    target: FKCTarget,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    *,
    resampling: str = "systematic",
    ess_threshold: float = 0.5,
    final_resample: bool = True,
    generator: torch.Generator | None = None,
    mask: Mask = None,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> FKCResult:
    """Sample ``target`` with Feynman-Kac correctors and SMC resampling (see the module doc).

    Args:
        target: :func:`anneal`, :func:`product`, :func:`cfg_product`, :func:`reward_tilt` or
            any :class:`FKCTarget`.
        paths, x, grid, mask, generator, noise: as :func:`~polyfold.core.samplers.
            euler_maruyama` (``x``: the particles at ``grid[0]``, from the base prior).
        resampling: one of :data:`~polyfold.core.steering.resampling.RESAMPLING_SCHEMES`.
        ess_threshold: resample when ESS < ``ess_threshold * N`` (0: never, 1: every step).
        final_resample: resample once more at the end (equal weights).
        callback: ``callback(step, t, x, x0)`` after each step (``x0``: the target's estimate).
    """
    if not isinstance(target, FKCTarget) or not target.experts:
        raise InputError(f"target: expected an FKCTarget with experts, got {target!r}")
    if resampling not in RESAMPLING_SCHEMES:
        raise InputError(
            f"resampling: expected one of {', '.join(RESAMPLING_SCHEMES)}, got {resampling!r}"
        )
    thr = check_scale(ess_threshold, "ess_threshold", 0.0, 1.0)
    experts = [(Counted(d, f"experts[{j}]"), b) for j, (d, b) in enumerate(target.experts)]
    run, fg = _sde_run("fkc", experts[0][0], paths, x, grid, mask, generator, noise, callback)
    big_b = target.total_beta
    if not big_b > 0:
        raise InputError(f"target: expected the exponents to sum to > 0, got {big_b}")
    if big_b != 1.0:
        x = tmap(lambda v: v * big_b**-0.5, x)
    betas = [b for _, b in experts]
    plain = betas == [1.0]
    n = run.batch
    logw = torch.zeros(n, dtype=F64)
    phi = torch.zeros(n, dtype=F64)
    out = FKCResult(x, logw)
    for i in range(run.steps):
        t, lv = run.t[i], run.lv(i)
        tt = torch.full((n,), t, dtype=run.t_dtype, device=run.device)
        ds = [d(x, tt) for d, _ in experts]
        out.nfe += len(ds)
        eps = smap(partial(_weighted, betas), *(d.eps for d in ds))
        x0 = smap(partial(_x0, betas), x, eps, lv, *(d.x0 for d in ds))
        dtau = t - run.t[i + 1]
        if not plain:  # G = 0 exactly when the target is the model
            per_key = tmap(partial(_g_key, betas, i), eps, mask, lv, fg, *(d.eps for d in ds))
            parts = list(per_key.values()) if isinstance(per_key, dict) else [per_key]
            logw = logw + dtau * torch.stack(parts).sum(0).detach()
        if target.reward is not None:
            new_phi = evaluate(target.reward, x0, f"step {i} (t={t:.4g})") / target.lam
            logw, phi = logw + new_phi - phi, new_phi
        if bool(torch.isnan(logw).any()) or bool((logw == math.inf).any()):
            raise InputError(
                f"fkc: the weights became {logw[~torch.isfinite(logw)][0].item()} at step {i} "
                f"(t={t:.4g}); expected finite denoiser predictions"
            )
        ess = effective_sample_size(logw)
        out.ess.append(ess)
        if ess < thr * n:
            idx = resample(logw, resampling, generator=generator)
            x, eps, x0, mask = take(x, idx), take(eps, idx), take(x0, idx), take(mask, idx)
            phi, logw = phi[idx], torch.zeros(n, dtype=F64)
            out.resampled.append(i)
        if run.final(i):
            new = smap(lambda x0i, s: x0i * s.alpha, x0, run.lv(run.steps))
        else:
            new = smap(partial(_em_key, i, run.t[i + 1] - t), x, eps, run.noise(x), lv, fg)
        x = new if mask is None else keep_padding(new, x, mask)
        if callback is not None:
            callback(i, run.t[i + 1], x, x0)
    if target.reward is not None:
        r = evaluate(target.reward, x, "the final state") / target.lam
        logw = logw + r - phi
    logw = logw - torch.logsumexp(logw, 0)
    out.ess.append(effective_sample_size(logw))
    if final_resample:
        idx = resample(logw, resampling, generator=generator)
        x, logw = take(x, idx), torch.full((n,), -math.log(n), dtype=F64)
    out.x, out.log_weights = x, logw
    out.calls = sum(d.calls for d, _ in experts)
    return out
