"""Cooperative diffusion recovery likelihood (CDRL): energy-based models on increasingly noisy
data, each paired with an initializer, trained by recovery likelihood.

Levels ``k = 0 .. L``: level 0 is the data ``x_0``, level ``k >= 1`` its perturbation at path
time ``tau_k`` (``x_k = alpha_k x_0 + sigma_k eps``, increasing ``tau``). Consecutive levels are
linked by the path's Gaussian transition ``x_{k+1} = a_k x_k + s_k eps`` with
``a_k = alpha_{k+1} / alpha_k`` and ``s_k^2 = sigma_{k+1}^2 - a_k^2 sigma_k^2``. The EBM of level
``k``, ``p(x_k) ~ exp(-E(x_k, tau_k))``, defines the recovery likelihood

    ``p(x_k | x_{k+1}) ~ exp(-E(x_k, tau_k) - ||x_{k+1} - a_k x_k||^2 / (2 s_k^2))``,

a conditional that is close to Gaussian, so a few Langevin steps sample it well
(:func:`polyfold.core.langevin.langevin`, step ``step_scale * V_k`` with
``V_k = 1 / (a_k^2 / s_k^2 + 1 / (alpha_k^2 + sigma_k^2))`` the conditional's variance for
unit-variance Gaussian data: ``s_k^2 / a_k^2`` between close levels). CDRL starts those
steps from the initializer, a Gaussian ``N(mu(x_{k+1}), v_k I)`` proposing ``x_k`` (a network
for the mean and a learned variance per level), instead of DRL's ``x_{k+1} / a_k``. The mean
is either the network's output (``init_prediction="mean"``) or, as in the paper's DDPM-like
initializer (``"eps"``), the path's posterior mean ``E[x_k | x_0 = x0_hat, x_{k+1}]`` with
``x0_hat`` from the network's noise prediction of ``x_{k+1}``; then ``v_k`` starts at that
posterior's variance ``s_k^2 sigma_k^2 / sigma_{k+1}^2``. One training step, for a level
drawn per example:

- the EBM maximises the recovery log-likelihood of the observed ``x_k``: its loss
  ``E(x_k) - E(stopgrad(x_k^-))`` with ``x_k^-`` the Langevin-revised samples;
- the initializer learns from the revision (cooperative learning) by maximum likelihood of the
  revised samples: its loss ``||mu(x_{k+1}) - stopgrad(x_k^-)||^2 / (2 v_k) + log(v_k) / 2``
  (mean over entries), which fits both the mean network and ``v_k``. Options:
  ``init_target="displacement"`` regresses the mean on ``mu + (x_k^- - x_start)``, its own
  output moved by the revision (the paper's "difference between the refined and the initial
  samples"; the start's noise drops out of the target, ``v_k`` still fits the revised spread);
  ``init_var="posterior"`` fixes ``v_k`` at the path's ``Var(x_k | x_0, x_{k+1})``.

Sampling runs the cooperative chain from ``N(0, sigma_L^2 I)`` down to level 0: at each level
the initializer's proposal, then the Langevin steps. One energy network and one initializer
network, conditioned on the level's time (0 for the data level), serve every level.

The initializer learns how ``x_k`` depends on ``x_{k+1}`` only through the revision (the EBM's
loss matches the marginal of ``x_k``), so it converges to the EBM's few-step conditional, not
the data's: it can know no more than the EBM. On the bench's mixture (``apps/bench/training.py``,
section ``cdrl``) a briefly trained EBM is still too flat at the two lowest levels to pull it,
and CDRL ties DRL. Training longer needs ``energy_reg`` (with gradient clipping and an EMA of
the weights; without them both methods diverge by 3200 steps); then, at 6400 steps, CDRL's
sliced W2 is about 0.96 of DRL's, within the seeds' spread (one of three above 1), both close
to the metric's floor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_int, check_number
from polyfold.core.langevin import langevin
from polyfold.core.paths import GaussianPath
from polyfold.core.state import expand_to

__all__ = ["CDRL", "cdrl_loss"]


class CDRL(nn.Module):
    """Energy ``energy(x, t) -> (B,)`` and initializer ``initializer(y, t) -> x`` (or ``None``:
    plain DRL) over the levels ``times`` of ``path``.

    Args:
        energy: the energy network, conditioned on the level time ``t`` (``(B,)``).
        initializer: maps ``x_{k+1}`` to a proposal of ``x_k`` (same shape), conditioned on
            ``tau_k``; ``None`` starts the chains at ``x_{k+1} / a_k`` (DRL).
        path: a Gaussian path.
        times: the noisy levels ``tau_1 < ... < tau_L`` in ``(t_min, t_max]``.
        mcmc_steps: Langevin steps per level (training and sampling), ``>= 0``.
        step_scale: Langevin step as a fraction of ``V_k`` (:attr:`step_sizes`), ``> 0``.
        init_noise: draw the initializer's proposal from its Gaussian (``False``: its mean,
            and ``v_k`` is not learned).
        init_prediction: what the initializer outputs: ``"mean"`` (the proposal's mean, called
            with ``tau_k``) or ``"eps"`` (the noise of ``x_{k+1}``, called with ``tau_{k+1}``
            like a diffusion eps-network; the mean is the path's posterior mean).
        energy_reg: weight ``>= 0`` of ``mean(E(x_k)^2 + E(x_k^-)^2)``, keeping energies bounded.
        init_var: the initializer's variance ``v_k``: ``"learned"`` (maximum likelihood of the
            revised samples) or ``"posterior"`` (fixed at :attr:`posterior_var`, the path's
            ``Var(x_k | x_0, x_{k+1})``: 0 at level 0, so the data level starts from the mean).
        init_target: what the initializer's mean regresses on: ``"revised"`` (the revised
            samples ``x_k^-``) or ``"displacement"`` (its own mean moved by the revision
            ``x_k^- - x_start``: the start's noise drops out of the target).
    """

    def __init__(
        self,
        energy: nn.Module,
        initializer: nn.Module | None,
        *,
        path: GaussianPath,
        times: Sequence[float],
        mcmc_steps: int = 10,
        step_scale: float = 0.1,
        init_noise: bool = True,
        init_prediction: str = "mean",
        energy_reg: float = 0.0,
        init_var: str = "learned",
        init_target: str = "revised",
    ) -> None:
        super().__init__()
        if not isinstance(energy, nn.Module):
            raise InputError(f"energy: expected an nn.Module, got {type(energy).__name__}")
        if initializer is not None and not isinstance(initializer, nn.Module):
            raise InputError(
                f"initializer: expected an nn.Module or None, got {type(initializer).__name__}"
            )
        if not isinstance(path, GaussianPath) or not path.gaussian:
            raise InputError(f"path: expected a GaussianPath, got {path!r}")
        taus = [float(t) for t in times]
        if not taus or any(b <= a for a, b in itertools.pairwise(taus)):
            raise InputError(f"times: expected increasing level times, got {taus}")
        if not (path.t_min < taus[0] and taus[-1] <= path.t_max):
            raise InputError(f"times: expected times in ({path.t_min}, {path.t_max}], got {taus}")
        check_int("mcmc_steps", mcmc_steps, minimum=0)
        if init_prediction not in ("mean", "eps"):
            raise InputError(f"init_prediction: expected 'mean' or 'eps', got {init_prediction!r}")
        if init_var not in ("learned", "posterior"):
            raise InputError(f"init_var: expected 'learned' or 'posterior', got {init_var!r}")
        if init_target not in ("revised", "displacement"):
            raise InputError(
                f"init_target: expected 'revised' or 'displacement', got {init_target!r}"
            )
        check_number("step_scale", step_scale, strict=True)
        check_number("energy_reg", energy_reg)
        self.energy, self.initializer, self.path = energy, initializer, path
        self.mcmc_steps, self.step_scale = mcmc_steps, float(step_scale)
        self.init_noise, self.energy_reg = bool(init_noise), float(energy_reg)
        self.init_prediction, self.init_var, self.init_target = (
            init_prediction,
            init_var,
            init_target,
        )
        t = torch.tensor([0.0, *taus], dtype=F64)
        alpha, sigma = path.alpha(t), path.sigma(t)
        alpha[0], sigma[0] = 1.0, 0.0
        a = alpha[1:] / alpha[:-1]
        s2 = sigma[1:] ** 2 - a**2 * sigma[:-1] ** 2
        if bool((s2 <= 0).any()):
            raise InputError("times: each level must add noise to the previous one")
        self.times, self.alpha, self.sigma = t, alpha, sigma
        self.a, self.s = a, s2.sqrt()
        var = 1.0 / (a**2 / s2 + 1.0 / (alpha[:-1] ** 2 + sigma[:-1] ** 2))
        self.recovery_var = var
        """``(L,)`` ``V_k``, the recovery conditional's variance for unit-variance data."""
        self.step_sizes = self.step_scale * var
        """``(L,)`` Langevin step of each level."""
        self.posterior_var = s2 * sigma[:-1] ** 2 / sigma[1:] ** 2
        """``(L,)`` ``Var(x_k | x_0, x_{k+1})`` of the path (0 at level 0)."""
        v0 = (
            var
            if init_prediction == "mean"
            else torch.where(self.posterior_var > 0, self.posterior_var, var)
        )
        self.init_log_var = nn.Parameter(v0.log().to(torch.get_default_dtype()))
        """``(L,)`` log of the initializer's variance ``v_k`` (starts at ``log V_k``, or at
        :attr:`posterior_var` above level 0 for ``init_prediction="eps"``)."""
        self.init_log_var.requires_grad_(self.init_noise and init_var == "learned")

    @property
    def levels(self) -> int:
        """``L``, the number of EBMs (levels ``0 .. L-1``; level ``L`` is the noise end)."""
        return int(self.a.numel())

    def _tau(self, k: int, x: Tensor) -> Tensor:
        return torch.full((x.shape[0],), float(self.times[k]), dtype=x.dtype, device=x.device)

    def energy_at(self, x: Tensor, k: int) -> Tensor:
        """``E(x, tau_k)``, checked to be ``(B,)``."""
        e = self.energy(x, self._tau(k, x))
        if not isinstance(e, Tensor) or e.shape != (x.shape[0],):
            got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise InputError(f"energy: expected an output of shape ({x.shape[0]},), got {got}")
        return e

    def proposal(self, y: Tensor, k: int) -> Tensor:
        """The chain's start for level ``k`` given ``y = x_{k+1}``: the initializer's mean (with
        gradient), or ``y / a_k`` without an initializer."""
        if self.initializer is None:
            return y / float(self.a[k])
        eps = self.init_prediction == "eps"
        out = self.initializer(y, self._tau(k + 1 if eps else k, y))
        if not isinstance(out, Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InputError(
                f"initializer: expected an output of shape {tuple(y.shape)}, got {got}"
            )
        if not eps:
            return out
        x0 = (y - float(self.sigma[k + 1]) * out) / float(self.alpha[k + 1])
        return self.posterior_mean(x0, y, k)

    def posterior_mean(self, x0: Tensor, y: Tensor, k: int) -> Tensor:
        """``E[x_k | x_0, x_{k+1} = y]`` of the path (the DDPM posterior mean)."""
        al, sg, a, s = (float(v[k]) for v in (self.alpha, self.sigma, self.a, self.s))
        return (al * s * s * x0 + a * sg * sg * y) / float(self.sigma[k + 1]) ** 2

    def refine(
        self, x: Tensor, y: Tensor, k: int, generator: torch.Generator, steps: int | None = None
    ) -> Tensor:
        """``steps`` (default ``mcmc_steps``) Langevin steps on ``p(x_k | x_{k+1} = y)`` from
        ``x``; detached."""
        steps = self.mcmc_steps if steps is None else check_int("steps", steps, minimum=0)
        if steps == 0:
            return x.detach()
        a, s = float(self.a[k]), float(self.s[k])

        def cond_energy(v: Tensor) -> Tensor:
            quad = (y - a * v).flatten(1).pow(2).sum(1) / (2 * s * s)
            return self.energy_at(v, k) + quad

        step = float(self.step_sizes[k])
        return langevin(
            x.detach(), generator=generator, steps=steps, step_size=step, energy=cond_energy
        ).samples

    def init_variance(self, k: int) -> float:
        """``v_k``, the variance of the initializer's proposal at level ``k`` (0 without noise)."""
        if self.initializer is None or not self.init_noise:
            return 0.0
        if self.init_var == "posterior":
            return float(self.posterior_var[k])
        return math.exp(float(self.init_log_var[k].detach()))

    def _start(self, mean: Tensor, k: int, generator: torch.Generator) -> Tensor:
        var = self.init_variance(k)
        if var == 0.0:
            return mean.detach()
        std = math.sqrt(var)
        z = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean.detach() + std * z

    def losses(
        self, x0: Tensor, generator: torch.Generator, level: int | None = None
    ) -> dict[str, Tensor]:
        """``{"ebm", "init"}``: the recovery-likelihood and cooperative losses of a data batch,
        each example at a level drawn uniformly from ``0 .. L-1``, or all at ``level`` (cheaper
        per step: one group of chains); ``init`` is 0 for DRL."""
        if not isinstance(x0, Tensor) or x0.ndim < 1 or not x0.is_floating_point():
            raise InputError("x0: expected a batch-first floating tensor")
        b, dev = x0.shape[0], x0.device
        if level is None:
            lv = torch.randint(0, self.levels, (b,), generator=generator, device=dev)
        else:
            check_int("level", level, minimum=0)
            if level >= self.levels:
                raise InputError(f"level: expected an integer < {self.levels}, got {level}")
            lv = torch.full((b,), level, dtype=torch.long, device=dev)
        e1 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=dev)
        e2 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=dev)
        coef = {n: v.to(dev, x0.dtype)[lv] for n, v in (("al", self.alpha), ("sg", self.sigma))}
        x_k = expand_to(coef["al"], x0) * x0 + expand_to(coef["sg"], x0) * e1
        a, s = self.a.to(dev, x0.dtype)[lv], self.s.to(dev, x0.dtype)[lv]
        y = expand_to(a, x0) * x_k + expand_to(s, x0) * e2
        ebm, init, reg = x0.new_zeros(()), x0.new_zeros(()), x0.new_zeros(())
        for k in lv.unique().tolist():
            idx = (lv == k).nonzero().squeeze(1)
            mean = self.proposal(y[idx], k)
            start = self._start(mean, k, generator)
            neg = self.refine(start, y[idx], k, generator)
            e_pos, e_neg = self.energy_at(x_k[idx], k), self.energy_at(neg, k)
            ebm = ebm + (e_pos - e_neg).sum() / b
            reg = reg + (e_pos.pow(2) + e_neg.pow(2)).sum() / b
            if self.initializer is not None:
                init = init + self._init_loss(mean, start, neg, k).sum() / b
        return {"ebm": ebm + self.energy_reg * reg, "init": init}

    def _init_loss(self, mean: Tensor, start: Tensor, neg: Tensor, k: int) -> Tensor:
        """Per-example cooperative loss of the initializer's ``mean`` given the chain's
        ``start`` and its revision ``neg``."""
        target = neg if self.init_target == "revised" else neg - (start - mean.detach())
        sq = (mean - target).flatten(1).pow(2).mean(1)
        if not (self.init_noise and self.init_var == "learned"):
            return sq
        log_v = self.init_log_var[k]
        if self.init_target == "revised":
            return 0.5 * sq / log_v.exp() + 0.5 * log_v
        spread = (mean.detach() - neg).flatten(1).pow(2).mean(1)  # v_k: the revised spread
        return 0.5 * sq / log_v.exp().detach() + 0.5 * (spread / log_v.exp() + log_v)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: Sequence[int],
        *,
        generator: torch.Generator,
        steps: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        data_noise: bool = True,
    ) -> Tensor:
        """``n`` samples ``(n, *shape)`` by the cooperative chain from ``N(0, sigma_L^2 I)``
        (``steps`` Langevin steps per level, default ``mcmc_steps``). ``data_noise=False``
        starts the data level's chains at the initializer's mean, without its noise (as a
        DDPM's last step, whose posterior variance is 0)."""
        check_int("n", n)
        x = torch.randn((n, *shape), generator=generator, device=device, dtype=dtype)
        x = x * float(self.sigma[-1])
        for k in range(self.levels - 1, -1, -1):
            mean = self.proposal(x, k)
            start = self._start(mean, k, generator) if k or data_noise else mean.detach()
            with torch.enable_grad():
                x = self.refine(start, x, k, generator, steps)
        return x


def cdrl_loss(model: nn.Module, x0: Tensor, generator: torch.Generator) -> Tensor:
    """The Trainer loss of a :class:`CDRL` (``loss_fn(model, batch, generator)``): the EBM's
    recovery-likelihood loss plus the initializer's cooperative loss (each only moves its own
    network's parameters). A batch from a ``TensorDataset`` (a 1-tuple) is unpacked."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, CDRL):
        raise InputError(f"model: expected a CDRL, got {type(inner).__name__}")
    batch = x0[0] if isinstance(x0, list | tuple) else x0
    parts = inner.losses(batch, generator)
    return parts["ebm"] + parts["init"]
