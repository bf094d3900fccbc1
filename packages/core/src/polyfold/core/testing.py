"""Exact references for tests: a Gaussian mixture and its exact diffusion quantities.

For data ``x0 ~ sum_k w_k N(mu_k, S_k)`` and a Gaussian path, the marginal of
``x_t = alpha x0 + sigma eps`` is the mixture ``sum_k w_k N(alpha mu_k, C_k)`` with
``C_k = alpha^2 S_k + sigma^2 I``. With responsibilities ``r_k(x) ~ w_k N(x; alpha mu_k, C_k)``:

- ``log p_t(x) = logsumexp_k (log w_k + log N(x; alpha mu_k, C_k))``;
- ``score(x) = -sum_k r_k C_k^-1 (x - alpha mu_k)``;
- ``E[x0 | x_t = x] = sum_k r_k (mu_k + alpha S_k C_k^-1 (x - alpha mu_k))``, which satisfies
  Tweedie's ``(x + sigma^2 score)/alpha``;
- ``eps = -sigma score``, ``v = alpha eps - sigma x0``, ``velocity = d_alpha x0 + d_sigma eps``.

Everything runs in float64 with Cholesky factors, for any dimension ``d`` and any ``t`` with
``C_k`` positive definite (``sigma > 0``, or positive-definite ``S_k``). ``ExactModel`` wraps it
as a network ``model(x_t, t, cond=None)`` of any prediction type, counting its calls.
:func:`ks_statistic` and :func:`ks_critical` give a one-sample Kolmogorov-Smirnov check.

Conditional mixtures: give each component a class label (``labels``); ``cond`` (an int or a
``(B,)`` tensor of labels) restricts the mixture to that class's components, renormalised, and
``cond = None`` or the label :data:`NULL_LABEL` gives the unconditional mixture, which is the
class marginal, so classifier-free guidance has an exact reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath
from polyfold.core.predictions import Prediction, check_prediction, from_x0_eps
from polyfold.core.state import expand_to

__all__ = ["NULL_LABEL", "ExactModel", "GaussianMixture", "ks_critical", "ks_statistic"]

#: The label meaning "no class": the unconditional mixture (classifier-free guidance's null).
NULL_LABEL = -1


class GaussianMixture:
    """``sum_k w_k N(mu_k, S_k)`` in ``d`` dimensions, optionally with class labels.

    Args:
        means: ``(K, d)``.
        covs: ``(K, d, d)`` symmetric positive semi-definite covariances; or instead
        stds: standard deviations, a number, ``(K,)`` (isotropic) or ``(K, d)`` (diagonal).
            Neither gives identity covariances.
        weights: ``(K,)`` positive, normalised here (default uniform).
        labels: ``(K,)`` non-negative integer class of each component, for ``cond``.
        event_shape: shape of one example (product ``d``, default ``(d,)``); inputs and
            samples are ``(B, *event_shape)``.
    """

    def __init__(
        self,
        means: Tensor | Sequence[Sequence[float]],
        covs: Tensor | None = None,
        *,
        stds: Tensor | float | Sequence[float] | None = None,
        weights: Tensor | Sequence[float] | None = None,
        labels: Tensor | Sequence[int] | None = None,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        mu = torch.as_tensor(means, dtype=F64)
        if mu.ndim != 2:
            raise InputError(f"means: expected shape (K, d), got {tuple(mu.shape)}")
        k, d = mu.shape
        if covs is not None and stds is not None:
            raise InputError("covs, stds: give one of them, not both")
        if covs is not None:
            cov = torch.as_tensor(covs, dtype=F64)
            if cov.shape != (k, d, d) or not torch.allclose(cov, cov.mT):
                raise InputError(f"covs: expected symmetric (K, d, d) = ({k}, {d}, {d}) matrices")
        else:
            s = torch.as_tensor(1.0 if stds is None else stds, dtype=F64)
            if s.ndim == 0 or s.shape == (k,):
                s = s.reshape(-1, 1).expand(k, d)
            if s.shape != (k, d) or bool((s < 0).any()):
                raise InputError(f"stds: expected a number, (K,) or (K, d) >= 0 with K={k}, d={d}")
            cov = torch.diag_embed(s**2)
        evals, evecs = torch.linalg.eigh(cov)
        if bool((evals < -1e-10 * evals.abs().amax().clamp_min(1.0)).any()):
            raise InputError("covs: expected positive semi-definite matrices")
        w = torch.full((k,), 1.0 / k, dtype=F64) if weights is None else torch.as_tensor(weights)
        w = w.to(F64)
        if w.shape != (k,) or not bool((w > 0).all()):
            raise InputError(f"weights: expected {k} positive numbers")
        self.labels: Tensor | None = None
        if labels is not None:
            lab = torch.as_tensor(labels)
            if lab.shape != (k,) or lab.is_floating_point() or bool((lab < 0).any()):
                raise InputError(f"labels: expected {k} non-negative integers")
            self.labels = lab.long()
        self.event_shape = (d,) if event_shape is None else tuple(event_shape)
        if math.prod(self.event_shape) != d:
            raise InputError(f"event_shape: expected {d} entries in all, got {self.event_shape}")
        self.means, self.covs, self.weights = mu, cov, w / w.sum()
        self._sqrt_cov = evecs * evals.clamp_min(0.0).sqrt()[:, None, :]
        self.n_components, self.dim = k, d

    # -- class handling -------------------------------------------------------------------
    def _log_weights(self, cond: Any, batch: int) -> Tensor:
        """``(B, K)`` log mixture weights, restricted to each example's class and renormalised."""
        logw = self.weights.log().expand(batch, -1)
        if cond is None:
            return logw
        if self.labels is None:
            raise InputError("cond: this mixture has no labels; build it with labels=...")
        c = torch.as_tensor(cond).long().cpu().reshape(-1).expand(batch)
        known = torch.isin(c, self.labels) | (c == NULL_LABEL)
        if not bool(known.all()):
            raise InputError(
                f"cond: expected labels in {sorted(set(self.labels.tolist()))} or {NULL_LABEL}"
            )
        keep = (self.labels[None, :] == c[:, None]) | (c[:, None] == NULL_LABEL)
        logw = torch.where(keep, logw, -math.inf)
        return logw - torch.logsumexp(logw, dim=1, keepdim=True)

    # -- data distribution ----------------------------------------------------------------
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        cond: Any = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n`` draws ``(n, *event_shape)``, from class ``cond`` if given."""
        probs = self._log_weights(cond, n).exp()
        comp = torch.multinomial(probs, 1, replacement=True, generator=generator)[:, 0]
        z = torch.randn(n, self.dim, generator=generator, dtype=F64)
        x = self.means[comp] + (self._sqrt_cov[comp] @ z[:, :, None])[:, :, 0]
        out: Tensor = x.reshape(n, *self.event_shape)
        return out.to(dtype or torch.get_default_dtype())

    def moments(self, cond: Any = None) -> tuple[Tensor, Tensor]:
        """Exact mean ``(d,)`` and covariance ``(d, d)`` of the data (of class ``cond``)."""
        w = self._log_weights(None if cond is None else [cond], 1)[0].softmax(0)
        mean = w @ self.means
        second = torch.einsum(
            "k,kij->ij", w, self.covs + self.means[:, :, None] * self.means[:, None]
        )
        return mean, second - mean[:, None] * mean[None, :]

    def marginal(self, t: float, path: GaussianPath) -> GaussianMixture:
        """The mixture of ``x_t`` at a single time ``t``."""
        a, s = (float(c) for c in self._coefs(t, path, 1)[:2])
        eye = torch.eye(self.dim, dtype=F64)
        return GaussianMixture(
            a * self.means,
            a * a * self.covs + s * s * eye,
            weights=self.weights,
            labels=self.labels,
            event_shape=self.event_shape,
        )

    # -- exact quantities along a path ------------------------------------------------------
    def _coefs(self, t: Tensor | float, path: GaussianPath, batch: int) -> tuple[Tensor, ...]:
        if not path.gaussian:
            raise InputError(f"path: exact mixture marginals need a Gaussian path, got {path!r}")
        tt = torch.as_tensor(t, dtype=F64).cpu().reshape(-1).expand(batch)
        return path.alpha(tt), path.sigma(tt), path.d_alpha(tt), path.d_sigma(tt)

    def _posterior(
        self, x: Tensor, alpha: Tensor, sigma: Tensor, cond: Any
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``log p_t(x)``, ``E[x0 | x]`` and the score, float64, ``x`` flat ``(B, d)``."""
        a = alpha[:, None, None, None]
        cov = a * a * self.covs + (sigma**2)[:, None, None, None] * torch.eye(self.dim, dtype=F64)
        chol = torch.linalg.cholesky(cov)  # (B, K, d, d)
        diff = (x[:, None, :] - alpha[:, None, None] * self.means)[..., None]  # (B, K, d, 1)
        white = torch.linalg.solve_triangular(chol, diff, upper=False)
        prec_diff = torch.cholesky_solve(diff, chol)[..., 0]  # C^-1 (x - alpha mu)
        logdet = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_n = -0.5 * (white[..., 0].pow(2).sum(-1) + logdet + self.dim * math.log(2 * math.pi))
        log_joint = self._log_weights(cond, x.shape[0]) + log_n
        log_p = torch.logsumexp(log_joint, dim=1)
        resp = torch.softmax(log_joint, dim=1)[..., None]  # (B, K, 1)
        score = -(resp * prec_diff).sum(1)
        post = self.means + alpha[:, None, None] * (self.covs @ prec_diff[..., None])[..., 0]
        return log_p, (resp * post).sum(1), score

    def _flat(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.event_shape:
            raise InputError(
                f"x: expected shape (B, {', '.join(map(str, self.event_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], self.dim).to(F64).cpu()

    def log_prob(
        self,
        x: Tensor,
        t: Tensor | float = 0.0,
        path: GaussianPath | None = None,
        *,
        cond: Any = None,
    ) -> Tensor:
        """``log p_t(x)`` (``(B,)``, float64); no path: the data density."""
        xf = self._flat(x)
        if path is None:
            one = torch.ones(x.shape[0], dtype=F64)
            return self._posterior(xf, one, 0 * one, cond)[0].to(x.device)
        alpha, sigma = self._coefs(t, path, x.shape[0])[:2]
        return self._posterior(xf, alpha, sigma, cond)[0].to(x.device)

    def predict(
        self,
        x: Tensor,
        t: Tensor | float,
        path: GaussianPath,
        prediction: Prediction = "x0",
        *,
        cond: Any = None,
    ) -> Tensor:
        """The exact (Bayes-optimal) prediction of the given type at ``x_t = x``."""
        check_prediction(prediction)
        xf = self._flat(x)
        alpha, sigma, d_alpha, d_sigma = self._coefs(t, path, x.shape[0])
        _, x0, score = self._posterior(xf, alpha, sigma, cond)
        if prediction == "score":
            out = score
        else:
            eps = -expand_to(sigma, score) * score
            out = from_x0_eps(
                x0,
                eps,
                target=prediction,
                alpha=alpha,
                sigma=sigma,
                d_alpha=d_alpha,
                d_sigma=d_sigma,
            )
        return out.reshape(x.shape).to(device=x.device, dtype=x.dtype)

    def x0_mean(
        self, x: Tensor, t: Tensor | float, path: GaussianPath, *, cond: Any = None
    ) -> Tensor:
        """The exact denoiser ``E[x0 | x_t = x]``."""
        return self.predict(x, t, path, "x0", cond=cond)

    def score(
        self, x: Tensor, t: Tensor | float, path: GaussianPath, *, cond: Any = None
    ) -> Tensor:
        """``grad_x log p_t(x)``."""
        return self.predict(x, t, path, "score", cond=cond)

    def eps(self, x: Tensor, t: Tensor | float, path: GaussianPath, *, cond: Any = None) -> Tensor:
        """``E[eps | x_t = x] = -sigma score``."""
        return self.predict(x, t, path, "eps", cond=cond)

    def velocity(
        self, x: Tensor, t: Tensor | float, path: GaussianPath, *, cond: Any = None
    ) -> Tensor:
        """The marginal flow velocity ``E[d_alpha x0 + d_sigma eps | x_t = x]``."""
        return self.predict(x, t, path, "velocity", cond=cond)

    def model(self, path: GaussianPath, prediction: Prediction = "eps") -> ExactModel:
        """This mixture's exact predictions as a network ``model(x_t, t, cond=None)``."""
        return ExactModel(self, path, prediction)


class ExactModel:
    """``model(x_t, t, cond=None)`` giving a mixture's exact prediction; ``nfe`` counts calls."""

    def __init__(self, gmm: GaussianMixture, path: GaussianPath, prediction: Prediction) -> None:
        self.gmm, self.path, self.prediction = gmm, path, check_prediction(prediction)
        self.nfe = 0

    def __call__(self, x_t: Tensor, t: Tensor | float, cond: Any = None) -> Tensor:
        self.nfe += 1
        return self.gmm.predict(x_t, t, self.path, self.prediction, cond=cond)


def ks_statistic(samples: Tensor, cdf: Callable[[Tensor], Tensor]) -> float:
    """One-sample Kolmogorov-Smirnov distance ``sup |F_n - F|`` of 1-D samples to a CDF."""
    x = samples.detach().reshape(-1).to(F64).sort().values
    n = x.numel()
    f = cdf(x).to(F64)
    upper = torch.arange(1, n + 1, dtype=F64) / n - f
    lower = f - torch.arange(n, dtype=F64) / n
    return float(torch.maximum(upper, lower).max())


def ks_critical(n: int, level: float = 1e-3) -> float:
    """Asymptotic KS critical distance: exceeded with probability ``level`` under the null."""
    return math.sqrt(-0.5 * math.log(level / 2.0) / n)
